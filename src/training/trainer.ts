/**
 * A fine-tuning loop for BLIP-2 on the engine (Node and browsers): frozen vision tower run once per image (its
 * features cached on the host), the selected parameters trained with AdamW, gradient clipping, gradient
 * accumulation (token-weighted, so k micro-batches equal one batch k times larger), warm-up + cosine schedule,
 * optional dropout, and a held-out loss. The `blip2 finetune` command and the demo drive it.
 */
import { freeGraph, noGrad, noGradAsync } from '../autograd/tape.js';
import { manualSeed } from '../autograd/random.js';
import type { Blip2ForConditionalGeneration } from '../model/blip2.js';
import { loadImage } from '../processing/image-input.js';
import type { Blip2Processor } from '../processing/processor.js';
import { disposeTree, keep, Tensor } from '../tensor.js';
import { AdamW, clipGradNorm_ } from './adamw.js';
import { collate, encodeExample, type EncodedExample, type PromptFormat, type TrainExample } from './data.js';
import { cosineWithWarmup } from './schedule.js';

export interface TrainerOptions {
  lr?: number;
  weightDecay?: number;
  betas?: readonly [number, number];
  eps?: number;
  /** Examples per optimizer step (split into micro-batches of `microBatchSize`). */
  batchSize?: number;
  /** Examples per forward/backward pass; default batchSize (no accumulation). */
  microBatchSize?: number;
  /** clip_grad_norm_'s max_norm; 0 turns clipping off. Default 1. */
  maxGradNorm?: number;
  warmupSteps?: number;
  /** Optimizer steps the schedule spans (required for 'cosine'). */
  totalSteps?: number;
  schedule?: 'cosine' | 'constant';
  format?: PromptFormat;
  prompt?: string;
  /** Dropout in the Q-Former (model.train()); off by default, as in the parity tests. */
  dropout?: boolean;
  /** Seeds the data order and dropout. */
  seed?: number;
  /**
   * Host bytes of cached vision features (1.4 MB per image at full size); beyond it the oldest are dropped and
   * recomputed when their image comes round again. Default 2 GiB.
   */
  featureCacheBytes?: number;
}

export interface StepResult {
  /** 1-based optimizer step. */
  step: number;
  /** Mean loss of the batch (over its label tokens). */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  lr: number;
}

interface Prepared {
  example: TrainExample;
  encoded: EncodedExample;
  /** Key of the image in the feature cache. */
  imageKey: unknown;
}

