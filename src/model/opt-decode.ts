/**
 * Decoding OPT on the device. `opt_decode_forward` is OPTDecoder.forward + lm_head for one new token per row
 * (modeling_opt.py's decode step), written so that nothing in it changes from one step to the next: the tokens
 * fed, their positions, the cache lengths and the attention mask are read from a DecodeState buffer, the new keys
 * and values are appended by the attention kernel at each row's length, and the LayerNorms run as prologues of the
 * linears that follow them. An OPTDecodeSession captures it once (src/gpu/program.ts) and replays it at every
 * token: the host records a step in three native calls per dispatch and never rebuilds a uniform or bind group.
 *
 * Per pre-LN layer: [LayerNorm + q/k/v + attention] (one dispatch on software adapters, a GEMV and the
 * attention kernel elsewhere), out_proj + bias + residual, [LayerNorm + fc1 + bias + ReLU], fc2 + bias + residual.
 */
import { decodeAttention, type DecodeAttentionKernel } from '../kernels/decode-attention.js';
import { decodeEmbeddings } from '../kernels/decode-embed.js';
import { DecodeState, type DecodeRow } from '../kernels/decode-state.js';
import { add } from '../kernels/elementwise.js';
import type { GpuProgram } from '../gpu/program.js';
import { keep, tidy, type Tensor } from '../tensor.js';
import type { OPTDecoderLayer, OPTForCausalLM } from './opt.js';
import type { OPTKVCache } from './opt-cache.js';

export interface OPTDecodeOptions {
  /** Forces the attention kernel ('fused': LayerNorm + q/k/v + attention in one dispatch; 'separate'). */
  attention?: DecodeAttentionKernel;
}

/** One decoder layer for one token per row (OPTDecoderLayer.forward with the cache). */
function layerStep(layer: OPTDecoderLayer, idx: number, hidden: Tensor, cache: OPTKVCache, state: DecodeState, options: OPTDecodeOptions): Tensor {
  const attn = layer.self_attn;
  const { weight, bias } = attn.fusedQKV();
  const attention = (x: Tensor, preLN: boolean) =>
    decodeAttention({
      state: state.tensor,
      x,
      weight,
      bias,
      ln: preLN ? layer.self_attn_layer_norm.asPrologue() : null,
      cache: cache.layer(idx),
      heads: attn.num_heads,
      headDim: attn.head_dim,
      kernel: options.attention,
    });
  if (layer.do_layer_norm_before) {
    const h = attn.out_proj.call(attention(hidden, true), { residual: hidden });
    const ff = layer.fc1.call(h, { activation: 'relu', layerNorm: layer.final_layer_norm.asPrologue() });
    return layer.fc2.call(ff, { residual: h });
  }
  const h = layer.self_attn_layer_norm.call(attn.out_proj.call(attention(hidden, false)), { residual: hidden });
  const ff = layer.fc1.call(h, { activation: 'relu' });
  return layer.final_layer_norm.call(layer.fc2.call(ff), { residual: h });
}

/**
 * Logits [R, V] f32 of one decode step: every row feeds the token the state says, at the state's position, and
 * its key and value join the cache at the state's length. The state itself is not advanced (DecodeState.commit or
 * pick does that). Every dispatch's parameters are fixed, so the whole step can be captured.
 */
export function opt_decode_forward(lm: OPTForCausalLM, cache: OPTKVCache, state: DecodeState, options: OPTDecodeOptions = {}): Tensor {
  return tidy(() => {
    const dec = lm.model.decoder;
    let hidden = dec.project_in ? null : decodeEmbeddings(state, dec.embed_tokens.weight.value, dec.embed_positions.weight.value);
    if (!hidden) {
      let tokens = dec.embed_tokens.call(state.fed());
      if (dec.project_in) tokens = dec.project_in.call(tokens);
      hidden = add(tokens, dec.embed_positions.call(state.positions()));
    }
    for (let i = 0; i < dec.layers.length; i++) {
      const next = layerStep(dec.layers.at(i), i, hidden, cache, state, options);
      hidden.dispose();
      hidden = next;
    }
    const final = dec.final_layer_norm?.asPrologue();
    if (dec.project_out) {
      hidden = dec.project_out.call(hidden, final ? { layerNorm: final } : {});
      return lm.lm_head.call(hidden);
    }
    return lm.lm_head.call(hidden, final ? { layerNorm: final } : {});
  });
}

