/**
 * Folders written by `blip2 convert` (convertCheckpoint) from every fixture with a quantized.json: they load with no conversion and give transformers'
 * quantized tokens; corrupt or inconsistent ones (missing scales, wrong shapes, an unknown scheme or method,
 * a quantize option that contradicts the folder) fail with one clear error and leave no GPU memory behind.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generationConfigFromJson, readGenerationConfigJson } from '../../src/generation/config.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { openCheckpoint } from '../../src/io/checkpoint.js';
import { SafetensorsFile, readFloat32 } from '../../src/io/safetensors.js';
import { writeSafetensors, type TensorToWrite } from '../../src/io/safetensors-writer.js';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import { CheckpointMismatchError } from '../../src/model/loader.js';
import { QuantizationConfigError } from '../../src/quant/config.js';
import { convertCheckpoint } from '../../src/quant/convert.js';
import { groupsPerRow } from '../../src/quant/format.js';
import { Tensor } from '../../src/tensor.js';
import { testGpu } from '../helpers.js';
import { loadFixtures, type Fixture } from '../support/fixtures.js';

type QuantizedReference = { schemes: Record<'q8' | 'q4', { cases: { name: string; greedy: { new_tokens: number[] } }[] }> };
let gpu: Gpu;

beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

/** Loading `dir` fails with `type` and a message matching `pattern`, and leaves no GPU memory behind. */
async function expectLoadError(dir: string, options: { quantize?: 'q8' | 'q4' }, pattern: RegExp, type: new (...a: never[]) => Error): Promise<void> {
  await gpu.sync();
  const before = gpu.stats().liveBytes;
  const err = await Blip2ForConditionalGeneration.fromPretrained(dir, { gpu, dtype: 'f32', ...options }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(type);
  expect((err as Error).message).toMatch(pattern);
  await gpu.sync();
  expect(gpu.stats().liveBytes).toBe(before);
}

/** Every test on one fixture's converted folder (each fixture with a quantized.json gets its own). */
function convertedFolderSuite(fx: Fixture): void {
  const quantized = JSON.parse(readFileSync(join(fx.dir, 'quantized.json'), 'utf8')) as QuantizedReference;
  const tmp = mkdtempSync(join(tmpdir(), 'blip2-convert-'));
  const q4 = join(tmp, 'q4');

  /** A copy of the converted folder with its config or tensors edited. */
  async function variant(name: string, edit: { config?: (c: Record<string, unknown>) => void; tensors?: (ts: TensorToWrite[]) => TensorToWrite[] }): Promise<string> {
    const dir = join(tmp, name);
    cpSync(q4, dir, { recursive: true });
    if (edit.config) {
      const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      edit.config(c);
      writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
    }
    if (edit.tensors) {
      const src = await openCheckpoint(q4);
      const ts: TensorToWrite[] = [];
      for (const k of src.keys()) ts.push({ name: k, dtype: src.info(k).dtype, shape: src.info(k).shape, data: await src.readBytes(k) });
      await src.close();
      rmSync(join(dir, 'model.safetensors.index.json'));
      for (const f of ['model-00001-of-00001.safetensors']) rmSync(join(dir, f));
      await writeSafetensors(join(dir, 'model.safetensors'), edit.tensors(ts));
    }
    return dir;
  }

  describe(`a folder made by blip2 convert (${fx.name})`, () => {
    beforeAll(async () => {
      await convertCheckpoint(fx.dir, q4, { quantize: 'q4', dtype: 'f32' });
    });
    afterAll(() => rmSync(tmp, { recursive: true, force: true }));

    it('is HF layout with a quantization_config, codes and scales, and the tokenizer and processor files', async () => {
      const config = JSON.parse(readFileSync(join(q4, 'config.json'), 'utf8')) as { quantization_config: { quant_method: string; scheme: string; group_size: number } };
      expect(config.quantization_config).toMatchObject({ quant_method: 'blip2-webgpu', scheme: 'q4', group_size: 32 });
      // The rest is the source's text as it was (a JSON round trip would write 1.0 as 1, which transformers 5's
      // config classes refuse for float fields), and the whole stays JSON that parses to the source plus the block.
      const text = readFileSync(join(q4, 'config.json'), 'utf8');
      const source = readFileSync(join(fx.dir, 'config.json'), 'utf8').trimEnd();
      expect(text.startsWith(source.slice(0, -1).trimEnd())).toBe(true);
      const { quantization_config: _qc, ...rest } = config as Record<string, unknown>;
      expect(rest).toEqual(JSON.parse(source));
      for (const f of ['tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json', 'generation_config.json', 'model.safetensors.index.json']) expect(existsSync(join(q4, f)), f).toBe(true);
      const src = await openCheckpoint(q4);
      const key = 'language_model.model.decoder.layers.0.fc2.weight';
      const model = await SafetensorsFile.open(join(fx.dir, 'model.safetensors'));
      const [N, K] = model.info(key).shape as [number, number];
      await model.close();
      expect(src.info(key)).toMatchObject({ dtype: 'U8', shape: [N, groupsPerRow(K), 16] });
      expect(src.info(`${key}_scales`)).toMatchObject({ dtype: 'F16', shape: [N, groupsPerRow(K)] });
      await src.close();
    });

    it('gives no quantized weight its float shape, in q8 as in q4, so that transformers refuses the folder rather than loading codes as weights', async () => {
      const q8 = join(tmp, 'q8');
      await convertCheckpoint(fx.dir, q8, { quantize: 'q8', dtype: 'f32' });
      const model = await SafetensorsFile.open(join(fx.dir, 'model.safetensors'));
      for (const dir of [q8, q4]) {
        const src = await openCheckpoint(dir);
        const quantizedKeys = src.keys().filter((k) => src.has(`${k}_scales`));
        expect(quantizedKeys.length).toBeGreaterThan(0);
        for (const key of quantizedKeys) {
          const [N, K] = model.info(key).shape as [number, number];
          const q8Codes = dir === q8;
          expect(src.info(key), key).toMatchObject({ dtype: q8Codes ? 'I8' : 'U8', shape: [N, groupsPerRow(K), q8Codes ? 32 : 16] });
        }
        await src.close();
      }
      await model.close();
    });

    it('still reads codes stored flat as [out, row bytes] (folders converted before the codes had three dimensions)', async () => {
      const flat = await variant('flat', {
        tensors: (ts) => {
          const codes = new Set(ts.filter((t) => t.name.endsWith('_scales')).map((t) => t.name.slice(0, -'_scales'.length)));
          return ts.map((t) => (codes.has(t.name) ? { ...t, shape: [t.shape[0]!, t.shape[1]! * t.shape[2]!] } : t));
        },
      });
      const src = await openCheckpoint(flat);
      const key = 'language_model.model.decoder.layers.0.fc2.weight';
      const [N] = src.info(key).shape;
      expect(src.info(key).shape).toEqual([N, src.info(`${key}_scales`).shape[1]! * 16]);
      await src.close();
      const m = await Blip2ForConditionalGeneration.fromPretrained(flat, { gpu, dtype: 'f32' });
      const ex = await fx.expected();
      const qc = quantized.schemes.q4.cases[0]!;
      const c = fx.manifest.cases.find((x) => x.name === qc.name)!;
      const pv = Tensor.from(gpu, await readFloat32(ex, `${c.name}.pixel_values`), fx.manifest.tensors[`${c.name}.pixel_values`]!.shape);
      const base = generationConfigFromJson(await readGenerationConfigJson(flat), m.config.text_config);
      const out = await m.generate({ pixel_values: pv, input_ids: [c.input_ids], generation_config: base, max_new_tokens: qc.greedy.new_tokens.length });
      expect(out.new_tokens[0]).toEqual(qc.greedy.new_tokens);
      pv.dispose();
      await ex.close();
      m.dispose();
    });

    it('loads in its own scheme with no option and gives transformers\' q4 greedy tokens', async () => {
      const model = await Blip2ForConditionalGeneration.fromPretrained(q4, { gpu, dtype: 'f32' });
      const explicit = await Blip2ForConditionalGeneration.fromPretrained(q4, { gpu, dtype: 'f32', quantize: 'q4' });
      const ex = await fx.expected();
      const base = generationConfigFromJson(await readGenerationConfigJson(q4), model.config.text_config);
      const qc = quantized.schemes.q4.cases[0]!;
      const c = fx.manifest.cases.find((x) => x.name === qc.name)!;
      const pv = Tensor.from(gpu, await readFloat32(ex, `${c.name}.pixel_values`), fx.manifest.tensors[`${c.name}.pixel_values`]!.shape);
      for (const m of [model, explicit]) {
        expect(m.language_model.model.decoder.layers.at(0).fc1.weight.quantized?.scheme).toBe('q4');
        const out = await m.generate({ pixel_values: pv, input_ids: [c.input_ids], generation_config: base, max_new_tokens: qc.greedy.new_tokens.length });
        expect(out.new_tokens[0]).toEqual(qc.greedy.new_tokens);
      }
      pv.dispose();
      await ex.close();
      model.dispose();
      explicit.dispose();
    });

    it('rejects a quantize option that contradicts it', async () => {
      await expectLoadError(q4, { quantize: 'q8' }, /holds q4 weights.*quantize 'q8' contradicts it/, QuantizationConfigError);
    });

    it('rejects an unknown scheme, another quantization method, another group size', async () => {
      const scheme = await variant('scheme', { config: (c) => ((c.quantization_config as Record<string, unknown>).scheme = 'q3') });
      await expectLoadError(scheme, {}, /unknown scheme "q3"/, QuantizationConfigError);
      const method = await variant('method', { config: (c) => ((c.quantization_config as Record<string, unknown>).quant_method = 'gptq') });
      await expectLoadError(method, {}, /quant_method "gptq"/, QuantizationConfigError);
      const group = await variant('group', { config: (c) => ((c.quantization_config as Record<string, unknown>).group_size = 128) });
      await expectLoadError(group, {}, /group_size 128/, QuantizationConfigError);
    });

    it('lists missing scales and misshaped codes and scales in one error', async () => {
      const fc1 = 'language_model.model.decoder.layers.0.fc1.weight';
      const qkv = 'vision_model.encoder.layers.0.self_attn.qkv.weight';
      const proj = 'vision_model.encoder.layers.1.self_attn.projection.weight';
      const dir = await variant('broken', {
        tensors: (ts) =>
          ts
            .filter((t) => t.name !== `${fc1}_scales`)
            .map((t) => (t.name === qkv ? { ...t, dtype: 'I8' as const } : t))
            .map((t) => (t.name === `${proj}_scales` ? { ...t, dtype: 'F32' as const, shape: [t.shape[0]! / 2, t.shape[1]!] } : t)),
      });
      await gpu.sync();
      const before = gpu.stats().liveBytes;
      const err = (await Blip2ForConditionalGeneration.fromPretrained(dir, { gpu, dtype: 'f32' }).catch((e: unknown) => e)) as CheckpointMismatchError;
      expect(err).toBeInstanceOf(CheckpointMismatchError);
      expect(err.missing).toEqual([`${fc1}_scales`]);
      expect(err.misshaped.join('\n')).toMatch(new RegExp(`${qkv.replace(/\./g, '\\.')}: checkpoint I8.*q4 codes .* are U8`));
      expect(err.misshaped.join('\n')).toMatch(new RegExp(`${proj.replace(/\./g, '\\.')}_scales: checkpoint F32.*expected F16`));
      await gpu.sync();
      expect(gpu.stats().liveBytes).toBe(before);
    });

    it('rejects scales in a folder without a quantization_config, and a second conversion', async () => {
      const plain = await variant('no-config', { config: (c) => delete c.quantization_config });
      await expectLoadError(plain, {}, /unexpected keys|shape mismatches/, CheckpointMismatchError);
      await expect(convertCheckpoint(q4, join(tmp, 'again'), { quantize: 'q8' })).rejects.toThrow(/already quantized \(q4\)/);
      await expect(convertCheckpoint(fx.dir, q4, { quantize: 'q8' })).rejects.toThrow(/already holds a model/);
    });
  });
}

for (const fx of loadFixtures().filter((f) => existsSync(join(f.dir, 'quantized.json')))) convertedFolderSuite(fx);
