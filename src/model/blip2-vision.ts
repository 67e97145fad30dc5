/**
 * The BLIP-2 vision tower (EVA ViT-g), mirroring transformers' modeling_blip_2.py:
 * Blip2VisionEmbeddings, Blip2Attention, Blip2MLP, Blip2EncoderLayer, Blip2Encoder, Blip2VisionModel.
 * Every forward runs inside tidy(): intermediates are freed, returned tensors belong to the caller.
 */
import { add, attention, concatRows, embedding as gather, linear } from '../autograd/functional.js';
import { attentionProbs } from '../kernels/attention.js';
import { im2col } from '../kernels/im2col.js';
import { Tensor, tidy } from '../tensor.js';
import type { Blip2VisionConfig } from './config.js';
import { Module, ModuleList, Parameter } from './module.js';
import { LayerNorm, Linear } from './nn.js';

/** nn.Conv2d with kernel_size = stride = patch size, computed as im2col + linear. */
export class PatchConv2d extends Module<[Tensor], Tensor> {
  weight: Parameter;
  bias: Parameter;

  constructor(
    readonly in_channels: number,
    readonly out_channels: number,
    readonly kernel_size: number,
  ) {
    super();
    this.weight = new Parameter([out_channels, in_channels, kernel_size, kernel_size], 'matmul');
    this.bias = new Parameter([out_channels], 'fp32');
  }

  /** pixel_values [B, C, H, W] -> [B, (H/p)*(W/p), out_channels] (the conv output after flatten(2).transpose(1, 2)). */
  forward(pixel_values: Tensor): Tensor {
    return tidy(() => {
      const cols = im2col(pixel_values, this.kernel_size);
      const w = this.weight.value.reshape([this.out_channels, this.in_channels * this.kernel_size ** 2]);
      return linear(cols, w, this.bias.value);
    });
  }
}

/** `param` [1, N, D] repeated over a batch as [B, N, D] (a gather with all-zero ids): torch's expand(). */
export function expandBatch(param: Tensor, batch: number): Tensor {
  return tidy(() => {
    const [, n, d] = param.shape as [number, number, number];
    const ids = Tensor.from(param.gpu, new Int32Array(batch), [batch], 'i32');
    // Differentiable: the learned query tokens are expanded this way, and their gradient sums over the batch.
    return gather(ids, param.reshape([1, n * d]), { outDtype: 'f32' }).reshape([batch, n, d]);
  });
}

export class Blip2VisionEmbeddings extends Module<[Tensor], Tensor> {
  readonly embed_dim: number;
  readonly image_size: number;
  readonly patch_size: number;
  class_embedding: Parameter;
  patch_embedding: PatchConv2d;
  readonly num_patches: number;
  readonly num_positions: number;
  position_embedding: Parameter;

  constructor(readonly config: Blip2VisionConfig) {
    super();
    this.embed_dim = config.hidden_size;
    this.image_size = config.image_size;
    this.patch_size = config.patch_size;
    this.class_embedding = new Parameter([1, 1, this.embed_dim], 'fp32');
    this.patch_embedding = new PatchConv2d(config.num_channels, this.embed_dim, this.patch_size);
    this.num_patches = (this.image_size / this.patch_size) ** 2;
    this.num_positions = this.num_patches + 1;
    this.position_embedding = new Parameter([1, this.num_positions, this.embed_dim], 'fp32');
  }

  forward(pixel_values: Tensor): Tensor {
    return tidy(() => {
      const batch_size = pixel_values.dim(0);
      const patch_embeds = this.patch_embedding.call(pixel_values);
      const class_embeds = expandBatch(this.class_embedding.value, batch_size);
      const embeddings = concatRows(class_embeds, patch_embeds);
      // embeddings + position_embedding, broadcast over the batch.
      const n = this.num_positions * this.embed_dim;
      return add(embeddings.reshape([batch_size, n]), this.position_embedding.value.reshape([n])).reshape([batch_size, this.num_positions, this.embed_dim]);
    });
  }
}

export interface AttentionOutput {
  output: Tensor;
  /** softmax probabilities [B, heads, L, L] when requested. */
  attn_weights: Tensor | null;
}

