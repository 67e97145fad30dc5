/**
 * Quantized weights against transformers run with the same quantized weights (each fixture's quantized.json /
 * quantized.safetensors, for every fixture folder that has them): with f32 activations and non-quantized weights,
 * greedy and 3-beam new tokens equal the fixture's for every case and both schemes, and case0's logits and image
 * features stay within the float path's end-to-end f32 bound (RULES.forward of test/support/tolerances.ts: a
 * multiple of the fixture's recorded float32 schedule noise; docs/fidelity.md). Greedy search decodes on the device
 * (captured steps, decode_attention, the LayerNorm-prologue GEMVs) as generate() does by default. The quantized kernels compute
 * exactly what the float kernels compute on the dequantized weights (measured: bit-identical logits on both public
 * fixtures), so only float32 schedule noise remains.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generationConfigFromJson, readGenerationConfigJson } from '../../src/generation/config.js';
import type { DecodeMetrics } from '../../src/generation/types.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import { QUANT_SCHEMES, type QuantScheme } from '../../src/quant/format.js';
import { disposeTree, Tensor, tidy } from '../../src/tensor.js';
import { testGpu } from '../helpers.js';
import { loadFixtures, readFloat32, type Fixture } from '../support/fixtures.js';
import { compareToReference, expectChecks, RULES, type Check } from '../support/tolerances.js';

interface QuantizedCase {
  name: string;
  greedy: { new_tokens: number[]; min_top1_top2_logit_margin: number };
  beam: { new_tokens: number[] };
}
interface QuantizedManifest {
  group_size: number;
  schemes: Record<QuantScheme, { qmax: number; cases: QuantizedCase[] }>;
  quantized_keys: string[];
}

const fixtures = loadFixtures().filter((fx) => existsSync(join(fx.dir, 'quantized.json')));

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

it('has at least one fixture with quantized references', () => {
  expect(fixtures.length).toBeGreaterThan(0);
});

for (const fx of fixtures) {
  const q = JSON.parse(readFileSync(join(fx.dir, 'quantized.json'), 'utf8')) as QuantizedManifest;
  for (const scheme of QUANT_SCHEMES) {
    describe(`${fx.name}, ${scheme}: the same outputs as transformers with the same quantized weights`, () => {
      let model: Blip2ForConditionalGeneration;
      let ex: SafetensorsFile;
      let ref: SafetensorsFile;
      beforeAll(async () => {
        model = await Blip2ForConditionalGeneration.fromPretrained(fx.dir, { gpu, dtype: 'f32', quantize: scheme });
        ex = await fx.expected();
        ref = await SafetensorsFile.open(join(fx.dir, 'quantized.safetensors'));
      });
      afterAll(async () => {
        model?.dispose();
        await ex?.close();
        await ref?.close();
      });

      it('quantizes exactly the weights the fixture lists', () => {
        const quantized = model.namedParameters().filter(([, p]) => p.quantized !== null).map(([k]) => k).sort();
        expect(quantized).toEqual([...q.quantized_keys].sort());
        for (const [, p] of model.namedParameters()) if (p.quantized) expect(p.quantized.scheme).toBe(scheme);
      });

      it('case0 logits and image features within the f32 bounds', async () => {
        const c = fx.manifest.cases[0]!;
        const pv = await pixels(fx, ex, c.name);
        const out = tidy(() => model.call({ pixel_values: pv, input_ids: [c.input_ids] }));
        try {
          // image_features are the projected queries: the noise of language_projection bounds them.
          const checks: Check[] = [];
          for (const [name, t, group] of [
            ['logits', out.logits, `${c.name}.logits`],
            ['image_features', out.language_model_inputs, `${c.name}.language_projection`],
          ] as const) {
            const want = await readFloat32(ref, `${scheme}.${c.name}.${name}`);
            checks.push(compareToReference(fx, group, await t.read(), want, RULES.forward));
          }
          expectChecks(checks);
        } finally {
          disposeTree(out);
          pv.dispose();
        }
      });

      it('greedy and 3-beam new tokens equal the fixture for every case', async () => {
        const base = generationConfigFromJson(await readGenerationConfigJson(fx.dir), model.config.text_config);
        const cases = q.schemes[scheme].cases;
        expect(cases.length).toBe(fx.manifest.cases.length);
        for (const qc of cases) {
          const c = fx.manifest.cases.find((x) => x.name === qc.name)!;
          const pv = await pixels(fx, ex, c.name);
          try {
            const args = { pixel_values: pv, input_ids: [c.input_ids], generation_config: base, max_new_tokens: qc.greedy.new_tokens.length };
            const metrics = {} as DecodeMetrics;
            const greedy = await model.generate({ ...args, decode_metrics: metrics });
            expect(greedy.new_tokens[0], `${qc.name} greedy (min margin ${qc.greedy.min_top1_top2_logit_margin})`).toEqual(qc.greedy.new_tokens);
            // Greedy search decoded on the device (captured step, decode_attention) with the quantized weights.
            if (qc.greedy.new_tokens.length > 1) {
              expect(metrics.mode, qc.name).toBe('device');
              expect(Object.keys(metrics.dispatchesByKernel ?? {}).some((k) => k.startsWith('decode_attention')), qc.name).toBe(true);
            }
            const beam = await model.generate({ ...args, num_beams: 3, max_new_tokens: qc.beam.new_tokens.length });
            expect(beam.new_tokens[0], `${qc.name} beam`).toEqual(qc.beam.new_tokens);
          } finally {
            pv.dispose();
          }
        }
      });
    });
  }
}

async function pixels(fx: Fixture, ex: SafetensorsFile, name: string): Promise<Tensor> {
  const key = `${name}.pixel_values`;
  return Tensor.from(gpu, await readFloat32(ex, key), fx.manifest.tensors[key]!.shape);
}

