/**
 * The bookkeeping of transformers' vectorised `_beam_search` (4.50+ and 5.x), on the host: per prompt,
 * `num_beams` running hypotheses and `num_beams` finished slots. Each step takes the K = max(2, 1 + #eos)
 * * num_beams best continuations over all beams, lets the best num_beams that did not stop run on, offers
 * those among the best num_beams that did stop to the finished slots (score / generated_length **
 * length_penalty), and applies HF's early-stopping heuristic.
 *
 * Scores are float32, as in torch, and HF's "-1e9" penalties are reproduced arithmetically (Math.fround)
 * rather than as flags, so that ties and orderings come out as torch's would.
 */
import type { GenerationConfig } from './config.js';
import type { StoppingCriteria } from './stopping.js';
import type { FinishReason, SearchResult } from './types.js';

const f32 = Math.fround;
const PENALTY = -1.0e9;

interface Running {
  tokens: number[];
  score: number;
}

interface Slot {
  tokens: number[];
  score: number;
  finished: boolean;
  reason: FinishReason | null;
}

interface Candidate {
  beam: number;
  token: number;
  score: number;
  /** Position in the flattened beams x vocab row (torch.topk's tie order). */
  flat: number;
}

/** Indices of `keys` sorted by value descending, equal values by index (torch.topk's order on CPU for ties). */
function rankDescending(keys: readonly number[]): number[] {
  return keys.map((_, i) => i).sort((a, b) => (keys[b]! > keys[a]! ? 1 : keys[b]! < keys[a]! ? -1 : a - b));
}

export class BeamSearchState {
  private running: Running[][];
  private slots: Slot[][];
  private unsatisfied: boolean[];
  /** Tokens generated so far by every running hypothesis (cur_len - decoder_prompt_len). */
  private generated = 0;
  readonly numBeams: number;
  /** Continuations kept per step over all beams of a prompt. */
  readonly beamsToKeep: number;

  constructor(
    private readonly prompts: readonly (readonly number[])[],
    private readonly c: GenerationConfig,
    private readonly stopping: StoppingCriteria,
  ) {
    this.numBeams = c.num_beams;
    this.beamsToKeep = Math.max(2, 1 + c.eos_token_id.length) * c.num_beams;
    // Only beam 0 starts live: the others score -1e9 so the first step does not pick the same token thrice.
    this.running = prompts.map(() => Array.from({ length: c.num_beams }, (_, j) => ({ tokens: [], score: j === 0 ? 0 : PENALTY })));
    this.slots = prompts.map(() => Array.from({ length: c.num_beams }, () => ({ tokens: [], score: PENALTY, finished: false, reason: null })));
    this.unsatisfied = prompts.map(() => true);
  }

  /** Whole input_ids of every running row (prompt b's beams are rows b*num_beams ...), for the processors. */
  rowSequences(): number[][] {
    return this.running.flatMap((beams, b) => beams.map((h) => [...this.prompts[b]!, ...h.tokens]));
  }

