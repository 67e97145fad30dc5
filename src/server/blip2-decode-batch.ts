/**
 * The BLIP-2 engine's continuous decode batch (`Engine.createDecodeBatch`): server requests on top of
 * `ContinuousBatch`. A request's image is decoded and preprocessed and its settings checked when it arrives
 * (`prepare`), so the batch only ever waits for the GPU; results and streamed text come out exactly as
 * `Blip2Engine.generate` gives them.
 */
import { ContinuousBatch, sequencesOf, type BatchRequest, type BatchResult } from '../batching/continuous-batch.js';
import { GenerationConfigError, type GenerationConfig } from '../generation/config.js';
import { StoppingCriteria } from '../generation/stopping.js';
import type { PixelBatch } from '../processing/index.js';
import type { Blip2Engine } from './blip2-engine.js';
import { EngineInputError, type DecodeBatch, type GenerateRequest, type GenerateResult, type PreparedRequest, type RequestSink } from './engine.js';
import { TrimmedDeltas } from './trimmed-deltas.js';

interface Blip2Prepared extends PreparedRequest {
  readonly request: GenerateRequest;
  /** Decoded, resized and normalised while the batch runs, so that joining only concatenates. */
  readonly pixels: PixelBatch;
  readonly config: GenerationConfig;
}

export class Blip2DecodeBatch implements DecodeBatch {
  private readonly batch: ContinuousBatch;
  private readonly joined = new Map<RequestSink, BatchRequest>();

  constructor(
    private readonly engine: Blip2Engine,
    slots: number,
  ) {
    this.batch = new ContinuousBatch(engine.pipeline, { slots });
  }

  get freeRows(): number {
    return this.batch.freeRows;
  }

  get runningRequests(): number {
    return this.batch.runningRequests;
  }

  accepts(request: GenerateRequest): boolean {
    return request.params.numBeams === 1;
  }

  async prepare(request: GenerateRequest): Promise<Blip2Prepared> {
    const image = await this.engine.checkedImage(request, 0);
    try {
      const config = this.engine.generationConfigFor(request.params);
      const { pixelValues, pixelShape } = await this.engine.pipeline.processor.process({ images: [image] });
      return { rows: sequencesOf(config), request, pixels: { pixelValues, pixelShape }, config };
    } catch (e) {
      if (e instanceof GenerationConfigError) throw new EngineInputError(e.message, 0, 'invalid_parameters');
      throw e;
    }
  }

  async join(entries: readonly { prepared: PreparedRequest; sink: RequestSink }[]): Promise<void> {
    const requests = entries.map(({ prepared, sink }) => {
      const p = prepared as Blip2Prepared;
      const trims = Array.from({ length: p.rows }, () => new TrimmedDeltas());
      const request: BatchRequest = {
        image: p.pixels,
        prompt: p.request.prompt,
        config: p.config,
        onToken: (e) => sink.onToken({ choice: e.row, tokenId: e.token, text: trims[e.row]!.push(e.text) }),
        onDone: (result) => {
          this.joined.delete(sink);
          sink.onDone(this.result(p, result));
        },
      };
      this.joined.set(sink, request);
      return request;
    });
    try {
      await this.batch.join(requests);
    } catch (e) {
      for (const { sink } of entries) this.joined.delete(sink);
      throw this.engine.engineError(e);
    }
  }

  async step(): Promise<void> {
    try {
      await this.batch.step();
    } catch (e) {
      throw this.engine.engineError(e);
    }
  }

  cancel(sink: RequestSink): void {
    const request = this.joined.get(sink);
    if (!request) return;
    this.batch.cancel(request);
    this.joined.delete(sink);
  }

  dispose(): void {
    this.batch.dispose();
    this.joined.clear();
  }

  /** The request's result as `Blip2Engine.generate` returns it (text as the pipeline cuts and trims it). */
  private result(p: Blip2Prepared, r: BatchResult): GenerateResult {
    const texts = new StoppingCriteria(Infinity, p.config.eos_token_id, p.config.stop, this.engine.pipeline.processor);
    const sequences = r.new_tokens.map((ids, i) => this.engine.sequence(ids, texts.text(ids).text.trim(), r.finish_reasons[i]!));
    return {
      sequences,
      promptTokens: this.engine.readTokens(p.request.prompt),
      completionTokens: sequences.reduce((n, s) => n + s.tokenIds.length, 0),
    };
  }
}
