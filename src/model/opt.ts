/**
 * OPT, mirroring transformers' modeling_opt.py: OPTLearnedPositionalEmbedding, OPTAttention, OPTDecoderLayer,
 * OPTDecoder, OPTModel, OPTForCausalLM. Pre-LN (do_layer_norm_before) as in OPT-2.7B, post-LN supported;
 * ReLU MLP; learned positions with an offset of 2; lm_head tied to embed_tokens; KV cache for decoding.
 */
import { add, attention, concatRows, linear } from '../autograd/functional.js';
import { checkpoint, recording } from '../autograd/tape.js';
import { attentionProbs } from '../kernels/attention.js';
import { embedding } from '../kernels/embedding.js';
import { linear as linearInto } from '../kernels/linear.js';
import type { Gpu } from '../gpu/gpu.js';
import { keep, Tensor, tidy, type DType } from '../tensor.js';
import { concatQuantizedRows, keepWeight, QuantizedTensor, type Weight } from '../quant/quantized-tensor.js';
import type { OPTConfig } from './config.js';
import { Module, ModuleList } from './module.js';
import { Embedding, LayerNorm, Linear } from './nn.js';
import { OPTKVCache } from './opt-cache.js';

/** The additive mask value for padding, torch.finfo(float32).min as HF uses. */
export const MASK_MIN = -3.4028234663852886e38;

/** Per-call attention context shared by every layer. */
export interface OPTAttentionContext {
  /** Additive [B, past + L] padding mask (0 or MASK_MIN). */
  mask: Tensor;
  cache: OPTKVCache | null;
  /** Rows already in the cache. */
  past_key_values_length: number;
  output_attentions: boolean;
}

export interface OPTAttentionOutput {
  output: Tensor;
  attn_weights: Tensor | null;
}

/** Position rows for `attention_mask` (HF: cumsum(mask) * mask - 1, sliced past the cache, plus offset 2). */
export function opt_position_ids(attention_mask: readonly (readonly number[])[], past_key_values_length: number, offset = 2): Int32Array {
  const B = attention_mask.length;
  const total = attention_mask[0]?.length ?? 0;
  const L = total - past_key_values_length;
  const out = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    const row = attention_mask[b]!;
    if (row.length !== total) throw new Error('attention_mask rows differ in length');
    let cum = 0;
    for (let t = 0; t < total; t++) {
      const m = row[t]!;
      cum += m;
      if (t >= past_key_values_length) out[b * L + t - past_key_values_length] = cum * m - 1 + offset;
    }
  }
  return out;
}

export class OPTLearnedPositionalEmbedding extends Embedding {
  /** OPT reserves the first two rows: position p uses row p + 2. */
  readonly offset = 2;

  constructor(num_embeddings: number, embedding_dim: number) {
    super(num_embeddings + 2, embedding_dim, 'fp32');
  }

  /** Embeddings of the positions of the new tokens (those after the cache). */
  positions(attention_mask: readonly (readonly number[])[], past_key_values_length: number): Tensor {
    return tidy(() => {
      const ids = opt_position_ids(attention_mask, past_key_values_length, this.offset);
      const B = attention_mask.length;
      const L = ids.length / Math.max(1, B);
      for (const p of ids) if (p >= this.num_embeddings) throw new Error(`sequence too long: position ${p - this.offset} exceeds max_position_embeddings ${this.num_embeddings - this.offset}`);
      const t = Tensor.from(this.weight.value.gpu, ids, [B, L], 'i32');
      return this.call(t);
    });
  }
}

export class OPTAttention extends Module<[Tensor, OPTAttentionContext, number, Tensor?], OPTAttentionOutput> {
  readonly embed_dim: number;
  readonly num_heads: number;
  readonly head_dim: number;
  readonly scaling: number;
  k_proj: Linear;
  v_proj: Linear;
  q_proj: Linear;
  out_proj: Linear;

  constructor(readonly config: OPTConfig) {
    super();
    this.embed_dim = config.hidden_size;
    this.num_heads = config.num_attention_heads;
    this.head_dim = this.embed_dim / this.num_heads;
    this.scaling = this.head_dim ** -0.5;
    const bias = config.enable_bias;
    this.k_proj = new Linear(this.embed_dim, this.embed_dim, { bias });
    this.v_proj = new Linear(this.embed_dim, this.embed_dim, { bias });
    this.q_proj = new Linear(this.embed_dim, this.embed_dim, { bias });
    this.out_proj = new Linear(this.embed_dim, this.embed_dim, { bias });
  }

