// On a GPU machine (no vitest there): the tiny fixture's greedy and 3-beam generations must equal transformers'
// on every case, in f32 and with f16 weights, and with q8 and q4 weights (f32 activations) those of quantized.json
// (transformers run with the same quantized weights: docs/quantization.md) where the folder has one. This exercises
// the GPU kernel variants (tiled matmul, cooperative GEMV, tiled and split-KV attention, their quantized loads) that
// lavapipe only runs when forced.
import { existsSync, readFileSync } from 'node:fs';
import { generationConfigFromJson, readGenerationConfigJson } from '../../src/generation/config.js';
import { Gpu } from '../../src/gpu/gpu.js';
import { SafetensorsFile, readFloat32, readIntegers } from '../../src/io/safetensors.js';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import { QUANT_SCHEMES, type QuantScheme } from '../../src/quant/format.js';
import { Tensor } from '../../src/tensor.js';
import { f32ArrayToF16 } from '../../src/util/half.js';

const dir = process.argv[2] ?? 'test/fixtures/tiny-blip2';
const cases = (JSON.parse(readFileSync(`${dir}/cases.json`, 'utf8')) as { cases: { name: string }[] }).cases;
const gpu = await Gpu.create();
const ex = await SafetensorsFile.open(`${dir}/expected.safetensors`);
let failures = 0;

/** A case's inputs from the fixture's expected.safetensors (the caller disposes pixel_values). */
async function caseInputs(name: string): Promise<{ pixel_values: Tensor; input_ids: number[][] }> {
  const pixel_values = Tensor.from(gpu, await readFloat32(ex, `${name}.pixel_values`), ex.info(`${name}.pixel_values`).shape);
  return { pixel_values, input_ids: [await readIntegers(ex, `${name}.input_ids`)] };
}

/** Prints PASS or FAIL for one generation (the last 12 ids of each side on a mismatch) and counts failures. */
function report(label: string, got: readonly number[], want: readonly number[]): void {
  const ok = got.length === want.length && got.every((t, i) => t === want[i]);
  if (!ok) failures++;
  console.log(`${ok ? 'PASS' : 'FAIL'} ${label}${ok ? '' : ` got ${got.slice(-12).join(',')} want ${want.slice(-12).join(',')}`}`);
}

// f16 weights run everywhere (read as packed pairs without shader-f16).
for (const dtype of ['f32', 'f16'] as const) {
  const model = await Blip2ForConditionalGeneration.fromPretrained(dir, { gpu, dtype });
  if (dtype === 'f16') {
    // On a GPU the loader packs f32 into f16 with a kernel (elsewhere on the host): the bits must equal round-to-nearest-even.
    const weights = await SafetensorsFile.open(`${dir}/model.safetensors`);
    let differing = 0;
    for (const [key, param] of model.namedParameters()) {
      if (param.value.dtype !== 'f16' || !weights.has(key)) continue;
      const got = await param.value.readF16Bits();
      const want = f32ArrayToF16(await readFloat32(weights, key));
      for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) differing++;
    }
    await weights.close();
    if (differing) failures++;
    console.log(`${differing ? 'FAIL' : 'PASS'} f16 weights as loaded on this device equal the host's conversion${differing ? ` (${differing} halves differ)` : ''}`);
  }
  for (const c of cases) {
    const { pixel_values, input_ids } = await caseInputs(c.name);
    for (const [kind, opts] of [['greedy', { max_new_tokens: 12 }], ['beam', { max_new_tokens: 12, num_beams: 3 }]] as const) {
      const got = (await model.generate({ pixel_values, input_ids, ...opts })).sequences[0]!;
      report(`${dtype} ${c.name} ${kind}`, got, await readIntegers(ex, `${c.name}.${kind}.sequences`));
    }
    pixel_values.dispose();
  }
  model.dispose();
}

interface QuantizedCase {
  name: string;
  greedy: { new_tokens: number[] };
  beam: { new_tokens: number[] };
}
const quantizedJson = `${dir}/quantized.json`;
if (existsSync(quantizedJson)) {
  const manifest = JSON.parse(readFileSync(quantizedJson, 'utf8')) as { schemes: Record<QuantScheme, { cases: QuantizedCase[] }> };
  for (const scheme of QUANT_SCHEMES) {
    const model = await Blip2ForConditionalGeneration.fromPretrained(dir, { gpu, dtype: 'f32', quantize: scheme });
    const base = generationConfigFromJson(await readGenerationConfigJson(dir), model.config.text_config);
    for (const qc of manifest.schemes[scheme].cases) {
      const { pixel_values, input_ids } = await caseInputs(qc.name);
      for (const [kind, want, beams] of [['greedy', qc.greedy.new_tokens, 1], ['beam', qc.beam.new_tokens, 3]] as const) {
        const got = (await model.generate({ pixel_values, input_ids, generation_config: base, max_new_tokens: want.length, num_beams: beams })).new_tokens[0]!;
        report(`${scheme} + f32 ${qc.name} ${kind}`, got, want);
      }
      pixel_values.dispose();
    }
    model.dispose();
  }
} else {
  console.log(`(no ${quantizedJson}: quantized parity not checked)`);
}
await ex.close();
console.log(failures === 0 ? 'parity: all generations equal transformers' : `parity: ${failures} mismatches`);
gpu.destroy();
process.exit(failures === 0 ? 0 : 1);
