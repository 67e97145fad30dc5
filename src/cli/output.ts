/** How results are printed: plain text for people, or one JSON object per line (`--json`) for programs. */
import type { GenerateResult } from '../server/engine.js';
import { writeLine, type CliIo } from './io.js';

export interface ResultRecord {
  /** The image path (caption/ask/chat). */
  image: string;
  prompt: string;
  /** The chat question, when there is one. */
  question?: string;
  result: GenerateResult;
}

/** `{image, prompt, text, token_ids, finish_reason, prompt_tokens, completion_tokens[, sequences]}` */
export function jsonLine(r: ResultRecord): string {
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

/** Prints results: JSON lines, or the text(s), prefixed with the image path when several images ran. */
export function printResults(io: CliIo, records: readonly ResultRecord[], how: { json: boolean; withImage: boolean }): void {
  for (const r of records) {
    if (how.json) {
      writeLine(io.stdout, jsonLine(r));
      continue;
    }
    const prefix = how.withImage ? `${r.image}: ` : '';
    for (const s of r.result.sequences) writeLine(io.stdout, `${prefix}${s.text}`);
  }
}

export function timingLine(label: string, ms: number, tokens?: number): string {
  const rate = tokens !== undefined && ms > 0 ? ` (${tokens} tokens, ${((tokens * 1000) / ms).toFixed(1)} tokens/s)` : '';
  return `${label}: ${ms} ms${rate}`;
}
