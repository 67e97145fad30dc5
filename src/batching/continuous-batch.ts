/**
 * Continuous batching for BLIP-2: a running decode batch whose rows join and leave between decode steps.
 *
 *   const batch = new ContinuousBatch(blip2, { slots: 8 });
 *   await batch.join([{ image, prompt, config, onDone }]);   // images encoded, prompts prefilled, first tokens
 *   while (batch.runningRows > 0) await batch.step();        // one token for every running row
 *
 * Newcomers run their prompt pass together (left-padded, as a static batch does), pick their first token from
 * its logits, and their cache rows are copied into free slots of the running batch (DecodeSlots: the device
 * decode session of src/model/opt-decode.ts, whose rows each keep their own cache length). Every step replays
 * the captured decode step with each running row's last token; a row that ends (eos, stop string, length)
 * leaves at once and its slot is reused. Rows follow their own request's settings (token-picker.ts), so greedy rows give the
 * tokens the same request gets alone, and sampled rows draw from their own seed's stream.
 *
 * Beam search does not fit (its beams are reordered every step and the best is known only at the end): such
 * requests run as whole batches (`generate`).
 */
import { GenerationConfigError, maxLengthFor, type GenerationConfig } from '../generation/config.js';
import { blip2PromptRunner } from '../generation/generate.js';
import { Xoshiro128, randomSeed, type Random } from '../generation/rng.js';
import { gatherRows, isIdentity } from '../generation/step-model.js';
import { StoppingCriteria } from '../generation/stopping.js';
import { TokenStreamer } from '../generation/streamer.js';
import type { FinishReason, OnToken } from '../generation/types.js';
import { OPTKVCache } from '../model/opt-cache.js';
import type { Blip2 } from '../pipeline.js';
import type { PixelBatch } from '../processing/image-processor.js';
import type { ImageInput } from '../processing/image-input.js';
import { Tensor, tidy, type DType } from '../tensor.js';
import { DecodeSlots } from './decode-slots.js';
import { drawFrom, readChoices, type Picked } from './token-picker.js';

export interface BatchRequest {
  /**
   * Anything the processor takes, or one image already through the image processor
   * (`processor.imageProcessor.preprocess([image])`), which keeps decoding and resizing off the batch's path.
   */
  image: ImageInput | PixelBatch;
  /** Raw prompt (BLIP-2 form, e.g. "Question: ... Answer:"), empty for a caption. */
  prompt: string;
  /** Resolved settings (`resolveGenerationConfig`): greedy or sampling, one beam. */
  config: GenerationConfig;
  /** Every generated token of every returned sequence (`row` is the sequence's index in the request). */
  onToken?: OnToken;
  /** Called once, when the request's last sequence ended. */
  onDone: (result: BatchResult) => void;
}

export interface BatchResult {
  /** Generated ids per returned sequence (the eos token included when it ended the sequence). */
  new_tokens: number[][];
  finish_reasons: FinishReason[];
  /** Length of the prompt's input ids. */
  prompt_length: number;
}

export interface ContinuousBatchOptions {
  /** Most sequences decoding at once (a sampled request with n choices takes n). */
  slots: number;
  /** KV cache storage, as `generate`'s kv_cache_dtype (default f32). */
  kv_cache_dtype?: 'f32' | 'f16';
}

interface RequestState {
  request: BatchRequest;
  config: GenerationConfig;
  stopping: StoppingCriteria;
  streamer: TokenStreamer | null;
  rng: Random | null;
  rows: RowState[];
  promptLength: number;
  cancelled: boolean;
  done: boolean;
}

interface RowState {
  owner: RequestState;
  sample: number;
  sequence: number[];
  generated: number[];
  reason: FinishReason | null;
}

/** Sequences a request decodes: its samples, or one. Throws for settings a running batch cannot take. */
export function sequencesOf(config: GenerationConfig): number {
  if (config.num_beams > 1) throw new GenerationConfigError('beam search cannot join a continuous batch; run it with generate()');
  return config.do_sample ? config.num_return_sequences : 1;
}

export class ContinuousBatch {
  private readonly slots: DecodeSlots<RowState>;
  private readonly requests = new Set<RequestState>();
  private readonly byRequest = new Map<BatchRequest, RequestState>();

  constructor(
    readonly blip2: Blip2,
    options: ContinuousBatchOptions,
  ) {
    const dtype: DType = options.kv_cache_dtype ?? 'f32';
    if (dtype !== 'f32' && dtype !== 'f16') throw new GenerationConfigError(`kv_cache_dtype must be "f32" or "f16", got ${JSON.stringify(dtype)}`);
    const lm = blip2.model.language_model;
    // Hooks expect to run at every step; a captured step runs them once, at capture (static batching runs them).
    if (lm.hasForwardHooks()) throw new Error('continuous batching replays a captured decode step, which cannot run forward hooks: remove them or batch statically');
    this.slots = new DecodeSlots(lm, options.slots, dtype);
  }