  /**
   * One step. `values`/`ids` hold, for every running row, its k best processed log-probs (descending) and
   * their token ids; `vocabSize` orders ties as the flattened beams x vocab top-k would. Returns whether the
   * search is over and otherwise, for the next forward, which old row each new row continues and its token.
   */
  advance(values: ArrayLike<number>, ids: ArrayLike<number>, k: number, vocabSize: number): { done: boolean; parents: number[]; tokens: number[] } {
    const nb = this.numBeams;
    const K = this.beamsToKeep;
    const L = this.prompts[0]!.length;
    const lp = this.c.length_penalty;
    const parents: number[] = [];
    const tokens: number[] = [];
    let allHit = true;
    const anyFull = this.slots.map((s) => s.every((x) => x.finished) && this.c.early_stopping === true);
    for (let b = 0; b < this.prompts.length; b++) {
      // The global top-K over beams x vocab lies within the union of each beam's top-K (a beam adds a constant).
      const pool: Candidate[] = [];
      for (let j = 0; j < nb; j++) {
        const row = b * nb + j;
        for (let t = 0; t < k; t++) {
          const token = ids[row * k + t]!;
          pool.push({ beam: j, token, score: f32(values[row * k + t]! + this.running[b]![j]!.score), flat: j * vocabSize + token });
        }
      }
      pool.sort((x, y) => (y.score > x.score ? 1 : y.score < x.score ? -1 : x.flat - y.flat));
      const top = pool.slice(0, K);
      const gens = top.map((cand) => [...this.running[b]![cand.beam]!.tokens, cand.token]);
      const reasons = gens.map((g) => this.stopping.check(g, L + g.length));
      if (reasons.some((r) => r === null)) allHit = false;

      // Running: the best num_beams that did not stop (stopped ones sink by 1e9 but may still fill the beams).
      const runKeys = top.map((cand, i) => (reasons[i] !== null ? f32(cand.score + PENALTY) : cand.score));
      const runOrder = rankDescending(runKeys).slice(0, nb);
      this.running[b] = runOrder.map((i) => ({ tokens: gens[i]!, score: runKeys[i]! }));
      for (const i of runOrder) {
        parents.push(b * nb + top[i]!.beam);
        tokens.push(top[i]!.token);
      }

      // Finished: only the best num_beams continuations may enter, scored with the length penalty.
      const denom = f32((this.generated + 1) ** lp);
      const offered: Slot[] = top.map((cand, i) => {
        const justFinished = reasons[i] !== null && i < nb;
        let s = f32(cand.score / denom);
        if (anyFull[b]) s = f32(s + PENALTY);
        if (!this.unsatisfied[b]) s = f32(s + PENALTY);
        if (!justFinished) s = f32(s + PENALTY);
        return { tokens: gens[i]!, score: s, finished: justFinished, reason: reasons[i] ?? null };
      });
      const merged = [...this.slots[b]!, ...offered];
      this.slots[b] = rankDescending(merged.map((m) => m.score))
        .slice(0, nb)
        .map((i) => merged[i]!);
    }
    this.generated++;
    this.updateHeuristic();
    const improvable = this.unsatisfied.some((u) => u);
    const openBeam = !(this.slots.every((s) => s.every((x) => x.finished)) && this.c.early_stopping === true);
    return { done: !(improvable && openBeam && !allHit), parents, tokens };
  }

  /** HF's _check_early_stop_heuristic: can the best running beam still beat the worst finished one? */
  private updateHeuristic(): void {
    const lp = this.c.length_penalty;
    const L = this.prompts[0]!.length;
    const bestLength = this.c.early_stopping === 'never' && lp > 0 ? this.stopping.maxLength - L : this.generated;
    for (let b = 0; b < this.prompts.length; b++) {
      const best = f32(this.running[b]![0]!.score / f32(bestLength ** lp));
      const slots = this.slots[b]!;
      const worst = Math.min(...slots.map((s) => s.score));
      this.unsatisfied[b] = this.unsatisfied[b]! && slots.some((s) => best > (s.finished ? worst : PENALTY));
    }
  }

  /** The `num_return_sequences` best finished hypotheses per prompt, best first, padded to one length. */
  result(numReturnSequences: number): SearchResult {
    const pad = this.c.pad_token_id;
    const eos = this.c.eos_token_id;
    // HF fills with `pad_token_id or eos_token_id[0]` (so pad id 0 falls back to eos), or -1 without eos.
    const fill = eos.length > 0 ? (pad ? pad : eos[0]!) : -1;
    const chosen = this.slots.flatMap((s) => s.slice(0, numReturnSequences));
    const longest = Math.max(...chosen.map((s) => s.tokens.length));
    return {
      sequences: chosen.map((s, i) => {
        const prompt = this.prompts[Math.floor(i / numReturnSequences)]!;
        return [...prompt, ...s.tokens, ...new Array<number>(longest - s.tokens.length).fill(fill)];
      }),
      new_tokens: chosen.map((s) => [...s.tokens]),
      finish_reasons: chosen.map((s) => s.reason ?? 'length'),
      sequences_scores: chosen.map((s) => s.score),
    };
  }
}
