/**
 * Fixture folders made by the fixture generator (transformers' own outputs for a random-weight checkpoint;
 * ../shared/fixtures/README.md): both public ones under test/fixtures/ plus any listed in BLIP2_FIXTURES.
 * Tests read everything about a fixture from its files (cases.json, config, generation_config, the optional
 * quantized / training / f16 references) rather than assuming one fixture's sizes, ids or case names; what a
 * folder lacks is reported as absent (null, false) so the checks that need it skip instead of crashing.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile, readFloat32, readIntegers } from '../../src/io/safetensors.js';

export interface FixtureCase {
  name: string;
  image: number;
  image_file: string;
  prompt: string;
  input_ids: number[];
  greedy: { new_tokens: number[]; text: string; min_top1_top2_logit_margin: number; top1_top2_logit_margins?: number[] };
  beam: { new_tokens: number[]; text: string; beam3_texts: string[] };
  /** Per-stage counts of recorded hidden states (only on the case generated with output_hidden_states). */
  hidden_states?: { vision?: number; qformer?: number; lm?: number } & Record<string, unknown>;
  early_eos?: { eos_token_id: number; pad_token_id: number; greedy_new_tokens: number[]; beam3_new_tokens: number[][] };
  realproc_input_ids?: number[];
}

export interface OptOnly {
  text: string;
  input_ids: number[];
  greedy_new_tokens: number[];
  kv_tokens: number[];
  /** How far transformers' own cached decode is from its uncached forward over the same ids. */
  kv_vs_full_forward_maxabs?: number;
  batch?: { texts: string[]; input_ids: number[][]; greedy_new_tokens: number[][]; pad_token_id: number };
}

export interface FixtureManifest {
  fixture?: string;
  cases: FixtureCase[];
  tensors: Record<string, { shape: number[]; dtype: string }>;
  opt_only?: OptOnly;
  generation: Record<string, unknown>;
  tolerances: Record<string, unknown>;
  [k: string]: unknown;
}

/** `f16_reference.json`: transformers with every parameter rounded to f16 (computation float32). */
export interface F16Reference {
  max_abs_diff_vs_float32_reference: Record<string, number>;
  cases: { name: string; greedy_new_tokens: number[]; equals_float32_greedy: boolean; min_top1_top2_logit_margin: number }[];
}

/** Stage sizes of the per-layer hidden states a case recorded. */
export interface HiddenStateCounts {
  vision: number;
  qformer: number;
  lm: number;
}

/** A fixture folder in the generator's layout: config, weights, cases.json, expected.safetensors. */
export interface Fixture {
  name: string;
  dir: string;
  manifest: FixtureManifest;
  expected(): Promise<SafetensorsFile>;
  /** Whether expected.safetensors holds `name` (per cases.json's tensor table). */
  hasTensor(name: string): boolean;
  tensorShape(name: string): number[];
  /** Path of a case's image file. */
  imagePath(c: FixtureCase): string;
  /** The per-layer states recorded for this case, or null (only some cases have them, and not always case1). */
  hiddenStateCounts(c: FixtureCase): HiddenStateCounts | null;
  /** The checkpoint's text eos ids (generation_config.json, else config.json's text_config): 202 or 2 or others. */
  eosTokenIds: number[];
  /** max_new_tokens of the fixture's greedy references. */
  maxNewTokens: number;
  /** An optional JSON file of the folder, parsed; null when the folder lacks it. */
  optionalJson<T>(file: string): T | null;
  f16Reference(): F16Reference | null;
}

const FIXTURES_ROOT = fileURLToPath(new URL('../fixtures/', import.meta.url));

/**
 * Every folder under test/fixtures/ holding a cases.json, plus the folders listed in BLIP2_FIXTURES
 * (colon-separated), so other checkpoints in the same layout are checked without code changes.
 */
export function fixtureDirs(): string[] {
  const dirs = readdirSync(FIXTURES_ROOT)
    .sort()
    .map((d) => join(FIXTURES_ROOT, d))
    .filter((d) => statSync(d).isDirectory() && existsSync(join(d, 'cases.json')));
  for (const extra of (process.env.BLIP2_FIXTURES ?? '').split(':').filter((s) => s.length)) {
    if (!existsSync(join(extra, 'cases.json'))) throw new Error(`BLIP2_FIXTURES entry ${extra} has no cases.json`);
    dirs.push(extra);
  }
  return dirs;
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

function eosIdsOf(dir: string): number[] {
  const asList = (v: unknown): number[] | null => (typeof v === 'number' ? [v] : Array.isArray(v) ? (v as number[]) : null);
  const gen = existsSync(join(dir, 'generation_config.json')) ? asList(readJson<Record<string, unknown>>(join(dir, 'generation_config.json')).eos_token_id) : null;
  if (gen) return gen;
  const config = readJson<{ text_config?: { eos_token_id?: unknown } }>(join(dir, 'config.json'));
  return asList(config.text_config?.eos_token_id) ?? [];
}

export function loadFixture(dir: string, name = dir.split('/').filter(Boolean).pop()!): Fixture {
  const manifest = readJson<FixtureManifest>(join(dir, 'cases.json'));
  const hasTensor = (t: string) => manifest.tensors[t] !== undefined;
  const greedy = (manifest.generation as { greedy?: { max_new_tokens?: number } }).greedy;
  const fx: Fixture = {
    name,
    dir,
    manifest,
    expected: () => SafetensorsFile.open(join(dir, 'expected.safetensors')),
    hasTensor,
    tensorShape(t) {
      const info = manifest.tensors[t];
      if (!info) throw new Error(`${name}: cases.json lists no tensor ${t}`);
      return info.shape;
    },
    imagePath: (c) => join(dir, c.image_file),
    hiddenStateCounts(c) {
      const count = (stage: string) => {
        let i = 0;
        while (hasTensor(`${c.name}.${stage}.hidden_states.${i}`)) i++;
        return i;
      };
      const counts = { vision: count('vision'), qformer: count('qformer'), lm: count('lm') };
      return counts.vision + counts.qformer + counts.lm > 0 ? counts : null;
    },
    eosTokenIds: eosIdsOf(dir),
    maxNewTokens: greedy?.max_new_tokens ?? manifest.cases[0]?.greedy.new_tokens.length ?? 0,
    optionalJson: <T>(file: string) => (existsSync(join(dir, file)) ? readJson<T>(join(dir, file)) : null),
    f16Reference: () => fx.optionalJson<F16Reference>('f16_reference.json'),
  };
  return fx;
}

/** Every fixture folder (fixtureDirs); a folder whose name is already taken is named by its path. */
export function loadFixtures(): Fixture[] {
  const seen = new Set<string>();
  return fixtureDirs().map((dir) => {
    const base = dir.split('/').filter(Boolean).pop()!;
    const fx = loadFixture(dir, seen.has(base) ? dir : base);
    seen.add(base);
    return fx;
  });
}

export { readFloat32, readIntegers };