/** mulberry32: the data order's own stream. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let a = seed >>> 0;
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export class Trainer {
  readonly optimizer: AdamW;
  readonly options: Required<Omit<TrainerOptions, 'prompt' | 'totalSteps'>> & { prompt?: string; totalSteps?: number };
  /** Optimizer steps taken. */
  step = 0;
  private readonly features = new Map<unknown, { data: Float32Array; shape: number[] }>();

  constructor(
    readonly model: Blip2ForConditionalGeneration,
    readonly processor: Blip2Processor,
    options: TrainerOptions = {},
  ) {
    const batchSize = options.batchSize ?? 4;
    this.options = {
      lr: options.lr ?? 1e-4,
      weightDecay: options.weightDecay ?? 0.05,
      betas: options.betas ?? [0.9, 0.999],
      eps: options.eps ?? 1e-8,
      batchSize,
      microBatchSize: Math.min(options.microBatchSize ?? batchSize, batchSize),
      maxGradNorm: options.maxGradNorm ?? 1,
      warmupSteps: options.warmupSteps ?? 0,
      totalSteps: options.totalSteps,
      schedule: options.schedule ?? (options.totalSteps ? 'cosine' : 'constant'),
      format: options.format ?? 'caption',
      prompt: options.prompt,
      dropout: options.dropout ?? false,
      seed: options.seed ?? 0,
      featureCacheBytes: options.featureCacheBytes ?? 2 * 1024 ** 3,
    };
    const o = this.options;
    for (const [k, v] of [['batchSize', o.batchSize], ['microBatchSize', o.microBatchSize]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer, got ${v}`);
    }
    if (o.schedule === 'cosine' && !(o.totalSteps && o.totalSteps > 0)) throw new RangeError('the cosine schedule needs totalSteps');
    const params = model.trainableParameters();
    if (params.length === 0) throw new Error('no parameter is trainable: load the model with { trainable } or call markTrainable()');
    // Vision features are computed once per image and cached: the vision tower must stay frozen here.
    const vision = params.find(([name]) => name.startsWith('vision_model.'));
    if (vision) throw new Error(`the Trainer caches vision features, so the vision tower must stay frozen (${vision[0]} is trainable); train it with your own loop`);
    this.optimizer = new AdamW(params, { lr: o.lr, betas: o.betas, eps: o.eps, weight_decay: o.weightDecay });
    manualSeed(o.seed);
    model.train(o.dropout);
  }

  /** Checks and tokenizes examples up front, so a bad one fails before any training. */
  prepare(examples: readonly TrainExample[]): Prepared[] {
    const c = this.model.config;
    const maxLength = c.text_config.max_position_embeddings;
    return examples.map((example) => ({
      example,
      encoded: encodeExample(this.processor, example, { format: this.options.format, prompt: this.options.prompt, eosTokenId: c.text_config.eos_token_id, maxLength }),
      imageKey: typeof example.image === 'string' ? example.image : example.image instanceof URL ? example.image.href : example.image,
    }));
  }

  /** The learning rate of the next optimizer step. */
  currentLr(): number {
    const o = this.options;
    return o.schedule === 'cosine' ? cosineWithWarmup(this.step, { lr: o.lr, warmupSteps: o.warmupSteps, totalSteps: o.totalSteps! }) : o.warmupSteps > 0 && this.step < o.warmupSteps ? (o.lr * this.step) / o.warmupSteps : o.lr;
  }

  /** The frozen vision tower's output for these images, computed once per image and kept on the host. */
  private async imageEmbeds(items: readonly Prepared[]): Promise<Tensor> {
    const gpu = this.model.gpu;
    const missing = items.filter((it, i) => !this.features.has(it.imageKey) && items.findIndex((x) => x.imageKey === it.imageKey) === i);
    if (missing.length) {
      const decoded = await Promise.all(
        missing.map(async (it) => {
          try {
            return await loadImage(it.example.image);
          } catch (e) {
            throw new Error(`${it.example.source ?? 'an example'}: cannot read image ${typeof it.example.image === 'string' ? it.example.image : ''}: ${(e as Error).message}`);
          }
        }),
      );
      const { pixelValues, pixelShape } = this.processor.imageProcessor.preprocess(decoded);
      const pv = Tensor.from(gpu, pixelValues, pixelShape);
      try {
        const out = noGrad(() => this.model.vision_model.call(pv));
        const all = (await out.last_hidden_state.read()) as Float32Array;
        const [, T, D] = out.last_hidden_state.shape as [number, number, number];
        disposeTree(out);
        missing.forEach((it, i) => this.features.set(it.imageKey, { data: all.slice(i * T * D, (i + 1) * T * D), shape: [1, T, D] }));
      } finally {
        pv.dispose();
      }
    }
    const first = this.features.get(items[0]!.imageKey)!;
    const per = first.data.length;
    const data = new Float32Array(per * items.length);
    items.forEach((it, i) => data.set(this.features.get(it.imageKey)!.data, i * per));
    // Keep the cache within its budget, oldest first (this batch's entries are the newest or just read).
    for (const key of [...this.features.keys()]) {
      if (this.features.size * per * 4 <= this.options.featureCacheBytes) break;
      if (!items.some((it) => it.imageKey === key)) this.features.delete(key);
    }
    return Tensor.from(gpu, data, [items.length, first.shape[1]!, first.shape[2]!]);
  }

  private async lossOf(items: readonly Prepared[], weight: number | null): Promise<{ loss: number; tokens: number }> {
    const gpu = this.model.gpu;
    const image_embeds = await this.imageEmbeds(items);
    const batch = collate(
      items.map((it) => it.encoded),
      this.processor.tokenizer.padTokenId,
    );
    const tokens = batch.labels.reduce((n, row) => n + row.slice(1).filter((l) => l !== -100).length, 0);
    try {
      const out = this.model.call({ image_embeds, ...batch });
      const loss = keep(out.loss!.ref());
      disposeTree(out);
      try {
        if (weight !== null) {
          const g = Tensor.from(gpu, [weight * tokens], [1]);
          loss.backward(g);
          g.dispose();
        } else {
          freeGraph();
        }
        return { loss: (await loss.read())[0]!, tokens };
      } finally {
        loss.dispose();
      }
    } finally {
      image_embeds.dispose();
    }
  }

  /** One optimizer step on `batch` (micro-batches accumulate their gradients weighted by label tokens). */
  async trainStep(batch: readonly Prepared[]): Promise<StepResult> {
    if (batch.length === 0) throw new RangeError('trainStep: an empty batch');
    const o = this.options;
    const micro: Prepared[][] = [];
    for (let i = 0; i < batch.length; i += o.microBatchSize) micro.push(batch.slice(i, i + o.microBatchSize));
    const counts = micro.map((m) => collate(m.map((x) => x.encoded), 0).labels.reduce((n, row) => n + row.slice(1).filter((l) => l !== -100).length, 0));
    const total = counts.reduce((a, b) => a + b, 0);
    this.optimizer.zeroGrad();
    let lossSum = 0;
    for (const m of micro) {
      // Each micro-batch's mean loss weighted by its share of the batch's label tokens: the sum is the batch mean.
      const r = await this.lossOf(m, 1 / total);
      lossSum += r.loss * r.tokens;
    }
    const lr = this.currentLr();
    const params = this.optimizer.params;
    const norm = clipGradNorm_(params, o.maxGradNorm > 0 ? o.maxGradNorm : Infinity);
    this.optimizer.lr = lr;
    this.optimizer.step();
    this.optimizer.zeroGrad();
    const gradNorm = (await norm.read())[0]!;
    norm.dispose();
    this.step++;
    return { step: this.step, loss: lossSum / total, gradNorm, lr };
  }

  /** Mean loss over examples (by label tokens), without gradients, dropout off. */
  async evaluate(items: readonly Prepared[]): Promise<number> {
    const wasTraining = this.model.training;
    this.model.eval();
    let sum = 0;
    let tokens = 0;
    try {
      for (let i = 0; i < items.length; i += this.options.microBatchSize) {
        const r = await noGradAsync(() => this.lossOf(items.slice(i, i + this.options.microBatchSize), null));
        sum += r.loss * r.tokens;
        tokens += r.tokens;
      }
    } finally {
      this.model.train(wasTraining);
    }
    return sum / tokens;
  }

  /** Batches of one epoch in a seeded order (the epoch number varies it). */
  epochBatches(items: readonly Prepared[], epoch: number): Prepared[][] {
    const order = shuffled(items, this.options.seed * 1000003 + epoch);
    const out: Prepared[][] = [];
    for (let i = 0; i < order.length; i += this.options.batchSize) out.push(order.slice(i, i + this.options.batchSize));
    return out;
  }

  dispose(): void {
    this.optimizer.dispose();
    this.features.clear();
  }
}