  /** Slots a join can use: free ones, and those of cancelled requests (freed when the join starts). */
  get freeRows(): number {
    let reclaimable = 0;
    for (const s of this.requests) if (s.cancelled) reclaimable += s.rows.filter((r) => r.reason === null).length;
    return this.slots.free + reclaimable;
  }

  get runningRows(): number {
    return this.slots.rows.length;
  }

  get runningRequests(): number {
    return this.requests.size;
  }

  /** GPU bytes of the slots: the KV cache and the decode sessions' states. */
  get cacheBytes(): number {
    return this.slots.byteLength;
  }

  /** Slot bookkeeping (admissions, cache growth, sessions and switches between them), for tests and metrics. */
  get cacheStats(): Readonly<DecodeSlots<RowState>['stats']> {
    return this.slots.stats;
  }

  /**
   * Encodes the newcomers' images and prefills their prompts as one batch, picks their first tokens, and adds
   * the sequences that go on to the running batch. Requests that end at their first token are done at once.
   */
  async join(requests: readonly BatchRequest[]): Promise<void> {
    if (requests.length === 0) return;
    this.dropCancelled();
    const rowsWanted = requests.reduce((n, r) => n + sequencesOf(r.config), 0);
    if (rowsWanted > this.freeRows) throw new RangeError(`${rowsWanted} sequences for ${this.freeRows} free slots`);
    const { model } = this.blip2;
    const processed = await this.inputs(requests);
    const states = requests.map((r) => this.track(r));
    const rows = states.flatMap((s) => s.rows);
    const parents = rows.map((r) => states.indexOf(r.owner));
    const gpu = model.gpu;
    const lm = model.language_model;
    const pixels = Tensor.from(gpu, processed.pixelValues, processed.pixelShape);
    let prefill: OPTKVCache | null = null;
    try {
      const runner = blip2PromptRunner(model, pixels, processed.inputIds, processed.attentionMask);
      const c = lm.config;
      prefill = OPTKVCache.create(gpu, { numLayers: c.num_hidden_layers, batch: requests.length, capacity: runner.positions, hidden: c.hidden_size, dtype: this.slots.dtype, pooled: true });
      const out = runner.run(prefill);
      const wide = parents.length === requests.length ? out.logits : tidy(() => gatherRows(out.logits, parents));
      if (wide !== out.logits) out.logits.dispose();
      await this.choose(wide, rows);
      const going = rows.filter((r) => r.reason === null && !r.owner.cancelled);
      if (going.length > 0) {
        const admissions = going.map((r) => {
          const parent = states.indexOf(r.owner);
          return { row: parent, mask: out.attention_mask[parent]!, need: runner.positions + newTokenBudget(r.owner), payload: r };
        });
        this.slots.admit(prefill, admissions);
      }
    } catch (e) {
      for (const s of states) this.forget(s);
      throw e;
    } finally {
      pixels.dispose();
      prefill?.dispose(); // destroyed once the recorded copies into the slots are submitted
    }
    this.settle(states);
  }

  /** One decode step: every running sequence gets its next token; sequences that end leave the batch. */
  async step(): Promise<void> {
    this.dropCancelled();
    const occupied = this.slots.rows;
    if (occupied.length === 0) return;
    const running = occupied.map((r) => r.payload);
    const fed = new Map(occupied.map((r) => [r.slot, r.payload.generated[r.payload.generated.length - 1]!] as const));
    // The session's logits cover its every row (idle ones too) and are overwritten by its next step.
    const logits = this.slots.step(fed, (all, slots) => (isIdentity(slots, all.dim(0)) ? all.ref() : gatherRows(all, slots)));
    await this.choose(logits, running);
    this.removeFinished();
    this.settle([...new Set(running.map((r) => r.owner))]);
  }

  /** The request leaves at the start of the next join or step (not during one); its `onDone` is not called. */
  cancel(request: BatchRequest): void {
    const state = this.byRequest.get(request);
    if (state) state.cancelled = true;
  }

  dispose(): void {
    this.slots.dispose();
    this.requests.clear();
    this.byRequest.clear();
  }

  // ---------------------------------------------------------------- bookkeeping

