import { getPlatform, type ByteSource } from '../platform/index.js';
import { bf16ArrayToF16, bf16ArrayToF32, f16ArrayToF32, f32ArrayToF16 } from '../util/half.js';
import { ST_DTYPE_BYTES, isStDType, viewAs, type StArray, type StDType } from './safetensors-dtypes.js';

export class SafetensorsError extends Error {
  override readonly name = 'SafetensorsError';
}

export interface TensorInfo {
  name: string;
  dtype: StDType;
  shape: number[];
  /** Absolute position of the data in the file. */
  byteOffset: number;
  byteLength: number;
}

/** Anything that serves tensors by name: one safetensors file or a sharded checkpoint. */
export interface TensorSource {
  keys(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** Raw little-endian bytes of a whole tensor, or of `length` bytes from `start` within it. */
  readBytes(name: string, start?: number, length?: number): Promise<Uint8Array>;
  /** `target.length` raw bytes from `start` within the tensor, into `target` (no allocation where the source allows). */
  readBytesInto(name: string, start: number, target: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** The safetensors reference implementation's cap; a larger header means a corrupt or hostile file. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/**
 * A safetensors file opened for random access: only the header is read up front; tensors are read one
 * at a time (or in ranges), so a 10 GB shard never sits in memory.
 */
export class SafetensorsFile implements TensorSource {
  private readonly infos: Map<string, TensorInfo>;

  private constructor(
    private readonly source: ByteSource,
    infos: Map<string, TensorInfo>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {
    this.infos = infos;
  }

  static async open(location: string | URL | Blob | ByteSource): Promise<SafetensorsFile> {
    const source = isByteSource(location) ? location : await (await getPlatform()).openBytes(location);
    try {
      const { infos, metadata } = await parseHeader(source);
      return new SafetensorsFile(source, infos, metadata);
    } catch (e) {
      await source.close();
      throw e;
    }
  }

  get name(): string {
    return this.source.name;
  }

  keys(): string[] {
    return [...this.infos.keys()];
  }

  has(name: string): boolean {
    return this.infos.has(name);
  }

  info(name: string): TensorInfo {
    const i = this.infos.get(name);
    if (!i) throw new SafetensorsError(`${this.source.name}: no tensor named '${name}'`);
    return i;
  }

  async readBytes(name: string, start = 0, length?: number): Promise<Uint8Array> {
    const i = this.info(name);
    const len = length ?? i.byteLength - start;
    if (start < 0 || len < 0 || start + len > i.byteLength) {
      throw new SafetensorsError(`${name}: byte range ${start}+${len} outside the tensor (${i.byteLength} bytes)`);
    }
    return this.source.read(i.byteOffset + start, len);
  }

  async readBytesInto(name: string, start: number, target: Uint8Array): Promise<void> {
    const i = this.info(name);
    if (start < 0 || start + target.length > i.byteLength) {
      throw new SafetensorsError(`${name}: byte range ${start}+${target.length} outside the tensor (${i.byteLength} bytes)`);
    }
    if (this.source.readInto) await this.source.readInto(i.byteOffset + start, target);
    else target.set(await this.source.read(i.byteOffset + start, target.length));
  }

  async close(): Promise<void> {
    await this.source.close();
  }
}

function isByteSource(x: unknown): x is ByteSource {
  return typeof x === 'object' && x !== null && typeof (x as ByteSource).read === 'function' && typeof (x as ByteSource).size === 'number';
}

async function parseHeader(source: ByteSource): Promise<{ infos: Map<string, TensorInfo>; metadata: Record<string, string> }> {
  const where = source.name;
  if (source.size < 8) throw new SafetensorsError(`${where}: file too small for a safetensors header (${source.size} bytes)`);
  const lenBytes = await source.read(0, 8);
  const headerLen = Number(new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true));
  if (headerLen < 2 || headerLen > MAX_HEADER_BYTES) throw new SafetensorsError(`${where}: invalid header length ${headerLen}`);
  if (8 + headerLen > source.size) {
    throw new SafetensorsError(`${where}: header length ${headerLen} runs past the end of the file (${source.size} bytes): truncated or corrupt`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await source.read(8, headerLen)));
  } catch (e) {
    throw new SafetensorsError(`${where}: header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new SafetensorsError(`${where}: header is not a JSON object`);
  }
  const dataStart = 8 + headerLen;
  const dataSize = source.size - dataStart;
  const infos = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || Object.values(raw).some((v) => typeof v !== 'string')) {
        throw new SafetensorsError(`${where}: __metadata__ must map strings to strings`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) throw new SafetensorsError(`${where}: entry '${name}' is not an object`);
    if (!isStDType(e.dtype)) throw new SafetensorsError(`${where}: tensor '${name}' has unknown or unsupported dtype ${JSON.stringify(e.dtype)}`);
    if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isSafeInteger(d) || (d as number) < 0)) {
      throw new SafetensorsError(`${where}: tensor '${name}' has an invalid shape ${JSON.stringify(e.shape)}`);
    }
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && (o as number) >= 0) || off[0] > off[1]) {
      throw new SafetensorsError(`${where}: tensor '${name}' has invalid data_offsets ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as [number, number];
    const shape = e.shape as number[];
    const expected = shape.reduce((a, b) => a * b, 1) * ST_DTYPE_BYTES[e.dtype];
    if (end - begin !== expected) {
      throw new SafetensorsError(`${where}: tensor '${name}' ${e.dtype}[${shape.join(', ')}] needs ${expected} bytes but its offsets span ${end - begin}`);
    }
    if (end > dataSize) {
      throw new SafetensorsError(`${where}: tensor '${name}' ends at byte ${end} of a ${dataSize}-byte data section: file truncated or offsets outside the file`);
    }
    infos.set(name, { name, dtype: e.dtype, shape, byteOffset: dataStart + begin, byteLength: end - begin });
  }
  // Like the reference implementation: tensors tile the data section without overlaps or gaps.
  const sorted = [...infos.values()].sort((a, b) => a.byteOffset - b.byteOffset || a.byteLength - b.byteLength);
  let cursor = dataStart;
  for (const t of sorted) {
    if (t.byteOffset < cursor) throw new SafetensorsError(`${where}: tensor '${t.name}' overlaps the previous tensor's data`);
    if (t.byteOffset > cursor) throw new SafetensorsError(`${where}: gap of ${t.byteOffset - cursor} bytes before tensor '${t.name}'`);
    cursor += t.byteLength;
  }
  if (cursor !== source.size) {
    throw new SafetensorsError(`${where}: ${source.size - cursor} trailing bytes after the last tensor`);
  }
  return { infos, metadata };
}

// ------------------------------------------------------------------ typed reads

/** A whole tensor as its natural typed array (F16/BF16 as raw bits in a Uint16Array). */
export async function readTyped(src: TensorSource, name: string): Promise<{ info: TensorInfo; data: StArray }> {
  const info = src.info(name);
  return { info, data: viewAs(info.dtype, await src.readBytes(name)) };
}

/** Converts raw bytes of `dtype` to float32 values. */
export function toFloat32(dtype: StDType, bytes: Uint8Array, out?: Float32Array): Float32Array {
  const v = viewAs(dtype, bytes);
  switch (dtype) {
    case 'F32':
      return v as Float32Array;
    case 'F16':
      return f16ArrayToF32(v as Uint16Array, out);
    case 'BF16':
      return bf16ArrayToF32(v as Uint16Array, out);
    case 'I64':
    case 'U64':
      return Float32Array.from(v as BigInt64Array, (x) => Number(x));
    default:
      return Float32Array.from(v as ArrayLike<number>);
  }
}

/** Converts raw bytes of a float dtype to binary16 bits (round to nearest even), into `out` when given. */
export function toFloat16Bits(dtype: StDType, bytes: Uint8Array, out?: Uint16Array): Uint16Array {
  switch (dtype) {
    case 'F16':
      return viewAs(dtype, bytes) as Uint16Array;
    case 'BF16':
      return bf16ArrayToF16(viewAs(dtype, bytes) as Uint16Array, out);
    case 'F32':
      return f32ArrayToF16(viewAs(dtype, bytes) as Float32Array, out);
    default:
      return f32ArrayToF16(toFloat32(dtype, bytes), out);
  }
}

/** A whole tensor as float32, converting F16/BF16/F64/integers. */
export async function readFloat32(src: TensorSource, name: string): Promise<Float32Array> {
  return toFloat32(src.info(name).dtype, await src.readBytes(name));
}

/** A whole integer tensor as plain numbers (I64 ids within the safe range). */
export async function readIntegers(src: TensorSource, name: string): Promise<number[]> {
  const { info, data } = await readTyped(src, name);
  if (info.dtype.startsWith('F') || info.dtype === 'BF16') throw new SafetensorsError(`${name} is ${info.dtype}, not an integer tensor`);
  return Array.from(data as ArrayLike<number | bigint>, (x) => Number(x));
}

/**
 * Reads a tensor in pieces of about `chunkBytes` aligned to whole rows of its last dimension, so callers
 * can convert and upload large tensors while holding one piece at a time.
 */
export async function* readChunks(src: TensorSource, name: string, chunkBytes = 64 * 1024 * 1024): AsyncGenerator<{ byteStart: number; bytes: Uint8Array }> {
  const info = src.info(name);
  const item = ST_DTYPE_BYTES[info.dtype];
  const unit = item * Math.max(1, info.shape[info.shape.length - 1] ?? 1);
  const step = Math.max(unit, Math.floor(chunkBytes / unit) * unit);
  for (let s = 0; s < info.byteLength; s += step) {
    const len = Math.min(step, info.byteLength - s);
    yield { byteStart: s, bytes: await src.readBytes(name, s, len) };
  }
}
