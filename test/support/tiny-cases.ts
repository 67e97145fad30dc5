/**
 * The tiny fixture's generation cases (test/fixtures/tiny-blip2/cases.json, made by HF transformers) in the
 * form the product layer reports them: new tokens without the eos, and the answer text without the prompt.
 */
import { readFileSync } from 'node:fs';
import { TINY, fixturePath } from '../paths.js';
import type { FixtureCase, FixtureManifest } from './fixtures.js';

export { TINY };

const manifest = JSON.parse(readFileSync(fixturePath('tiny-blip2', 'cases.json'), 'utf8')) as FixtureManifest;

export const tinyCases: readonly FixtureCase[] = manifest.cases;

/** The new tokens every greedy case was generated with. */
export const FIXTURE_MAX_NEW_TOKENS = (manifest.generation as { greedy: { max_new_tokens: number } }).greedy.max_new_tokens;

const EOS = 202;

export function tinyCase(name: string): FixtureCase {
  const c = tinyCases.find((x) => x.name === name);
  if (!c) throw new Error(`no fixture case ${name}`);
  return c;
}

export function imagePathOf(c: FixtureCase): string {
  return fixturePath('tiny-blip2', c.image_file);
}

export function imageBytesOf(c: FixtureCase): Uint8Array {
  return new Uint8Array(readFileSync(imagePathOf(c)));
}

/** Greedy new tokens as the engine reports them (the end-of-sequence token dropped). */
export function greedyTokensOf(c: FixtureCase): number[] {
  const ids = c.greedy.new_tokens;
  const eos = ids.indexOf(EOS);
  return eos >= 0 ? ids.slice(0, eos) : ids;
}

/** The fixture decodes whole sequences (prompt included) and keeps the eos newline; answers hold neither. */
export function greedyAnswerOf(c: FixtureCase): string {
  const text = c.greedy.text.startsWith(c.prompt) ? c.greedy.text.slice(c.prompt.length) : c.greedy.text;
  return text.split('\n')[0]!.trim();
}

/** What the question cases ask (their prompt is `Question: {q} Answer:`); null for captions. */
export function questionOf(c: FixtureCase): string | null {
  const m = /^Question: (.*) Answer:$/.exec(c.prompt);
  return m ? m[1]! : null;
}
