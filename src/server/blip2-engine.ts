/**
 * The BLIP-2 engine behind the CLI and the server: `Blip2` (processor + model + generation config) behind the
 * small `Engine` interface. Requests of one batch that share their generation settings run as one model batch;
 * images are decoded here first, so a bad image fails its own request only.
 */
import type { FinishReason as ModelFinishReason } from '../generation/types.js';
import { GenerationConfigError, type GenerationConfig } from '../generation/config.js';
import { resolveGenerationConfig } from '../generation/generate.js';
import { StoppingCriteria } from '../generation/stopping.js';
import { Blip2, type GenerationResult } from '../pipeline.js';
import { ImageInputError, loadImage, type RawPixels } from '../processing/index.js';
import { contextOverflow } from './context-limit.js';
import { DeviceLostError } from '../gpu/errors.js';
import { Blip2DecodeBatch } from './blip2-decode-batch.js';
import { TrimmedDeltas } from './trimmed-deltas.js';
import {
  EngineInputError,
  EngineLostError,
  type DecodeBatch,
  type Engine,
  type EngineMemory,
  type EngineFactory,
  type FinishReason,
  type GenerateOptions,
  type GenerateRequest,
  type GenerateResult,
  type GeneratedSequence,
  type GenerationParams,
} from './engine.js';

function finishReason(r: ModelFinishReason): FinishReason {
  return r === 'length' ? 'length' : 'stop';
}

/**
 * Requests that may share one model call: the same generation settings but for the seed. A sampled
 * request draws from a stream of its own seed (`row_seeds`), so it gets the same answer whatever else was
 * queued with it. Greedy and sampled rows do not depend on how long the others run either: requests that
 * differ in max tokens share a call that runs to the longest (a static batch: a short answer holds its row
 * until the batch ends) and are cut at their own length, as long as every prompt still fits the context for
 * that many tokens. Beam search's ranking depends on the length limit, so it stays apart.
 */
function groupByParams(requests: readonly GenerateRequest[], promptTokens: (i: number) => number, context: number): number[][] {
  const groups = new Map<string, number[][]>();
  requests.forEach((r, i) => {
    const key = JSON.stringify({ ...r.params, seed: 0, maxNewTokens: r.params.numBeams === 1 ? 0 : r.params.maxNewTokens });
    const calls = groups.get(key) ?? [];
    const fits = (call: number[]) => {
      const all = [...call, i];
      return Math.max(...all.map(promptTokens)) + Math.max(...all.map((j) => requests[j]!.params.maxNewTokens)) <= context;
    };
    const call = calls.find(fits);
    if (call) call.push(i);
    else calls.push([i]);
    groups.set(key, calls);
  });
  return [...groups.values()].flat();
}

function generationOptions(p: GenerationParams, seeds: readonly number[]) {
  return {
    max_new_tokens: p.maxNewTokens,
    num_beams: p.numBeams,
    num_return_sequences: p.n,
    do_sample: p.temperature > 0,
    ...(p.temperature > 0 ? { temperature: p.temperature, top_p: p.topP, top_k: p.topK, row_seeds: [...seeds] } : {}),
    repetition_penalty: p.repetitionPenalty,
    stop: [...p.stop],
  };
}

export class Blip2Engine implements Engine {
  readonly contextLength: number;
  readonly lost: Promise<EngineLostError>;
  private disposed = false;

  constructor(
    readonly pipeline: Blip2,
    readonly modelId: string,
  ) {
    this.contextLength = pipeline.model.config.text_config.max_position_embeddings;
    // Loss after dispose() is our own doing (the device is destroyed with the weights), not a failure.
    this.lost = new Promise((resolve) => {
      void pipeline.model.gpu.device.lost.then((info) => {
        if (!this.disposed) resolve(new EngineLostError(`the GPU device was lost (${info.reason}): ${info.message || 'no message'}`));
      });
    });
  }

  async countTokens(text: string): Promise<number> {
    return this.pipeline.processor.tokenizer.encode(text, { addSpecialTokens: false }).length;
  }

  async promptTokens(prompt: string): Promise<number> {
    return this.readTokens(prompt);
  }

  /** Tokens the model reads for `prompt`: image query tokens, BOS and the prompt. */
  readTokens(prompt: string): number {
    const { processor, model } = this.pipeline;
    return processor.encodePrompt(prompt).length + (processor.numQueryTokens === null ? model.config.num_query_tokens : 0);
  }

  /** Decodes a request's image and checks that it fits the context; bad input is an EngineInputError naming `index`. */
  async checkedImage(r: GenerateRequest, index: number): Promise<RawPixels> {
    let image: RawPixels;
    try {
      image = await loadImage(r.image);
    } catch (e) {
      if (e instanceof ImageInputError) throw new EngineInputError(`the image cannot be used: ${e.message}`, index, 'invalid_image');
      throw e;
    }
    const overflow = contextOverflow(this.readTokens(r.prompt), r.params.maxNewTokens, this.contextLength, 'the new-token limit');
    if (overflow) throw new EngineInputError(overflow, index, 'context_length_exceeded');
    return image;
  }

