/**
 * The request queue in front of the engine: requests that wait at the same time run together as one engine
 * batch (up to `maxBatch`), at most `maxConcurrent` batches run at once, and the queue is bounded.
 */
import { EngineInputError, type Engine, type GenerateRequest, type GenerateResult, type TokenEvent } from './engine.js';

export interface SchedulerOptions {
  maxBatch: number;
  maxConcurrent: number;
  /** Requests that may wait (not counting running ones) before new ones are refused. */
  maxQueue: number;
}

export class QueueFullError extends Error {
  override readonly name = 'QueueFullError';
}

export class SchedulerClosedError extends Error {
  override readonly name = 'SchedulerClosedError';
}

export interface SubmitOptions {
  onToken?: (event: Omit<TokenEvent, 'request'>) => void;
  /** Aborting rejects the job at once (with the signal's reason) and tells the engine to drop it. */
  signal?: AbortSignal;
}

/** What the HTTP layer needs of a queue in front of the engine (whole batches here, continuous batching in continuous-scheduler.ts). */
export interface RequestQueue {
  /** Requests accepted but not yet running. */
  readonly waiting: number;
  /** Requests generating now. */
  readonly running: number;
  /** Engine batches running now. */
  readonly runningBatches: number;
  /** Sizes of the batches started so far (whole batches, or the groups that joined a running batch). */
  readonly batchSizes: readonly number[];
  /** Queues one request; throws `QueueFullError` or `SchedulerClosedError` synchronously when it cannot. */
  submit(request: GenerateRequest, options?: SubmitOptions): Promise<GenerateResult>;
  /** Stops accepting; waits up to `graceMs` for queued and running work, then fails what is left with `reason`. */
  close(graceMs: number, reason?: unknown): Promise<void>;
}

interface Job {
  request: GenerateRequest;
  options: SubmitOptions;
  resolve: (r: GenerateResult) => void;
  reject: (e: unknown) => void;
  settled: boolean;
  streamed: boolean;
}

export class Scheduler implements RequestQueue {
  private readonly queue: Job[] = [];
  private runningCount = 0;
  private runningRequests = 0;
  private closed = false;
  private pumpScheduled = false;
  private readonly batchControllers = new Set<AbortController>();
  private readonly idleWaiters: (() => void)[] = [];
  /** Sizes of the batches sent to the engine, in order. */
  readonly batchSizes: number[] = [];

  constructor(
    private readonly engine: Engine,
    private readonly options: SchedulerOptions,
  ) {
    if (!(options.maxBatch >= 1 && options.maxConcurrent >= 1 && options.maxQueue >= 0)) {
      throw new Error('scheduler needs maxBatch >= 1, maxConcurrent >= 1 and maxQueue >= 0');
    }
  }

  get waiting(): number {
    return this.queue.length;
  }

  get runningBatches(): number {
    return this.runningCount;
  }

  get running(): number {
    return this.runningRequests;
  }

  /** Queues one request; throws `QueueFullError` or `SchedulerClosedError` synchronously when it cannot. */
  submit(request: GenerateRequest, options: SubmitOptions = {}): Promise<GenerateResult> {
    if (this.closed) throw new SchedulerClosedError('the server is shutting down');
    if (this.queue.length >= this.options.maxQueue && this.runningCount >= this.options.maxConcurrent) {
      throw new QueueFullError(`the queue is full (${this.options.maxQueue} requests waiting)`);
    }
    options.signal?.throwIfAborted();
    return new Promise<GenerateResult>((resolve, reject) => {
      const job: Job = { request, options, resolve, reject, settled: false, streamed: false };
      options.signal?.addEventListener('abort', () => this.abortJob(job), { once: true });
      this.queue.push(job);
      this.schedulePump();
    });
  }

  /** Stops accepting; waits up to `graceMs` for queued and running work, then aborts what is left. */
  async close(graceMs: number, reason: unknown = new SchedulerClosedError('the server is shutting down')): Promise<void> {
    this.closed = true;
    const idle = this.whenIdle();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => (timer = setTimeout(() => resolve('expired'), graceMs)));
    const outcome = await Promise.race([idle, expired]);
    clearTimeout(timer);
    if (outcome === 'expired') {
      for (const job of this.queue.splice(0)) this.settle(job, () => job.reject(reason));
      for (const c of this.batchControllers) c.abort(reason);
      await idle;
    }
  }

  private whenIdle(): Promise<void> {
    if (this.runningCount === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private settle(job: Job, action: () => void): void {
    if (job.settled) return;
    job.settled = true;
    action();
  }

  private abortJob(job: Job): void {
    const i = this.queue.indexOf(job);
    if (i >= 0) this.queue.splice(i, 1);
    this.settle(job, () => job.reject(job.options.signal?.reason));
    this.notifyIdle();
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    // Deferred so that requests arriving in the same turn of the event loop share a batch.
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.runningCount < this.options.maxConcurrent && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.runningCount++;
      this.runningRequests += batch.length;
      void this.runBatch(batch).finally(() => {
        this.runningCount--;
        this.runningRequests -= batch.length;
        this.notifyIdle();
        if (this.queue.length > 0) this.schedulePump();
      });
    }
  }

  private notifyIdle(): void {
    if (this.runningCount === 0 && this.queue.length === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private async runBatch(jobs: Job[]): Promise<void> {
    const controller = new AbortController();
    this.batchControllers.add(controller);
    this.batchSizes.push(jobs.length);
    try {
      const results = await this.engine.generate(
        jobs.map((j) => ({ ...j.request, signal: j.options.signal })),
        {
          signal: controller.signal,
          onToken: (e) => {
            const job = jobs[e.request];
            if (!job || job.settled) return;
            job.streamed = true;
            job.options.onToken?.({ choice: e.choice, tokenId: e.tokenId, text: e.text });
          },
        },
      );
      jobs.forEach((job, i) => this.settle(job, () => job.resolve(results[i]!)));
    } catch (e) {
      const culprit = e instanceof EngineInputError ? jobs[e.requestIndex] : undefined;
      if (culprit && !jobs.some((j) => j.streamed)) {
        // One bad request must not fail the others: it gets the error, the rest run again.
        this.settle(culprit, () => culprit.reject(e));
        const rest = jobs.filter((j) => j !== culprit && !j.settled);
        this.queue.unshift(...rest);
      } else {
        for (const job of jobs) this.settle(job, () => job.reject(e));
      }
    } finally {
      this.batchControllers.delete(controller);
    }
  }
}