  private track(request: BatchRequest): RequestState {
    const c = request.config;
    const n = sequencesOf(c);
    const prompt = this.blip2.processor.encodePrompt(request.prompt);
    const stopping = new StoppingCriteria(maxLengthFor(c, prompt.length), c.eos_token_id, c.stop, this.blip2.processor);
    const seed = c.row_seeds?.[0] ?? c.seed ?? randomSeed();
    if (c.row_seeds && c.row_seeds.length !== 1) throw new GenerationConfigError(`row_seeds has ${c.row_seeds.length} seeds for one prompt`);
    const state: RequestState = {
      request,
      config: c,
      stopping,
      streamer: request.onToken ? new TokenStreamer(n, stopping, request.onToken) : null,
      rng: c.do_sample ? new Xoshiro128(seed) : null,
      rows: [],
      promptLength: prompt.length,
      cancelled: false,
      done: false,
    };
    for (let sample = 0; sample < n; sample++) state.rows.push({ owner: state, sample, sequence: [...prompt], generated: [], reason: null });
    this.requests.add(state);
    this.byRequest.set(request, state);
    return state;
  }

  private forget(state: RequestState): void {
    this.requests.delete(state);
    this.byRequest.delete(state.request);
  }

  /** The newcomers' pixels side by side and their prompts left-padded, as the processor batches them. */
  private async inputs(requests: readonly BatchRequest[]): Promise<PixelBatch & { inputIds: number[][]; attentionMask: number[][] }> {
    const { processor } = this.blip2;
    const images = await Promise.all(requests.map(async (r) => (isPixelBatch(r.image) ? r.image : processor.process({ images: [r.image] }))));
    const shape = images[0]!.pixelShape;
    const per = shape[1] * shape[2] * shape[3];
    const pixelValues = new Float32Array(per * images.length);
    images.forEach((im, i) => {
      if (im.pixelShape[0] !== 1 || im.pixelShape.slice(1).some((d, k) => d !== shape[k + 1])) {
        throw new RangeError(`image ${i} is [${im.pixelShape.join(', ')}] after preprocessing, the others [1, ${shape.slice(1).join(', ')}]`);
      }
      pixelValues.set(im.pixelValues, i * per);
    });
    const text = processor.padLeft(requests.map((r) => processor.encodePrompt(r.prompt)));
    return { pixelValues, pixelShape: [images.length, shape[1], shape[2], shape[3]], ...text };
  }

  /** Each row's next token from its row of `logits` (which this disposes), applied to the rows. */
  private async choose(logits: Tensor, rows: readonly RowState[]): Promise<void> {
    let picked: Picked;
    try {
      picked = await readChoices(logits, rows.map((r) => ({ config: r.owner.config, sequence: r.sequence, promptLength: r.owner.promptLength })));
    } finally {
      logits.dispose();
    }
    this.apply(rows, picked);
  }

  /**
   * Gives each row its token: greedy rows the argmax, sampled rows a draw from their request's stream, in
   * sample order, with one draw spent for each of the request's sequences that already ended.
   */
  private apply(rows: readonly RowState[], picked: Picked): void {
    const token = new Map<RowState, number>();
    const owners = [...new Set(rows.map((r) => r.owner))];
    rows.forEach((r, i) => {
      if (!r.owner.config.do_sample) token.set(r, picked.greedy[i]!);
    });
    const candidates = new Map(rows.map((r, i) => [r, picked.candidates[i]] as const));
    for (const owner of owners) {
      if (!owner.rng) continue;
      for (const row of owner.rows) {
        const c = candidates.get(row);
        if (row.reason !== null || !c) owner.rng.next();
        else token.set(row, drawFrom(c, owner.config, owner.rng));
      }
    }
    for (const owner of owners) {
      for (const row of owner.rows) {
        const t = token.get(row);
        if (t === undefined) continue;
        row.generated.push(t);
        row.sequence.push(t);
        row.reason = owner.stopping.check(row.generated, row.sequence.length);
        if (!owner.cancelled) owner.streamer?.push(row.sample, t, row.generated, row.reason);
      }
    }
  }

  private dropCancelled(): void {
    for (const s of this.requests) {
      if (!s.cancelled) continue;
      for (const r of s.rows) r.reason ??= 'stop';
      this.forget(s);
    }
    this.removeFinished();
  }

  /** Frees the slots of ended rows. */
  private removeFinished(): void {
    for (const { slot, payload } of this.slots.rows) if (payload.reason !== null) this.slots.remove(slot);
  }

  /** Reports requests whose sequences all ended. */
  private settle(states: readonly RequestState[]): void {
    for (const s of states) {
      if (s.done || s.cancelled || s.rows.some((r) => r.reason === null)) continue;
      s.done = true;
      this.forget(s);
      s.request.onDone({ new_tokens: s.rows.map((r) => r.generated), finish_reasons: s.rows.map((r) => r.reason!), prompt_length: s.promptLength });
    }
  }
}

function isPixelBatch(image: ImageInput | PixelBatch): image is PixelBatch {
  return typeof image === 'object' && image !== null && 'pixelValues' in image && 'pixelShape' in image;
}

/** New tokens a request may generate (HF always runs at least one step). */
function newTokenBudget(s: RequestState): number {
  return Math.max(1, maxLengthFor(s.config, s.promptLength) - s.promptLength);
}