  /** A row of a batch that ran longer than this request asked for, as the request alone would have ended. */
  private cut(row: GenerationResult, maxNewTokens: number, stop: readonly string[]): GeneratedSequence {
    if (row.token_ids.length <= maxNewTokens) return this.sequence(row.token_ids, row.text, row.finish_reason);
    const ids = row.token_ids.slice(0, maxNewTokens);
    const texts = new StoppingCriteria(Infinity, this.pipeline.generationConfig.eos_token_id, stop, this.pipeline.processor);
    return this.sequence(ids, texts.text(ids).text.trim(), 'length');
  }

  /** One generated sequence as the interface returns it: new tokens without the end-of-sequence token. */
  sequence(tokenIds: readonly number[], text: string, reason: ModelFinishReason): GeneratedSequence {
    const eos = this.pipeline.generationConfig.eos_token_id;
    const ids = reason === 'eos' && eos.includes(tokenIds.at(-1)!) ? tokenIds.slice(0, -1) : [...tokenIds];
    return { tokenIds: ids, text, finishReason: finishReason(reason) };
  }

  /** A request's settings over the checkpoint's generation config (`seed` as its own stream); GenerationConfigError if invalid. */
  generationConfigFor(p: GenerationParams): GenerationConfig {
    return resolveGenerationConfig(this.pipeline.generationConfig, generationOptions(p, [p.seed]));
  }

  createDecodeBatch(slots: number): DecodeBatch {
    return new Blip2DecodeBatch(this, slots);
  }

  memory(): EngineMemory {
    const s = this.pipeline.model.gpu.stats();
    return { gpuLiveBytes: s.liveBytes, gpuPeakBytes: s.peakLiveBytes, gpuPooledBytes: s.pooledBytes };
  }

  async generate(requests: readonly GenerateRequest[], options: GenerateOptions = {}): Promise<GenerateResult[]> {
    try {
      return await this.generateGroups(requests, options);
    } catch (e) {
      throw this.engineError(e);
    }
  }

  /** What a failure means to the server: any error once the device is lost is the loss (EngineLostError). */
  engineError(e: unknown): unknown {
    if (e instanceof DeviceLostError) return new EngineLostError(e.message);
    if (this.pipeline.model.gpu.isLost && !(e instanceof EngineLostError)) return new EngineLostError(`the GPU device was lost (${e instanceof Error ? e.message : String(e)})`);
    return e;
  }

  private async generateGroups(requests: readonly GenerateRequest[], options: GenerateOptions): Promise<GenerateResult[]> {
    const images: RawPixels[] = [];
    for (const [i, r] of requests.entries()) images.push(await this.checkedImage(r, i));
    const results: GenerateResult[] = new Array(requests.length);
    const prompts = requests.map((r) => this.readTokens(r.prompt));
    for (const group of groupByParams(requests, (i) => prompts[i]!, this.contextLength)) {
      options.signal?.throwIfAborted();
      const limits = group.map((i) => requests[i]!.params.maxNewTokens);
      const params = { ...requests[group[0]!]!.params, maxNewTokens: Math.max(...limits) };
      const trims = group.map(() => Array.from({ length: params.n }, () => new TrimmedDeltas()));
      const streamed = group.map(() => new Array<number>(params.n).fill(0));
      let rows: GenerationResult[];
      try {
        rows = await this.pipeline.generate({
          ...generationOptions(params, group.map((i) => requests[i]!.params.seed)),
          images: group.map((i) => images[i]!),
          prompts: group.map((i) => requests[i]!.prompt),
          // Beam search knows its best beam only at the end (and refuses a token callback): its text comes
          // with the result.
          onToken:
            options.onToken && params.numBeams === 1
              ? (e) => {
                  const input = Math.floor(e.row / params.n);
                  const choice = e.row % params.n;
                  // Past its own length a row is only keeping the batch company.
                  if (++streamed[input]![choice]! > limits[input]!) return;
                  const text = trims[input]![choice]!.push(e.text);
                  options.onToken!({ request: group[input]!, choice, tokenId: e.token, text });
                }
              : undefined,
        });
      } catch (e) {
        if (e instanceof GenerationConfigError) throw new EngineInputError(e.message, group[0]!, 'invalid_parameters');
        throw e;
      }
      group.forEach((requestIndex, input) => {
        const sequences = rows.filter((row) => row.input === input).map((row) => this.cut(row, limits[input]!, params.stop));
        results[requestIndex] = {
          sequences,
          promptTokens: this.readTokens(requests[requestIndex]!.prompt),
          completionTokens: sequences.reduce((n, s) => n + s.tokenIds.length, 0),
        };
      });
    }
    return results;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.pipeline.dispose();
  }
}

/** The engine module's entry point (see `EngineFactory`). */
export const createEngine: EngineFactory = async (options) => {
  const pipeline = await Blip2.fromPretrained(options.modelDir, {
    dtype: options.dtype,
    quantize: options.quantize,
    onProgress: options.onProgress
      ? (p) => options.onProgress!({ phase: 'load', label: p.key, done: p.loadedBytes, total: p.totalBytes, unit: 'bytes' })
      : undefined,
  });
  return new Blip2Engine(pipeline, options.modelId);
};
