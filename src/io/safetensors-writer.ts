import { getPlatform, type ByteSink } from '../platform/index.js';
import { ST_DTYPE_BYTES, type StDType } from './safetensors-dtypes.js';
import { joinPath } from './checkpoint.js';

/** One tensor to write; `data` may be produced lazily so huge checkpoints stream through. */
export interface TensorToWrite {
  name: string;
  dtype: StDType;
  shape: readonly number[];
  data: ArrayBufferView | (() => ArrayBufferView | Promise<ArrayBufferView>);
}

function byteSize(t: TensorToWrite): number {
  return t.shape.reduce((a, b) => a * b, 1) * ST_DTYPE_BYTES[t.dtype];
}

/** The header bytes (length prefix included), padded with spaces to 8 bytes as the reference writer does. */
export function safetensorsHeader(tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new Error(`duplicate tensor name '${t.name}'`);
    seen.add(t.name);
    const n = byteSize(t);
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded !== json.byteLength) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  return out;
}

async function writeTensors(sink: ByteSink, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Promise<void> {
  await sink.write(safetensorsHeader(tensors, metadata));
  for (const t of tensors) {
    const v = typeof t.data === 'function' ? await t.data() : t.data;
    if (v.byteLength !== byteSize(t)) {
      throw new Error(`tensor '${t.name}': ${v.byteLength} bytes of data for ${t.dtype}[${t.shape.join(', ')}] (${byteSize(t)} bytes)`);
    }
    await sink.write(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  }
}

/** Writes one safetensors file (Node). */
export async function writeSafetensors(path: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Promise<void> {
  const sink = await (await getPlatform()).createSink(path);
  try {
    await writeTensors(sink, tensors, metadata);
  } finally {
    await sink.close();
  }
}

/** Serialises tensors to bytes in memory (small files: tests, browser downloads). */
export async function serializeSafetensors(tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  await writeTensors(
    {
      async write(c) {
        chunks.push(c.slice());
      },
      async close() {},
    },
    tensors,
    metadata,
  );
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.byteLength, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}

/**
 * Writes a checkpoint in HF's sharded layout: `model-0000i-of-0000N.safetensors` files of at most
 * `maxShardBytes` each (a tensor larger than that gets a shard of its own) and
 * `model.safetensors.index.json`. Returns the shard file names.
 */
export async function writeShardedCheckpoint(
  dir: string,
  tensors: readonly TensorToWrite[],
  maxShardBytes: number,
  options: { metadata?: Record<string, string>; onShard?: (file: string, index: number, count: number) => void } = {},
): Promise<string[]> {
  const groups: TensorToWrite[][] = [];
  let current: TensorToWrite[] = [];
  let currentBytes = 0;
  for (const t of tensors) {
    const n = byteSize(t);
    if (current.length && currentBytes + n > maxShardBytes) {
      groups.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(t);
    currentBytes += n;
  }
  if (current.length) groups.push(current);
  const count = groups.length;
  const pad = (i: number) => String(i).padStart(5, '0');
  const names = groups.map((_, i) => `model-${pad(i + 1)}-of-${pad(count)}.safetensors`);
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (let i = 0; i < count; i++) {
    for (const t of groups[i]!) {
      weightMap[t.name] = names[i]!;
      total += byteSize(t);
    }
  }
  for (let i = 0; i < count; i++) {
    options.onShard?.(names[i]!, i, count);
    await writeSafetensors(joinPath(dir, names[i]!), groups[i]!, { format: 'pt', ...options.metadata });
  }
  const index = JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2);
  const sink = await (await getPlatform()).createSink(joinPath(dir, 'model.safetensors.index.json'));
  try {
    await sink.write(new TextEncoder().encode(index + '\n'));
  } finally {
    await sink.close();
  }
  return names;
}
