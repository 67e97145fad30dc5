/**
 * The file names of a Hugging Face model folder that BLIP-2 reads, in a module without Node imports: the hub
 * download (io/hub-files.ts) and fine-tuned checkpoints written in the browser (training/checkpoint.ts) share them.
 */
export const WEIGHTS_INDEX = 'model.safetensors.index.json';
export const SINGLE_WEIGHTS = 'model.safetensors';

/** Small files used when present: configs, tokenizer and processor files. */
export const SUPPORT_FILES: readonly string[] = [
  'config.json',
  'generation_config.json',
  'preprocessor_config.json',
  'processor_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
];
