/**
 * A small ring of mapped read-back buffers: each `push` records a copy of a few bytes (a decode step's token
 * ids) into the next slot, submits, and starts mapping it; `shift` waits for the oldest slot in order. With more
 * than one slot the host can submit step t+1 before step t's ids are back, so the device never waits on the host's
 * read-back (WebLLM and llama.cpp's GPU backends keep their queues full the same way).
 */
import { GpuError } from './errors.js';
import type { Gpu } from './gpu.js';

interface Slot {
  buffer: GPUBuffer;
  map: Promise<GpuError | null> | null;
}

export class ReadbackRing {
  private readonly slots: Slot[];
  private head = 0;
  private tail = 0;
  private count = 0;
  private destroyed = false;

  constructor(
    private readonly gpu: Gpu,
    /** Bytes per read-back (a multiple of 4). */
    readonly bytes: number,
    size: number,
  ) {
    if (!Number.isInteger(bytes) || bytes <= 0 || bytes % 4 !== 0) throw new RangeError(`ReadbackRing: bytes must be a positive multiple of 4, got ${bytes}`);
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`ReadbackRing: size must be a positive integer, got ${size}`);
    this.slots = Array.from({ length: size }, () => ({
      buffer: gpu.device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'readback ring' }),
      map: null,
    }));
  }

  /** Read-backs pushed and not yet shifted. */
  get pending(): number {
    return this.count;
  }

  get capacity(): number {
    return this.slots.length;
  }

  /** Copies `bytes` at `offset` of `src` (after everything recorded so far) into the next slot and submits. */
  push(src: GPUBuffer, offset: number): void {
    if (this.destroyed) throw new GpuError('ReadbackRing: used after dispose');
    if (this.count === this.slots.length) throw new GpuError(`ReadbackRing: all ${this.slots.length} slots are waiting to be read`);
    const slot = this.slots[this.head]!;
    this.gpu.copyBuffer(src, offset, slot.buffer, 0, this.bytes);
    this.gpu.flush();
    slot.map = this.gpu.startMap(slot.buffer);
    this.head = (this.head + 1) % this.slots.length;
    this.count++;
  }

  /** The bytes of the oldest pending read-back (waits until the device has written them). */
  async shift(): Promise<ArrayBuffer> {
    if (this.count === 0) throw new GpuError('ReadbackRing: nothing to read');
    const slot = this.slots[this.tail]!;
    this.tail = (this.tail + 1) % this.slots.length;
    this.count--;
    const map = slot.map!;
    slot.map = null;
    await this.gpu.mapped(map);
    const data = slot.buffer.getMappedRange(0, this.bytes).slice(0);
    slot.buffer.unmap();
    return data;
  }

  /** Destroys the slots; read-backs still in flight are dropped (their maps fail quietly). */
  dispose(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const s of this.slots) s.buffer.destroy();
  }
}
