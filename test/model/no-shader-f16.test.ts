/**
 * On a device without shader-f16 the model still keeps f16 weights (read as packed pairs): its outputs equal
 * the f32 model run on the same f16-rounded weights, and its greedy tokens equal transformers' at every step
 * whose margin exceeds the measured f16 logit error, on every fixture.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import type { SafetensorsFile } from '../../src/io/safetensors.js';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import { testGpu } from '../helpers.js';
import { loadFixtures } from '../support/fixtures.js';
import { expectMarginClaims, marginClaims } from '../support/margins.js';
import { f16EmulationChecks, greedyTokenCases } from '../support/parity.js';
import { expectChecks } from '../support/tolerances.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu({ disableF16: true });
});
afterAll(() => gpu?.destroy());

for (const fx of loadFixtures()) {
  describe(`f16 weights without shader-f16: ${fx.name}`, () => {
    let model: Blip2ForConditionalGeneration;
    let ex: SafetensorsFile;
    beforeAll(async () => {
      model = await Blip2ForConditionalGeneration.fromPretrained(fx.dir, { gpu });
      ex = await fx.expected();
    });
    afterAll(async () => {
      model?.dispose();
      await ex?.close();
    });

    it('loads half-size weights whose outputs equal the f32 model on the same f16-rounded weights', async () => {
      expect(gpu.caps.f16).toBe(false);
      expect(model.language_model.lm_head.weight.value.dtype).toBe('f16');
      const model32 = await Blip2ForConditionalGeneration.fromPretrained(fx.dir, { gpu, dtype: 'f32' });
      try {
        expectChecks(await f16EmulationChecks(model, model32, fx, ex));
      } finally {
        model32.dispose();
      }
    });

    it("gives transformers' greedy tokens wherever the margin exceeds the measured f16 logit error", async (ctx) => {
      const measured = await greedyTokenCases(model, fx, ex);
      if (!measured) return ctx.skip();
      expectMarginClaims(marginClaims({ label: `${fx.name} f16 weights without shader-f16`, ...measured }));
    });
  });
}
