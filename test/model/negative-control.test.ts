/**
 * The parity bounds catch real errors: one weight matrix scaled by 1 + 1e-2 (in the last Q-Former layer, and
 * separately in the last OPT layer, where the least follows to amplify it) must fail the very checks that
 * test/model/parity.test.ts asserts pass, on every fixture: the end-to-end checks of every case (RULES.forward)
 * and the check of the changed layer alone (RULES.stage). If a rule is loosened until it lets such a model
 * through, this test fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import type { SafetensorsFile } from '../../src/io/safetensors.js';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import { testGpu } from '../helpers.js';
import { loadFixtures } from '../support/fixtures.js';
import { forwardChecks, layerChecks, stageChecks, withReplacedParameters } from '../support/parity.js';
import { expectChecks, fmt, type Check } from '../support/tolerances.js';

const SCALE = 1 + 1e-2;

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

/** The worst check, as "name: ratio to its bound". */
const worst = (checks: readonly Check[]) => {
  const w = checks.reduce((a, b) => (b.maxAbs / b.bound.value > a.maxAbs / a.bound.value ? b : a));
  return `${w.name} at ${fmt(w.maxAbs / w.bound.value)} x its bound`;
};

for (const fx of loadFixtures()) {
  describe(`negative control: a weight scaled by ${SCALE} fails the parity checks on ${fx.name}`, () => {
    let model: Blip2ForConditionalGeneration;
    let ex: SafetensorsFile;
    beforeAll(async () => {
      model = await Blip2ForConditionalGeneration.fromPretrained(fx.dir, { gpu, dtype: 'f32' });
      ex = await fx.expected();
    });
    afterAll(async () => {
      model?.dispose();
      await ex?.close();
    });

    const qLast = () => model.config.qformer_config.num_hidden_layers - 1;
    const optLast = () => model.config.text_config.num_hidden_layers - 1;
    const perturbations = [
      {
        what: 'the last Q-Former layer',
        key: () => `qformer.encoder.layer.${qLast()}.output_query.dense.weight`,
        // The changed layer's output alone: hidden state i + 1 of the Q-Former.
        layerOutput: () => `.qformer.hidden_states.${qLast() + 1}`,
        stageAlone: true,
      },
      {
        what: 'the last OPT layer',
        key: () => `language_model.model.decoder.layers.${optLast()}.fc2.weight`,
        layerOutput: () => `.lm.hidden_states.${optLast() + 1}`,
        stageAlone: false,
      },
    ];

    for (const p of perturbations) {
      it(`scaling fc2 / output dense of ${p.what} fails the end-to-end checks of every case and the check of that layer alone`, async () => {
        const key = p.key();
        await withReplacedParameters(model, [key], (v) => v.map((x) => x * SCALE), async () => {
          for (const c of fx.manifest.cases) {
            const { checks } = await forwardChecks(model, fx, ex, c);
            expect(checks.some((k) => !k.ok), `${key} x ${SCALE} passed every end-to-end check of ${c.name} (closest: ${worst(checks)})`).toBe(true);
            if (p.stageAlone) {
              const alone = await stageChecks(model, fx, ex, c);
              expect(alone.some((k) => !k.ok), `${key} x ${SCALE} passed the Q-Former-alone check of ${c.name} (${worst(alone)})`).toBe(true);
            }
            const layers = await layerChecks(model, fx, ex, c);
            const changed = layers.find((k) => k.name === `${c.name}${p.layerOutput()}`);
            if (fx.hiddenStateCounts(c)) {
              expect(changed, `layer checks of ${c.name} include ${c.name}${p.layerOutput()}`).toBeDefined();
              expect(changed!.ok, `${key} x ${SCALE} passed the layer-alone check: ${changed!.message}`).toBe(false);
            }
          }
        });
        // Restored: the same checks pass again.
        expectChecks((await forwardChecks(model, fx, ex, fx.manifest.cases[0]!)).checks);
      });
    }
  });
}
