/**
 * Continuous batching in front of an engine's decode batch: requests join a running batch between decode
 * steps and leave it the moment they end, instead of waiting for a whole batch to finish.
 *
 * A request is prepared as soon as it arrives (its image decoded, its settings checked) while the batch keeps
 * decoding; before a step the prepared requests join, in arrival order, while their sequences fit in the
 * free slots (newcomers go first: their prompt passes run as one batch, then every running sequence steps
 * together).
 *
 * When to join: a prompt pass costs much the same for one newcomer as for several (measured on small-blip2 with
 * lavapipe: 88 ms for one image, 96 ms for four, 197 ms for sixteen, beside 19 ms for a decode step of sixteen
 * rows), so joining every newcomer at the next step would spend most of the time in one-image prompt passes.
 * While others decode, newcomers therefore wait for company: they join once a quarter of the batch (or every
 * free slot) is ready, or once the oldest of them has waited as long as a join takes (the recent average): a
 * wait that at most doubles what the join itself costs it. With nothing decoding they join at once. A bad request fails alone at preparation. Requests the batch cannot take (beam search) run as
 * whole batches through the static `Scheduler` beside it.
 */
import { EngineInputError, type DecodeBatch, type Engine, type GenerateRequest, type GenerateResult, type PreparedRequest, type RequestSink } from './engine.js';
import { QueueFullError, Scheduler, SchedulerClosedError, type RequestQueue, type SchedulerOptions, type SubmitOptions } from './scheduler.js';

interface Job {
  request: GenerateRequest;
  options: SubmitOptions;
  resolve: (r: GenerateResult) => void;
  reject: (e: unknown) => void;
  prepared: PreparedRequest | null;
  /** When it was prepared (performance.now()). */
  readyAt: number;
  sink: RequestSink;
  settled: boolean;
}

export class ContinuousScheduler implements RequestQueue {
  private batch: DecodeBatch;
  /** Whole batches for what the decode batch does not take. */
  private readonly whole: Scheduler;
  /** Accepted requests not yet in the batch, in arrival order (prepared or still preparing). */
  private readonly queue: Job[] = [];
  private readonly runningJobs = new Set<Job>();
  private closed = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private readonly idleWaiters: (() => void)[] = [];
  readonly batchSizes: number[] = [];
  /** Decode steps run so far. */
  steps = 0;
  /** Recent duration of a join (ms), the longest a ready newcomer waits for company. */
  private joinMs = 0;

  constructor(
    engine: Engine,
    /** Makes the engine's decode batch (again after a failure) with `slots` sequences. */
    private readonly createBatch: (slots: number) => DecodeBatch,
    private readonly options: SchedulerOptions,
  ) {
    this.whole = new Scheduler(engine, options);
    this.batch = createBatch(options.maxBatch);
  }

  get waiting(): number {
    return this.queue.length + this.whole.waiting;
  }

  get running(): number {
    return this.runningJobs.size + this.whole.running;
  }

  get runningBatches(): number {
    return (this.runningJobs.size > 0 ? 1 : 0) + this.whole.runningBatches;
  }

  submit(request: GenerateRequest, options: SubmitOptions = {}): Promise<GenerateResult> {
    if (this.closed) throw new SchedulerClosedError('the server is shutting down');
    if (!this.batch.accepts(request) || request.params.n > this.options.maxBatch) return this.whole.submit(request, options);
    // Requests that can join at the next step are not waiting in the sense of the queue limit.
    if (this.queue.length >= this.options.maxQueue + this.batch.freeRows) {
      throw new QueueFullError(`the queue is full (${this.options.maxQueue} requests waiting)`);
    }
    options.signal?.throwIfAborted();
    return new Promise<GenerateResult>((resolve, reject) => {
      const job: Job = {
        request,
        options,
        resolve,
        reject,
        prepared: null,
        readyAt: 0,
        settled: false,
        sink: {
          onToken: (e) => {
            if (!job.settled) job.options.onToken?.(e);
          },
          onDone: (result) => {
            this.runningJobs.delete(job);
            this.settle(job, () => job.resolve(result));
          },
        },
      };
      options.signal?.addEventListener('abort', () => this.abort(job), { once: true });
      this.queue.push(job);
      this.batch.prepare(request).then(
        (prepared) => {
          job.prepared = prepared;
          job.readyAt = performance.now();
          this.kick();
        },
        (e: unknown) => {
          this.dequeue(job);
          // The engine names the request's index in its batch; alone here, it is this request.
          this.settle(job, () => job.reject(e instanceof EngineInputError ? new EngineInputError(e.message, 0, e.code) : e));
        },
      );
    });
  }