  /** The [k; v; q] projection as one [3D, D] weight (+ bias), set up by fuse_qkv() after loading. */
  private qkv: { weight: Weight; bias: Tensor | null; parts: (Weight | null)[] } | null = null;

  /**
   * Puts k_proj, v_proj and q_proj (weights and biases) side by side in one buffer and makes the three parameters
   * views of it, so the three projections run as one GEMM (and, when decoding one sequence, write straight into
   * the KV cache). Quantized weights are joined the same way (codes and scales). Forward hooks on the three
   * Linear modules therefore do not fire; hook self_attn instead.
   */
  fuse_qkv(): void {
    const parts = [this.k_proj, this.v_proj, this.q_proj];
    const D = this.embed_dim;
    const ws = parts.map((p) => p.weight.data);
    const w0 = ws[0]!;
    const gpu = w0.gpu;
    const hasBias = parts.every((p) => p.bias !== null);
    this.disposeFused();
    let weight: Weight;
    if (ws.every((w) => w instanceof QuantizedTensor)) {
      weight = keepWeight(concatQuantizedRows(ws, { persistent: true, label: 'qkv.weight' }));
    } else if (ws.every((w) => w instanceof Tensor && w.dtype === (w0 as Tensor).dtype)) {
      const t = keep(Tensor.empty(gpu, [3 * D, D], (w0 as Tensor).dtype, { persistent: true, label: 'qkv.weight' }));
      (ws as Tensor[]).forEach((w, i) => gpu.copyBuffer(w.buffer, w.byteOffset, t.buffer, i * w.byteLength, w.byteLength));
      weight = t;
    } else {
      throw new Error('fuse_qkv: k/v/q weights differ in dtype or quantization');
    }
    const bias = hasBias ? keep(Tensor.empty(gpu, [3 * D], 'f32', { persistent: true, label: 'qkv.bias' })) : null;
    parts.forEach((p, i) => {
      if (bias && p.bias) {
        const b = p.bias.value;
        if (b.dtype !== 'f32') throw new Error('fuse_qkv: biases must be f32');
        gpu.copyBuffer(b.buffer, b.byteOffset, bias.buffer, i * b.byteLength, b.byteLength);
      }
    });
    parts.forEach((p, i) => {
      // Destroyed only after the recorded copies are submitted.
      p.weight.dispose();
      if (weight instanceof QuantizedTensor) p.weight.quantized = keepWeight(weight.rows(i * D, D));
      else p.weight.tensor = keep(weight.rows(i * D, D));
      if (bias && p.bias) {
        p.bias.tensor!.dispose();
        p.bias.tensor = keep(bias.rows(i * D, D));
      }
    });
    this.qkv = { weight, bias, parts: parts.flatMap((p) => [p.weight.loaded, p.bias?.tensor ?? null]) };
  }

  private disposeFused(): void {
    this.qkv?.weight.dispose();
    this.qkv?.bias?.dispose();
    this.qkv = null;
  }

  override dispose(): void {
    super.dispose();
    this.disposeFused();
  }

  /**
   * The [k; v; q] projection as one [3D, D] weight and [3D] bias: the fused weights, or (after parameters were
   * replaced by hand, or while they train: the gradient must reach each of them) a concatenation made for this call.
   */
  fusedQKV(): { weight: Weight; bias: Tensor | null } {
    const current = [this.k_proj, this.v_proj, this.q_proj].flatMap((p) => [p.weight.loaded, p.bias?.tensor ?? null]);
    const training = current.some((t) => t instanceof Tensor && recording(t));
    if (this.qkv && !training && current.every((t, i) => t === this.qkv!.parts[i])) return this.qkv;
    const D = this.embed_dim;
    const ws = [this.k_proj, this.v_proj, this.q_proj].map((p) => p.weight.data);
    let weight: Weight;
    if (ws.every((w) => w instanceof QuantizedTensor)) {
      weight = concatQuantizedRows(ws);
    } else {
      const w = (p: Linear) => p.weight.value.reshape([1, D, D]);
      weight = concatRows(concatRows(w(this.k_proj), w(this.v_proj)), w(this.q_proj)).reshape([3 * D, D]);
    }
    const b = (p: Linear) => p.bias!.value.reshape([1, 1, D]);
    const bias = this.k_proj.bias ? concatRows(concatRows(b(this.k_proj), b(this.v_proj)), b(this.q_proj)).reshape([3 * D]) : null;
    return { weight, bias };
  }