/**
 * A batch decoding on the device: the KV cache (filled by the prompt), the DecodeState of its rows and the
 * captured step. Sampling and beam search choose tokens on the host and call `step(tokens)`; greedy search
 * captures its own step with the choice on the device (`capture`).
 */
export class OPTDecodeSession {
  readonly state: DecodeState;
  private stepProgram: { program: GpuProgram; logits: Tensor } | null = null;

  constructor(
    readonly lm: OPTForCausalLM,
    readonly cache: OPTKVCache,
    rows: readonly DecodeRow[],
    histWidth: number,
    private readonly options: OPTDecodeOptions = {},
  ) {
    const c = lm.config;
    const heads = c.num_attention_heads;
    this.state = DecodeState.create(cache.gpu, {
      rows: cache.batch,
      capacity: cache.capacity,
      histWidth: Math.max(1, histWidth),
      hidden: c.hidden_size,
      heads,
      headDim: c.hidden_size / heads,
      scale: (c.hidden_size / heads) ** -0.5,
    });
    try {
      this.state.setRows(rows);
    } catch (e) {
      this.state.dispose();
      throw e;
    }
  }

  get rows(): number {
    return this.state.rows;
  }

  /**
   * Captures one step: the forward from the state's fed tokens, then `after(logits)` (kernels that use the
   * logits: a device-side token choice, which must also commit the state). The caller replays the program and
   * disposes it; the logits it writes are the program's own.
   */
  capture(after: (logits: Tensor) => void): GpuProgram {
    const { program } = this.lm.lm_head.weight.value.gpu.capture(() =>
      tidy(() => {
        const logits = opt_decode_forward(this.lm, this.cache, this.state, this.options);
        after(logits);
      }),
    );
    return program;
  }

  /**
   * One step with tokens chosen on the host: every row feeds tokens[r]. Returns the logits [R, V]; they belong to
   * the session and are overwritten by the next step (do not dispose them; take a `ref()` to hand them on).
   */
  step(tokens: readonly number[]): Tensor {
    const { program, logits } = this.prepare();
    this.state.setFed(tokens);
    this.cache.gpu.replay(program);
    return logits;
  }

  /**
   * Captures the host-chosen step now (`step` does it on first use): its temporaries and logits are then held for
   * the session's life, so a server that prepares its sessions up front keeps its GPU memory fixed.
   */
  prepare(): { program: GpuProgram; logits: Tensor } {
    if (!this.stepProgram) {
      const { program, result } = this.cache.gpu.capture(() =>
        tidy(() => {
          const logits = opt_decode_forward(this.lm, this.cache, this.state, this.options);
          this.state.commit();
          return logits;
        }),
      );
      this.stepProgram = { program, logits: keep(result) };
    }
    return this.stepProgram;
  }

  /**
   * Row r takes a new sequence between steps (continuous batching): the first `row.length` cache rows of
   * `prefilled`'s row `srcRow` (its prompt, run on its own) and the state `row`. Nothing is recaptured.
   */
  replaceRow(r: number, prefilled: OPTKVCache, srcRow: number, row: DecodeRow): void {
    this.cache.copyRowFrom(prefilled, srcRow, r, row.length);
    this.state.setRow(r, row);
  }

  /** Row i becomes row parents[i] (beam search): cache rows and state rows, in place. */
  reorder(parents: readonly number[]): void {
    this.cache.reorderInPlace(parents);
    this.state.gather(parents);
  }

  dispose(): void {
    this.stepProgram?.program.dispose();
    this.stepProgram?.logits.dispose();
    this.stepProgram = null;
    this.state.dispose();
  }
}
