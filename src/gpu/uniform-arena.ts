/**
 * Per-dispatch parameters (sizes, offsets, scales) are packed into 64 KiB uniform chunks and uploaded
 * once per submit. Reusing a chunk right after a submit is safe: queue.writeBuffer is ordered after
 * the command buffers submitted before it.
 */
const CHUNK_BYTES = 65536;

export interface UniformSlot {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

export class UniformArena {
  private readonly chunks: { buffer: GPUBuffer; staging: Uint8Array<ArrayBuffer> }[] = [];
  private chunkIndex = 0;
  private used = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly align: number,
  ) {}

  /** Copies `data` (at most 256 bytes in practice) into the arena. */
  push(data: ArrayBuffer | ArrayBufferView): UniformSlot {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const size = Math.max(16, Math.ceil(bytes.byteLength / 16) * 16);
    if (size > CHUNK_BYTES) throw new RangeError(`uniform block of ${size} bytes is too large`);
    if (this.used + size > CHUNK_BYTES) {
      this.chunkIndex++;
      this.used = 0;
    }
    if (this.chunkIndex === this.chunks.length) {
      this.chunks.push({
        buffer: this.device.createBuffer({ size: CHUNK_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'uniforms' }),
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

  /** Whether anything was pushed since the last upload. */
  get pending(): boolean {
    return this.chunkIndex > 0 || this.used > 0;
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