  /** Causal self-attention over the cache plus the new tokens; `residual` is fused into out_proj. */
  forward(hidden_states: Tensor, ctx: OPTAttentionContext, layer_idx: number, residual?: Tensor): OPTAttentionOutput {
    return tidy(() => {
      const L = hidden_states.dim(1);
      const D = this.embed_dim;
      const past = ctx.past_key_values_length;
      const { weight, bias } = this.fusedQKV();
      // One GEMM gives [key | value | query] per token (k_proj, v_proj, q_proj); with a single sequence it lands
      // directly in the cache rows of these tokens.
      const slot = ctx.cache && ctx.cache.dtype === hidden_states.dtype ? ctx.cache.slot(layer_idx, past, L) : null;
      const qkv = slot ? (linearInto(hidden_states, weight, bias, { out: slot }), slot) : linear(hidden_states, weight, bias);
      let kv = qkv;
      if (ctx.cache) {
        if (!slot) ctx.cache.write(layer_idx, qkv, past);
        kv = ctx.cache.layer(layer_idx);
      }
      const query_states = { tensor: qkv, column: 2 * D };
      const key_states = { tensor: kv, column: 0 };
      const value_states = { tensor: kv, column: D };
      // HF scales q inside q_proj's output; scaling the scores is the same product.
      const opts = { numHeads: this.num_heads, headDim: this.head_dim, scale: this.scaling, causal: true, mask: ctx.mask, kvLength: past + L };
      const attn_output = attention(query_states, key_states, value_states, opts);
      const attn_weights = ctx.output_attentions ? attentionProbs(query_states, key_states, opts) : null;
      return { output: this.out_proj.call(attn_output, { residual }), attn_weights };
    });
  }
}

export class OPTDecoderLayer extends Module<[Tensor, OPTAttentionContext, number], OPTAttentionOutput> {
  readonly embed_dim: number;
  self_attn: OPTAttention;
  readonly do_layer_norm_before: boolean;
  self_attn_layer_norm: LayerNorm;
  fc1: Linear;
  fc2: Linear;
  final_layer_norm: LayerNorm;

  constructor(readonly config: OPTConfig) {
    super();
    this.embed_dim = config.hidden_size;
    this.self_attn = new OPTAttention(config);
    this.do_layer_norm_before = config.do_layer_norm_before;
    // OPT's LayerNorms use PyTorch's default eps (1e-5).
    this.self_attn_layer_norm = new LayerNorm(this.embed_dim, 1e-5);
    this.fc1 = new Linear(this.embed_dim, config.ffn_dim, { bias: config.enable_bias });
    this.fc2 = new Linear(config.ffn_dim, this.embed_dim, { bias: config.enable_bias });
    this.final_layer_norm = new LayerNorm(this.embed_dim, 1e-5);
  }

  forward(hidden_states: Tensor, ctx: OPTAttentionContext, layer_idx: number): OPTAttentionOutput {
    return tidy(() => {
      let residual = hidden_states;
      let h: Tensor;
      let attn_weights: Tensor | null;
      if (this.do_layer_norm_before) {
        const normed = this.self_attn_layer_norm.call(hidden_states);
        ({ output: h, attn_weights } = this.self_attn.call(normed, ctx, layer_idx, residual));
        residual = h;
        const ff = this.fc1.call(this.final_layer_norm.call(h), { activation: 'relu' });
        h = this.fc2.call(ff, { residual });
      } else {
        const attn = this.self_attn.call(hidden_states, ctx, layer_idx);
        attn_weights = attn.attn_weights;
        h = this.self_attn_layer_norm.call(attn.output, { residual });
        residual = h;
        const ff = this.fc1.call(h, { activation: 'relu' });
        h = this.final_layer_norm.call(this.fc2.call(ff), { residual });
      }
      return { output: h, attn_weights };
    });
  }
}

