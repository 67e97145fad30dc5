// A stored file as a ByteSource: reads are served from its OPFS part files. With verification on, the first read
// that touches a part reads that part whole and checks its checksum before any of its bytes are used; later reads
// of a checked part are plain slices. So checking costs a fast hash (checksum.ts) and one extra read of the parts
// that loading touches out of order, not a pass over the model before loading starts.
import { checkRange } from '../blob-source.js';
import type { ByteSource } from '../types.js';
import { ModelStorageError } from './types.js';

export interface StoredPart {
  file: File;
  /** Offset of the part in the whole file. */
  start: number;
  bytes: number;
  /** Checked already (in this page), or checking is off. */
  checked: boolean;
}

/** Checks a part read whole; resolves to the bytes to use (the same, or a repaired copy) and the part's new File. */
export type PartCheck = (index: number, bytes: Uint8Array) => Promise<{ bytes: Uint8Array; file: File }>;

export class StoredFileSource implements ByteSource {
  /** The part last read whole: a loader reading on within it needs no second read. */
  private whole: { index: number; bytes: Uint8Array } | null = null;
  private readonly checking = new Map<number, Promise<void>>();
  readonly size: number;

  constructor(
    readonly name: string,
    private readonly parts: StoredPart[],
    private readonly partBytes: number,
    private readonly check: PartCheck,
  ) {
    this.size = parts.reduce((n, p) => n + p.bytes, 0);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    checkRange(this.name, this.size, offset, length);
    // Within one checked part: the slice's own buffer, without a second allocation and copy.
    const index = Math.floor(offset / this.partBytes);
    const part = this.parts[index];
    if (part?.checked && this.whole?.index !== index && offset + length <= part.start + part.bytes) {
      try {
        return new Uint8Array(await part.file.slice(offset - part.start, offset - part.start + length).arrayBuffer());
      } catch (e) {
        throw this.readError(e);
      }
    }
    const out = new Uint8Array(length);
    await this.readInto(offset, out);
    return out;
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    checkRange(this.name, this.size, offset, target.length);
    try {
      for (let done = 0; done < target.length; ) {
        const pos = offset + done;
        const index = Math.floor(pos / this.partBytes);
        const part = this.parts[index]!;
        const at = pos - part.start;
        const n = Math.min(part.bytes - at, target.length - done);
        if (!part.checked) await this.checkPart(index);
        const whole = this.whole?.index === index ? this.whole.bytes : null;
        target.set(whole ? whole.subarray(at, at + n) : new Uint8Array(await part.file.slice(at, at + n).arrayBuffer()), done);
        done += n;
      }
    } catch (e) {
      throw this.readError(e);
    }
  }

  /** A part file that changed or vanished under a File snapshot fails with a DOMException: say what happened. */
  private readError(e: unknown): unknown {
    if (e instanceof ModelStorageError || !(e instanceof DOMException)) return e;
    return new ModelStorageError(`${this.name}: the stored copy changed or vanished while it was read (deleted or downloaded again in another tab?); load again`, 'corrupt', { cause: e });
  }

  private checkPart(index: number): Promise<void> {
    let pending = this.checking.get(index);
    if (!pending) {
      pending = (async () => {
        const part = this.parts[index]!;
        const good = await this.check(index, new Uint8Array(await part.file.arrayBuffer()));
        part.file = good.file;
        part.checked = true;
        this.whole = { index, bytes: good.bytes };
      })();
      this.checking.set(index, pending);
      pending.catch(() => this.checking.delete(index));
    }
    return pending;
  }

  async close(): Promise<void> {
    this.whole = null;
  }
}
