import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readTyped, SafetensorsFile } from '../../src/io/safetensors.js';
import { convertToRgb } from '../../src/processing/convert-rgb.js';
import { BlipImageProcessor } from '../../src/processing/image-processor.js';
import { loadImage } from '../../src/processing/image-input.js';
import { fixtureDirs, readCases, REAL_PROCESSOR_DIR } from './fixtures.js';

function countDiffs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const realProcessor = BlipImageProcessor.fromJson(JSON.parse(readFileSync(join(REAL_PROCESSOR_DIR, 'preprocessor_config.json'), 'utf8')));

for (const dir of fixtureDirs()) {
  const cases = readCases(dir);
  describe(`BlipImageProcessor on fixture ${cases.fixture}`, () => {
    let st: SafetensorsFile;
    const open = async () => (st ??= await SafetensorsFile.open(join(dir, 'expected.safetensors')));
    afterAll(async () => st?.close());
    const u8 = async (name: string) => (await readTyped(await open(), name)).data as Uint8Array;
    const f32 = async (name: string) => (await readTyped(await open(), name)).data as Float32Array;
    const has = (name: string) => cases.tensors[name] !== undefined;
    const tiny = BlipImageProcessor.fromJson(JSON.parse(readFileSync(join(dir, 'processor_config.json'), 'utf8')));
    const classic = BlipImageProcessor.fromJson(JSON.parse(readFileSync(join(dir, 'preprocessor_config.json'), 'utf8')));

    it('reads the same settings from processor_config.json (nested) and preprocessor_config.json (classic)', () => {
      expect(tiny.config).toEqual(classic.config);
    });

    const all = [...cases.images.map((im) => ({ ...im, key: `image${im.index}` })), ...cases.extra_images.map((im) => ({ ...im, key: `extra${im.index}` }))];
    for (const im of all) {
      it(`${im.key} (${im.file}, ${im.mode}): resized_u8 identical at the fixture size and at the real 224`, async () => {
        const raw = await loadImage(join(dir, im.file));
        expect([raw.width, raw.height]).toEqual([im.width, im.height]);
        expect(countDiffs(tiny.resizeToU8(raw), await u8(`${im.key}.resized_u8`))).toBe(0);
        // The real-size references are optional in a fixture folder.
        if (has(`${im.key}.realproc.resized_u8`)) expect(countDiffs(realProcessor.resizeToU8(raw), await u8(`${im.key}.realproc.resized_u8`))).toBe(0);
      });
    }

    it.skipIf(!has('extra0.rgb_u8') || !cases.extra_images[0])('extra0: converted to RGB matches rgb_u8', async () => {
      const horse = cases.extra_images[0]!;
      const rgb = convertToRgb(await loadImage(join(dir, horse.file)));
      expect(countDiffs(rgb.data, await u8('extra0.rgb_u8'))).toBe(0);
    });

    for (const c of cases.cases) {
      it(`${c.name}: pixel_values equal transformers' exactly`, async () => {
        const { pixelValues, pixelShape } = await tiny.preprocessInputs([join(dir, cases.images[c.image]!.file)]);
        expect(pixelShape).toEqual(cases.tensors[`${c.name}.pixel_values`]!.shape);
        expect(maxAbs(pixelValues, await f32(`${c.name}.pixel_values`))).toBe(0);
      });
    }

    it('extra0 and image0 pixel_values (fixture size and real 224) equal transformers\' exactly, where recorded', async () => {
      const horse = cases.extra_images[0] && join(dir, cases.extra_images[0].file);
      const chelsea = join(dir, cases.images[0]!.file);
      if (horse && has('extra0.pixel_values')) expect(maxAbs((await tiny.preprocessInputs([horse])).pixelValues, await f32('extra0.pixel_values'))).toBe(0);
      if (horse && has('extra0.realproc.pixel_values')) expect(maxAbs((await realProcessor.preprocessInputs([horse])).pixelValues, await f32('extra0.realproc.pixel_values'))).toBe(0);
      if (has('image0.realproc.pixel_values')) expect(maxAbs((await realProcessor.preprocessInputs([chelsea])).pixelValues, await f32('image0.realproc.pixel_values'))).toBe(0);
    });

    it('batches stack images in order', async () => {
      const files = cases.images.map((im) => join(dir, im.file));
      const { pixelValues, pixelShape } = await tiny.preprocessInputs(files);
      expect(pixelShape).toEqual([files.length, 3, tiny.height, tiny.width]);
      const per = 3 * tiny.height * tiny.width;
      for (const c of cases.cases.filter((c) => c.prompt === '')) {
        expect(maxAbs(pixelValues.subarray(c.image * per, (c.image + 1) * per), await f32(`${c.name}.pixel_values`))).toBe(0);
      }
    });
  });
}

describe('BlipImageProcessor settings', () => {
  const base = JSON.parse(readFileSync(join(REAL_PROCESSOR_DIR, 'preprocessor_config.json'), 'utf8')) as Record<string, unknown>;
  const gray = { width: 5, height: 4, channels: 1 as const, data: Uint8Array.from({ length: 20 }, (_, i) => i * 12) };

  it('without rescale/normalise passes the resized bytes through as floats', () => {
    const p = BlipImageProcessor.fromJson({ ...base, do_rescale: false, do_normalize: false, size: { height: 4, width: 5 } });
    const { pixelValues } = p.preprocess([gray]);
    expect(Array.from(pixelValues.subarray(0, 20))).toEqual(Array.from(gray.data));
  });

  it('rescale only multiplies by the float32 rescale factor', () => {
    const p = BlipImageProcessor.fromJson({ ...base, do_normalize: false, do_resize: false });
    const { pixelValues, pixelShape } = p.preprocess([gray]);
    expect(pixelShape).toEqual([1, 3, 4, 5]);
    expect(pixelValues[7]).toBe(Math.fround(gray.data[7]! * Math.fround(1 / 255)));
  });

  it('rejects unsupported settings with clear errors', () => {
    expect(() => BlipImageProcessor.fromJson({ ...base, resample: 2 })).toThrow(/resample 2 is not supported/);
    expect(() => BlipImageProcessor.fromJson({ ...base, size: { shortest_edge: 224 } })).toThrow(/shortest_edge/);
    expect(() => BlipImageProcessor.fromJson({ ...base, size: { height: 0, width: 4 } })).toThrow(/not a valid image size/);
    expect(() => BlipImageProcessor.fromJson({ ...base, image_std: [0.2, 0, 0.2] })).toThrow(/image_std/);
    expect(() => BlipImageProcessor.fromJson('nope')).toThrow(/JSON object/);
  });

  it('without resizing, images of different sizes cannot share a batch', () => {
    const p = BlipImageProcessor.fromJson({ ...base, do_resize: false });
    const other = { width: 4, height: 5, channels: 1 as const, data: new Uint8Array(20) };
    expect(() => p.preprocess([gray, other])).toThrow(/without resizing every image must be 5x4/);
    expect(() => p.preprocess([])).toThrow(/no images/);
  });
});
