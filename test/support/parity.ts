/**
 * The model's parity checks against a fixture's transformers tensors, as data: each returns `Check`s (never
 * throws on a miss), so the parity tests assert that all pass and the negative control that some fail.
 */
import type { Gpu } from '../../src/gpu/gpu.js';
import type { SafetensorsFile } from '../../src/io/safetensors.js';
import type { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import { expandBatch } from '../../src/model/blip2-vision.js';
import { f16BitsToF32, f32ToF16Bits } from '../../src/util/half.js';
import { disposeTree, keep, Tensor, tidy } from '../../src/tensor.js';
import { readFloat32, type Fixture, type FixtureCase } from './fixtures.js';
import { decisionError, top2, type TokenCase } from './margins.js';
import { applies, compareToReference, RULES, type Check, type ToleranceRule } from './tolerances.js';

/** Compares a tensor with the fixture's reference of that name. */
export async function checkTensor(fx: Fixture, ex: SafetensorsFile, name: string, actual: Tensor, rule: ToleranceRule): Promise<Check> {
  return compareToReference(fx, name, await actual.read(), await readFloat32(ex, name), rule);
}

/** A fixture tensor as a GPU tensor of its recorded shape (the caller disposes it). */
export async function referenceTensor(gpu: Gpu, fx: Fixture, ex: SafetensorsFile, name: string): Promise<Tensor> {
  return Tensor.from(gpu, await readFloat32(ex, name), fx.tensorShape(name));
}

/** The case's pixel_values as a GPU tensor (the caller disposes it). */
export function casePixels(gpu: Gpu, fx: Fixture, ex: SafetensorsFile, c: FixtureCase): Promise<Tensor> {
  return referenceTensor(gpu, fx, ex, `${c.name}.pixel_values`);
}

/** A family of checks of one case against the fixture, under `rule` (each family has its default rule). */
export type CaseChecks = (model: Blip2ForConditionalGeneration, fx: Fixture, ex: SafetensorsFile, c: FixtureCase, rule?: ToleranceRule) => Promise<Check[]>;

/** The stages of the forward, by the names the fixtures give them. */
const STAGES = [
  ['vision.last_hidden_state', (o: Blip2Out) => o.vision_outputs.last_hidden_state],
  ['vision.pooler_output', (o: Blip2Out) => o.vision_outputs.pooler_output],
  ['qformer.last_hidden_state', (o: Blip2Out) => o.qformer_outputs.last_hidden_state],
  ['language_projection', (o: Blip2Out) => o.language_model_inputs],
  ['lm.inputs_embeds', (o: Blip2Out) => o.inputs_embeds],
  ['logits', (o: Blip2Out) => o.logits],
] as const;
type Blip2Out = ReturnType<Blip2ForConditionalGeneration['call']>;

export interface ForwardResult {
  checks: Check[];
  /** What was compared, by fixture tensor name (to compare two runs of ours with each other). */
  values: Map<string, Float32Array>;
  /** argmax of the last position's logits (the first greedy token). */
  firstToken: number;
  /** The logits of every prompt position, [L * V]. */
  logits: Float32Array;
}

/**
 * One forward over a case's pixel_values and input_ids, every stage the fixture has a reference for compared
 * under `rule` (default: RULES.forward), the per-layer states too where the fixture recorded them.
 */
export async function forwardChecks(
  model: Blip2ForConditionalGeneration,
  fx: Fixture,
  ex: SafetensorsFile,
  c: FixtureCase,
  rule: ToleranceRule = RULES.forward,
): Promise<ForwardResult> {
  const pixel_values = await casePixels(model.gpu, fx, ex, c);
  const layers = fx.hiddenStateCounts(c);
  const out = tidy(() => model.call({ pixel_values, input_ids: [c.input_ids], output_hidden_states: layers !== null }));
  try {
    const checks: Check[] = [];
    const values = new Map<string, Float32Array>();
    const compare = async (name: string, t: Tensor) => {
      if (!fx.hasTensor(name) || !applies(fx, name, rule)) return;
      const got = (await t.read()) as Float32Array;
      values.set(name, got);
      checks.push(compareToReference(fx, name, got, await readFloat32(ex, name), rule));
    };
    for (const [stage, pick] of STAGES) await compare(`${c.name}.${stage}`, pick(out));
    if (layers) {
      const stages = { vision: out.vision_outputs.hidden_states, qformer: out.qformer_outputs.hidden_states, lm: out.language_model_outputs.hidden_states };
      for (const [stage, states] of Object.entries(stages)) {
        const want = layers[stage as keyof typeof stages];
        if (!states || states.length !== want) {
          checks.push(missing(fx, `${c.name}.${stage}.hidden_states`, `${states?.length ?? 0} states, the fixture has ${want}`));
          continue;
        }
        for (let i = 0; i < states.length; i++) await compare(`${c.name}.${stage}.hidden_states.${i}`, states[i]!);
      }
      for (const stage of ['vision', 'qformer'] as const) {
        const states = stages[stage];
        if (states?.[0]) await compare(`${c.name}.${stage}.embeddings`, states[0]);
      }
    }
    const logits = (await out.logits.read()) as Float32Array;
    const V = out.logits.dim(-1);
    return { checks, values, firstToken: argmax(logits.subarray(logits.length - V)), logits };
  } finally {
    pixel_values.dispose();
    disposeTree(out);
  }
}

/**
 * The Q-Former fed HF's vision states and the projection fed HF's Q-Former states: each stage alone, where
 * nothing upstream is amplified (default rule: RULES.stage).
 */
export const stageChecks: CaseChecks = async (model, fx, ex, c, rule = RULES.stage) => {
  const load = (stage: string) => referenceTensor(model.gpu, fx, ex, `${c.name}.${stage}`);
  const image_embeds = await load('vision.last_hidden_state');
  const qformer_states = await load('qformer.last_hidden_state');
  const queries = expandBatch(model.query_tokens.value, image_embeds.dim(0));
  try {
    const q = model.qformer.call(queries, image_embeds);
    const projected = model.language_projection.call(qformer_states);
    try {
      return [
        await checkTensor(fx, ex, `${c.name}.qformer.last_hidden_state`, q.last_hidden_state, rule),
        await checkTensor(fx, ex, `${c.name}.language_projection`, projected, rule),
      ];
    } finally {
      disposeTree(q);
      projected.dispose();
    }
  } finally {
    for (const t of [image_embeds, qformer_states, queries]) t.dispose();
  }
};

function missing(fx: Fixture, name: string, what: string): Check {
  const bound = { value: 0, scale: { group: name, value: 0, source: 'structure' }, rule: RULES.forward, magnitude: 0, floor: 0, source: 'structure' };
  return { fixture: fx.name, name, maxAbs: Infinity, bound, ok: false, ratio: Infinity, message: `${fx.name} ${name}: ${what}` };
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/**
 * Every layer alone, fed HF's recorded input to it (only for cases with per-layer states): vision encoder
 * layers and post_layernorm, Q-Former layers (with HF's image embeddings), OPT decoder layers, the final
 * LayerNorm and lm_head. Localises a mismatch to one layer; default rule: RULES.stage.
 */
export const layerChecks: CaseChecks = async (model, fx, ex, c, rule = RULES.stage) => {
  const counts = fx.hiddenStateCounts(c);
  if (!counts) return [];
  const gpu = model.gpu;
  const held: Tensor[] = [];
  const load = async (name: string) => {
    const t = await referenceTensor(gpu, fx, ex, name);
    held.push(t);
    return t;
  };
  const checks: Check[] = [];
  const check = async (name: string, make: () => Tensor) => {
    const out = tidy(make);
    try {
      checks.push(await checkTensor(fx, ex, name, out, rule));
    } finally {
      out.dispose();
    }
  };
  const hs = (stage: string, i: number) => `${c.name}.${stage}.hidden_states.${i}`;
  try {
    const vision = model.vision_model;
    for (let i = 0; i + 1 < counts.vision; i++) {
      const input = await load(hs('vision', i));
      await check(hs('vision', i + 1), () => vision.encoder.layers.at(i).call(input).hidden_states);
    }
    const lastVision = `${c.name}.vision.last_hidden_state`;
    if (counts.vision > 0 && fx.hasTensor(lastVision)) {
      const input = await load(hs('vision', counts.vision - 1));
      await check(lastVision, () => vision.post_layernorm.call(input));
    }
    if (fx.hasTensor(lastVision)) {
      const image = await load(lastVision);
      for (let i = 0; i + 1 < counts.qformer; i++) {
        const input = await load(hs('qformer', i));
        await check(hs('qformer', i + 1), () => model.qformer.encoder.layer.at(i).call(input, image, false).hidden_states);
      }
    }
    const decoder = model.language_model.model.decoder;
    for (let i = 0; i + 1 < counts.lm; i++) {
      const input = await load(hs('lm', i));
      const [B, L] = input.shape as [number, number];
      const mask = Tensor.from(gpu, new Float32Array(B * L), [B, L]);
      held.push(mask);
      const ctx = { mask, cache: null, past_key_values_length: 0, output_attentions: false };
      const last = i + 2 === counts.lm;
      // The last recorded state is after the decoder's final LayerNorm.
      await check(hs('lm', i + 1), () => {
        const out = decoder.layers.at(i).call(input, ctx, i).output;
        return last && decoder.final_layer_norm ? decoder.final_layer_norm.call(out) : out;
      });
    }
    const logitsName = `${c.name}.logits`;
    if (counts.lm > 0 && fx.hasTensor(logitsName)) {
      const input = await load(hs('lm', counts.lm - 1));
      await check(logitsName, () => model.language_model.lm_head.call(input));
    }
  } finally {
    for (const t of held) t.dispose();
  }
  return checks;
};

/**
 * Runs `fn` with each parameter in `keys` replaced by `transform` of its values (as f32 on the host, uploaded
 * in the parameter's dtype), then puts the loaded tensors back. The negative control scales one weight with it;
 * the f16 checks round weights to f16 with it.
 */
export async function withReplacedParameters<T>(
  model: Blip2ForConditionalGeneration,
  keys: readonly string[],
  transform: (values: Float32Array, key: string) => Float32Array,
  fn: () => Promise<T>,
): Promise<T> {
  const params = new Map(model.namedParameters());
  const originals: [string, Tensor][] = [];
  try {
    for (const key of keys) {
      const p = params.get(key);
      if (!p?.tensor) throw new Error(`the model has no loaded parameter ${key}`);
      const values = await p.tensor.read();
      const replaced = keep(Tensor.from(model.gpu, transform(Float32Array.from(values), key), p.tensor.shape, p.tensor.dtype, { persistent: true }));
      originals.push([key, p.tensor]);
      p.tensor = replaced;
    }
    return await fn();
  } finally {
    for (const [key, original] of originals) {
      const p = params.get(key)!;
      p.tensor!.dispose();
      p.tensor = original;
    }
  }
}

/**
 * For margin-aware token claims (test/support/margins.ts): every case's greedy generation with `model`, its
 * argmax along the reference's own tokens (one forward over prompt + reference), and the measured decision
 * error of those logits against HF's recorded step logits, for every case (or `only` these). Null when the
 * fixture recorded no step logits.
 */
export async function greedyTokenCases(
  model: Blip2ForConditionalGeneration,
  fx: Fixture,
  ex: SafetensorsFile,
  only: readonly FixtureCase[] = fx.manifest.cases,
): Promise<{ logitError: number; cases: TokenCase[] } | null> {
  if (!only.every((c) => fx.hasTensor(`${c.name}.greedy.step_logits`))) return null;
  let logitError = 0;
  const cases: TokenCase[] = [];
  for (const c of only) {
    const reference = c.greedy.new_tokens;
    const want = await readFloat32(ex, `${c.name}.greedy.step_logits`);
    const V = want.length / reference.length;
    const rowOf = (x: Float32Array, r: number) => x.subarray(r * V, (r + 1) * V);
    const pixel_values = await casePixels(model.gpu, fx, ex, c);
    try {
      const ids = [...c.input_ids, ...reference.slice(0, -1)];
      const logits = tidy(() => model.call({ pixel_values, input_ids: [ids] }).logits);
      const got = (await logits.read()) as Float32Array;
      logits.dispose();
      const L = c.input_ids.length;
      const teacherForced = reference.map((_, t) => {
        const row = rowOf(got, L - 1 + t);
        logitError = Math.max(logitError, decisionError(row, rowOf(want, t)));
        return argmax(row);
      });
      const margins = c.greedy.top1_top2_logit_margins ?? reference.map((_, t) => top2(rowOf(want, t)).margin);
      const generated = (await model.generate({ pixel_values, input_ids: [c.input_ids], max_new_tokens: reference.length })).new_tokens[0]!;
      cases.push({ name: c.name, reference, margins, generated, teacherForced });
    } finally {
      pixel_values.dispose();
    }
  }
  return { logitError, cases };
}

/**
 * f16 weights change nothing but the weights: every stage of `model16` (f16 storage) against `model32` run on
 * the same parameters rounded to f16 on the host (round to nearest even), under `rule` (default
 * RULES.sameWeights: two schedules of the same arithmetic). Returns the checks for every case.
 */
export async function f16EmulationChecks(
  model16: Blip2ForConditionalGeneration,
  model32: Blip2ForConditionalGeneration,
  fx: Fixture,
  ex: SafetensorsFile,
  rule: ToleranceRule = RULES.sameWeights,
): Promise<Check[]> {
  const rounded = [...model16.namedParameters()].filter(([, p]) => p.value.dtype === 'f16').map(([k]) => k);
  if (rounded.length === 0) throw new Error(`${fx.name}: the f16 model holds no f16 parameters`);
  const got: ForwardResult[] = [];
  for (const c of fx.manifest.cases) got.push(await forwardChecks(model16, fx, ex, c));
  const roundToF16 = (v: Float32Array) => v.map((x) => f16BitsToF32(f32ToF16Bits(x)));
  const want = await withReplacedParameters(model32, rounded, roundToF16, async () => {
    const out: ForwardResult[] = [];
    for (const c of fx.manifest.cases) out.push(await forwardChecks(model32, fx, ex, c));
    return out;
  });
  return want.flatMap((w, i) =>
    [...w.values].map(([name, v]) => {
      return compareToReference(fx, name, got[i]!.values.get(name)!, v, rule);
    }),
  );
}
