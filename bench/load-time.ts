/**
 * Time to load a model folder onto the device (Blip2ForConditionalGeneration.fromPretrained, weights uploaded and
 * the device idle), `--times` loads one after another in one process: the first from a cold page cache if the
 * caller dropped it, the next ones warm. Prints seconds per load and the weights' bytes on the device.
 *
 *   npx tsx bench/load-time.ts --model DIR [--quantize q8|q4] [--dtype f16|f32] [--times 2]
 */
import { parseArgs } from 'node:util';
import { Gpu } from '../src/gpu/gpu.js';
import { Blip2ForConditionalGeneration } from '../src/model/blip2.js';
import { isQuantScheme } from '../src/quant/format.js';

const { values: args } = parseArgs({
  options: { model: { type: 'string' }, quantize: { type: 'string' }, dtype: { type: 'string', default: 'f16' }, times: { type: 'string', default: '2' } },
});
if (!args.model) throw new Error('--model DIR is required');
const quantize = args.quantize;
if (quantize !== undefined && !isQuantScheme(quantize)) throw new Error(`--quantize takes q8 or q4, got '${quantize}'`);
const gpu = await Gpu.create();
for (let i = 0; i < Number(args.times); i++) {
  const t0 = performance.now();
  const model = await Blip2ForConditionalGeneration.fromPretrained(args.model, { gpu, dtype: args.dtype === 'f32' ? 'f32' : 'f16', quantize });
  await gpu.sync();
  const s = (performance.now() - t0) / 1000;
  console.log(`load ${i + 1}: ${s.toFixed(2)} s, ${(gpu.stats().liveBytes / 2 ** 20).toFixed(1)} MiB on the device`);
  model.dispose();
  await gpu.sync();
}
gpu.destroy();
