/**
 * The Querying Transformer, mirroring transformers' modeling_blip_2.py: Blip2QFormerMultiHeadAttention,
 * Blip2QFormerSelfOutput, Blip2QFormerAttention, Blip2QFormerIntermediate, Blip2QFormerOutput,
 * Blip2QFormerLayer, Blip2QFormerEncoder, Blip2QFormerModel. BERT-style post-LN blocks; cross-attention to
 * the image tokens every `cross_attention_frequency` layers. HF keeps this module in fp32: so do we.
 */
import { attention } from '../autograd/functional.js';
import { attentionProbs } from '../kernels/attention.js';
import type { Tensor } from '../tensor.js';
import { tidy } from '../tensor.js';
import type { Blip2QFormerConfig } from './config.js';
import { Module, ModuleList } from './module.js';
import { Dropout, LayerNorm, Linear } from './nn.js';

export interface QFormerAttentionOutput {
  output: Tensor;
  /** Attention probabilities [B, heads, Lq, Lk] when requested (cross-attention maps for researchers). */
  attention_probs: Tensor | null;
}

export class Blip2QFormerMultiHeadAttention extends Module<[Tensor, Tensor | null, boolean], QFormerAttentionOutput> {
  readonly num_attention_heads: number;
  readonly attention_head_size: number;
  readonly all_head_size: number;
  query: Linear;
  key: Linear;
  value: Linear;

  constructor(
    readonly config: Blip2QFormerConfig,
    readonly is_cross_attention = false,
  ) {
    super();
    this.num_attention_heads = config.num_attention_heads;
    this.attention_head_size = config.hidden_size / config.num_attention_heads;
    this.all_head_size = this.num_attention_heads * this.attention_head_size;
    const kvWidth = is_cross_attention ? config.encoder_hidden_size : config.hidden_size;
    this.query = new Linear(config.hidden_size, this.all_head_size, { role: 'fp32' });
    this.key = new Linear(kvWidth, this.all_head_size, { role: 'fp32' });
    this.value = new Linear(kvWidth, this.all_head_size, { role: 'fp32' });
  }

  /** Self-attention when encoder_hidden_states is null, else cross-attention to them (all-ones masks: no mask). */
  forward(hidden_states: Tensor, encoder_hidden_states: Tensor | null, output_attentions: boolean): QFormerAttentionOutput {
    return tidy(() => {
      const kv = this.is_cross_attention ? encoder_hidden_states : hidden_states;
      if (!kv) throw new Error('Q-Former cross-attention needs encoder_hidden_states');
      const query_layer = this.query.call(hidden_states);
      const key_layer = this.key.call(kv);
      const value_layer = this.value.call(kv);
      const opts = { numHeads: this.num_attention_heads, headDim: this.attention_head_size, scale: 1 / Math.sqrt(this.attention_head_size) };
      const output = attention(query_layer, key_layer, value_layer, opts);
      const attention_probs = output_attentions ? attentionProbs(query_layer, key_layer, opts) : null;
      return { output, attention_probs };
    });
  }
}

/** LayerNorm(dropout(dense(hidden_states)) + input_tensor). */
export class Blip2QFormerSelfOutput extends Module<[Tensor, Tensor], Tensor> {
  dense: Linear;
  LayerNorm: LayerNorm;
  dropout: Dropout;

  constructor(readonly config: Blip2QFormerConfig) {
    super();
    this.dense = new Linear(config.hidden_size, config.hidden_size, { role: 'fp32' });
    this.LayerNorm = new LayerNorm(config.hidden_size, config.layer_norm_eps);
    this.dropout = new Dropout(config.hidden_dropout_prob);
  }

  forward(hidden_states: Tensor, input_tensor: Tensor): Tensor {
    return tidy(() => this.LayerNorm.call(this.dropout.call(this.dense.call(hidden_states)), { residual: input_tensor }));
  }
}

export class Blip2QFormerAttention extends Module<[Tensor, Tensor | null, boolean], QFormerAttentionOutput> {
  attention: Blip2QFormerMultiHeadAttention;
  output: Blip2QFormerSelfOutput;

  constructor(
    readonly config: Blip2QFormerConfig,
    is_cross_attention = false,
  ) {
    super();
    this.attention = new Blip2QFormerMultiHeadAttention(config, is_cross_attention);
    this.output = new Blip2QFormerSelfOutput(config);
  }

  forward(hidden_states: Tensor, encoder_hidden_states: Tensor | null, output_attentions: boolean): QFormerAttentionOutput {
    return tidy(() => {
      const self_outputs = this.attention.call(hidden_states, encoder_hidden_states, output_attentions);
      return { output: this.output.call(self_outputs.output, hidden_states), attention_probs: self_outputs.attention_probs };
    });
  }
}

/** dense + GELU (fused). */
export class Blip2QFormerIntermediate extends Module<[Tensor], Tensor> {
  dense: Linear;

  constructor(readonly config: Blip2QFormerConfig) {
    super();
    this.dense = new Linear(config.hidden_size, config.intermediate_size, { role: 'fp32' });
  }

  forward(hidden_states: Tensor): Tensor {
    return this.dense.call(hidden_states, { activation: 'gelu' });
  }
}

/** LayerNorm(dropout(dense(hidden_states)) + input_tensor). */
export class Blip2QFormerOutput extends Module<[Tensor, Tensor], Tensor> {
  dense: Linear;
  LayerNorm: LayerNorm;
  dropout: Dropout;

  constructor(readonly config: Blip2QFormerConfig) {
    super();
    this.dense = new Linear(config.intermediate_size, config.hidden_size, { role: 'fp32' });
    this.LayerNorm = new LayerNorm(config.hidden_size, config.layer_norm_eps);
    this.dropout = new Dropout(config.hidden_dropout_prob);
  }

