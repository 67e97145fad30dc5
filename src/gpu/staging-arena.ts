/**
 * Small host data for the work being recorded, packed into 64 KiB chunks and uploaded with one writeBuffer
 * per chunk right before the submit that uses it: per-dispatch uniforms (sizes, offsets, scales), and small
 * tensor uploads (token ids, masks, positions), which are then copied into place by a recorded copy, so they
 * need no submit of their own. Reusing a chunk right after a submit is safe: queue.writeBuffer is ordered
 * after the command buffers submitted before it.
 */
export const CHUNK_BYTES = 65536;

export interface ArenaSlot {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

export class StagingArena {
  private readonly chunks: { buffer: GPUBuffer; staging: Uint8Array<ArrayBuffer> }[] = [];
  private chunkIndex = 0;
  private used = 0;

  constructor(
    private readonly device: GPUDevice,
    /** Alignment of every slot's offset. */
    private readonly align: number,
    private readonly usage: GPUBufferUsageFlags,
    private readonly label: string,
  ) {}

  /** Copies `data` (at most CHUNK_BYTES) into the arena; its size is padded to 16 bytes. */
  push(data: ArrayBuffer | ArrayBufferView): ArenaSlot {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const size = Math.max(16, Math.ceil(bytes.byteLength / 16) * 16);
    if (size > CHUNK_BYTES) throw new RangeError(`staged block of ${size} bytes is too large`);
    if (this.used + size > CHUNK_BYTES) {
      this.chunkIndex++;
      this.used = 0;
    }
    if (this.chunkIndex === this.chunks.length) {
      this.chunks.push({
        buffer: this.device.createBuffer({ size: CHUNK_BYTES, usage: this.usage | GPUBufferUsage.COPY_DST, label: this.label }),
        staging: new Uint8Array(CHUNK_BYTES),
      });
    }
    const chunk = this.chunks[this.chunkIndex]!;
    const offset = this.used;
    chunk.staging.set(bytes, offset);
    if (bytes.byteLength < size) chunk.staging.fill(0, offset + bytes.byteLength, offset + size);
    this.used = Math.ceil((offset + size) / this.align) * this.align;
    return { buffer: chunk.buffer, offset, size };
  }

  /** Uploads what was pushed since the last call and starts over. Call right before queue.submit. */
  upload(queue: GPUQueue): void {
    for (let i = 0; i <= this.chunkIndex && i < this.chunks.length; i++) {
      const c = this.chunks[i]!;
      const bytes = i < this.chunkIndex ? CHUNK_BYTES : this.used;
      if (bytes > 0) queue.writeBuffer(c.buffer, 0, c.staging, 0, bytes);
    }
    this.chunkIndex = 0;
    this.used = 0;
  }

  destroy(): void {
    for (const c of this.chunks) c.buffer.destroy();
    this.chunks.length = 0;
  }
}
