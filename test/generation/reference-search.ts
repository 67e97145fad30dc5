/**
 * Straightforward host-only versions of HF's `_sample` and `_beam_search`: whole logit rows, the CPU
 * processors, a flattened top-K over beams x vocab. The GPU paths (argmax / per-row top-k / GPU processors)
 * must reproduce them token for token.
 */
import { maxLengthFor, type GenerationConfig } from '../../src/generation/config.js';
import { processRowCpu } from '../../src/generation/logits-process.js';
import type { Random } from '../../src/generation/rng.js';
import { drawToken, sortRow } from '../../src/generation/sampling.js';
import type { LogitsFn } from './fake-model.js';

const f32 = Math.fround;

function argmaxFirst(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

function logSoftmaxF32(row: Float32Array): Float32Array {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float32Array.from(row, (v) => v - lse);
}

/** HF `_sample`: greedy, or sampling with `rng` (rows repeated num_return_sequences times). */
export function referenceDecode(fn: LogitsFn, prompts: readonly (readonly number[])[], c: GenerationConfig, rng?: Random): { sequences: number[][]; newTokens: number[][] } {
  const L = prompts[0]!.length;
  const maxLength = maxLengthFor(c, L);
  const expand = rng ? c.num_return_sequences : 1;
  const seqs = prompts.flatMap((p) => Array.from({ length: expand }, () => [...p]));
  const newTokens: number[][] = seqs.map(() => []);
  const unfinished = seqs.map(() => true);
  do {
    const picked = seqs.map((s) => {
      const row = fn(s);
      processRowCpu(row, s, L, { ...c, repetition_penalty: f32(c.repetition_penalty) }, rng !== undefined);
      if (!rng) return argmaxFirst(row);
      const { values, ids } = sortRow(row);
      let n = 0;
      while (n < values.length && values[n]! > -Infinity) n++;
      return drawToken(values.subarray(0, n), ids.subarray(0, n), rng);
    });
    seqs.forEach((s, r) => {
      const token = unfinished[r] ? picked[r]! : c.pad_token_id!;
      s.push(token);
      if (!unfinished[r]) return;
      newTokens[r]!.push(token);
      if (c.eos_token_id.includes(token) || s.length >= maxLength) unfinished[r] = false;
    });
  } while (unfinished.some((u) => u));
  return { sequences: seqs, newTokens };
}

/** HF `_beam_search` on whole rows, in its tensor style (flattened top-K, -1e9 penalties). */
export function referenceBeamSearch(fn: LogitsFn, vocab: number, prompts: readonly (readonly number[])[], c: GenerationConfig): { sequences: number[][]; scores: number[] } {
  const nb = c.num_beams;
  const K = Math.max(2, 1 + c.eos_token_id.length) * nb;
  const L = prompts[0]!.length;
  const maxLength = maxLengthFor(c, L);
  const lp = c.length_penalty;
  type Hyp = { seq: number[]; score: number; fin: boolean };
  let running: Hyp[][] = prompts.map((p) => Array.from({ length: nb }, (_, j) => ({ seq: [...p], score: j === 0 ? 0 : -1e9, fin: false })));
  let done: Hyp[][] = prompts.map((p) => Array.from({ length: nb }, () => ({ seq: [...p], score: -1e9, fin: false })));
  const unsat = prompts.map(() => true);
  let curLen = L;
  for (;;) {
    let allHit = true;
    const full = done.map((d) => d.every((h) => h.fin) && c.early_stopping === true);
    const nextRunning: Hyp[][] = [];
    const nextDone: Hyp[][] = [];
    for (let b = 0; b < prompts.length; b++) {
      const acc: number[] = [];
      running[b]!.forEach((h) => {
        const row = logSoftmaxF32(fn(h.seq));
        processRowCpu(row, h.seq, L, { ...c, repetition_penalty: f32(c.repetition_penalty) }, false);
        for (const v of row) acc.push(f32(v + h.score));
      });
      const order = acc.map((_, i) => i).sort((x, y) => acc[y]! - acc[x]! || x - y).slice(0, K);
      const cand = order.map((i) => {
        const parent = running[b]![Math.floor(i / vocab)]!;
        const seq = [...parent.seq, i % vocab];
        const hit = c.eos_token_id.includes(seq[seq.length - 1]!) || seq.length >= maxLength;
        return { seq, score: acc[i]!, hit };
      });
      if (cand.some((x) => !x.hit)) allHit = false;
      const runScores = cand.map((x) => (x.hit ? f32(x.score - 1e9) : x.score));
      const runPick = runScores.map((_, i) => i).sort((x, y) => runScores[y]! - runScores[x]! || x - y).slice(0, nb);
      nextRunning.push(runPick.map((i) => ({ seq: cand[i]!.seq, score: runScores[i]!, fin: false })));
      const denom = f32((curLen + 1 - L) ** lp);
      const offered = cand.map((x, i) => {
        const justDone = x.hit && i < nb;
        let s = f32(x.score / denom);
        if (full[b]) s = f32(s - 1e9);
        if (!unsat[b]) s = f32(s - 1e9);
        if (!justDone) s = f32(s - 1e9);
        return { seq: x.seq, score: s, fin: justDone };
      });
      const merged = [...done[b]!, ...offered];
      nextDone.push(merged.map((_, i) => i).sort((x, y) => merged[y]!.score - merged[x]!.score || x - y).slice(0, nb).map((i) => merged[i]!));
    }
    running = nextRunning;
    done = nextDone;
    curLen++;
    const bestLen = c.early_stopping === 'never' && lp > 0 ? maxLength - L : curLen - L;
    for (let b = 0; b < prompts.length; b++) {
      const best = f32(running[b]![0]!.score / f32(bestLen ** lp));
      const worst = Math.min(...done[b]!.map((h) => h.score));
      unsat[b] = unsat[b]! && done[b]!.some((h) => best > (h.fin ? worst : -1e9));
    }
    const openBeam = !(done.every((d) => d.every((h) => h.fin)) && c.early_stopping === true);
    if (!(unsat.some((u) => u) && openBeam && !allHit)) break;
  }
  const chosen = done.flatMap((d) => d.slice(0, c.num_return_sequences));
  const longest = Math.max(...chosen.map((h) => h.seq.length));
  const fill = c.pad_token_id ? c.pad_token_id : c.eos_token_id[0]!;
  return {
    sequences: chosen.map((h) => [...h.seq, ...new Array<number>(longest - h.seq.length).fill(fill)]),
    scores: chosen.map((h) => h.score),
  };
}