  async close(graceMs: number, reason: unknown = new SchedulerClosedError('the server is shutting down')): Promise<void> {
    this.closed = true;
    this.kick();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => (timer = setTimeout(() => resolve('expired'), graceMs)));
    const wholeClosed = this.whole.close(graceMs, reason);
    const outcome = await Promise.race([this.whenIdle(), expired]);
    clearTimeout(timer);
    if (outcome === 'expired') this.failAll(reason);
    await Promise.all([wholeClosed, this.loop]);
    this.batch.dispose();
  }

  /** Fails every request in the queue and in the batch (the engine was lost, or shutdown ran out of time). */
  failAll(reason: unknown): void {
    for (const job of this.queue.splice(0)) this.settle(job, () => job.reject(reason));
    for (const job of this.runningJobs) {
      this.batch.cancel(job.sink);
      this.settle(job, () => job.reject(reason));
    }
    this.runningJobs.clear();
    this.notifyIdle();
    this.kick(); // an idle loop wakes up to see that nothing is left
  }

  // ---------------------------------------------------------------- the loop

  private kick(): void {
    if (this.wake) {
      const wake = this.wake;
      this.wake = null;
      wake();
    } else if (!this.loop) {
      this.loop = this.run().finally(() => (this.loop = null));
    }
  }

  private async run(): Promise<void> {
    for (;;) {
      const joining = this.takeJoiners();
      if (joining.length > 0) await this.join(joining);
      if (this.runningJobs.size > 0) {
        await this.step();
        continue;
      }
      if (this.queue.some((j) => j.prepared)) continue;
      this.notifyIdle();
      if (this.closed && this.queue.length === 0) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /**
   * Prepared requests from the front of the queue, in order, while their sequences fit, when it is time for
   * them to join (see the header); none otherwise.
   */
  private takeJoiners(): Job[] {
    const out: Job[] = [];
    let free = this.batch.freeRows;
    const freeBefore = free;
    for (const job of this.queue) {
      if (!job.prepared) continue;
      if (job.prepared.rows > free) break; // keep arrival order: nobody overtakes a request that waits for room
      free -= job.prepared.rows;
      out.push(job);
    }
    if (out.length === 0) return out;
    const rows = freeBefore - free;
    const company = Math.min(freeBefore, Math.ceil(this.options.maxBatch / 4));
    const waited = performance.now() - Math.min(...out.map((j) => j.readyAt));
    const now = this.runningJobs.size === 0 || this.closed || rows >= company || free === 0 || waited >= this.joinMs;
    if (!now) return [];
    for (const job of out) this.dequeue(job);
    return out;
  }

  private async join(jobs: Job[]): Promise<void> {
    this.batchSizes.push(jobs.length);
    for (const j of jobs) this.runningJobs.add(j);
    const started = performance.now();
    try {
      await this.batch.join(jobs.map((j) => ({ prepared: j.prepared!, sink: j.sink })));
      // A short average: the cost of a join moves with the prompt lengths and with the machine's load.
      const ms = performance.now() - started;
      this.joinMs = this.joinMs === 0 ? ms : 0.7 * this.joinMs + 0.3 * ms;
    } catch (e) {
      // The batch leaves its running sequences untouched when newcomers fail (a device failure shows at the next step).
      for (const j of jobs) {
        this.runningJobs.delete(j);
        this.settle(j, () => j.reject(e));
      }
    }
  }

  private async step(): Promise<void> {
    try {
      await this.batch.step();
      this.steps++;
    } catch (e) {
      const failed = [...this.runningJobs];
      this.afterFailure();
      for (const j of failed) this.settle(j, () => j.reject(e));
    }
  }

  /** A batch that failed mid-way cannot be trusted: start a fresh one (what ran in it fails with the error). */
  private afterFailure(): void {
    this.runningJobs.clear();
    this.batch.dispose();
    this.batch = this.createBatch(this.options.maxBatch);
  }

  // ---------------------------------------------------------------- requests

  private abort(job: Job): void {
    this.dequeue(job);
    if (this.runningJobs.delete(job)) this.batch.cancel(job.sink);
    this.settle(job, () => job.reject(job.options.signal?.reason));
    this.notifyIdle();
  }

  private dequeue(job: Job): void {
    const i = this.queue.indexOf(job);
    if (i >= 0) this.queue.splice(i, 1);
  }

  private settle(job: Job, action: () => void): void {
    if (job.settled) return;
    job.settled = true;
    action();
  }

  private whenIdle(): Promise<void> {
    if (this.isIdle) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private get isIdle(): boolean {
    return this.queue.length === 0 && this.runningJobs.size === 0;
  }

  private notifyIdle(): void {
    if (this.isIdle) for (const w of this.idleWaiters.splice(0)) w();
  }
}
