/** Reading JSON requests and writing JSON / error / server-sent-event responses with Node's `http`. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './errors.js';

/** Past this many bytes an oversized body is no longer drained (so the 413 can be read) but cut off. */
const DRAIN_LIMIT = 64 * 1024 * 1024;

function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    req.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (total <= maxBytes) chunks.push(chunk);
      else if (total > maxBytes + DRAIN_LIMIT) req.destroy();
    });
    req.once('end', () => {
      if (total > maxBytes) reject(new ApiError(413, `request body is larger than the limit of ${maxBytes} bytes`, 'request_too_large'));
      else resolve(Buffer.concat(chunks));
    });
    req.once('error', reject);
    req.once('close', () => reject(new Error('the client closed the connection')));
  });
}

export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    req.resume();
    throw new ApiError(415, `Content-Type must be application/json (got '${type || 'none'}')`, 'unsupported_media_type');
  }
  const text = (await readBody(req, maxBytes)).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `request body is not valid JSON: ${(e as Error).message}`, 'invalid_json');
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export function sendError(res: ServerResponse, error: ApiError): void {
  sendJson(res, error.status, error.body(), error.headers);
}

/** A server-sent-event stream in OpenAI's format: `data: <json>` events, ended by `data: [DONE]`. */
export class SseStream {
  constructor(private readonly res: ServerResponse) {}

  open(): void {
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    this.res.flushHeaders();
  }

  get closed(): boolean {
    return this.res.writableEnded || this.res.destroyed;
  }

  send(data: unknown): void {
    if (!this.closed) this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  end(): void {
    if (this.closed) return;
    this.res.write('data: [DONE]\n\n');
    this.res.end();
  }
}