export interface OPTForwardArgs {
  /** Token ids [B, L] (i32), or give inputs_embeds. */
  input_ids?: Tensor | null;
  /** [B, L, word_embed_proj_dim] f32 (BLIP-2 feeds the merged image+text embeddings). */
  inputs_embeds?: Tensor | null;
  /** 0/1 per position, [B, past + L], on the host: positions and padding come from it. */
  attention_mask: readonly (readonly number[])[];
  /** Cache holding `past_key_values.length` rows; this call appends L rows. */
  past_key_values?: OPTKVCache | null;
  output_hidden_states?: boolean;
  output_attentions?: boolean;
  /** Logits for the last n positions only (0: all), as HF's logits_to_keep; generation needs 1. */
  logits_to_keep?: number;
}

export interface OPTDecoderOutput {
  last_hidden_state: Tensor;
  /** inputs_embeds + positions, each layer's output, the last one after final_layer_norm. */
  hidden_states: Tensor[] | null;
  attentions: Tensor[] | null;
}

export class OPTDecoder extends Module<[OPTForwardArgs], OPTDecoderOutput> {
  readonly padding_idx: number;
  readonly max_target_positions: number;
  readonly vocab_size: number;
  embed_tokens: Embedding;
  embed_positions: OPTLearnedPositionalEmbedding;
  project_out: Linear | null;
  project_in: Linear | null;
  final_layer_norm: LayerNorm | null;
  layers: ModuleList<OPTDecoderLayer>;

  /**
   * Recompute each decoder layer in the backward pass instead of keeping its activations (HF's
   * gradient_checkpointing_enable()): a layer's input is all that stays between forward and backward.
   */
  gradient_checkpointing = false;

  constructor(readonly config: OPTConfig) {
    super();
    this.padding_idx = config.pad_token_id;
    this.max_target_positions = config.max_position_embeddings;
    this.vocab_size = config.vocab_size;
    this.embed_tokens = new Embedding(config.vocab_size, config.word_embed_proj_dim);
    this.embed_positions = new OPTLearnedPositionalEmbedding(config.max_position_embeddings, config.hidden_size);
    const proj = config.word_embed_proj_dim !== config.hidden_size;
    this.project_out = proj ? new Linear(config.hidden_size, config.word_embed_proj_dim, { bias: false }) : null;
    this.project_in = proj ? new Linear(config.word_embed_proj_dim, config.hidden_size, { bias: false }) : null;
    this.final_layer_norm = config.do_layer_norm_before && !config._remove_final_layer_norm ? new LayerNorm(config.hidden_size, 1e-5) : null;
    this.layers = new ModuleList(Array.from({ length: config.num_hidden_layers }, () => new OPTDecoderLayer(config)));
  }

  forward(args: OPTForwardArgs): OPTDecoderOutput {
    return tidy(() => {
      const cache = args.past_key_values ?? null;
      const past = cache?.length ?? 0;
      let inputs_embeds = args.inputs_embeds ?? null;
      if (!inputs_embeds) {
        if (!args.input_ids) throw new Error('OPTDecoder needs input_ids or inputs_embeds');
        inputs_embeds = this.embed_tokens.call(args.input_ids);
      }
      const [B, L] = inputs_embeds.shape as [number, number];
      const mask_rows = args.attention_mask;
      if (mask_rows.length !== B || mask_rows.some((r) => r.length !== past + L)) {
        throw new Error(`attention_mask must be [${B}, ${past + L}] (cache ${past} + new ${L})`);
      }
      if (cache) {
        if (cache.batch !== B) throw new Error(`cache batch ${cache.batch} != input batch ${B}`);
        cache.reserve(past + L);
      }
      if (this.project_in) inputs_embeds = this.project_in.call(inputs_embeds);
      const pos_embeds = this.embed_positions.positions(mask_rows, past);
      let hidden_states = add(inputs_embeds, pos_embeds);
      const additive = new Float32Array(B * (past + L));
      mask_rows.forEach((row, b) => row.forEach((m, t) => (additive[b * (past + L) + t] = m ? 0 : MASK_MIN)));
      const ctx: OPTAttentionContext = {
        mask: Tensor.from(hidden_states.gpu, additive, [B, past + L]),
        cache,
        past_key_values_length: past,
        output_attentions: args.output_attentions ?? false,
      };
      const all_hidden: Tensor[] | null = args.output_hidden_states ? [] : null;
      const all_attn: Tensor[] | null = args.output_attentions ? [] : null;
      for (let idx = 0; idx < this.layers.length; idx++) {
        all_hidden?.push(hidden_states);
        const layer = this.layers.at(idx);
        const out = this.gradient_checkpointing && !cache && !ctx.output_attentions
          ? // The mask goes in as an input, so that the recomputation holds its own handle on it.
            { output: checkpoint((h, mask) => layer.call(h, { ...ctx, mask: mask! }, idx).output, hidden_states, ctx.mask), attn_weights: null }
          : layer.call(hidden_states, ctx, idx);
        if (!all_hidden) hidden_states.dispose();
        hidden_states = out.output;
        if (out.attn_weights) all_attn?.push(out.attn_weights);
      }
      if (cache) cache.length = past + L;
      if (this.final_layer_norm) hidden_states = this.final_layer_norm.call(hidden_states);
      if (this.project_out) hidden_states = this.project_out.call(hidden_states);
      all_hidden?.push(hidden_states);
      return { last_hidden_state: hidden_states, hidden_states: all_hidden, attentions: all_attn };
    });
  }
}

