/**
 * Training with quantized frozen weights, on every fixture folder with a training reference: one step of BLIP-2's
 * stage 2 (Q-Former, query tokens and projection trainable) with the vision and OPT decoder Linear weights held as
 * q8 or q4 codes gives the loss and the gradient of every trainable tensor that the float path gives on the same
 * weights dequantized: the codes and scales are read back from the quantized model and dequantized on the CPU
 * (w' = q * f32(s), exact in f32) into an f32 model, which then trains through ordinary float kernels. So the only
 * difference is how the kernels read the frozen weights, forward (codes along rows) and backward (codes down the
 * columns, dX = dY W'), and the Q-Former's gradients reach it only through every quantized OPT layer's dX.
 *
 * Bounds (RULES.quantizedTraining*): two runs of ours on identical weights whose kernels sum in different orders,
 * so a multiple of the fixture's recorded float32 schedule noise of the same quantities (training.json), as
 * RULES.sameWeights does for inference, with a floor of 2^-17 of the largest value (FLOOR_REL). Measured: equal
 * to the last bit; checked by hand that a dX read without the scales, or transposed, fails by orders of magnitude.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { graphStats } from '../../src/autograd/tape.js';
import { dequantizeRef } from '../../src/cpu/quantize.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import type { QuantScheme } from '../../src/quant/format.js';
import type { QuantizedTensor } from '../../src/quant/quantized-tensor.js';
import { disposeTree, keep, Tensor } from '../../src/tensor.js';
import { testGpu } from '../helpers.js';
import { loadFixtures } from '../support/fixtures.js';
import { compareToReference, expectChecks, RULES } from '../support/tolerances.js';
import { hasTrainingReference, loadTrainingReference, type TrainingReference } from '../support/training-reference.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

interface Step {
  loss: number;
  /** Every trainable tensor's gradient, concatenated in parameter order. */
  grads: Float32Array;
}

/** One forward and backward pass on the reference batch; the gradients are read and dropped. */
async function step(model: Blip2ForConditionalGeneration, ref: TrainingReference): Promise<Step> {
  const pixel_values = Tensor.from(gpu, ref.inputs.pixel_values, ref.inputs.pixelShape);
  const { input_ids, attention_mask, labels } = ref.inputs;
  const out = model.call({ pixel_values, input_ids, attention_mask, labels });
  const loss = keep(out.loss!.ref());
  disposeTree(out);
  pixel_values.dispose();
  const value = (await loss.read())[0]!;
  loss.backward();
  loss.dispose();
  const params = model.trainableParameters();
  const parts: Float32Array[] = [];
  for (const [, p] of params) parts.push((await p.grad!.read()) as Float32Array);
  for (const [, p] of params) p.zero_grad();
  const grads = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) grads.set(p, (o += p.length) - p.length);
  return { loss: value, grads };
}

/** A quantized weight's codes and scales as the GPU holds them, dequantized on the CPU. */
async function dequantized(q: QuantizedTensor): Promise<Float32Array> {
  const words = (await q.codes.read()) as Uint32Array;
  const codes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  return dequantizeRef({ scheme: q.scheme, N: q.N, K: q.K, codes, scales: await q.scales.readF16Bits() });
}

/** Writes every quantized weight of `from`, dequantized, into the same f32 parameter of `into`; returns how many. */
async function copyDequantized(from: Blip2ForConditionalGeneration, into: Blip2ForConditionalGeneration): Promise<number> {
  const target = new Map(into.namedParameters());
  let n = 0;
  for (const [name, p] of from.namedParameters()) {
    if (!p.quantized) continue;
    const t = target.get(name)!.value;
    expect(t.dtype, name).toBe('f32');
    t.write(await dequantized(p.quantized));
    n++;
  }
  return n;
}

for (const fx of loadFixtures().filter((f) => hasTrainingReference(f.dir))) {
  describe(`training through quantized frozen weights: ${fx.name}`, () => {
    let ref: TrainingReference;
    let float: Blip2ForConditionalGeneration;
    let baseline: number;
    beforeAll(async () => {
      ref = await loadTrainingReference(fx.dir);
      float = await Blip2ForConditionalGeneration.fromPretrained(fx.dir, { gpu, dtype: 'f32', trainable: 'qformer' });
      await gpu.sync();
      baseline = gpu.stats().liveBytes;
    });
    afterAll(async () => {
      float?.dispose();
      await ref?.close();
    });

    for (const scheme of ['q8', 'q4'] as QuantScheme[]) {
      it(`${scheme}: the loss and every Q-Former gradient equal the float path on the dequantized weights`, async () => {
        const quantized = await Blip2ForConditionalGeneration.fromPretrained(fx.dir, { gpu, dtype: 'f32', quantize: scheme, trainable: 'qformer' });
        expect(quantized.trainableParameters().map(([n]) => n)).toEqual(float.trainableParameters().map(([n]) => n));
        const count = await copyDequantized(quantized, float);
        // Every Linear of the vision encoder layers and OPT decoder layers: 4 per vision layer, 6 per OPT layer.
        const { vision_config, text_config } = quantized.config;
        expect(count).toBe(4 * vision_config.num_hidden_layers + 6 * text_config.num_hidden_layers);
        const q = await step(quantized, ref);
        quantized.dispose();
        const f = await step(float, ref);
        expectChecks([
          compareToReference(fx, 'loss.step0', [q.loss], [f.loss], RULES.quantizedTrainingLoss),
          compareToReference(fx, 'grad.step0', q.grads, f.grads, RULES.quantizedTrainingGrad),
        ]);
        expect(graphStats()).toEqual({ nodes: 0, savedTensors: 0 });
        await gpu.sync();
        expect(gpu.stats().liveBytes).toBe(baseline);
      });
    }
  });
}
