/** `POST /v1/chat/completions`: from a validated request to an OpenAI-shaped response, plain or streamed. */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseChatRequest, requestedModel, type ChatRequest } from './chat-request.js';
import { contextOverflow } from './context-limit.js';
import { EngineInputError, EngineLostError, type Engine, type GenerateResult } from './engine.js';
import { ApiError } from './errors.js';
import { SseStream, readJsonBody, sendJson } from './http-io.js';
import { ImageInputError, checkPixelLimit, readImageHeader } from '../processing/index.js';
import { loadImageUrl } from './image-source.js';
import { QueueFullError, SchedulerClosedError, type RequestQueue } from './scheduler.js';
import type { ServerSettings } from './server-options.js';
import { systemResolver } from './url-policy.js';

export interface CompletionContext {
  engine: Engine;
  scheduler: RequestQueue;
  settings: ServerSettings;
  /** Model names a request may use. */
  modelNames: ReadonlySet<string>;
  /** The model id responses carry (the first served name), whatever alias the request used. */
  servedModel: string;
  /** Receives failures that reach clients only as a generic 500, so that operators can see them. */
  reportError: (e: unknown) => void;
}

async function loadImage(ctx: CompletionContext, request: ChatRequest, signal: AbortSignal): Promise<Uint8Array> {
  const { limits } = ctx.settings;
  const bytes = await loadImageUrl(
    request.imageUrl,
    { allowPrivate: ctx.settings.allowPrivateImageUrls, resolver: ctx.settings.resolver ?? systemResolver },
    { maxBytes: limits.maxImageBytes, timeoutMs: limits.imageFetchTimeoutMs, maxRedirects: limits.maxRedirects },
    signal,
    request.imageParam,
  );
  try {
    checkPixelLimit(readImageHeader(bytes), limits.maxImagePixels);
  } catch (e) {
    throw e instanceof ImageInputError ? imageError(e, request.imageParam) : e;
  }
  return bytes;
}

/**
 * An image that cannot be used is a 400 `invalid_request_error` whatever the reason, as OpenAI and vLLM answer
 * (the official clients raise BadRequestError); the code says which reason.
 */
export function imageError(e: ImageInputError, param: string): ApiError {
  switch (e.code) {
    case 'not-an-image':
    case 'unsupported':
      return new ApiError(400, e.message, 'unsupported_image_format', param);
    case 'too-large':
      return new ApiError(400, e.message, 'image_too_large', param);
    default:
      return new ApiError(400, `the image cannot be used: ${e.message}`, 'invalid_image', param);
  }
}

async function checkTokens(ctx: CompletionContext, request: ChatRequest): Promise<void> {
  const { limits } = ctx.settings;
  const textTokens = await ctx.engine.countTokens(request.prompt);
  if (textTokens > limits.maxPromptTokens) {
    throw new ApiError(400, `the conversation is ${textTokens} tokens, more than the limit of ${limits.maxPromptTokens}`, 'context_length_exceeded', 'messages');
  }
  const context = ctx.engine.contextLength;
  if (context === undefined) return;
  const maxName = request.maxTokensField ?? 'max_tokens';
  const overflow = contextOverflow(await ctx.engine.promptTokens(request.prompt), request.params.maxNewTokens, context, maxName, request.maxTokensField === null);
  if (overflow) throw new ApiError(400, overflow, 'context_length_exceeded', 'messages');
}

/** What the engine said about one request's input, as the client's error. */
function engineInputError(e: EngineInputError, request: ChatRequest): ApiError {
  if (e.code === 'context_length_exceeded') return new ApiError(400, e.message, e.code, 'messages');
  if (e.code === 'invalid_parameters') return new ApiError(400, e.message, e.code);
  return new ApiError(400, e.message, e.code, request.imageParam);
}

/** OpenAI's answer for a model it does not serve: 404 `model_not_found`, of type `invalid_request_error`. */
export function modelNotFound(model: string, served: string): ApiError {
  return new ApiError(404, `the model '${model}' does not exist; this server serves '${served}'`, 'model_not_found', 'model', 'invalid_request_error');
}

/** Maps what the engine or the queue threw to the client's error. */
export function toApiError(e: unknown, timedOut: boolean): ApiError {
  if (e instanceof ApiError) return e;
  if (timedOut) return new ApiError(503, 'the request took longer than the server allows', 'request_timeout');
  if (e instanceof QueueFullError) return new ApiError(429, `${e.message}; retry later`, 'rate_limit_exceeded', null, 'rate_limit_error', { 'retry-after': '1' });
  if (e instanceof SchedulerClosedError) return new ApiError(503, 'the server is shutting down', 'server_shutting_down', null, 'server_error', { connection: 'close' });
  if (e instanceof EngineLostError) return deviceLost();
  if (e instanceof EngineInputError) return new ApiError(400, e.message, e.code, e.code === 'context_length_exceeded' ? 'messages' : null);
  return new ApiError(500, 'the model failed to generate a response', 'internal_error');
}

