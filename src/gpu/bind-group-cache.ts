/**
 * Reuses bind groups. A decode step records the same kernels on the same pooled buffers at the same uniform
 * offsets as the step before, so creating a bind group (a native call that dominated the cost of recording a
 * dispatch: about half of it on Dawn) can mostly be skipped. Keys use per-buffer ids; a destroyed buffer's
 * id never returns, so stale entries are never hit, only evicted (least recently used first).
 */
export interface BufferRange {
  /** null: the binding number is skipped (the pipeline does not use it). */
  buffer: GPUBuffer | null;
  offset: number;
  size: number | undefined;
}

export class BindGroupCache {
  private readonly ids = new WeakMap<object, number>();
  private nextId = 1;
  private readonly groups = new Map<string, GPUBindGroup>();
  private readonly layouts = new WeakMap<GPUComputePipeline, GPUBindGroupLayout>();
  hits = 0;
  misses = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly capacity = 8192,
  ) {}

  private id(o: object): number {
    let i = this.ids.get(o);
    if (i === undefined) this.ids.set(o, (i = this.nextId++));
    return i;
  }

  layout(pipeline: GPUComputePipeline): GPUBindGroupLayout {
    let l = this.layouts.get(pipeline);
    if (!l) this.layouts.set(pipeline, (l = pipeline.getBindGroupLayout(0)));
    return l;
  }

  get(pipeline: GPUComputePipeline, ranges: readonly BufferRange[]): GPUBindGroup {
    let key = `${this.id(pipeline)}`;
    for (const r of ranges) key += r.buffer ? `|${this.id(r.buffer)}:${r.offset}:${r.size ?? -1}` : '|-';
    const hit = this.groups.get(key);
    if (hit) {
      // Refresh its position: Maps iterate in insertion order, so the first key is the least recently used.
      this.groups.delete(key);
      this.groups.set(key, hit);
      this.hits++;
      return hit;
    }
    this.misses++;
    const group = this.device.createBindGroup({
      layout: this.layout(pipeline),
      entries: ranges.flatMap((r, binding) =>
        r.buffer ? [{ binding, resource: r.size === undefined ? { buffer: r.buffer, offset: r.offset } : { buffer: r.buffer, offset: r.offset, size: r.size } }] : [],
      ),
    });
    this.groups.set(key, group);
    if (this.groups.size > this.capacity) this.groups.delete(this.groups.keys().next().value!);
    return group;
  }

  clear(): void {
    this.groups.clear();
  }
}
