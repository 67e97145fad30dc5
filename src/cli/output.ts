/** How results are printed: plain text for people, or one JSON object per line (`--json`) for programs. */
import type { GenerateResult } from '../server/engine.js';
import { writeLine, type CliIo } from './io.js';

export interface ResultRecord {
  /** The image as shown (`displayImage`: a data: URI shortened). */
  image: string;
  prompt: string;
  /** The chat question, when there is one. */
  question?: string;
  result: GenerateResult;
}

/** An image or question that got no answer, and why. */
export interface ErrorRecord {
  image: string;
  prompt?: string;
  question?: string;
  error: string;
}

export type OutputRecord = ResultRecord | ErrorRecord;

/**
 * `{image, prompt, text, token_ids, finish_reason, prompt_tokens, completion_tokens[, sequences]}`, or
 * `{image, [prompt,] [question,] error}` for one that got no answer.
 */
export function jsonLine(r: OutputRecord): string {
  if ('error' in r) {
    return JSON.stringify({
      image: r.image,
      ...(r.prompt !== undefined ? { prompt: r.prompt } : {}),
      ...(r.question !== undefined ? { question: r.question } : {}),
      error: r.error,
    });
  }
  const [best] = r.result.sequences;
  const record: Record<string, unknown> = {
    image: r.image,
    prompt: r.prompt,
    ...(r.question !== undefined ? { question: r.question } : {}),
    text: best?.text ?? '',
    token_ids: best?.tokenIds ?? [],
    finish_reason: best?.finishReason ?? 'length',
    prompt_tokens: r.result.promptTokens,
    completion_tokens: r.result.completionTokens,
  };
  if (r.result.sequences.length > 1) {
    record.sequences = r.result.sequences.map((s) => ({ text: s.text, token_ids: s.tokenIds, finish_reason: s.finishReason }));
  }
  return JSON.stringify(record);
}

/**
 * Prints results: JSON lines, or the text(s), prefixed with the image when several images ran. Errors are
 * on stderr already; with --json they also get their record here, in order.
 */
export function printResults(io: CliIo, records: readonly OutputRecord[], how: { json: boolean; withImage: boolean }): void {
  for (const r of records) {
    if (how.json) {
      writeLine(io.stdout, jsonLine(r));
      continue;
    }
    if ('error' in r) continue;
    const prefix = how.withImage ? `${r.image}: ` : '';
    for (const s of r.result.sequences) writeLine(io.stdout, `${prefix}${s.text}`);
  }
}

export function timingLine(label: string, ms: number, tokens?: number): string {
  const rate = tokens !== undefined && ms > 0 ? ` (${tokens} tokens, ${((tokens * 1000) / ms).toFixed(1)} tokens/s)` : '';
  return `${label}: ${ms} ms${rate}`;
}
