// Every kernel benchmark case, in one list that Node and the browser page both import (a bundle cannot scan a
// folder). A new file in bench/cases/ adds its `cases` here; test/bench/cases-index.test.ts checks none is left out.
import type { BenchCase } from '../harness.js';
import { cases as attention } from './attention.js';
import { cases as baselines } from './baselines.js';
import { cases as linear } from './linear.js';
import { cases as linearBackward } from './linear-backward.js';
import { cases as misc } from './misc.js';
import { cases as peerTfjs } from './peer-tfjs.js';

/** File name (without extension) -> its cases, in file-name order. */
export const CASE_FILES: Record<string, BenchCase[]> = {
  attention,
  baselines,
  linear,
  'linear-backward': linearBackward,
  misc,
  'peer-tfjs': peerTfjs,
};

export function allCases(): BenchCase[] {
  return Object.values(CASE_FILES).flat();
}
