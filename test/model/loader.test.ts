/**
 * Loading HF checkpoints: older vision checkpoints with q_bias/v_bias, one clear error listing every missing,
 * unexpected and misshaped key, a stored (tied) lm_head, progress reporting, dtype placement by role.
 */
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import { SafetensorsFile, readFloat32, type TensorSource } from '../../src/io/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensors-writer.js';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import { CheckpointMismatchError, loadWeights, type LoadProgress } from '../../src/model/loader.js';
import { f16ArrayToF32, f32ArrayToF16 } from '../../src/util/half.js';
import { disposeTree, Tensor, tidy } from '../../src/tensor.js';
import { maxAbsDiff, testGpu } from '../helpers.js';
import { TINY } from '../paths.js';

let gpu: Gpu;
let source: SafetensorsFile;
const tmp = mkdtempSync(join(tmpdir(), 'blip2-loader-'));

beforeAll(async () => {
  gpu = await testGpu();
  source = await SafetensorsFile.open(join(TINY, 'model.safetensors'));
});
afterAll(async () => {
  await source?.close();
  gpu?.destroy();
  rmSync(tmp, { recursive: true, force: true });
});

/** A copy of the tiny checkpoint in its own folder, with tensors edited by `edit`. */
async function variant(name: string, edit: (tensors: TensorToWrite[]) => TensorToWrite[]): Promise<string> {
  const dir = join(tmp, name);
  (await import('node:fs')).mkdirSync(dir);
  symlinkSync(join(TINY, 'config.json'), join(dir, 'config.json'));
  const tensors: TensorToWrite[] = [];
  for (const k of source.keys()) {
    const info = source.info(k);
    tensors.push({ name: k, dtype: 'F32', shape: info.shape, data: await readFloat32(source, k) });
  }
  await writeSafetensors(join(dir, 'model.safetensors'), edit(tensors));
  return dir;
}

async function visionOut(model: Blip2ForConditionalGeneration): Promise<Float32Array> {
  const pv = Tensor.from(gpu, new Float32Array(3 * 56 * 56).map((_, i) => Math.sin(i * 0.01)), [1, 3, 56, 56]);
  const out = tidy(() => model.vision_model.call(pv));
  const v = (await out.last_hidden_state.read()) as Float32Array;
  disposeTree(out);
  pv.dispose();
  return v;
}

