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
  greedy: { new_tokens: number[]; text: string; min_top1_top2_logit_margin: number };
  beam: { new_tokens: number[]; text: string; beam3_texts: string[] };
  hidden_states?: Record<string, unknown>;
  early_eos?: { eos_token_id: number; pad_token_id: number; greedy_new_tokens: number[]; beam3_new_tokens: number[][] };
  realproc_input_ids?: number[];
}

export interface FixtureManifest {
  cases: FixtureCase[];
  tensors: Record<string, { shape: number[]; dtype: string }>;
  opt_only: {
    text: string;
    input_ids: number[];
    greedy_new_tokens: number[];
    kv_tokens: number[];
    batch: { texts: string[]; input_ids: number[][]; greedy_new_tokens: number[][]; pad_token_id: number };
  };
  generation: Record<string, unknown>;
  tolerances: Record<string, unknown>;
  [k: string]: unknown;
}

/** A fixture folder in the tiny-blip2 layout: config, weights, cases.json, expected.safetensors. */
export interface Fixture {
  name: string;
  dir: string;
  manifest: FixtureManifest;
  expected(): Promise<SafetensorsFile>;
}

const FIXTURES_ROOT = fileURLToPath(new URL('../fixtures/', import.meta.url));

/**
 * Every folder under test/fixtures/ holding a cases.json, plus the folders listed in BLIP2_FIXTURES
 * (colon-separated), so other checkpoints in the same layout are checked without code changes.
 */
export function fixtureDirs(): string[] {
  const dirs = readdirSync(FIXTURES_ROOT)
    .map((d) => join(FIXTURES_ROOT, d))
    .filter((d) => statSync(d).isDirectory() && existsSync(join(d, 'cases.json')));
  for (const extra of (process.env.BLIP2_FIXTURES ?? '').split(':').filter((s) => s.length)) {
    if (!existsSync(join(extra, 'cases.json'))) throw new Error(`BLIP2_FIXTURES entry ${extra} has no cases.json`);
    dirs.push(extra);
  }
  return dirs;
}

export function loadFixtures(): Fixture[] {
  return fixtureDirs().map((dir) => ({
    name: dir.split('/').filter(Boolean).pop()!,
    dir,
    manifest: JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) as FixtureManifest,
    expected: () => SafetensorsFile.open(join(dir, 'expected.safetensors')),
  }));
}

export { readFloat32, readIntegers };
