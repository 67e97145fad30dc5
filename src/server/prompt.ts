/**
 * BLIP-2 OPT prompts. The model was tuned for VQA with `"Question: {q} Answer:"`; a conversation joins earlier
 * turns as `"Question: {q1} Answer: {a1}. Question: {q2} Answer:"` (the template of the BLIP-2 examples).
 * An earlier turn without a question (a caption) enters the history as `"{caption}."`.
 */

export interface ChatTurn {
  question: string;
  answer: string;
}

function clean(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** The prompt for one question. An empty question is a caption request: the prompt is empty. */
export function questionPrompt(question: string): string {
  const q = clean(question);
  return q ? `Question: ${q} Answer:` : '';
}

/** The prompt for `question` after the earlier `turns` of a conversation about the same image. */
export function chatPrompt(turns: readonly ChatTurn[], question: string): string {
  const q = clean(question);
  if (!q) throw new Error('the question is empty');
  const history = turns.map((t) =>
    clean(t.question) ? `Question: ${clean(t.question)} Answer: ${clean(t.answer)}.` : `${clean(t.answer)}.`,
  );
  return [...history, `Question: ${q} Answer:`].join(' ');
}