export class Blip2Attention extends Module<[Tensor, boolean?], AttentionOutput> {
  readonly embed_dim: number;
  readonly num_heads: number;
  readonly head_dim: number;
  readonly scale: number;
  qkv: Linear;
  projection: Linear;

  constructor(readonly config: Blip2VisionConfig) {
    super();
    this.embed_dim = config.hidden_size;
    this.num_heads = config.num_attention_heads;
    this.head_dim = this.embed_dim / this.num_heads;
    this.scale = this.head_dim ** -0.5;
    // Checkpoints store the fused bias cat(q_bias, 0, v_bias) as qkv.bias; the loader also accepts q_bias/v_bias.
    this.qkv = new Linear(this.embed_dim, 3 * this.embed_dim, { bias: config.qkv_bias });
    this.projection = new Linear(this.embed_dim, this.embed_dim);
  }

  forward(hidden_states: Tensor, output_attentions = false): AttentionOutput {
    return tidy(() => {
      const mixed_qkv = this.qkv.call(hidden_states);
      // reshape(B, L, 3, heads, head_dim): query, key and value are the three column blocks, read in place.
      const query_states = { tensor: mixed_qkv, column: 0 };
      const key_states = { tensor: mixed_qkv, column: this.embed_dim };
      const value_states = { tensor: mixed_qkv, column: 2 * this.embed_dim };
      const opts = { numHeads: this.num_heads, headDim: this.head_dim, scale: this.scale };
      const context_layer = attention(query_states, key_states, value_states, opts);
      const attn_weights = output_attentions ? attentionProbs(query_states, key_states, opts) : null;
      const output = this.projection.call(context_layer);
      return { output, attn_weights };
    });
  }
}

export class Blip2MLP extends Module<[Tensor, Tensor?], Tensor> {
  fc1: Linear;
  fc2: Linear;

  constructor(readonly config: Blip2VisionConfig) {
    super();
    this.fc1 = new Linear(config.hidden_size, config.intermediate_size);
    this.fc2 = new Linear(config.intermediate_size, config.hidden_size);
  }

  /** fc2(gelu(fc1(x))); the encoder layer's residual add is fused into fc2 when given. */
  forward(hidden_states: Tensor, residual?: Tensor): Tensor {
    return tidy(() => {
      const h = this.fc1.call(hidden_states, { activation: 'gelu' });
      return this.fc2.call(h, { residual });
    });
  }
}

export interface EncoderLayerOutput {
  hidden_states: Tensor;
  attn_weights: Tensor | null;
}

export class Blip2EncoderLayer extends Module<[Tensor, boolean?], EncoderLayerOutput> {
  readonly embed_dim: number;
  self_attn: Blip2Attention;
  layer_norm1: LayerNorm;
  mlp: Blip2MLP;
  layer_norm2: LayerNorm;

  constructor(readonly config: Blip2VisionConfig) {
    super();
    this.embed_dim = config.hidden_size;
    this.self_attn = new Blip2Attention(config);
    this.layer_norm1 = new LayerNorm(this.embed_dim, config.layer_norm_eps);
    this.mlp = new Blip2MLP(config);
    this.layer_norm2 = new LayerNorm(this.embed_dim, config.layer_norm_eps);
  }

  forward(hidden_states: Tensor, output_attentions = false): EncoderLayerOutput {
    return tidy(() => {
      let residual = hidden_states;
      const normed = this.layer_norm1.call(hidden_states);
      const { output, attn_weights } = this.self_attn.call(normed, output_attentions);
      const h = add(output, residual);
      residual = h;
      return { hidden_states: this.mlp.call(this.layer_norm2.call(h), residual), attn_weights };
    });
  }
}

export interface OutputOptions {
  output_attentions?: boolean;
  output_hidden_states?: boolean;
}

export interface EncoderOutput {
  last_hidden_state: Tensor;
  /** inputs_embeds, then the output of each layer. */
  hidden_states: Tensor[] | null;
  attentions: Tensor[] | null;
}

export class Blip2Encoder extends Module<[Tensor, OutputOptions?], EncoderOutput> {
  layers: ModuleList<Blip2EncoderLayer>;

