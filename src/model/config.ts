/**
 * BLIP-2 configuration as transformers reads it: `config.json` lists only non-default values (the real
 * blip2-opt-2.7b file omits nearly all vision and Q-Former sizes), so every field falls back to the default of
 * the matching transformers config class. Field names are the JSON keys, as in the Python modules.
 */
export interface Blip2VisionConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_channels: number;
  image_size: number;
  patch_size: number;
  hidden_act: string;
  layer_norm_eps: number;
  qkv_bias: boolean;
}

export interface Blip2QFormerConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: string;
  max_position_embeddings: number;
  layer_norm_eps: number;
  cross_attention_frequency: number;
  encoder_hidden_size: number;
  use_qformer_text_input: boolean;
  /** Dropout after the embeddings' LayerNorm and each dense output (training only). */
  hidden_dropout_prob: number;
  /** Dropout of the attention probabilities in HF; the fused attention kernels do not apply it (docs/finetuning.md). */
  attention_probs_dropout_prob: number;
}

export interface OPTConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  ffn_dim: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  do_layer_norm_before: boolean;
  _remove_final_layer_norm: boolean;
  word_embed_proj_dim: number;
  enable_bias: boolean;
  layer_norm_elementwise_affine: boolean;
  activation_function: string;
  bos_token_id: number;
  eos_token_id: number;
  pad_token_id: number;
  tie_word_embeddings: boolean;
}

export interface Blip2Config {
  vision_config: Blip2VisionConfig;
  qformer_config: Blip2QFormerConfig;
  text_config: OPTConfig;
  num_query_tokens: number;
  /** Id of `<image>` in the text vocabulary; null for older checkpoints (queries are then prepended). */
  image_token_index: number | null;
  use_decoder_only_language_model: boolean;
}

// Defaults of transformers' Blip2VisionConfig, Blip2QFormerConfig and OPTConfig.
const VISION_DEFAULTS: Blip2VisionConfig = {
  hidden_size: 1408,
  intermediate_size: 6144,
  num_hidden_layers: 39,
  num_attention_heads: 16,
  num_channels: 3,
  image_size: 224,
  patch_size: 14,
  hidden_act: 'gelu',
  layer_norm_eps: 1e-6,
  qkv_bias: true,
};

const QFORMER_DEFAULTS: Blip2QFormerConfig = {
  vocab_size: 30522,
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  hidden_act: 'gelu',
  max_position_embeddings: 512,
  layer_norm_eps: 1e-12,
  cross_attention_frequency: 2,
  encoder_hidden_size: 1408,
  use_qformer_text_input: false,
  hidden_dropout_prob: 0.1,
  attention_probs_dropout_prob: 0.1,
};

const OPT_DEFAULTS: Omit<OPTConfig, 'word_embed_proj_dim'> = {
  vocab_size: 50272,
  hidden_size: 768,
  num_hidden_layers: 12,
  ffn_dim: 3072,
  num_attention_heads: 12,
  max_position_embeddings: 2048,
  do_layer_norm_before: true,
  _remove_final_layer_norm: false,
  enable_bias: true,
  layer_norm_elementwise_affine: true,
  activation_function: 'relu',
  bos_token_id: 2,
  eos_token_id: 2,
  pad_token_id: 1,
  tie_word_embeddings: true,
};

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Json = Record<string, unknown>;

function obj(v: unknown, what: string): Json {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(`${what} must be an object`);
  return v as Json;
}

function fill<T extends object>(defaults: T, given: Json, what: string): T {
  const out = { ...defaults } as Record<string, unknown>;
  for (const [k, d] of Object.entries(defaults)) {
    const v = given[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== typeof d) throw new ConfigError(`${what}.${k} must be a ${typeof d}, got ${JSON.stringify(v)}`);
    if (typeof v === 'number' && !(Number.isFinite(v) && (Number.isInteger(d) ? Number.isInteger(v) && v >= 0 : true))) {
      throw new ConfigError(`${what}.${k} has an invalid value ${v}`);
    }
    out[k] = v;
  }
  return out as T;
}

function checkHeads(hidden: number, heads: number, what: string): void {
  if (heads <= 0 || hidden % heads !== 0) throw new ConfigError(`${what}: hidden_size ${hidden} is not divisible by num_attention_heads ${heads}`);
}

/** Parses a Blip2ForConditionalGeneration `config.json` (an object), filling transformers' defaults. */
export function parseBlip2Config(json: unknown): Blip2Config {
  const root = obj(json, 'config');
  if (root.model_type !== undefined && root.model_type !== 'blip-2') {
    throw new ConfigError(`config.model_type is ${JSON.stringify(root.model_type)}, expected "blip-2"`);
  }
  const vision = fill(VISION_DEFAULTS, obj(root.vision_config, 'vision_config'), 'vision_config');
  const qformer = fill(QFORMER_DEFAULTS, obj(root.qformer_config, 'qformer_config'), 'qformer_config');
  // Blip2Config ties the Q-Former's cross-attention input width to the vision tower.
  qformer.encoder_hidden_size = vision.hidden_size;
  const textJson = obj(root.text_config, 'text_config');
  if (textJson.model_type !== undefined && textJson.model_type !== 'opt') {
    throw new ConfigError(`text_config.model_type ${JSON.stringify(textJson.model_type)} is not supported (only OPT language models)`);
  }
  const textBase = fill(OPT_DEFAULTS, textJson, 'text_config');
  const proj = textJson.word_embed_proj_dim;
  const text: OPTConfig = { ...textBase, word_embed_proj_dim: typeof proj === 'number' ? proj : textBase.hidden_size };
  const decoderOnly = root.use_decoder_only_language_model ?? true;
  if (decoderOnly !== true) throw new ConfigError('encoder-decoder language models (BLIP-2 Flan-T5) are not supported');
  const numQuery = root.num_query_tokens ?? 32;
  if (typeof numQuery !== 'number' || !Number.isInteger(numQuery) || numQuery <= 0) throw new ConfigError(`num_query_tokens must be a positive integer`);
  const imageToken = root.image_token_index ?? null;
  if (imageToken !== null && (typeof imageToken !== 'number' || !Number.isInteger(imageToken) || imageToken < 0)) {
    throw new ConfigError(`image_token_index must be a non-negative integer or null`);
  }
  checkHeads(vision.hidden_size, vision.num_attention_heads, 'vision_config');
  checkHeads(qformer.hidden_size, qformer.num_attention_heads, 'qformer_config');
  checkHeads(text.hidden_size, text.num_attention_heads, 'text_config');
  if (vision.image_size % vision.patch_size !== 0) throw new ConfigError('vision_config.image_size must be a multiple of patch_size');
  for (const [what, act] of [['vision_config.hidden_act', vision.hidden_act], ['qformer_config.hidden_act', qformer.hidden_act]] as const) {
    if (act !== 'gelu') throw new ConfigError(`${what} ${JSON.stringify(act)} is not supported (only "gelu")`);
  }
  if (text.activation_function !== 'relu') throw new ConfigError(`text_config.activation_function ${JSON.stringify(text.activation_function)} is not supported (only "relu")`);
  if (imageToken !== null && imageToken >= text.vocab_size) throw new ConfigError(`image_token_index ${imageToken} is outside the text vocabulary (${text.vocab_size})`);
  return {
    vision_config: vision,
    qformer_config: qformer,
    text_config: text,
    num_query_tokens: numQuery,
    image_token_index: imageToken,
    use_decoder_only_language_model: true,
  };
}
