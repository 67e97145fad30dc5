import type { ByteSource } from './types.js';

/** Random access to a `Blob` (a picked `File`, or stored parts joined into one Blob): only the slices read are loaded. */
export class BlobSource implements ByteSource {
  constructor(
    private readonly blob: Blob,
    readonly name: string,
  ) {}
  get size(): number {
    return this.blob.size;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this.name, this.size, offset, length);
    return new Uint8Array(await this.blob.slice(offset, offset + length).arrayBuffer());
  }
  async close(): Promise<void> {}
}

export function checkRange(name: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new RangeError(`${name}: read of ${length} bytes at offset ${offset} is outside the file (${size} bytes)`);
  }
}
