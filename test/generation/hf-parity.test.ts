/**
 * generate() against transformers 5's own generate() on every fixture (test/fixtures/* and BLIP2_FIXTURES):
 * greedy, 3-beam and 3-beam/3-returned token ids exactly, step logits and beam scores within bounds derived from
 * the fixture's recorded float32 schedule noise (test/support/tolerances.ts), cached decoding against our own
 * uncached forward,
 * early eos with pad filling, captioning without input_ids, the OPT language model alone (greedy, cached decode,
 * a left-padded batch), decoded texts, a left-padded batch of two images, the legacy layout (queries prepended:
 * the same embeddings, so the same tokens), and f16 weights' greedy tokens wherever the reference's margins
 * exceed f16's measured logit error (test/support/margins.ts).
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generationConfigFromJson, readGenerationConfigJson, type GenerationConfig } from '../../src/generation/config.js';
import { generateCausalLM, type Blip2GenerateArgs } from '../../src/generation/generate.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import type { SafetensorsFile } from '../../src/io/safetensors.js';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import { Blip2Processor } from '../../src/processing/processor.js';
import { Tensor, tidy } from '../../src/tensor.js';
import { testGpu } from '../helpers.js';
import { loadFixtures, readFloat32, readIntegers, type Fixture, type FixtureCase } from '../support/fixtures.js';
import { expectMarginClaims, marginClaims } from '../support/margins.js';
import { greedyTokenCases } from '../support/parity.js';
import { applies, compareToReference, expectChecks, fmt, RULES, type Check, type ToleranceRule } from '../support/tolerances.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

/** A [R, C] integer tensor of the fixture as rows. */
async function rows(ex: SafetensorsFile, fx: Fixture, name: string): Promise<number[][]> {
  const info = fx.manifest.tensors[name];
  if (!info) throw new Error(`fixture has no ${name}`);
  const flat = await readIntegers(ex, name);
  const [R, C] = info.shape as [number, number];
  return Array.from({ length: R }, (_, r) => flat.slice(r * C, (r + 1) * C));
}

