/**
 * Margin-aware token claims for reduced precision (f16 weights here; quantized weights call the same helpers
 * with their own measured error). A precision that moves logits by up to `logitError` relative to the reference
 * top-1 logit cannot change a greedy choice whose recorded top-1/top-2 margin is larger, so:
 *
 *  - at every step whose margin exceeds the measured error, the tokens must equal the reference (a failure);
 *  - steps whose margin is smaller are reported (console), and where the token changed there, counted: more
 *    than `maxLowMarginFlips(steps)` of them fail the claim (the precision is then too coarse to say anything).
 *
 * `logitError` is the *decision* error: the largest change of any logit relative to the change of the
 * reference's top-1 logit, max over steps (`decisionError`); a plain max abs logit error e bounds it by 2e.
 * f32 is not handled here: its tokens must equal the reference everywhere.
 */
import { expect } from 'vitest';
import { fmt, logFidelity } from './tolerances.js';

/** At most one changed token per ten greedy steps may sit below the error; more fails the claim. */
export function maxLowMarginFlips(steps: number): number {
  return Math.floor(steps / 10);
}

/** The index of the largest value, and the gap to the second largest. */
export function top2(row: ArrayLike<number>): { top: number; margin: number } {
  let a = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[a]!) a = i;
  let b = -Infinity;
  for (let i = 0; i < row.length; i++) if (i !== a && row[i]! > b) b = row[i]!;
  return { top: a, margin: row[a]! - b };
}

/**
 * max over tokens c of |(got[c] - want[c]) - (got[a] - want[a])|, a = the reference's top-1: how far any logit
 * moved relative to the one the reference chose. A margin above it cannot be reversed.
 */
export function decisionError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`logit rows differ in length: ${got.length} vs ${want.length}`);
  const a = top2(want).top;
  const da = got[a]! - want[a]!;
  let e = 0;
  for (let i = 0; i < got.length; i++) e = Math.max(e, Math.abs(got[i]! - want[i]! - da));
  return Number.isNaN(e) ? Infinity : e;
}

export interface TokenCase {
  name: string;
  /** The reference greedy tokens and the top-1/top-2 margin of each step. */
  reference: readonly number[];
  margins: readonly number[];
  /** What generate() produced with the reduced precision. */
  generated: readonly number[];
  /** Optional: argmax of the reduced precision's logits along the reference's own tokens (teacher forcing). */
  teacherForced?: readonly number[];
}

export interface LowMarginStep {
  case: string;
  step: number;
  margin: number;
  /** Whether the token there equals the reference. */
  same: boolean;
}

export interface MarginReport {
  label: string;
  logitError: number;
  steps: number;
  /** Steps whose margin exceeds the error, all of which must match. */
  claimed: number;
  lowMargin: LowMarginStep[];
  /** Low-margin steps where the token changed (teacher-forced where given, else generate()'s first divergence). */
  flips: LowMarginStep[];
  /** Steps above the error whose token differs: each is a failure. */
  violations: string[];
  lines: string[];
}

/**
 * Checks reduced-precision greedy tokens against the reference step by step. generate() output is compared up
 * to its first divergence (after it, the sequences are different texts and the recorded margins no longer
 * apply); teacher-forced tokens, when given, at every step.
 */
export function marginClaims(args: { label: string; logitError: number; cases: readonly TokenCase[] }): MarginReport {
  const { label, logitError: e } = args;
  const lowMargin: LowMarginStep[] = [];
  const flips: LowMarginStep[] = [];
  const violations: string[] = [];
  const lines: string[] = [];
  let steps = 0;
  let claimed = 0;
  for (const c of args.cases) {
    steps += c.reference.length;
    let diverged = -1;
    for (let t = 0; t < c.reference.length; t++) {
      const m = c.margins[t];
      if (m === undefined) throw new Error(`${label} ${c.name}: no margin recorded for step ${t}`);
      const tf = c.teacherForced?.[t];
      const generatedSame = diverged < 0 ? c.generated[t] === c.reference[t] : undefined;
      if (m > e) {
        claimed++;
        if (tf !== undefined && tf !== c.reference[t]) violations.push(`${c.name} step ${t}: margin ${fmt(m)} > error ${fmt(e)}, yet the teacher-forced token is ${tf}, not ${c.reference[t]}`);
        if (generatedSame === false) violations.push(`${c.name} step ${t}: margin ${fmt(m)} > error ${fmt(e)}, yet generate() gave ${c.generated[t]}, not ${c.reference[t]}`);
      } else {
        const same = tf !== undefined ? tf === c.reference[t] : generatedSame !== false;
        const step = { case: c.name, step: t, margin: m, same };
        lowMargin.push(step);
        if (!same && (tf !== undefined || generatedSame === false)) flips.push(step);
      }
      if (generatedSame === false) diverged = t;
    }
    if (diverged >= 0) lines.push(`  ${c.name}: generate() follows the reference up to step ${diverged} (margin ${fmt(c.margins[diverged]!)}), then its own text`);
    else if (c.generated.length !== c.reference.length) violations.push(`${c.name}: generate() gave ${c.generated.length} tokens, the reference ${c.reference.length}`);
  }
  lines.unshift(
    `${label}: logit error ${fmt(e)} (relative to the reference top-1); ${claimed} of ${steps} steps have a larger margin and are claimed; ` +
      `${lowMargin.length} below it, the token changed at ${flips.length}` +
      (flips.length ? ` (${flips.map((f) => `${f.case} step ${f.step}, margin ${fmt(f.margin)}`).join('; ')})` : ''),
  );
  return { label, logitError: e, steps, claimed, lowMargin, flips, violations, lines };
}

/**
 * What fails a report: every claimed step that differs, and more low-margin changes than `maxLowMarginFlips`
 * (empty when the claims hold). Shared by the tests and the GPU machine's kit (bench/device/parity.ts).
 */
export function marginFailures(report: MarginReport): string[] {
  const few = maxLowMarginFlips(report.steps);
  const tooMany = report.flips.length > few ? [`${report.label}: ${report.flips.length} tokens changed below the error margin, more than ${few} (one per ten steps)`] : [];
  return [...report.violations, ...tooMany];
}

/** Logs the report and fails on what `marginFailures` lists. */
export function expectMarginClaims(report: MarginReport): void {
  console.log(report.lines.join('\n'));
  const { label, logitError, steps, claimed, lowMargin, flips, violations } = report;
  logFidelity({ kind: 'margins', label, logitError, steps, claimed, lowMargin: lowMargin.length, flips: flips.map((f) => `${f.case} step ${f.step} (margin ${fmt(f.margin)})`), violations: violations.length });
  const failures = marginFailures(report);
  expect(failures, failures.join('\n')).toEqual([]);
}
