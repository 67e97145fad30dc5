/**
 * Validates an OpenAI `POST /v1/chat/completions` body and turns it into one BLIP-2 generation: the image,
 * the prompt built from the conversation, and the generation parameters.
 */
import type { GenerationParams } from './engine.js';
import { ApiError, badParam } from './errors.js';
import { GENERATION_RANGES, inRange, rangeMessage, type RangedParam } from './generation-ranges.js';
import { captionPrompt, chatPrompt, vqaPrompt, type ChatTurn } from '../processing/index.js';

export interface ChatRequestLimits {
  /** max_tokens when the client sends none. */
  defaultMaxTokens: number;
  /** Largest max_tokens accepted. */
  maxTokens: number;
  /** Largest n accepted. */
  maxN: number;
}

export interface ChatRequest {
  model: string;
  /** `image_url.url`: a data URL or an http(s) URL. */
  imageUrl: string;
  /** Where the image is in the body, as error `param`s name it: `messages[0].content[1].image_url.url`. */
  imageParam: string;
  prompt: string;
  params: GenerationParams;
  /** The field that set `params.maxNewTokens` (`max_completion_tokens` or `max_tokens`), null for the default. */
  maxTokensField: 'max_completion_tokens' | 'max_tokens' | null;
  stream: boolean;
  includeUsage: boolean;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function present(body: Json, key: string): boolean {
  return body[key] !== undefined && body[key] !== null;
}

/** A numeric field, checked against the range shared with the CLI (`hi` lowers the upper bound: server limits). */
function ranged(body: Json, param: RangedParam, key = GENERATION_RANGES[param].api, hi = Infinity): number | undefined {
  if (!present(body, key)) return undefined;
  const range = { ...GENERATION_RANGES[param], hi: Math.min(hi, GENERATION_RANGES[param].hi) };
  const v = body[key];
  if (!inRange(range, v)) throw badParam(key, rangeMessage(`'${key}'`, range, JSON.stringify(v)));
  return v;
}

function boolean(body: Json, key: string): boolean | undefined {
  if (!present(body, key)) return undefined;
  if (typeof body[key] !== 'boolean') throw badParam(key, `'${key}' must be a boolean`);
  return body[key] as boolean;
}

/** Options this server cannot honour: refusing them is better than silently ignoring what the client asked. */
function rejectUnsupported(body: Json): void {
  for (const key of ['frequency_penalty', 'presence_penalty']) {
    if (present(body, key) && body[key] !== 0) throw badParam(key, `'${key}' is not supported (only 0)`, 'unsupported_parameter');
  }
  if (body.logprobs === true || present(body, 'top_logprobs')) throw badParam('logprobs', 'logprobs are not supported', 'unsupported_parameter');
  for (const key of ['tools', 'functions']) {
    if (Array.isArray(body[key]) && (body[key] as unknown[]).length > 0) throw badParam(key, 'tools are not supported', 'unsupported_parameter');
  }
  if (isObject(body.logit_bias) && Object.keys(body.logit_bias).length > 0) {
    throw badParam('logit_bias', 'logit_bias is not supported', 'unsupported_parameter');
  }
  if (present(body, 'response_format') && !(isObject(body.response_format) && body.response_format.type === 'text')) {
    throw badParam('response_format', "only response_format {type: 'text'} is supported", 'unsupported_parameter');
  }
}

interface Conversation {
  turns: { question: string; answer: string }[];
  question: string;
  image: ImagePart;
}

interface ImagePart {
  url: string;
  /** Its path in the body, for errors. */
  param: string;
}

function contentParts(content: unknown, index: number, role: string): { texts: string[]; images: ImagePart[] } {
  const param = `messages[${index}].content`;
  if (typeof content === 'string') return { texts: [content], images: [] };
  if (content === null || content === undefined) {
    if (role === 'assistant') return { texts: [], images: [] };
    throw badParam(param, `${param} is missing`);
  }
  if (!Array.isArray(content)) throw badParam(param, `${param} must be a string or an array of content parts`);
  const texts: string[] = [];
  const images: ImagePart[] = [];
  content.forEach((part: unknown, j) => {
    const where = `${param}[${j}]`;
    if (!isObject(part)) throw badParam(where, `${where} must be an object`);
    if (part.type === 'text') {
      if (typeof part.text !== 'string') throw badParam(`${where}.text`, `${where}.text must be a string`);
      texts.push(part.text);
    } else if (part.type === 'image_url') {
      // The OpenAI form is {image_url: {url}}; a bare string is accepted as well.
      const param = isObject(part.image_url) ? `${where}.image_url.url` : `${where}.image_url`;
      const url = isObject(part.image_url) ? part.image_url.url : part.image_url;
      if (typeof url !== 'string' || url.length === 0) throw badParam(param, `${param} must be a non-empty string`);
      if (role !== 'user') throw badParam(where, `images are only accepted in user messages (${where} is in a ${role} message)`);
      images.push({ url, param });
    } else {
      throw badParam(`${where}.type`, `content part type ${JSON.stringify(part.type)} is not supported (use 'text' or 'image_url')`);
    }
  });
  return { texts, images };
}

/** Walks the messages: user/assistant pairs become turns, system and developer messages are ignored. */
function readConversation(messages: unknown): Conversation {
  if (!Array.isArray(messages) || messages.length === 0) throw badParam('messages', "'messages' must be a non-empty array");
  const turns: ChatTurn[] = [];
  let pending: string[] | null = null;
  let image: ImagePart | null = null;
  messages.forEach((m: unknown, i) => {
    if (!isObject(m)) throw badParam(`messages[${i}]`, `messages[${i}] must be an object`);
    const role = m.role;
    if (role === 'system' || role === 'developer') return;
    if (role !== 'user' && role !== 'assistant') {
      throw badParam(`messages[${i}].role`, `role ${JSON.stringify(role)} is not supported (use user, assistant or system)`);
    }
    const { texts, images } = contentParts(m.content, i, role);
    for (const part of images) {
      if (image !== null) throw badParam(part.param, `BLIP-2 takes exactly one image per conversation (the first is ${image.param})`, 'too_many_images');
      image = part;
    }
    if (role === 'user') {
      pending = [...(pending ?? []), ...texts];
    } else {
      if (pending === null) throw badParam(`messages[${i}]`, `messages[${i}] (assistant) must follow a user message`);
      turns.push({ question: (pending as string[]).join(' '), answer: texts.join(' ') });
      pending = null;
    }
  });
  if (pending === null) throw badParam('messages', 'the last message must be a user message');
  if (image === null) throw badParam('messages', 'no image: add an image_url content part to a user message', 'missing_image');
  return { turns, question: (pending as string[]).join(' ').trim(), image };
}

/** Ends a sentence with a period unless it already ends with punctuation (as the chat template does). */
function sentence(text: string): string {
  const t = text.trim();
  return /[.!?]$/.test(t) ? t : `${t}.`;
}

/**
 * `"Question: {q1} Answer: {a1}. Question: {q2} Answer:"`. Leading turns without a question (an image sent
 * alone, answered with a caption) become context sentences before the first question.
 */
function buildPrompt(c: Conversation): string {
  if (c.turns.length === 0) return c.question ? vqaPrompt(c.question) : captionPrompt('');
  if (!c.question) throw badParam('messages', 'the last user message needs a question when the conversation has earlier turns');
  const firstQuestion = c.turns.findIndex((t) => t.question.trim() !== '');
  const captions = firstQuestion < 0 ? c.turns : c.turns.slice(0, firstQuestion);
  const questions = firstQuestion < 0 ? [] : c.turns.slice(firstQuestion);
  if (questions.some((t) => t.question.trim() === '')) {
    throw badParam('messages', 'a user message without text may only open the conversation (as a caption request)');
  }
  const context = captions.map((t) => t.answer.trim()).filter(Boolean).map(sentence);
  return [...context, chatPrompt(questions, c.question)].join(' ');
}

function readStop(body: Json): string[] {
  const stop = body.stop;
  if (stop === undefined || stop === null) return [];
  const list = typeof stop === 'string' ? [stop] : stop;
  if (!Array.isArray(list) || list.length > 4 || !list.every((s) => typeof s === 'string' && s.length > 0)) {
    throw badParam('stop', "'stop' must be a non-empty string or an array of at most 4 of them");
  }
  return list as string[];
}

function readParams(body: Json, limits: ChatRequestLimits): GenerationParams {
  const maxCompletion = ranged(body, 'maxNewTokens', 'max_completion_tokens', limits.maxTokens);
  const maxTokens = ranged(body, 'maxNewTokens', 'max_tokens', limits.maxTokens);
  const temperatureGiven = ranged(body, 'temperature');
  const topP = ranged(body, 'topP');
  const topK = ranged(body, 'topK');
  // The checkpoint's own default is greedy decoding; sampling starts when the client asks for it.
  const temperature = temperatureGiven ?? (topP !== undefined || topK ? 1 : 0);
  const numBeams = ranged(body, 'numBeams') ?? 1;
  const n = ranged(body, 'n', 'n', limits.maxN) ?? 1;
  const params: GenerationParams = {
    maxNewTokens: maxCompletion ?? maxTokens ?? limits.defaultMaxTokens,
    numBeams,
    temperature,
    topP: topP ?? 1,
    topK: topK ?? 0,
    seed: ranged(body, 'seed') ?? 0,
    stop: readStop(body),
    repetitionPenalty: ranged(body, 'repetitionPenalty') ?? 1,
    n,
  };
  if (numBeams > 1 && n > numBeams) throw badParam('n', `'n' (${n}) cannot exceed 'num_beams' (${numBeams})`);
  if (numBeams === 1 && temperature === 0 && n > 1) {
    throw badParam('n', "'n' > 1 needs sampling (temperature > 0) or beam search (num_beams >= n); greedy decoding has one answer");
  }
  return params;
}

/** The `model` a body asks for, when it names one: checked before anything else, as OpenAI does. */
export function requestedModel(body: unknown): string | null {
  return isObject(body) && typeof body.model === 'string' && body.model.length > 0 ? body.model : null;
}

/** Parses a request body (already JSON-decoded). Throws `ApiError` (400) with the offending field. */
export function parseChatRequest(body: unknown, limits: ChatRequestLimits): ChatRequest {
  if (!isObject(body)) throw new ApiError(400, 'the request body must be a JSON object', 'invalid_request');
  if (typeof body.model !== 'string' || body.model.length === 0) throw badParam('model', "'model' must be a non-empty string", 'missing_model');
  rejectUnsupported(body);
  const conversation = readConversation(body.messages);
  const stream = boolean(body, 'stream') ?? false;
  let includeUsage = false;
  if (present(body, 'stream_options')) {
    if (!isObject(body.stream_options)) throw badParam('stream_options', "'stream_options' must be an object");
    includeUsage = boolean(body.stream_options, 'include_usage') ?? false;
  }
  return {
    model: body.model,
    imageUrl: conversation.image.url,
    imageParam: conversation.image.param,
    prompt: buildPrompt(conversation),
    params: readParams(body, limits),
    maxTokensField: present(body, 'max_completion_tokens') ? 'max_completion_tokens' : present(body, 'max_tokens') ? 'max_tokens' : null,
    stream,
    includeUsage,
  };
}