for (const fx of loadFixtures()) {
  describe(`generate() equals transformers: ${fx.name}`, () => {
    let model: Blip2ForConditionalGeneration;
    let processor: Blip2Processor;
    let ex: SafetensorsFile;
    let base: GenerationConfig;
    /** GPU bytes held by the weights and the cases' pixel values. */
    let baseline: number;
    const pixels = new Map<string, Tensor>();

    beforeAll(async () => {
      model = await Blip2ForConditionalGeneration.fromPretrained(fx.dir, { gpu, dtype: 'f32' });
      processor = await Blip2Processor.fromPretrained(fx.dir);
      ex = await fx.expected();
      base = generationConfigFromJson(await readGenerationConfigJson(fx.dir), model.config.text_config);
      for (const c of fx.manifest.cases) {
        pixels.set(c.name, Tensor.from(gpu, await readFloat32(ex, `${c.name}.pixel_values`), fx.manifest.tensors[`${c.name}.pixel_values`]!.shape));
      }
      await gpu.sync();
      baseline = gpu.stats().liveBytes;
    });
    afterAll(async () => {
      for (const t of pixels.values()) t.dispose();
      model?.dispose();
      await ex?.close();
    });

    const pixelValues = (c: FixtureCase): Tensor => pixels.get(c.name)!;

    const N = fx.maxNewTokens;
    const gen = async (c: FixtureCase, options: Omit<Blip2GenerateArgs, 'pixel_values'>) =>
      model.generate({ pixel_values: pixelValues(c), input_ids: [c.input_ids], generation_config: base, max_new_tokens: N, ...options });
    /** A float tensor of ours against the fixture's, where the fixture records both the tensor and its noise. */
    const against = async (name: string, got: ArrayLike<number>, rule: ToleranceRule = RULES.forward): Promise<Check[]> =>
      fx.hasTensor(name) && applies(fx, name, rule) ? [compareToReference(fx, name, got, await readFloat32(ex, name), rule)] : [];

    for (const c of fx.manifest.cases) {
      it(`${c.name}: greedy ids and text exactly; step logits within ${RULES.forward.multiple} x the fixture's noise, and cached within ${RULES.cached.multiple} x of uncached`, async () => {
        const out = await gen(c, { output_step_logits: true });
        expect(out.sequences).toEqual(await rows(ex, fx, `${c.name}.greedy.sequences`));
        expect(out.new_tokens[0]).toEqual(c.greedy.new_tokens);
        expect(processor.batchDecode(out.sequences, { skipSpecialTokens: true })).toEqual([c.greedy.text]);
        const steps = out.step_logits!;
        const V = steps[0]!.length;
        const cached = new Float32Array(steps.length * V);
        steps.forEach((row, i) => cached.set(row, i * V));
        const seq = out.sequences[0]!;
        const full = tidy(() => model.call({ pixel_values: pixelValues(c), input_ids: [seq.slice(0, -1)] }).logits);
        const fullLogits = ((await full.read()) as Float32Array).subarray((c.input_ids.length - 1) * V);
        full.dispose();
        const name = `${c.name}.greedy.step_logits`;
        const checks = await against(name, cached);
        if (applies(fx, name, RULES.cached)) checks.push(compareToReference(fx, name, cached, fullLogits, RULES.cached));
        expectChecks(checks);
      });

      it(`${c.name}: beam search (3 beams; 3 returned) ids, scores and texts`, async () => {
        const one = await gen(c, { num_beams: 3 });
        expect(one.sequences).toEqual(await rows(ex, fx, `${c.name}.beam.sequences`));
        expect(processor.batchDecode(one.sequences, { skipSpecialTokens: true })).toEqual([c.beam.text]);

        const three = await gen(c, { num_beams: 3, num_return_sequences: 3 });
        expect(three.sequences).toEqual(await rows(ex, fx, `${c.name}.beam3.sequences`));
        expect(processor.batchDecode(three.sequences, { skipSpecialTokens: true })).toEqual(c.beam.beam3_texts);
        expectChecks([
          ...(await against(`${c.name}.beam.sequences_scores`, one.sequences_scores!, RULES.beamScores)),
          ...(await against(`${c.name}.beam3.sequences_scores`, three.sequences_scores!, RULES.beamScores)),
        ]);
      });

      if (fx.manifest.tensors[`${c.name}.greedy_pixel_values_only.sequences`]) {
        it(`${c.name}: captioning without input_ids builds [<image>] * Q + [bos]`, async () => {
          const out = await model.generate({ pixel_values: pixelValues(c), generation_config: base, max_new_tokens: N });
          expect(out.sequences).toEqual(await rows(ex, fx, `${c.name}.greedy_pixel_values_only.sequences`));
        });
      }

      if (c.early_eos && fx.hasTensor(`${c.name}.greedy_eos.sequences`)) {
        const early = c.early_eos;
        it(`${c.name}: an early eos stops greedy, and beams that finish early are padded with ${early.pad_token_id}`, async () => {
          const greedy = await gen(c, { eos_token_id: early.eos_token_id, pad_token_id: early.pad_token_id });
          expect(greedy.sequences).toEqual(await rows(ex, fx, `${c.name}.greedy_eos.sequences`));
          expect(greedy.new_tokens[0]).toEqual(early.greedy_new_tokens);
          expect(greedy.finish_reasons).toEqual(['eos']);
          const beams = await gen(c, { eos_token_id: early.eos_token_id, pad_token_id: early.pad_token_id, num_beams: 3, num_return_sequences: 3 });
          if (fx.hasTensor(`${c.name}.beam3_eos.sequences`)) expect(beams.sequences).toEqual(await rows(ex, fx, `${c.name}.beam3_eos.sequences`));
          // The fixture's rows are padded after the eos; new_tokens end at it.
          expect(beams.new_tokens).toEqual(early.beam3_new_tokens.map((r) => (r.includes(early.eos_token_id) ? r.slice(0, r.indexOf(early.eos_token_id) + 1) : r)));
          expectChecks(await against(`${c.name}.beam3_eos.sequences_scores`, beams.sequences_scores!, RULES.beamScores));
        });
      }
    }

    // Two cases with prompts of different lengths when the fixture has them, so the batch needs padding.
    const pair = ((cs) => [cs[0]!, cs.find((x) => x.input_ids.length !== cs[0]!.input_ids.length) ?? cs[1]!])(fx.manifest.cases);
    it.skipIf(fx.manifest.cases.length < 2)('a left-padded batch of two images and prompts decodes each row as it would alone', async () => {
      const [a, b] = pair;
      const pa = await readFloat32(ex, `${a.name}.pixel_values`);
      const pb = await readFloat32(ex, `${b.name}.pixel_values`);
      const shape = fx.manifest.tensors[`${a.name}.pixel_values`]!.shape;
      const both = new Float32Array(pa.length + pb.length);
      both.set(pa);
      both.set(pb, pa.length);
      const pixel_values = Tensor.from(gpu, both, [2, ...shape.slice(1)]);
      const { inputIds, attentionMask } = processor.padLeft([a.input_ids, b.input_ids]);
      try {
        const out = await model.generate({ pixel_values, input_ids: inputIds, attention_mask: attentionMask, generation_config: base, max_new_tokens: N });
        expect(out.new_tokens).toEqual([a.greedy.new_tokens, b.greedy.new_tokens]);
        expect(out.sequences.map((s) => s.slice(0, inputIds[0]!.length))).toEqual(inputIds);
      } finally {
        pixel_values.dispose();
      }
    });

    const opt = fx.manifest.opt_only;
    it.skipIf(!opt || !fx.hasTensor('opt.greedy.sequences'))('the OPT language model alone: greedy, cached decode logits, left-padded batch', async () => {
      const lm = model.language_model;
      const greedy = await rows(ex, fx, 'opt.greedy.sequences');
      const kvSteps = fx.hasTensor('opt.kv.step_logits') ? fx.tensorShape('opt.kv.step_logits')[0]! : 0;
      // One token more than the references when the cached-decode logits need it (its logits follow the last kv token).
      const n = Math.max(opt!.greedy_new_tokens.length, kvSteps + 1);
      const single = await generateCausalLM(lm, { input_ids: [opt!.input_ids], generation_config: base, max_new_tokens: n, output_step_logits: true });
      expect(single.sequences[0]!.slice(0, greedy[0]!.length)).toEqual(greedy[0]);
      expect(single.new_tokens[0]!.slice(0, opt!.kv_tokens.length)).toEqual(opt!.kv_tokens);
      // opt.kv.step_logits[i] is what the cached decode produced after feeding kv token i: our step i + 1.
      const checks: Check[] = [];
      if (kvSteps > 0) {
        const [S, V] = fx.tensorShape('opt.kv.step_logits') as [number, number];
        const ours = new Float32Array(S * V);
        for (let i = 0; i < S; i++) ours.set(single.step_logits![i + 1]!, i * V);
        checks.push(...(await against('opt.kv.step_logits', ours)));
      }
      if (fx.hasTensor('opt.text.logits')) {
        const ids = Tensor.from(gpu, Int32Array.from(opt!.input_ids), [1, opt!.input_ids.length], 'i32');
        const logits = tidy(() => lm.call({ input_ids: ids, attention_mask: [opt!.input_ids.map(() => 1)] }).logits);
        checks.push(...(await against('opt.text.logits', await logits.read())));
        logits.dispose();
        ids.dispose();
      }
      expect(checks.length).toBeGreaterThan(0);
      expectChecks(checks);
      if (fx.hasTensor('opt.batch.greedy.sequences')) {
        const batch = await generateCausalLM(lm, {
          input_ids: await rows(ex, fx, 'opt.batch.input_ids'),
          attention_mask: await rows(ex, fx, 'opt.batch.attention_mask'),
          generation_config: base,
          max_new_tokens: opt!.batch?.greedy_new_tokens[0]?.length ?? N,
        });
        expect(batch.sequences).toEqual(await rows(ex, fx, 'opt.batch.greedy.sequences'));
      }
    });

    it('legacy checkpoints (no image_token_index): the queries are prepended and give the same tokens', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'blip2-legacy-'));
      const config = JSON.parse(readFileSync(join(fx.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      const imageToken = config.image_token_index;
      delete config.image_token_index;
      writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
      symlinkSync(join(fx.dir, 'model.safetensors'), join(dir, 'model.safetensors'));
      const legacy = await Blip2ForConditionalGeneration.fromPretrained(dir, { gpu, dtype: 'f32' });
      try {
        expect(legacy.config.image_token_index).toBeNull();
        for (const c of pair) {
          const text = c.input_ids.filter((id) => id !== imageToken);
          const out = await legacy.generate({ pixel_values: pixelValues(c), input_ids: [text], generation_config: base, max_new_tokens: N });
          expect(out.sequences, c.name).toEqual([[...text, ...c.greedy.new_tokens]]);
        }
        // Captioning builds [bos] alone in the legacy layout: the tokens of a case whose prompt is empty.
        const captionCase = fx.manifest.cases.find((c) => c.prompt === '');
        if (captionCase) {
          const caption = await legacy.generate({ pixel_values: pixelValues(captionCase), generation_config: base, max_new_tokens: N });
          expect(caption.sequences).toEqual([[base.bos_token_id!, ...captionCase.greedy.new_tokens]]);
        }
      } finally {
        legacy.dispose();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('leaves no GPU memory behind', async () => {
      await gpu.sync();
      expect(gpu.stats().liveBytes).toBe(baseline);
    });

    it('f16 weights give the reference greedy tokens at every step whose margin exceeds their measured logit error', async (ctx) => {
      if (!gpu.caps.f16) ctx.skip();
      const model16 = await Blip2ForConditionalGeneration.fromPretrained(fx.dir, { gpu, dtype: 'f16' });
      try {
        const measured = await greedyTokenCases(model16, fx, ex);
        if (!measured) return ctx.skip();
        const report = marginClaims({ label: `${fx.name} f16 weights`, ...measured });
        const hf = fx.f16Reference();
        if (hf) {
          const same = hf.cases.filter((c) => c.equals_float32_greedy).length;
          const moved = hf.max_abs_diff_vs_float32_reference['caseN.logits'];
          report.lines.push(`  scale: transformers with every parameter rounded to f16 moved logits by ${moved === undefined ? '?' : fmt(moved)} and kept the f32 greedy tokens on ${same} of ${hf.cases.length} cases`);
        }
        expectMarginClaims(report);
      } finally {
        model16.dispose();
      }
    });
  });
}
