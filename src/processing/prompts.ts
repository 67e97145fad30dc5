/** Prompt formats of BLIP-2 OPT (HF docs and LAVIS); see /docs/processing.md. */

export interface ChatTurn {
  readonly question: string;
  readonly answer: string;
}

/** Captioning: no prompt, or a caption prefix such as "a photo of". */
export function captionPrompt(prompt?: string): string {
  return (prompt ?? '').trim();
}

/** Visual question answering: `Question: {q} Answer:`. */
export function vqaPrompt(question: string): string {
  const q = question.trim();
  if (q === '') throw new RangeError('vqaPrompt: the question is empty');
  return `Question: ${q} Answer:`;
}

/**
 * Multi-turn chat about one image: `Question: {q1} Answer: {a1}. Question: {q2} Answer:`. The period is not
 * doubled when an answer already ends with sentence punctuation.
 */
export function chatPrompt(turns: readonly ChatTurn[], question: string): string {
  const past = turns.map((t) => {
    const a = t.answer.trim();
    return `${vqaPrompt(t.question)} ${a}${/[.!?]$/.test(a) ? '' : '.'}`;
  });
  return [...past, vqaPrompt(question)].join(' ');
}