describe('loading checkpoints', () => {
  it('accepts the older q_bias / v_bias layout of the vision attention bias', async () => {
    const dir = await variant('legacy', (ts) =>
      ts.flatMap((t) => {
        if (!t.name.endsWith('.self_attn.qkv.bias')) return [t];
        const data = t.data as Float32Array;
        const third = data.length / 3;
        const prefix = t.name.slice(0, -'qkv.bias'.length);
        return [
          { name: `${prefix}q_bias`, dtype: 'F32' as const, shape: [third], data: data.slice(0, third) },
          { name: `${prefix}v_bias`, dtype: 'F32' as const, shape: [third], data: data.slice(2 * third) },
        ];
      }),
    );
    const legacy = await Blip2ForConditionalGeneration.fromPretrained(dir, { gpu, dtype: 'f32' });
    const current = await Blip2ForConditionalGeneration.fromPretrained(TINY, { gpu, dtype: 'f32' });
    expect(maxAbsDiff(await visionOut(legacy), await visionOut(current))).toBe(0);
    legacy.dispose();
    current.dispose();
  });

  it('lists every missing, unexpected and misshaped key in one error, and leaves no GPU memory behind', async () => {
    const dir = await variant('broken', (ts) =>
      ts
        .filter((t) => t.name !== 'qformer.layernorm.bias')
        .map((t) => (t.name === 'language_projection.bias' ? { ...t, shape: [t.shape[0]! - 1], data: (t.data as Float32Array).slice(1) } : t))
        .concat([{ name: 'something.extra', dtype: 'F32', shape: [2], data: new Float32Array(2) }]),
    );
    await gpu.sync();
    const before = gpu.stats().liveBytes;
    const err = await Blip2ForConditionalGeneration.fromPretrained(dir, { gpu }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointMismatchError);
    const e = err as CheckpointMismatchError;
    expect(e.missing).toEqual(['qformer.layernorm.bias']);
    expect(e.unexpected).toEqual(['something.extra']);
    expect(e.misshaped).toEqual(['language_projection.bias: checkpoint [31], model [32]']);
    expect(e.message).toMatch(/missing keys \(1\):\n {2}qformer.layernorm.bias/);
    await gpu.sync();
    expect(gpu.stats().liveBytes).toBe(before);
  });

  it('ignores a stored copy of the tied lm_head, as transformers does', async () => {
    const dir = await variant('with-lm-head', (ts) => {
      const embed = ts.find((t) => t.name === 'language_model.model.decoder.embed_tokens.weight')!;
      return [...ts, { ...embed, name: 'language_model.lm_head.weight' }];
    });
    const model = await Blip2ForConditionalGeneration.fromPretrained(dir, { gpu, dtype: 'f32' });
    expect(model.language_model.lm_head.weight).toBe(model.language_model.model.decoder.embed_tokens.weight);
    model.dispose();
  });

  it('streams in small chunks through reused buffers exactly, and a read failure mid-load leaves nothing behind', async () => {
    const model = await Blip2ForConditionalGeneration.fromPretrained(TINY, { gpu, dtype: 'f32' });
    // Chunks of 998 elements: pieces end mid-row and every tensor spans several reads through the same two buffers.
    for (const convertOn of ['host', 'gpu'] as const) {
      const chunkElements = 998;
      await loadWeights(model, source, gpu, { dtype: 'f16', chunkElements, convertOn });
      for (const key of ['language_model.model.decoder.embed_tokens.weight', 'vision_model.encoder.layers.0.mlp.fc1.weight', 'vision_model.encoder.layers.0.mlp.fc1.bias']) {
        const [, param] = model.namedParameters().find(([k]) => k === key)!;
        const want = await readFloat32(source, key);
        const got = await param.value.read();
        // f32 -> f16 on the GPU rounds to nearest even, bit for bit the host's conversion.
        expect(maxAbsDiff(got, param.value.dtype === 'f16' ? f16ArrayToF32(f32ArrayToF16(want)) : want), `${key} (${convertOn}, ${chunkElements})`).toBe(0);
      }
    }
    await gpu.sync();
    const before = gpu.stats().liveBytes;
    let reads = 0;
    const failing: TensorSource = {
      keys: () => source.keys(),
      has: (n) => source.has(n),
      info: (n) => source.info(n),
      readBytes: (n, start, length) => source.readBytes(n, start, length),
      readBytesInto: async (n, start, target) => {
        if (++reads === 40) throw new Error('disk went away');
        return source.readBytesInto(n, start, target);
      },
      close: async () => {},
    };
    await expect(loadWeights(model, failing, gpu, { dtype: 'f16', chunkElements: 998 })).rejects.toThrow(/disk went away/);
    await gpu.sync();
    expect(gpu.stats().liveBytes).toBe(before);
    expect(reads).toBeGreaterThanOrEqual(40);
    model.dispose();
  });

  it('reports progress up to the total, and stores matmul weights in f16, the rest in f32', async () => {
    const seen: LoadProgress[] = [];
    const model = await Blip2ForConditionalGeneration.fromPretrained(TINY, { gpu, dtype: 'f16', onProgress: (p) => seen.push(p) });
    expect(seen.length).toBeGreaterThan(10);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.loadedBytes).toBeGreaterThanOrEqual(seen[i - 1]!.loadedBytes);
    const last = seen[seen.length - 1]!;
    expect(last.loadedBytes).toBe(last.totalBytes);
    const src = source as TensorSource;
    expect(last.totalBytes).toBe(src.keys().reduce((a, k) => a + src.info(k).byteLength, 0));
    expect(model.vision_model.encoder.layers.at(0).mlp.fc1.weight.value.dtype).toBe('f16');
    expect(model.vision_model.encoder.layers.at(0).mlp.fc1.bias!.value.dtype).toBe('f32');
    expect(model.vision_model.embeddings.patch_embedding.weight.value.dtype).toBe('f16');
    expect(model.qformer.encoder.layer.at(0).attention.attention.query.weight.value.dtype).toBe('f32'); // HF keeps the Q-Former in fp32
    expect(model.query_tokens.value.dtype).toBe('f32');
    expect(model.language_model.model.decoder.embed_tokens.weight.value.dtype).toBe('f16');
    model.dispose();
  });
});
