// On a GPU machine (no vitest there): a fixture's (tiny-blip2 by default) greedy and 3-beam generations must equal
// transformers' on every case in f32, and with q8 and q4 weights (f32 activations) those of quantized.json
// (transformers run with the same quantized weights: docs/quantization.md) where the folder has one. f16 weights move
// logits, so their greedy tokens are held to the suite's margin-aware claims (test/support/margins.ts, as
// hf-parity.test.ts does): equal at every step whose recorded margin exceeds the measured logit error. This exercises
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
import { loadFixture } from '../../test/support/fixtures.js';
import { marginClaims, marginFailures } from '../../test/support/margins.js';
import { greedyTokenCases } from '../../test/support/parity.js';

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

/** f16 weights as loaded on this device must equal the host's round-to-nearest-even conversion, bit for bit. */
async function checkF16Bits(model: Blip2ForConditionalGeneration): Promise<void> {
  // On a GPU the loader packs f32 into f16 with a kernel (elsewhere on the host).
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

/** f16 greedy tokens under the suite's margin-aware claims (the recorded margins against the measured logit error). */
async function checkF16Tokens(model: Blip2ForConditionalGeneration): Promise<void> {
  const measured = await greedyTokenCases(model, loadFixture(dir), ex);
  if (!measured) {
    console.log(`(no greedy step logits in ${dir}: f16 tokens not checked)`);
    return;
  }
  const claims = marginClaims({ label: 'f16 weights, greedy', ...measured });
  const missed = marginFailures(claims);
  failures += missed.length;
  console.log(`${missed.length ? 'FAIL' : 'PASS'} ${claims.lines.join('\n')}${missed.map((m) => `\n  ${m}`).join('')}`);
}

const model32 = await Blip2ForConditionalGeneration.fromPretrained(dir, { gpu, dtype: 'f32' });
for (const c of cases) {
  const { pixel_values, input_ids } = await caseInputs(c.name);
  for (const [kind, opts] of [['greedy', { max_new_tokens: 12 }], ['beam', { max_new_tokens: 12, num_beams: 3 }]] as const) {
    const got = (await model32.generate({ pixel_values, input_ids, ...opts })).sequences[0]!;
    report(`f32 ${c.name} ${kind}`, got, await readIntegers(ex, `${c.name}.${kind}.sequences`));
  }
  pixel_values.dispose();
}
model32.dispose();
// f16 weights run everywhere (read as packed pairs without shader-f16).
const model16 = await Blip2ForConditionalGeneration.fromPretrained(dir, { gpu, dtype: 'f16' });
await checkF16Bits(model16);
await checkF16Tokens(model16);
model16.dispose();

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
console.log(failures === 0 ? 'parity: every check passed' : `parity: ${failures} failed`);
gpu.destroy();
process.exit(failures === 0 ? 0 : 1);
