/**
 * Which weights the scheme quantizes: the Linear weights of the vision encoder layers and of the OPT decoder
 * layers. Everything else (embeddings and the tied lm_head, the patch embedding, LayerNorms, biases, the whole
 * Q-Former, language_projection, query_tokens) keeps the float dtype, so Q-Former research is unaffected.
 * The patterns (`*` = a layer index) are also written into converted folders' quantization_config.
 */
export const QUANTIZED_MODULES: readonly string[] = [
  'vision_model.encoder.layers.*.self_attn.qkv',
  'vision_model.encoder.layers.*.self_attn.projection',
  'vision_model.encoder.layers.*.mlp.fc1',
  'vision_model.encoder.layers.*.mlp.fc2',
  'language_model.model.decoder.layers.*.self_attn.q_proj',
  'language_model.model.decoder.layers.*.self_attn.k_proj',
  'language_model.model.decoder.layers.*.self_attn.v_proj',
  'language_model.model.decoder.layers.*.self_attn.out_proj',
  'language_model.model.decoder.layers.*.fc1',
  'language_model.model.decoder.layers.*.fc2',
];

const escape = (s: string) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');

function patternRegex(patterns: readonly string[]): RegExp {
  return new RegExp(`^(?:${patterns.map((p) => escape(p).replace(/\*/g, '\\d+')).join('|')})\\.weight$`);
}

const DEFAULT = patternRegex(QUANTIZED_MODULES);

/** Whether the state-dict key `key` names a weight that the scheme quantizes (`patterns`: module patterns as above). */
export function isQuantizedWeight(key: string, patterns: readonly string[] = QUANTIZED_MODULES): boolean {
  return (patterns === QUANTIZED_MODULES ? DEFAULT : patternRegex(patterns)).test(key);
}

/** The key of a quantized weight's scales in checkpoints: `KEY_scales` (`...fc1.weight_scales`). */
export function scalesKey(weightKey: string): string {
  return `${weightKey}_scales`;
}
