/**
 * A fixture's generation cases in the form the product layer reports them (new tokens without the eos, the
 * answer text without the prompt), and the cases picked by role rather than by name: fixtures from the
 * generator differ in images, prompts, eos convention and sizes.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import type { Fixture, FixtureCase } from './fixtures.js';

/** Greedy new tokens as the engine reports them: up to the first of the checkpoint's eos ids, which is dropped. */
export function greedyTokensOf(fx: Fixture, c: FixtureCase): number[] {
  const ids = c.greedy.new_tokens;
  const eos = ids.findIndex((id) => fx.eosTokenIds.includes(id));
  return eos >= 0 ? ids.slice(0, eos) : ids;
}

/**
 * The answer the engine gives: the fixture decodes whole sequences (prompt included; an eos that is an ordinary
 * token, such as tiny-blip2's newline, stays in the text, and generation stops at it), answers hold neither the
 * prompt nor surrounding whitespace.
 */
export function greedyAnswerOf(c: FixtureCase, text = c.greedy.text): string {
  return (text.startsWith(c.prompt) ? text.slice(c.prompt.length) : text).trim();
}

/** What a question case asks (its prompt is BLIP-2's `Question: {q} Answer:`); null for captions and others. */
export function questionOf(c: FixtureCase): string | null {
  const m = /^Question: (.*) Answer:$/.exec(c.prompt);
  return m ? m[1]! : null;
}

/** Cases with the empty prompt (captioning) and cases asking a question, in fixture order. */
export function captionCases(fx: Fixture): FixtureCase[] {
  return fx.manifest.cases.filter((c) => c.prompt === '');
}
export function questionCases(fx: Fixture): FixtureCase[] {
  return fx.manifest.cases.filter((c) => questionOf(c) !== null);
}

export function imageBytesOf(fx: Fixture, c: FixtureCase): Uint8Array {
  return new Uint8Array(readFileSync(fx.imagePath(c)));
}

const MIME: Record<string, string> = { '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.webp': 'image/webp', '.gif': 'image/gif', '.bmp': 'image/bmp', '.tif': 'image/tiff', '.tiff': 'image/tiff' };

/** The media type of a case's image file, by its extension (fixtures hold PNG and JPEG inputs). */
export function mimeOf(c: FixtureCase): string {
  return MIME[extname(c.image_file).toLowerCase()] ?? 'application/octet-stream';
}

export function dataUrlOf(fx: Fixture, c: FixtureCase): string {
  return `data:${mimeOf(c)};base64,${Buffer.from(imageBytesOf(fx, c)).toString('base64')}`;
}
