/**
 * Fine-tuning data: examples (an image and the text to learn, optionally after a prompt) from JSON Lines or a
 * COCO captions file, turned into BLIP-2 training rows: `<image>` x num_query_tokens, BOS, prompt, target, eos,
 * with labels -100 on the image tokens, the prompt and the padding (the loss is taken on the target and eos).
 */
import type { ImageInput } from '../processing/image-input.js';
import type { Blip2Processor } from '../processing/processor.js';
import { captionPrompt, vqaPrompt } from '../processing/prompts.js';
import { IGNORE_INDEX } from '../kernels/cross-entropy.js';

export interface TrainExample {
  /** A path (relative to the data file), URL, or bytes. */
  image: ImageInput;
  /** What the model learns to say: the caption, or the answer. */
  text: string;
  /** VQA: the question (its prompt is "Question: {q} Answer:"). */
  question?: string;
  /** Where the example came from (file:line), for error messages. */
  source?: string;
}

export type PromptFormat = 'caption' | 'vqa';

export class DataError extends Error {
  override readonly name = 'DataError';
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * Parses a data file's text: JSON Lines of {"image", "text"} (a "question" makes it a VQA example; "caption" and
 * "answer" are accepted for "text"), or a COCO captions file ({"images": [{id, file_name}], "annotations":
 * [{image_id, caption}]}: one example per caption). `name` appears in errors.
 */
export function parseTrainingData(content: string, name: string): TrainExample[] {
  const trimmed = content.trim();
  if (trimmed === '') throw new DataError(`${name}: the file is empty`);
  if (trimmed.startsWith('{') && !trimmed.includes('\n')) {
    // One line holding one object: COCO, or a single JSON Lines example.
    const obj = parseJson(trimmed, `${name}:1`);
    if (isObject(obj) && Array.isArray(obj.annotations)) return fromCoco(obj, name);
  } else if (trimmed.startsWith('{') && /^\{\s*"(info|licenses|images|annotations|type)"/.test(trimmed)) {
    return fromCoco(parseJson(trimmed, name), name);
  }
  const out: TrainExample[] = [];
  content.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${name}:${i + 1}`;
    const row = parseJson(line, where);
    if (!isObject(row)) throw new DataError(`${where}: each line must be a JSON object like {"image": "cat.jpg", "text": "a cat"}`);
    const image = row.image ?? row.image_path ?? row.file_name;
    const text = row.text ?? row.caption ?? row.answer;
    if (typeof image !== 'string' || image === '') throw new DataError(`${where}: "image" must be a path or URL`);
    if (typeof text !== 'string' || text.trim() === '') throw new DataError(`${where}: "text" must be a non-empty string`);
    if (row.question !== undefined && (typeof row.question !== 'string' || row.question.trim() === '')) throw new DataError(`${where}: "question" must be a non-empty string`);
    out.push({ image, text, question: row.question as string | undefined, source: where });
  });
  if (out.length === 0) throw new DataError(`${name}: no examples`);
  return out;
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new DataError(`${where}: not valid JSON (${(e as Error).message})`);
  }
}

function fromCoco(obj: unknown, name: string): TrainExample[] {
  if (!isObject(obj) || !Array.isArray(obj.images) || !Array.isArray(obj.annotations)) {
    throw new DataError(`${name}: a COCO captions file needs "images" and "annotations" arrays`);
  }
  const files = new Map<unknown, string>();
  for (const im of obj.images) {
    if (isObject(im) && typeof im.file_name === 'string') files.set(im.id, im.file_name);
  }
  const out: TrainExample[] = [];
  obj.annotations.forEach((a, i) => {
    const where = `${name}: annotations[${i}]`;
    if (!isObject(a) || typeof a.caption !== 'string' || a.caption.trim() === '') throw new DataError(`${where}: needs a non-empty "caption"`);
    const file = files.get(a.image_id);
    if (file === undefined) throw new DataError(`${where}: image_id ${JSON.stringify(a.image_id)} is not in "images"`);
    out.push({ image: file, text: a.caption, source: where });
  });
  if (out.length === 0) throw new DataError(`${name}: no annotations`);
  return out;
}

export interface EncodeOptions {
  format: PromptFormat;
  /** Captioning: a prefix the caption follows ("a photo of"), not learned. */
  prompt?: string;
  /** The model's end-of-text id (config.text_config.eos_token_id): what generation stops at. */
  eosTokenId: number;
  /** Longest row allowed (query tokens + text): the language model's positions. */
  maxLength: number;
}

export interface EncodedExample {
  inputIds: number[];
  labels: number[];
}

/** One example as token ids and labels (see the module comment). Throws a DataError for a text that does not fit. */
export function encodeExample(processor: Blip2Processor, ex: TrainExample, o: EncodeOptions): EncodedExample {
  const tok = processor.tokenizer;
  let prompt: string;
  if (o.format === 'vqa') {
    if (!ex.question) throw new DataError(`${ex.source ?? 'an example'}: the vqa format needs a "question"`);
    prompt = vqaPrompt(ex.question);
  } else {
    prompt = captionPrompt(ex.question ? vqaPrompt(ex.question) : o.prompt);
  }
  // The prompt (with the image tokens and BOS) carries no loss; the target is encoded on its own so that
  // its first token does not merge with the prompt's last, then eos ends it as generation expects.
  const head = processor.encodePrompt(prompt);
  const target = tok.encode(prompt === '' ? ex.text.trim() : ` ${ex.text.trim()}`, { addSpecialTokens: false });
  const inputIds = [...head, ...target, o.eosTokenId];
  if (inputIds.length > o.maxLength) {
    throw new DataError(
      `${ex.source ?? 'an example'}: ${inputIds.length} tokens (${processor.numQueryTokens ?? 0} image tokens + text) exceed the model's ${o.maxLength} positions; shorten the text`,
    );
  }
  // Without a prompt BOS keeps its label, as in HF's fixtures (labels = input_ids off the image tokens).
  const image = processor.imageTokenIndex;
  const labels = inputIds.map((id, i) => (id === image || (prompt !== '' && i < head.length) ? IGNORE_INDEX : id));
  return { inputIds, labels };
}

/** Rows padded on the right (as HF's processor pads for training): ids with pad, mask 0, labels -100. */
export function collate(rows: readonly EncodedExample[], padTokenId: number): { input_ids: number[][]; attention_mask: number[][]; labels: number[][] } {
  const L = Math.max(...rows.map((r) => r.inputIds.length));
  const pad = <T>(a: readonly T[], v: T) => [...a, ...new Array<T>(L - a.length).fill(v)];
  return {
    input_ids: rows.map((r) => pad(r.inputIds, padTokenId)),
    attention_mask: rows.map((r) => pad(r.inputIds.map(() => 1), 0)),
    labels: rows.map((r) => pad(r.labels, IGNORE_INDEX)),
  };
}
