/**
 * Reuses GPU storage buffers by size class, so that the many short-lived activations of a forward pass
 * do not each create and destroy a GPUBuffer. Live bytes (held by tensors) and pooled bytes (idle, kept
 * for reuse) are tracked separately; their sum is what the engine holds on the device.
 */
export interface PoolStats {
  liveBytes: number;
  peakLiveBytes: number;
  pooledBytes: number;
  liveBuffers: number;
  pooledBuffers: number;
  created: number;
  reused: number;
}

const STORAGE_USAGE = 0x80 /* STORAGE */ | 0x4 /* COPY_SRC */ | 0x8; /* COPY_DST */
export const UNIFORM_USAGE = 0x40; /* UNIFORM */
/**
 * Buffers up to this size may also be bound as uniform buffers (WebGPU's default maxUniformBufferBindingSize): the
 * decode GEMVs read a token's activations through a uniform binding on software adapters (linear-uniform-a.ts).
 */
const UNIFORM_CAPABLE_BYTES = 65536;

/** Size classes: 256-byte minimum, then four steps per power of two (at most 25% slack). */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(bytes));
  const step = p / 4;
  const rounded = Math.ceil(bytes / step) * step;
  return Math.ceil(rounded / 256) * 256;
}

export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private readonly sizes = new WeakMap<GPUBuffer, number>();
  private readonly exact = new WeakSet<GPUBuffer>();
  private stats: PoolStats = { liveBytes: 0, peakLiveBytes: 0, pooledBytes: 0, liveBuffers: 0, pooledBuffers: 0, created: 0, reused: 0 };

  /** Buffers released while recorded, unsubmitted work may still use them: destroyed after the next submit. */
  private doomed: GPUBuffer[] = [];
  /** While a program is captured: buffers that would be destroyed are kept here instead (the program may bind them). */
  private held: GPUBuffer[] | null = null;

  constructor(
    private readonly device: GPUDevice,
    private readonly maxBufferSize: number,
    /** Idle bytes kept for reuse; beyond it released buffers are destroyed. */
    public maxPooledBytes = 512 * 1024 * 1024,
    /** Whether commands are recorded but not yet submitted (a destroyed buffer may not be submitted). */
    private readonly hasUnsubmittedWork: () => boolean = () => false,
  ) {}

  private destroy(buf: GPUBuffer): void {
    if (this.held) this.held.push(buf);
    else if (this.hasUnsubmittedWork()) this.doomed.push(buf);
    else buf.destroy();
  }

  /** Called by the device right after a submit: destroying is safe once the work using a buffer is submitted. */
  afterSubmit(): void {
    for (const b of this.doomed) b.destroy();
    this.doomed = [];
  }

  /**
   * A storage buffer of at least `bytes`. `exact` allocations (weights, KV caches) are sized exactly and
   * destroyed on release instead of pooled: they are long-lived and their sizes rarely repeat.
   */
  acquire(bytes: number, options: { exact?: boolean; label?: string } = {}): GPUBuffer {
    if (!Number.isFinite(bytes) || bytes < 0) throw new RangeError(`invalid buffer size ${bytes}`);
    const exact = options.exact === true;
    const size = exact ? Math.max(16, Math.ceil(bytes / 16) * 16) : sizeClass(bytes);
    if (size > this.maxBufferSize) {
      throw new RangeError(`a buffer of ${size} bytes exceeds the device's maxBufferSize (${this.maxBufferSize})`);
    }
    let buf: GPUBuffer | undefined;
    if (!exact) {
      buf = this.free.get(size)?.pop();
      if (buf) {
        this.stats.pooledBytes -= size;
        this.stats.pooledBuffers--;
        this.stats.reused++;
      }
    }
    if (!buf) {
      buf = this.device.createBuffer({ size, usage: size <= UNIFORM_CAPABLE_BYTES ? STORAGE_USAGE | UNIFORM_USAGE : STORAGE_USAGE, label: options.label });
      this.stats.created++;
      this.sizes.set(buf, size);
      if (exact) this.exact.add(buf);
    }
    this.stats.liveBytes += size;
    this.stats.liveBuffers++;
    this.stats.peakLiveBytes = Math.max(this.stats.peakLiveBytes, this.stats.liveBytes);
    return buf;
  }

  release(buf: GPUBuffer): void {
    const size = this.sizes.get(buf);
    if (size === undefined) throw new Error('release of a buffer this pool did not create');
    this.stats.liveBytes -= size;
    this.stats.liveBuffers--;
    if (this.exact.has(buf) || (!this.held && this.stats.pooledBytes + size > this.maxPooledBytes)) {
      this.destroy(buf);
      return;
    }
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buf);
    this.stats.pooledBytes += size;
    this.stats.pooledBuffers++;
  }

  /**
   * Starts holding: until `endHold`, released buffers are neither destroyed nor dropped for exceeding the
   * pooled-bytes budget, because a program being captured may still bind them at every replay.
   */
  hold(): void {
    if (this.held) throw new Error('the buffer pool is already holding');
    this.held = [];
  }

  /**
   * Ends holding. Every buffer of `used` that is idle (pooled, or released while holding) is taken out of the
   * pool and returned: it is live again, owned by the caller, who gives it back with `release`. The buffers
   * released while holding that are not used are destroyed (or pooled) as usual.
   */
  endHold(used: ReadonlySet<GPUBuffer>): GPUBuffer[] {
    const held = this.held ?? [];
    this.held = null;
    const adopted: GPUBuffer[] = [];
    for (const buf of used) {
      const size = this.sizes.get(buf);
      if (size === undefined) continue;
      const list = this.free.get(size);
      const i = list ? list.indexOf(buf) : -1;
      const h = held.indexOf(buf);
      if (i < 0 && h < 0) continue;
      if (i >= 0) {
        list!.splice(i, 1);
        this.stats.pooledBytes -= size;
        this.stats.pooledBuffers--;
      } else {
        held.splice(h, 1);
      }
      this.stats.liveBytes += size;
      this.stats.liveBuffers++;
      this.stats.peakLiveBytes = Math.max(this.stats.peakLiveBytes, this.stats.liveBytes);
      adopted.push(buf);
    }
    for (const b of held) this.destroy(b);
    return adopted;
  }

  /** Destroys every idle buffer. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) this.destroy(b);
    this.free.clear();
    this.stats.pooledBytes = 0;
    this.stats.pooledBuffers = 0;
  }

  snapshot(): PoolStats {
    return { ...this.stats };
  }

  resetPeak(): void {
    this.stats.peakLiveBytes = this.stats.liveBytes;
  }
}
