/**
 * Gets the bytes of an `image_url`: a base64 `data:` URL, or an http(s) URL fetched under the URL policy
 * (checked address, manual redirects re-checked at each hop, size and time limits).
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { ApiError } from './errors.js';
import { UrlPolicyError, checkUrlSyntax, resolveAllowedAddress, type ResolvedAddress, type UrlPolicy } from './url-policy.js';

export interface ImageFetchLimits {
  maxBytes: number;
  timeoutMs: number;
  maxRedirects: number;
}

/**
 * Every image that cannot be used is a 400 `invalid_request_error`, as OpenAI and vLLM answer (their clients raise
 * BadRequestError); `param` is where the image is in the request, e.g. `messages[0].content[1].image_url.url`.
 */
const DEFAULT_PARAM = 'image_url.url';

function tooLarge(limit: number, param: string): ApiError {
  return new ApiError(400, `image is larger than the limit of ${limit} bytes`, 'image_too_large', param);
}

/** Decodes `data:image/...;base64,...`. */
export function decodeDataUrl(url: string, maxBytes: number, param = DEFAULT_PARAM): Uint8Array {
  const comma = url.indexOf(',');
  if (comma < 0) throw new ApiError(400, 'data URL has no comma', 'invalid_image_url', param);
  const meta = url.slice(5, comma).toLowerCase().split(';').map((s) => s.trim());
  if (!meta.includes('base64')) throw new ApiError(400, 'data URLs must be base64-encoded (data:image/...;base64,...)', 'invalid_image_url', param);
  const mediaType = meta[0] ?? '';
  if (!mediaType.startsWith('image/')) {
    throw new ApiError(400, `data URL media type '${mediaType || '(none)'}' is not an image type`, 'unsupported_image_format', param);
  }
  const data = url.slice(comma + 1).replace(/\s+/g, '');
  // Buffer's decoder skips bad characters silently; a corrupt payload must be an error instead.
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data) || data.length % 4 === 1) {
    throw new ApiError(400, 'image data is not valid base64', 'invalid_base64', param);
  }
  if (Math.floor((data.length * 3) / 4) - 2 > maxBytes) throw tooLarge(maxBytes, param);
  const bytes = Buffer.from(data, 'base64');
  if (bytes.length > maxBytes) throw tooLarge(maxBytes, param);
  if (bytes.length === 0) throw new ApiError(400, 'image data is empty', 'invalid_base64', param);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function fixedLookup(target: ResolvedAddress): LookupFunction {
  return ((_host: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options?.all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  }) as LookupFunction;
}

function fetchFailed(url: URL, why: string, param: string): ApiError {
  return new ApiError(400, `cannot fetch image from ${url.origin}: ${why}`, 'image_fetch_failed', param);
}

/** One GET to the checked address; resolves with the response head (body unread). */
function get(url: URL, target: ResolvedAddress, signal: AbortSignal): Promise<IncomingMessage> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, {
      method: 'GET',
      // A fresh connection per hop: a pooled socket could belong to an address checked for another request.
      agent: false,
      lookup: fixedLookup(target),
      headers: { accept: 'image/*', 'user-agent': 'blip2-webgpu' },
      signal,
    });
    req.once('response', resolve);
    req.once('error', reject);
    req.end();
  });
}

async function readBody(res: IncomingMessage, maxBytes: number, param: string): Promise<Uint8Array> {
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    res.destroy();
    throw tooLarge(maxBytes, param);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      res.destroy();
      throw tooLarge(maxBytes, param);
    }
    chunks.push(chunk);
  }
  const all = Buffer.concat(chunks);
  return new Uint8Array(all.buffer, all.byteOffset, all.byteLength);
}

/** Fetches an http(s) image URL under `policy`. */
export async function fetchImageUrl(
  raw: string,
  policy: UrlPolicy,
  limits: ImageFetchLimits,
  outer?: AbortSignal,
  param = DEFAULT_PARAM,
): Promise<Uint8Array> {
  const timeout = AbortSignal.timeout(limits.timeoutMs);
  const signal = outer ? AbortSignal.any([outer, timeout]) : timeout;
  let url: URL;
  try {
    url = checkUrlSyntax(raw);
  } catch (e) {
    throw new ApiError(400, (e as Error).message, 'invalid_image_url', param);
  }
  for (let hop = 0; ; hop++) {
    let res: IncomingMessage;
    try {
      const target = await resolveAllowedAddress(url, policy);
      signal.throwIfAborted();
      res = await get(url, target, signal);
    } catch (e) {
      if (e instanceof UrlPolicyError) throw new ApiError(400, e.message, 'image_url_not_allowed', param);
      if (timeout.aborted) throw new ApiError(400, `fetching the image took longer than ${limits.timeoutMs} ms`, 'image_fetch_timeout', param);
      if (outer?.aborted) throw e;
      throw fetchFailed(url, (e as { code?: string }).code ?? (e as Error).message, param);
    }
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.destroy();
      if (hop >= limits.maxRedirects) throw fetchFailed(url, `more than ${limits.maxRedirects} redirects`, param);
      try {
        url = checkUrlSyntax(new URL(res.headers.location, url));
      } catch (e) {
        throw new ApiError(400, `image URL redirects to a refused URL: ${(e as Error).message}`, 'image_url_not_allowed', param);
      }
      continue;
    }
    if (status !== 200) {
      res.destroy();
      throw fetchFailed(url, `HTTP ${status}`, param);
    }
    try {
      return await readBody(res, limits.maxBytes, param);
    } catch (e) {
      if (e instanceof ApiError) throw e;
      if (timeout.aborted) throw new ApiError(400, `fetching the image took longer than ${limits.timeoutMs} ms`, 'image_fetch_timeout', param);
      if (outer?.aborted) throw e;
      throw fetchFailed(url, (e as Error).message, param);
    }
  }
}

/** Bytes of an `image_url.url` value. */
export async function loadImageUrl(
  url: string,
  policy: UrlPolicy,
  limits: ImageFetchLimits,
  signal?: AbortSignal,
  param = DEFAULT_PARAM,
): Promise<Uint8Array> {
  if (/^data:/i.test(url)) return decodeDataUrl(url, limits.maxBytes, param);
  return fetchImageUrl(url, policy, limits, signal, param);
}