export class OPTModel extends Module<[OPTForwardArgs], OPTDecoderOutput> {
  decoder: OPTDecoder;

  constructor(readonly config: OPTConfig) {
    super();
    this.decoder = new OPTDecoder(config);
  }

  forward(args: OPTForwardArgs): OPTDecoderOutput {
    return this.decoder.call(args);
  }
}

export interface CausalLMOutput {
  /** [B, n, vocab] f32, n = logits_to_keep or L. */
  logits: Tensor;
  hidden_states: Tensor[] | null;
  attentions: Tensor[] | null;
  past_key_values: OPTKVCache | null;
}

export class OPTForCausalLM extends Module<[OPTForwardArgs], CausalLMOutput> {
  model: OPTModel;
  lm_head: Linear;

  constructor(readonly config: OPTConfig) {
    super();
    this.model = new OPTModel(config);
    this.lm_head = new Linear(config.word_embed_proj_dim, config.vocab_size, { bias: false });
    if (config.tie_word_embeddings) this.lm_head.weight = this.model.decoder.embed_tokens.weight;
  }

  /** Layers recompute their activations in the backward pass (see OPTDecoder.gradient_checkpointing). */
  gradient_checkpointing_enable(on = true): void {
    this.model.decoder.gradient_checkpointing = on;
  }

  /** Fuses every layer's q/k/v projections into one GEMM (fromPretrained does this after loading). */
  fuse_qkv(): void {
    for (const layer of this.model.decoder.layers) layer.self_attn.fuse_qkv();
  }

  get_input_embeddings(): Embedding {
    return this.model.decoder.embed_tokens;
  }

  /** A cache for `batch` sequences of up to `capacity` tokens (it grows if needed). */
  create_cache(gpu: Gpu, batch: number, capacity: number, dtype: DType = 'f32'): OPTKVCache {
    const c = this.config;
    return OPTKVCache.create(gpu, { numLayers: c.num_hidden_layers, batch, capacity: Math.max(1, capacity), hidden: c.hidden_size, dtype });
  }

  forward(args: OPTForwardArgs): CausalLMOutput {
    return tidy(() => {
      const outputs = this.model.call(args);
      let hidden = outputs.last_hidden_state;
      const keep = args.logits_to_keep ?? 0;
      const [B, L, D] = hidden.shape as [number, number, number];
      if (keep > 0 && keep < L) {
        const rows = Int32Array.from({ length: B * keep }, (_, i) => Math.floor(i / keep) * L + (L - keep) + (i % keep));
        const ids = Tensor.from(hidden.gpu, rows, [B * keep], 'i32');
        hidden = embedding(ids, hidden.reshape([B * L, D]), { outDtype: hidden.dtype }).reshape([B, keep, D]);
      }
      const logits = this.lm_head.call(hidden);
      return { logits, hidden_states: outputs.hidden_states, attentions: outputs.attentions, past_key_values: args.past_key_values ?? null };
    });
  }
}
