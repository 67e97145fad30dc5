import { readFileSync } from 'node:fs';
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

/** Every fixture folder: test/fixtures/* with a cases.json, plus $BLIP2_FIXTURES (test/support/fixtures.ts). */
export { fixtureDirs } from '../support/fixtures.js';

export function readCases(dir: string): FixtureCases {
  return JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) as FixtureCases;
}

/** The real blip2-opt-2.7b processor files (224x224, 32 query tokens, OPT tokenizer). */
export const REAL_PROCESSOR_DIR = fixturePath('hf', 'blip2-opt-2.7b');
export const IMAGES_DIR = fixturePath('images');
