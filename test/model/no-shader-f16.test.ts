/**
 * On a device without shader-f16 the model still keeps f16 weights (read as packed pairs) and generates
 * exactly transformers' greedy tokens on every fixture case.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import { Tensor } from '../../src/tensor.js';
import { testGpu } from '../helpers.js';
import { loadFixtures, readFloat32, readIntegers } from '../support/fixtures.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu({ disableF16: true });
});
afterAll(() => gpu?.destroy());

for (const fx of loadFixtures()) {
  describe(`f16 weights without shader-f16: ${fx.name}`, () => {
    it('loads half-size weights and matches transformers greedy on every case', async () => {
      const model = await Blip2ForConditionalGeneration.fromPretrained(fx.dir, { gpu });
      const ex = await fx.expected();
      try {
        expect(model.language_model.lm_head.weight.value.dtype).toBe('f16');
        for (const c of fx.manifest.cases) {
          const pixel_values = Tensor.from(gpu, await readFloat32(ex, `${c.name}.pixel_values`), fx.manifest.tensors[`${c.name}.pixel_values`]!.shape);
          const out = await model.generate({ pixel_values, input_ids: [c.input_ids], max_new_tokens: c.greedy.new_tokens.length });
          pixel_values.dispose();
          expect(out.sequences[0], c.name).toEqual(await readIntegers(ex, `${c.name}.greedy.sequences`));
        }
      } finally {
        model.dispose();
        await ex.close();
      }
    });
  });
}