  constructor(readonly config: Blip2VisionConfig) {
    super();
    this.layers = new ModuleList(Array.from({ length: config.num_hidden_layers }, () => new Blip2EncoderLayer(config)));
  }

  forward(inputs_embeds: Tensor, options: OutputOptions = {}): EncoderOutput {
    return tidy(() => {
      const all_hidden: Tensor[] | null = options.output_hidden_states ? [inputs_embeds.ref()] : null;
      const all_attn: Tensor[] | null = options.output_attentions ? [] : null;
      let hidden_states = inputs_embeds.ref();
      for (const layer of this.layers) {
        const out = layer.call(hidden_states, options.output_attentions ?? false);
        if (!all_hidden) hidden_states.dispose(); // keep peak memory at two layers' activations
        hidden_states = out.hidden_states;
        all_hidden?.push(hidden_states);
        if (out.attn_weights) all_attn?.push(out.attn_weights);
      }
      return { last_hidden_state: hidden_states, hidden_states: all_hidden, attentions: all_attn };
    });
  }
}

export interface VisionModelOutput {
  /** post_layernorm(encoder output), [B, 257, D]: every token goes to the Q-Former. */
  last_hidden_state: Tensor;
  /** post_layernorm applied once more to the CLS row, [B, D]. */
  pooler_output: Tensor;
  /** Embeddings, then each layer's output (the last one before post_layernorm). */
  hidden_states: Tensor[] | null;
  attentions: Tensor[] | null;
}

export class Blip2VisionModel extends Module<[Tensor, OutputOptions?], VisionModelOutput> {
  embeddings: Blip2VisionEmbeddings;
  encoder: Blip2Encoder;
  post_layernorm: LayerNorm;

  constructor(readonly config: Blip2VisionConfig) {
    super();
    this.embeddings = new Blip2VisionEmbeddings(config);
    this.encoder = new Blip2Encoder(config);
    this.post_layernorm = new LayerNorm(config.hidden_size, config.layer_norm_eps);
  }

  forward(pixel_values: Tensor, options: OutputOptions = {}): VisionModelOutput {
    const c = this.config;
    if (pixel_values.ndim !== 4 || pixel_values.dim(1) !== c.num_channels || pixel_values.dim(2) !== c.image_size || pixel_values.dim(3) !== c.image_size) {
      throw new Error(`pixel_values must be [B, ${c.num_channels}, ${c.image_size}, ${c.image_size}], got [${pixel_values.shape.join(', ')}]`);
    }
    return tidy(() => {
      const hidden_states = this.embeddings.call(pixel_values);
      const encoder_outputs = this.encoder.call(hidden_states, options);
      const last_hidden_state = this.post_layernorm.call(encoder_outputs.last_hidden_state);
      return { last_hidden_state, pooler_output: this.pool(last_hidden_state), hidden_states: encoder_outputs.hidden_states, attentions: encoder_outputs.attentions };
    });
  }

  /** pooled_output = post_layernorm(last_hidden_state[:, 0, :]): the CLS row of every image, normalised again. */
  pool(last_hidden_state: Tensor): Tensor {
    return tidy(() => {
      const [B, L, D] = last_hidden_state.shape as [number, number, number];
      const cls_rows = Tensor.from(last_hidden_state.gpu, Int32Array.from({ length: B }, (_, b) => b * L), [B], 'i32');
      const pooled = gather(cls_rows, last_hidden_state.reshape([B * L, D]), { outDtype: 'f32' });
      return this.post_layernorm.call(pooled);
    });
  }

  /** The output of a forward pass whose last_hidden_state was computed before (features cached per image). */
  outputsFromFeatures(last_hidden_state: Tensor): VisionModelOutput {
    const c = this.config;
    const tokens = (c.image_size / c.patch_size) ** 2 + 1;
    if (last_hidden_state.ndim !== 3 || last_hidden_state.dim(1) !== tokens || last_hidden_state.dim(2) !== c.hidden_size) {
      throw new Error(`image_embeds must be [B, ${tokens}, ${c.hidden_size}] (the vision model's last_hidden_state), got [${last_hidden_state.shape.join(', ')}]`);
    }
    return { last_hidden_state: last_hidden_state.ref(), pooler_output: this.pool(last_hidden_state), hidden_states: null, attentions: null };
  }
}
