import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint, ShardedCheckpoint } from '../../src/io/checkpoint.js';
import { readChunks, readFloat32, readTyped, SafetensorsError, SafetensorsFile, toFloat16Bits } from '../../src/io/safetensors.js';
import { safetensorsHeader, serializeSafetensors, writeShardedCheckpoint, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors-writer.js';
import { f32ToF16Bits } from '../../src/util/half.js';
import { randn } from '../helpers.js';
import { TINY } from '../paths.js';

const tmp = mkdtempSync(join(tmpdir(), 'st-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const cases = JSON.parse(readFileSync(join(TINY, 'cases.json'), 'utf8')) as {
  files: Record<string, { sha256: string }>;
  tensors: Record<string, { shape: number[]; dtype: string }>;
  model: { num_parameters: number };
};
const DTYPE_NAMES: Record<string, string> = { float32: 'F32', int64: 'I64', uint8: 'U8' };

describe('safetensors reader on the HF fixtures', () => {
  it('fixture files are the ones cases.json describes', () => {
    for (const f of ['model.safetensors', 'expected.safetensors']) {
      const sha = createHash('sha256').update(readFileSync(join(TINY, f))).digest('hex');
      expect(sha, f).toBe(cases.files[f]!.sha256);
    }
  });

  it('reads every tensor of model.safetensors', async () => {
    const f = await SafetensorsFile.open(join(TINY, 'model.safetensors'));
    let params = 0;
    for (const k of f.keys()) {
      const info = f.info(k);
      expect(info.dtype).toBe('F32');
      const v = await readFloat32(f, k);
      expect(v.length).toBe(info.shape.reduce((a, b) => a * b, 1));
      expect(v.every(Number.isFinite)).toBe(true);
      params += v.length;
    }
    expect(params).toBe(cases.model.num_parameters);
    expect(f.has('language_model.lm_head.weight')).toBe(false);
    expect(f.info('vision_model.encoder.layers.0.self_attn.qkv.weight').shape).toEqual([96, 32]);
    await f.close();
  });

  it('reads every tensor of expected.safetensors with the manifest shape and dtype', async () => {
    const f = await SafetensorsFile.open(join(TINY, 'expected.safetensors'));
    expect(new Set(f.keys())).toEqual(new Set(Object.keys(cases.tensors)));
    for (const [k, m] of Object.entries(cases.tensors)) {
      const { info, data } = await readTyped(f, k);
      expect(info.shape, k).toEqual(m.shape);
      expect(info.dtype, k).toBe(DTYPE_NAMES[m.dtype]);
      expect(data.length).toBe(m.shape.reduce((a, b) => a * b, 1));
    }
    const ids = (await readTyped(f, 'case1.input_ids')).data as BigInt64Array;
    expect(Number(ids[8])).toBe(2);
    await f.close();
  });
});

function sample(): TensorToWrite[] {
  const a = randn(7 * 5, 1);
  return [
    { name: 'a', dtype: 'F32', shape: [7, 5], data: a },
    { name: 'b.half', dtype: 'F16', shape: [3], data: Uint16Array.from([0x3c00, 0x8000, 0x7c00]) },
    { name: 'c.bf16', dtype: 'BF16', shape: [2], data: Uint16Array.from([0x3f80, 0xc040]) },
    { name: 'ids', dtype: 'I64', shape: [2, 2], data: BigInt64Array.from([1n, -2n, 3n, 50265n]) },
    { name: 'i32', dtype: 'I32', shape: [1], data: Int32Array.from([-7]) },
    { name: 'img', dtype: 'U8', shape: [4], data: Uint8Array.from([0, 1, 254, 255]) },
    { name: 'mask', dtype: 'BOOL', shape: [3], data: Uint8Array.from([1, 0, 1]) },
    { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
  ];
}

describe('safetensors writer', () => {
  it('round-trips every dtype through a file', async () => {
    const path = join(tmp, 'one.safetensors');
    await writeSafetensors(path, sample(), { format: 'pt' });
    const f = await SafetensorsFile.open(path);
    expect(f.metadata).toEqual({ format: 'pt' });
    expect(Array.from((await readTyped(f, 'a')).data as Float32Array)).toEqual(Array.from(sample()[0]!.data as Float32Array));
    expect(Array.from(await readFloat32(f, 'b.half'))).toEqual([1, -0, Infinity]);
    expect(Array.from(await readFloat32(f, 'c.bf16'))).toEqual([1, -3]);
    expect(Array.from((await readTyped(f, 'ids')).data as BigInt64Array)).toEqual([1n, -2n, 3n, 50265n]);
    expect(Array.from(await readFloat32(f, 'i32'))).toEqual([-7]);
    expect(Array.from((await readTyped(f, 'mask')).data as Uint8Array)).toEqual([1, 0, 1]);
    expect(f.info('empty').shape).toEqual([0, 4]);
    expect(Array.from(toFloat16Bits('BF16', await f.readBytes('c.bf16')))).toEqual([0x3c00, 0xc200]);
    await f.close();
  });

  it('pads the header to 8 bytes like the reference writer', () => {
    const h = safetensorsHeader(sample());
    expect((h.byteLength - 8) % 8).toBe(0);
  });

  it('writes a sharded checkpoint that reads back through the index', async () => {
    const dir = join(tmp, 'sharded');
    (await import('node:fs')).mkdirSync(dir);
    const tensors: TensorToWrite[] = Array.from({ length: 9 }, (_, i) => ({ name: `layers.${i}.weight`, dtype: 'F32' as const, shape: [10, 10], data: randn(100, i) }));
    const names = await writeShardedCheckpoint(dir, tensors, 1000);
    expect(names).toEqual(['model-00001-of-00005.safetensors', 'model-00002-of-00005.safetensors', 'model-00003-of-00005.safetensors', 'model-00004-of-00005.safetensors', 'model-00005-of-00005.safetensors']);
    const ck = await openCheckpoint(dir);
    expect(ck).toBeInstanceOf(ShardedCheckpoint);
    expect(ck.keys().length).toBe(9);
    for (let i = 0; i < 9; i++) expect(Array.from(await readFloat32(ck, `layers.${i}.weight`))).toEqual(Array.from(randn(100, i)));
    // Ranged reads in row-aligned chunks reassemble the tensor.
    const parts: number[] = [];
    for await (const c of readChunks(ck, 'layers.3.weight', 120)) parts.push(...new Float32Array(c.bytes.slice().buffer));
    expect(parts).toEqual(Array.from(randn(100, 3)));
    await ck.close();
  });

  it('opens a single-file checkpoint folder', async () => {
    const ck = await openCheckpoint(TINY);
    expect(ck).toBeInstanceOf(SafetensorsFile);
    await ck.close();
  });

  it('converts F32 to F16 bits with round to nearest even', async () => {
    const bytes = await serializeSafetensors([{ name: 'x', dtype: 'F32', shape: [4], data: Float32Array.from([1, 1.0004882, 65519, 1e-7]) }]);
    const path = join(tmp, 'conv.safetensors');
    writeFileSync(path, bytes);
    const f = await SafetensorsFile.open(path);
    expect(Array.from(toFloat16Bits('F32', await f.readBytes('x')))).toEqual([1, 1.0004882, 65519, 1e-7].map(f32ToF16Bits));
    await f.close();
  });
});

describe('corrupt safetensors files are rejected clearly', () => {
  async function good(): Promise<Uint8Array> {
    return serializeSafetensors(sample());
  }
  function headerOf(bytes: Uint8Array): { n: number; json: Record<string, unknown> } {
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    return { n, json: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown> };
  }
  function withHeader(bytes: Uint8Array, json: unknown): Uint8Array {
    const { n } = headerOf(bytes);
    const h = new TextEncoder().encode(JSON.stringify(json));
    const out = new Uint8Array(8 + h.byteLength + bytes.byteLength - 8 - n);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.byteLength), true);
    out.set(h, 8);
    out.set(bytes.subarray(8 + n), 8 + h.byteLength);
    return out;
  }
  async function expectReject(bytes: Uint8Array, pattern: RegExp): Promise<void> {
    const path = join(tmp, `bad-${Math.random().toString(36).slice(2)}.safetensors`);
    writeFileSync(path, bytes);
    const err = await SafetensorsFile.open(path).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SafetensorsError);
    expect(String((err as Error).message)).toMatch(pattern);
  }

  it('too small', async () => expectReject(new Uint8Array(5), /too small/));
  it('huge header length', async () => {
    const b = await good();
    new DataView(b.buffer).setBigUint64(0, 1n << 60n, true);
    await expectReject(b, /invalid header length/);
  });
  it('header length past the end', async () => {
    const b = await good();
    await expectReject(b.subarray(0, 40), /past the end/);
  });
  it('header not JSON', async () => {
    const b = await good();
    b[9] = 0x7b;
    b[10] = 0xff;
    await expectReject(b, /not valid UTF-8 JSON/);
  });
  it('truncated data', async () => {
    const b = await good();
    await expectReject(b.subarray(0, b.byteLength - 3), /truncated/);
  });
  it('offsets outside the file', async () => {
    const b = await good();
    const { json } = headerOf(b);
    (json.a as { data_offsets: number[] }).data_offsets = [1_000_000, 1_000_140];
    await expectReject(withHeader(b, json), /outside the file|truncated/);
  });
  it('overlapping tensors', async () => {
    const b = await good();
    const { json } = headerOf(b);
    (json['b.half'] as { data_offsets: number[] }).data_offsets = [0, 6];
    await expectReject(withHeader(b, json), /overlaps/);
  });
  it('unknown dtype', async () => {
    const b = await good();
    const { json } = headerOf(b);
    (json.a as { dtype: string }).dtype = 'F4';
    await expectReject(withHeader(b, json), /unknown or unsupported dtype/);
  });
  it('size that does not match the shape', async () => {
    const b = await good();
    const { json } = headerOf(b);
    (json.a as { shape: number[] }).shape = [7, 6];
    await expectReject(withHeader(b, json), /needs 168 bytes/);
  });
  it('negative or fractional shape', async () => {
    const b = await good();
    const { json } = headerOf(b);
    (json.a as { shape: number[] }).shape = [-7, 5];
    await expectReject(withHeader(b, json), /invalid shape/);
  });
  it('trailing garbage', async () => {
    const b = await good();
    const out = new Uint8Array(b.byteLength + 4);
    out.set(b);
    await expectReject(out, /trailing bytes/);
  });
  it('a sharded index that names a missing tensor', async () => {
    const dir = join(tmp, 'badindex');
    (await import('node:fs')).mkdirSync(dir);
    writeFileSync(join(dir, 'model-1.safetensors'), await good());
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'model-1.safetensors', zzz: 'model-1.safetensors' } }));
    await expect(openCheckpoint(dir)).rejects.toThrow(/does not hold it/);
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: '../etc/passwd' } }));
    await expect(openCheckpoint(dir)).rejects.toThrow(/bad shard name/);
  });
});
