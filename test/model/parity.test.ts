/**
 * Stage-by-stage parity with HF transformers on every fixture (test/fixtures/* and BLIP2_FIXTURES), with bounds
 * derived from each fixture's own recorded float32 schedule noise (test/support/tolerances.ts,
 * docs/fidelity.md): the model end to end (RULES.forward: 16 x noise), each stage and each layer alone fed HF's
 * input to it (RULES.stage: 4 x noise), all with a floor of 2^-17 x the reference's largest value.
 * f16 weights: bounded by the fixture's own f16 scale (f16_reference.json: transformers with its parameters
 * rounded to f16), and equal to the f32 model run on the same f16-rounded weights.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import type { SafetensorsFile } from '../../src/io/safetensors.js';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import { testGpu } from '../helpers.js';
import { loadFixtures, readIntegers } from '../support/fixtures.js';
import { f16EmulationChecks, forwardChecks, layerChecks, stageChecks } from '../support/parity.js';
import { expectChecks, RULES } from '../support/tolerances.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

for (const fx of loadFixtures()) {
  describe(`parity with transformers: ${fx.name}`, () => {
    let model32: Blip2ForConditionalGeneration;
    let ex: SafetensorsFile;
    let baselineBytes = 0;
    beforeAll(async () => {
      model32 = await Blip2ForConditionalGeneration.fromPretrained(fx.dir, { gpu, dtype: 'f32' });
      ex = await fx.expected();
      await gpu.sync();
      baselineBytes = gpu.stats().liveBytes;
    });
    afterAll(async () => {
      model32?.dispose();
      await ex?.close();
    });

    for (const c of fx.manifest.cases) {
      it(`${c.name}: every stage and the logits within ${RULES.forward.multiple} x the fixture's noise in f32`, async () => {
        expect(await readIntegers(ex, `${c.name}.input_ids`)).toEqual(c.input_ids);
        const r = await forwardChecks(model32, fx, ex, c);
        expect(r.checks.length).toBeGreaterThan(0);
        expectChecks(r.checks);
        expect(r.firstToken).toBe(c.greedy.new_tokens[0]);
      });
    }

    const withLayers = fx.manifest.cases.filter((c) => fx.hiddenStateCounts(c));
    it.skipIf(withLayers.length === 0)(`every layer alone, fed HF's input to it, within ${RULES.stage.multiple} x the noise`, async () => {
      for (const c of withLayers) {
        const checks = await layerChecks(model32, fx, ex, c);
        expect(checks.length).toBeGreaterThan(0);
        expectChecks(checks);
      }
    });

    it(`the Q-Former and the projection alone, each fed HF's output of the stage before, within ${RULES.stage.multiple} x the noise`, async () => {
      for (const c of fx.manifest.cases) expectChecks(await stageChecks(model32, fx, ex, c));
    });

    it('leaves no GPU memory behind after the forward passes', async () => {
      await gpu.sync();
      expect(gpu.stats().liveBytes).toBe(baselineBytes);
    });

    describe('f16 weights', () => {
      let model16: Blip2ForConditionalGeneration;
      beforeAll(async () => {
        if (gpu.caps.f16) model16 = await Blip2ForConditionalGeneration.fromPretrained(fx.dir, { gpu, dtype: 'f16' });
      });
      afterAll(() => model16?.dispose());

      const f16 = fx.f16Reference();
      it.skipIf(!f16)(`stay within ${RULES.f16.multiple} x the fixture's f16 scale (f16_reference.json)`, async (ctx) => {
        if (!gpu.caps.f16) ctx.skip();
        for (const c of fx.manifest.cases) {
          const r = await forwardChecks(model16, fx, ex, c, RULES.f16);
          expect(r.checks.length).toBeGreaterThan(0);
          expectChecks(r.checks);
        }
      });

      it('change nothing but the weights: outputs equal the f32 model run on the same f16-rounded weights', async (ctx) => {
        if (!gpu.caps.f16) ctx.skip();
        const checks = await f16EmulationChecks(model16, model32, fx, ex);
        expect(checks.length).toBeGreaterThan(0);
        expectChecks(checks);
      });
    });
  });
}
