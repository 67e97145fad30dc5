/**
 * The BLIP-2 engine behind the CLI and the server: `Blip2` (processor + model + generation config) behind the
 * small `Engine` interface. Requests of one batch that share their generation settings run as one model batch;
 * images are decoded here first, so a bad image fails its own request only.
 */
import type { FinishReason as ModelFinishReason } from '../generation/types.js';
import { GenerationConfigError } from '../generation/config.js';
import { Blip2, type GenerationResult } from '../pipeline.js';
import { ImageInputError, loadImage, type RawPixels } from '../processing/index.js';
import { contextOverflow } from './context-limit.js';
import {
  EngineInputError,
  type Engine,
  type EngineFactory,
  type FinishReason,
  type GenerateOptions,
  type GenerateRequest,
  type GenerateResult,
  type GeneratedSequence,
  type GenerationParams,
} from './engine.js';

/**
 * The pipeline's streamed deltas keep the answer's leading space (and any trailing one) while its final text is
 * trimmed; this keeps the streamed text equal to the final text.
 */
class TrimmedDeltas {
  private started = false;
  private pendingSpace = '';

  push(delta: string): string {
    let text = delta;
    if (!this.started) {
      text = text.trimStart();
      if (!text) return '';
      this.started = true;
    }
    const joined = this.pendingSpace + text;
    this.pendingSpace = /\s*$/.exec(joined)![0];
    return joined.slice(0, joined.length - this.pendingSpace.length);
  }
}

function finishReason(r: ModelFinishReason): FinishReason {
  return r === 'length' ? 'length' : 'stop';
}

/**
 * Requests that may share one model call: the same generation settings but for the seed. A sampled
 * request draws from a stream of its own seed (`row_seeds`), so it gets the same answer whatever else was
 * queued with it.
 */
function groupByParams(requests: readonly GenerateRequest[]): number[][] {
  const groups = new Map<string, number[]>();
  requests.forEach((r, i) => {
    const key = JSON.stringify({ ...r.params, seed: 0 });
    groups.set(key, [...(groups.get(key) ?? []), i]);
  });
  return [...groups.values()];
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

  constructor(
    readonly pipeline: Blip2,
    readonly modelId: string,
  ) {
    this.contextLength = pipeline.model.config.text_config.max_position_embeddings;
  }

  async countTokens(text: string): Promise<number> {
    return this.pipeline.processor.tokenizer.encode(text, { addSpecialTokens: false }).length;
  }

  async promptTokens(prompt: string): Promise<number> {
    return this.readTokens(prompt);
  }

  /** Tokens the model reads for `prompt`: image query tokens, BOS and the prompt. */
  private readTokens(prompt: string): number {
    const { processor, model } = this.pipeline;
    return processor.encodePrompt(prompt).length + (processor.numQueryTokens === null ? model.config.num_query_tokens : 0);
  }

  async generate(requests: readonly GenerateRequest[], options: GenerateOptions = {}): Promise<GenerateResult[]> {
    const images: RawPixels[] = [];
    for (const [i, r] of requests.entries()) {
      try {
        images.push(await loadImage(r.image));
      } catch (e) {
        if (e instanceof ImageInputError) throw new EngineInputError(`the image cannot be used: ${e.message}`, i, 'invalid_image');
        throw e;
      }
      const overflow = contextOverflow(this.readTokens(r.prompt), r.params.maxNewTokens, this.contextLength, 'the new-token limit');
      if (overflow) throw new EngineInputError(overflow, i, 'context_length_exceeded');
    }
    const results: GenerateResult[] = new Array(requests.length);
    for (const group of groupByParams(requests)) {
      options.signal?.throwIfAborted();
      const params = requests[group[0]!]!.params;
      const trims = group.map(() => Array.from({ length: params.n }, () => new TrimmedDeltas()));
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
                  const text = trims[input]![choice]!.push(e.text);
                  options.onToken!({ request: group[input]!, choice, tokenId: e.token, text });
                }
              : undefined,
        });
      } catch (e) {
        if (e instanceof GenerationConfigError) throw new EngineInputError(e.message, group[0]!, 'invalid_parameters');
        throw e;
      }
      const eos = new Set(this.pipeline.generationConfig.eos_token_id);
      group.forEach((requestIndex, input) => {
        const sequences: GeneratedSequence[] = rows
          .filter((row) => row.input === input)
          .map((row) => {
            // The interface counts new tokens without the end-of-sequence token.
            const ids = row.finish_reason === 'eos' && eos.has(row.token_ids.at(-1)!) ? row.token_ids.slice(0, -1) : row.token_ids;
            return { tokenIds: ids, text: row.text, finishReason: finishReason(row.finish_reason) };
          });
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
