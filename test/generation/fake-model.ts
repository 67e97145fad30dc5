/**
 * A stand-in language model for testing the search loops exactly: each row's logits are a fixed
 * pseudo-random function of the row's whole token history, so any bookkeeping slip (wrong parent beam,
 * token, cache row) changes every later logit. The eos token gets a boost on some histories so that
 * sequences finish at different steps.
 */
import type { Gpu } from '../../src/gpu/gpu.js';
import type { StepModel } from '../../src/generation/step-model.js';
import { Tensor } from '../../src/tensor.js';
import { rng } from '../helpers.js';

export type LogitsFn = (history: readonly number[]) => Float32Array;

export function fakeLogitsFn(vocab: number, options: { eos?: number; eosBoost?: number; scale?: number; seed?: number } = {}): LogitsFn {
  const scale = options.scale ?? 3;
  return (history) => {
    let h = 2166136261 ^ (options.seed ?? 0);
    for (const t of history) h = Math.imul(h ^ (t + 1), 16777619);
    const r = rng(h >>> 0);
    const row = new Float32Array(vocab);
    for (let i = 0; i < vocab; i++) row[i] = (r() * 2 - 1) * scale;
    if (options.eos !== undefined && r() < 0.3) row[options.eos] = row[options.eos]! + (options.eosBoost ?? 2 * scale);
    return row;
  };
}

/** StepModel over `fn`; counts its calls and checks it is used in order. */
export class FakeStepModel implements StepModel {
  histories: number[][] = [];
  prefills = 0;
  steps = 0;
  disposed = false;

  constructor(
    private readonly gpu: Gpu,
    private readonly prompts: readonly (readonly number[])[],
    readonly vocabSize: number,
    readonly fn: LogitsFn,
  ) {}

  get batch(): number {
    return this.prompts.length;
  }

  private logits(): Tensor {
    const data = new Float32Array(this.histories.length * this.vocabSize);
    this.histories.forEach((h, r) => data.set(this.fn(h), r * this.vocabSize));
    return Tensor.from(this.gpu, data, [this.histories.length, this.vocabSize]);
  }

  prefill(): Tensor {
    if (this.prefills++ > 0) throw new Error('prefill twice');
    this.histories = this.prompts.map((p) => [...p]);
    return this.logits();
  }

  step(tokens: readonly number[]): Tensor {
    if (tokens.length !== this.histories.length) throw new Error(`step with ${tokens.length} tokens for ${this.histories.length} rows`);
    this.steps++;
    tokens.forEach((t, r) => this.histories[r]!.push(t));
    return this.logits();
  }

  reorder(parents: readonly number[]): void {
    this.histories = parents.map((p) => {
      const h = this.histories[p];
      if (!h) throw new Error(`reorder to missing row ${p}`);
      return [...h];
    });
  }

  dispose(): void {
    this.disposed = true;
  }
}