/** 503 once the engine's GPU device is lost: the request can be retried on another replica, or after a restart. */
export function deviceLost(): ApiError {
  return new ApiError(503, "the server's GPU device was lost; retry the request", 'device_lost', null, 'server_error', { connection: 'close' });
}

interface ResponseIds {
  id: string;
  created: number;
  model: string;
}

function usage(result: GenerateResult) {
  return {
    prompt_tokens: result.promptTokens,
    completion_tokens: result.completionTokens,
    total_tokens: result.promptTokens + result.completionTokens,
  };
}

function completionBody(ids: ResponseIds, result: GenerateResult) {
  return {
    id: ids.id,
    object: 'chat.completion',
    created: ids.created,
    model: ids.model,
    choices: result.sequences.map((s, index) => ({
      index,
      message: { role: 'assistant', content: s.text, refusal: null },
      logprobs: null,
      finish_reason: s.finishReason,
    })),
    usage: usage(result),
    system_fingerprint: null,
  };
}

function chunk(ids: ResponseIds, choices: unknown[], includeUsage: boolean) {
  return {
    id: ids.id,
    object: 'chat.completion.chunk',
    created: ids.created,
    model: ids.model,
    system_fingerprint: null,
    choices,
    ...(includeUsage ? { usage: null } : {}),
  };
}

/** Handles one request; `signal` aborts when the client goes away or the time limit passes. */
export async function handleChatCompletion(
  ctx: CompletionContext,
  req: IncomingMessage,
  res: ServerResponse,
  signal: AbortSignal,
  timedOut: () => boolean,
): Promise<number> {
  const { settings } = ctx;
  const body = await readJsonBody(req, settings.limits.maxBodyBytes);
  // An unknown model is a 404 whatever else is wrong with the request, as OpenAI answers.
  const model = requestedModel(body);
  if (model !== null && !ctx.modelNames.has(model)) throw modelNotFound(model, ctx.servedModel);
  const request = parseChatRequest(body, settings.limits);
  await checkTokens(ctx, request);
  const image = await loadImage(ctx, request, signal);
  const ids: ResponseIds = { id: `chatcmpl-${randomUUID().replace(/-/g, '')}`, created: Math.floor(Date.now() / 1000), model: ctx.servedModel };
  const job = { image, prompt: request.prompt, params: request.params };
  const inputError = (e: unknown) => {
    throw e instanceof EngineInputError ? engineInputError(e, request) : e;
  };

  if (!request.stream) {
    const result = await ctx.scheduler.submit(job, { signal }).catch(inputError);
    sendJson(res, 200, completionBody(ids, result));
    return 200;
  }

  // The event stream opens with the first token, so that errors before it are plain JSON errors.
  let started = false;
  const sse = new SseStream(res);
  const start = () => {
    if (started) return;
    started = true;
    sse.open();
    for (let c = 0; c < request.params.n; c++) {
      sse.send(chunk(ids, [{ index: c, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], request.includeUsage));
    }
  };
  const streamed = new Array<string>(request.params.n).fill('');
  const sendText = (choice: number, text: string) => {
    streamed[choice] += text;
    sse.send(chunk(ids, [{ index: choice, delta: { content: text }, logprobs: null, finish_reason: null }], request.includeUsage));
  };
  // The queue may refuse the request (429/503): that throws here, before any 200 goes out.
  const pending = ctx.scheduler.submit(job, {
    signal,
    onToken: (e) => {
      start();
      if (e.text) sendText(e.choice, e.text);
    },
  });
  let result: GenerateResult;
  try {
    result = await pending.catch(inputError);
  } catch (e) {
    // Before the stream opened, the caller answers with a plain JSON error.
    if (!started) throw e;
    // The client hung up (499, as servers log it): there is nobody to tell.
    if (sse.closed) return 499;
    const error = toApiError(e, timedOut());
    if (error.status === 500) ctx.reportError(e);
    sse.send(error.body());
    sse.end();
    return error.status;
  }
  start();
  result.sequences.forEach((s, index) => {
    // An engine that streamed less than the final text (beam search streams nothing) sends the rest now.
    if (s.text !== streamed[index] && s.text.startsWith(streamed[index]!)) sendText(index, s.text.slice(streamed[index]!.length));
    sse.send(chunk(ids, [{ index, delta: {}, logprobs: null, finish_reason: s.finishReason }], request.includeUsage));
  });
  if (request.includeUsage) sse.send({ ...chunk(ids, [], false), usage: usage(result) });
  sse.end();
  return 200;
}
