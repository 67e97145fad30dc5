/**
 * The test-support API the data-driven tests stand on (test/support/fixtures.ts, tolerances.ts, margins.ts):
 * group names as the generator spells them, bounds and their messages, margin claims, and a fixture folder
 * that lacks every optional file and section loading with those parts reported absent.
 */
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadFixture, loadFixtures } from '../support/fixtures.js';
import { marginClaims, marginFailures, maxLowMarginFlips, decisionError } from '../support/margins.js';
import { applies, boundFor, compareToReference, FLOOR_REL, groupIn, RULES } from '../support/tolerances.js';

const [fx] = loadFixtures();

describe('tolerances', () => {
  it('finds the group of a tensor as the generator names groups', () => {
    const table = { 'caseN.vision.hidden_states.N': 1, 'caseN.logits': 2, 'opt.kv.prefix.layer1.key': 3, 'imageN.pixel_values_pil': 4, 'grad.step0': 5 };
    expect(groupIn(table, 'case3.vision.hidden_states.2')).toBe('caseN.vision.hidden_states.N');
    expect(groupIn(table, 'case11.logits')).toBe('caseN.logits');
    expect(groupIn(table, 'opt.kv.prefix.layer1.key')).toBe('opt.kv.prefix.layer1.key');
    expect(groupIn(table, 'image2.pixel_values_pil')).toBe('imageN.pixel_values_pil');
    expect(groupIn(table, 'grad.step0.qformer.layernorm.weight')).toBe('grad.step0');
    expect(groupIn(table, 'case0.qformer.last_hidden_state')).toBeUndefined();
  });

  it('bounds a tensor by a multiple of its recorded noise, floored by its magnitude, and says which value set it', () => {
    const noise = (fx!.manifest.tolerances as Record<string, { per_tensor_group_max_abs: Record<string, number> }>)['eager_attention_1_thread_vs_reference']!.per_tensor_group_max_abs;
    const want = new Float32Array([1, -2, 0.5]);
    const b = boundFor(fx!, 'case0.logits', want, RULES.forward);
    expect(b.value).toBe(Math.max(16 * noise['caseN.logits']!, FLOOR_REL * 2));
    expect(b.source).toContain(`${fx!.name} cases.json tolerances.eager_attention_1_thread_vs_reference[caseN.logits]`);
    // A group recorded with noise 0 gets the floor.
    const zero = boundFor(fx!, 'case1.vision.embeddings', want, RULES.forward);
    expect(zero.value).toBe(FLOOR_REL * 2);
    expect(zero.source).toMatch(/^floor/);
    const miss = compareToReference(fx!, 'case0.logits', [1, -2, 0.5 + 2 * b.value], want, RULES.forward);
    expect(miss.ok).toBe(false);
    expect(miss.message).toMatch(/> bound/);
    expect(compareToReference(fx!, 'case0.logits', [1, -2], want, RULES.forward).ok).toBe(false);
    expect(compareToReference(fx!, 'case0.logits', [1, -2, NaN], want, RULES.forward).ok).toBe(false);
  });
});

