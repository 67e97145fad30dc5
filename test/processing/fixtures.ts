import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixturePath } from '../paths.js';

/** The parts of a fixture's cases.json that the processing tests read. */
export interface FixtureCases {
  fixture: string;
  images: { index: number; file: string; width: number; height: number; mode: string }[];
  extra_images: { index: number; file: string; width: number; height: number; mode: string }[];
  cases: {
    name: string;
    image: number;
    prompt: string;
    input_ids: number[];
    realproc_input_ids?: number[];
    greedy: { new_tokens: number[]; text: string };
    beam: { new_tokens: number[]; text: string; beam3_texts: string[] };
  }[];
  opt_only?: { text: string; input_ids: number[]; batch?: { texts: string[]; input_ids: number[][]; pad_token_id: number } };
  tokenizer_checks: TokenizerCheck[];
  realproc?: { num_query_tokens: number; tokenizer_checks: TokenizerCheck[] };
  tensors: Record<string, { shape: number[]; dtype: string }>;
}

export interface TokenizerCheck {
  text: string;
  input_ids: number[];
  tokens: string[];
  decode_skip_special: string;
  decode: string;
}

/** Every folder under test/fixtures with a cases.json, plus the folders in $BLIP2_FIXTURES (colon-separated). */
export function fixtureDirs(): string[] {
  const root = fixturePath();
  const dirs = readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(root, d.name, 'cases.json')))
    .map((d) => join(root, d.name));
  for (const extra of (process.env.BLIP2_FIXTURES ?? '').split(':').filter(Boolean)) {
    if (!existsSync(join(extra, 'cases.json'))) throw new Error(`BLIP2_FIXTURES: ${extra} has no cases.json`);
    dirs.push(extra);
  }
  return dirs;
}

export function readCases(dir: string): FixtureCases {
  return JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) as FixtureCases;
}

/** The real blip2-opt-2.7b processor files (224x224, 32 query tokens, OPT tokenizer). */
export const REAL_PROCESSOR_DIR = fixturePath('hf', 'blip2-opt-2.7b');
export const IMAGES_DIR = fixturePath('images');