  forward(hidden_states: Tensor, input_tensor: Tensor): Tensor {
    return tidy(() => this.LayerNorm.call(this.dropout.call(this.dense.call(hidden_states)), { residual: input_tensor }));
  }
}

export interface QFormerLayerOutput {
  hidden_states: Tensor;
  self_attention: Tensor | null;
  cross_attention: Tensor | null;
}

export class Blip2QFormerLayer extends Module<[Tensor, Tensor, boolean], QFormerLayerOutput> {
  attention: Blip2QFormerAttention;
  crossattention: Blip2QFormerAttention | null;
  readonly has_cross_attention: boolean;
  intermediate_query: Blip2QFormerIntermediate;
  output_query: Blip2QFormerOutput;

  constructor(
    readonly config: Blip2QFormerConfig,
    readonly layer_idx: number,
  ) {
    super();
    this.attention = new Blip2QFormerAttention(config);
    this.has_cross_attention = layer_idx % config.cross_attention_frequency === 0;
    this.crossattention = this.has_cross_attention ? new Blip2QFormerAttention(config, true) : null;
    this.intermediate_query = new Blip2QFormerIntermediate(config);
    this.output_query = new Blip2QFormerOutput(config);
  }

  /** Only query tokens flow through BLIP-2's Q-Former (no text input), so every row takes the *_query path. */
  forward(hidden_states: Tensor, encoder_hidden_states: Tensor, output_attentions: boolean): QFormerLayerOutput {
    return tidy(() => {
      const self_attention_outputs = this.attention.call(hidden_states, null, output_attentions);
      let query_attention_output = self_attention_outputs.output;
      let cross_attention: Tensor | null = null;
      if (this.crossattention) {
        const cross = this.crossattention.call(query_attention_output, encoder_hidden_states, output_attentions);
        query_attention_output = cross.output;
        cross_attention = cross.attention_probs;
      }
      const intermediate_output = this.intermediate_query.call(query_attention_output);
      const layer_output = this.output_query.call(intermediate_output, query_attention_output);
      return { hidden_states: layer_output, self_attention: self_attention_outputs.attention_probs, cross_attention };
    });
  }
}

export interface QFormerOutputOptions {
  output_attentions?: boolean;
  output_hidden_states?: boolean;
}

export interface QFormerEncoderOutput {
  last_hidden_state: Tensor;
  hidden_states: Tensor[] | null;
  attentions: Tensor[] | null;
  cross_attentions: Tensor[] | null;
}

export class Blip2QFormerEncoder extends Module<[Tensor, Tensor, QFormerOutputOptions?], QFormerEncoderOutput> {
  layer: ModuleList<Blip2QFormerLayer>;

  constructor(readonly config: Blip2QFormerConfig) {
    super();
    this.layer = new ModuleList(Array.from({ length: config.num_hidden_layers }, (_, i) => new Blip2QFormerLayer(config, i)));
  }

  forward(hidden_states: Tensor, encoder_hidden_states: Tensor, options: QFormerOutputOptions = {}): QFormerEncoderOutput {
    return tidy(() => {
      const out_attn = options.output_attentions ?? false;
      const all_hidden: Tensor[] | null = options.output_hidden_states ? [hidden_states.ref()] : null;
      const all_self: Tensor[] | null = out_attn ? [] : null;
      const all_cross: Tensor[] | null = out_attn ? [] : null;
      let h = hidden_states;
      for (const layer_module of this.layer) {
        const layer_outputs = layer_module.call(h, encoder_hidden_states, out_attn);
        h = layer_outputs.hidden_states;
        all_hidden?.push(h);
        if (layer_outputs.self_attention) all_self?.push(layer_outputs.self_attention);
        if (layer_outputs.cross_attention) all_cross?.push(layer_outputs.cross_attention);
      }
      return { last_hidden_state: h === hidden_states ? h.ref() : h, hidden_states: all_hidden, attentions: all_self, cross_attentions: all_cross };
    });
  }
}

export class Blip2QFormerModel extends Module<[Tensor, Tensor, QFormerOutputOptions?], QFormerEncoderOutput> {
  layernorm: LayerNorm;
  dropout: Dropout;
  encoder: Blip2QFormerEncoder;

  constructor(readonly config: Blip2QFormerConfig) {
    super();
    this.layernorm = new LayerNorm(config.hidden_size, config.layer_norm_eps);
    this.dropout = new Dropout(config.hidden_dropout_prob);
    this.encoder = new Blip2QFormerEncoder(config);
  }

  /**
   * query_embeds [B, Q, hidden] (any number Q of query tokens), encoder_hidden_states [B, L, encoder_hidden_size].
   * hidden_states[0] is layernorm(query_embeds), then each layer's output.
   */
  forward(query_embeds: Tensor, encoder_hidden_states: Tensor, options: QFormerOutputOptions = {}): QFormerEncoderOutput {
    const c = this.config;
    if (query_embeds.ndim !== 3 || query_embeds.dim(2) !== c.hidden_size) {
      throw new Error(`query_embeds must be [B, Q, ${c.hidden_size}], got [${query_embeds.shape.join(', ')}]`);
    }
    if (encoder_hidden_states.ndim !== 3 || encoder_hidden_states.dim(0) !== query_embeds.dim(0) || encoder_hidden_states.dim(2) !== c.encoder_hidden_size) {
      throw new Error(`encoder_hidden_states must be [${query_embeds.dim(0)}, L, ${c.encoder_hidden_size}], got [${encoder_hidden_states.shape.join(', ')}]`);
    }
    return tidy(() => {
      const embedding_output = this.dropout.call(this.layernorm.call(query_embeds));
      return this.encoder.call(embedding_output, encoder_hidden_states, options);
    });
  }
}