describe('margin claims', () => {
  const base = { name: 'c', reference: [5, 6, 7, 8], margins: [1, 0.01, 1, 1] };

  it('passes equal tokens and reports the steps below the error', () => {
    const r = marginClaims({ label: 'x', logitError: 0.1, cases: [{ ...base, generated: [5, 6, 7, 8], teacherForced: [5, 6, 7, 8] }] });
    expect(r.violations).toEqual([]);
    expect(r.claimed).toBe(3);
    expect(r.lowMargin.map((s) => s.step)).toEqual([1]);
    expect(r.flips).toEqual([]);
  });

  it('allows a change at a step whose margin is below the error, then stops comparing the generated text', () => {
    const r = marginClaims({ label: 'x', logitError: 0.1, cases: [{ ...base, generated: [5, 9, 1, 2], teacherForced: [5, 9, 7, 8] }] });
    expect(r.violations).toEqual([]);
    expect(r.flips.map((s) => s.step)).toEqual([1]);
    expect(r.lines.join('\n')).toMatch(/up to step 1/);
  });

  it('fails a change where the margin exceeds the error, generated or teacher-forced', () => {
    expect(marginClaims({ label: 'x', logitError: 0.1, cases: [{ ...base, generated: [4, 6, 7, 8] }] }).violations).toHaveLength(1);
    expect(marginClaims({ label: 'x', logitError: 0.1, cases: [{ ...base, generated: [5, 6, 7, 8], teacherForced: [5, 6, 0, 8] }] }).violations).toHaveLength(1);
    expect(maxLowMarginFlips(72)).toBe(7);
  });

  it('fails a report on its violations and on more low-margin changes than one per ten steps', () => {
    expect(marginFailures(marginClaims({ label: 'x', logitError: 0.1, cases: [{ ...base, generated: [5, 6, 7, 8] }] }))).toEqual([]);
    // 4 steps allow no low-margin change at all.
    const flip = marginClaims({ label: 'x', logitError: 0.1, cases: [{ ...base, generated: [5, 9, 1, 2], teacherForced: [5, 9, 7, 8] }] });
    expect(marginFailures(flip)).toEqual(['x: 1 tokens changed below the error margin, more than 0 (one per ten steps)']);
    const claimed = marginClaims({ label: 'x', logitError: 0.1, cases: [{ ...base, generated: [4, 6, 7, 8] }] });
    expect(marginFailures(claimed)).toEqual(claimed.violations);
    // 12 steps allow one low-margin change; two fail.
    const low = { name: 'd', reference: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], margins: Array<number>(12).fill(0.01) };
    const twice = marginClaims({ label: 'y', logitError: 0.1, cases: [{ ...low, generated: low.reference, teacherForced: [0, 2, 0, ...low.reference.slice(3)] }] });
    expect(twice.violations).toEqual([]);
    expect(marginFailures(twice)).toEqual(['y: 2 tokens changed below the error margin, more than 1 (one per ten steps)']);
    const once = marginClaims({ label: 'y', logitError: 0.1, cases: [{ ...low, generated: low.reference, teacherForced: [0, ...low.reference.slice(1)] }] });
    expect(marginFailures(once)).toEqual([]);
  });

  it('measures the error that can reverse a choice: changes relative to the top-1 logit', () => {
    expect(decisionError([1.1, 0.1, 0.2], [1, 0, 0])).toBeCloseTo(0.1, 6);
    expect(decisionError([1.5, 0.5, 0], [1, 0, 0])).toBeCloseTo(0.5, 6);
  });
});

describe('a fixture folder without the optional parts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'blip2-bare-fixture-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads, and reports hidden states, f16 and OPT references absent', () => {
    const optional = /^(quantized|training|f16_reference)\./;
    for (const f of readdirSync(fx!.dir)) if (!optional.test(f) && f !== 'cases.json') copyFileSync(join(fx!.dir, f), join(dir, f));
    const manifest = JSON.parse(readFileSync(join(fx!.dir, 'cases.json'), 'utf8')) as Record<string, unknown> & { cases: Record<string, unknown>[]; tensors: Record<string, unknown> };
    delete manifest.opt_only;
    for (const c of manifest.cases) delete c.hidden_states;
    manifest.tensors = Object.fromEntries(Object.entries(manifest.tensors).filter(([k]) => !/hidden_states|^opt\./.test(k)));
    writeFileSync(join(dir, 'cases.json'), JSON.stringify(manifest));
    const bare = loadFixture(dir);
    expect(bare.manifest.cases.map((c) => bare.hiddenStateCounts(c))).toEqual(bare.manifest.cases.map(() => null));
    expect(bare.f16Reference()).toBeNull();
    expect(bare.optionalJson('quantized.json')).toBeNull();
    expect(bare.manifest.opt_only).toBeUndefined();
    expect(applies(bare, 'case0.logits', RULES.f16)).toBe(false);
    expect(applies(bare, 'case0.logits', RULES.forward)).toBe(true);
    expect(bare.eosTokenIds).toEqual(fx!.eosTokenIds);
    expect(bare.maxNewTokens).toBe(fx!.maxNewTokens);
  });
});
