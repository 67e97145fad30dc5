/**
 * The OpenAI-compatible HTTP server: routing, API-key check, per-request time limit, request log and graceful
 * shutdown. The work itself is in `completions.ts` and the queue in `scheduler.ts`.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { handleChatCompletion, toApiError, type CompletionContext } from './completions.js';
import type { Engine } from './engine.js';
import { ApiError } from './errors.js';
import { sendError, sendJson } from './http-io.js';
import { Scheduler } from './scheduler.js';
import { defaultServerSettings, type ServerSettings, type ServerSettingsInput } from './server-options.js';

function keyMatches(header: string | undefined, apiKey: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  if (!m) return false;
  const given = Buffer.from(m[1]!.trim());
  const expected = Buffer.from(apiKey);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export class Blip2Server {
  private readonly http: Server;
  private readonly scheduler: Scheduler;
  private readonly context: CompletionContext;
  private closing: Promise<void> | null = null;
  private readonly created = Math.floor(Date.now() / 1000);
  private inFlight = 0;
  private boundPort = 0;

  private constructor(
    readonly engine: Engine,
    readonly settings: ServerSettings,
  ) {
    this.scheduler = new Scheduler(engine, {
      maxBatch: settings.maxBatch,
      maxConcurrent: settings.maxConcurrentBatches,
      maxQueue: settings.maxQueue,
    });
    const names = new Set([engine.modelId]);
    const base = engine.modelId.split('/').filter(Boolean).pop();
    if (base) names.add(base);
    this.context = { engine, scheduler: this.scheduler, settings, modelNames: names, reportError: (e) => this.reportError(e) };
    this.http = createServer((req, res) => void this.handle(req, res));
    // Generation can be slow; Node's default request timeout (5 min) must not cut a long stream.
    this.http.requestTimeout = 0;
  }

  /** Starts listening; resolves once the port is bound. */
  static async start(engine: Engine, settings: ServerSettingsInput = {}): Promise<Blip2Server> {
    const server = new Blip2Server(engine, defaultServerSettings(settings));
    await new Promise<void>((resolve, reject) => {
      server.http.once('error', reject);
      server.http.listen(server.settings.port, server.settings.host, () => {
        server.http.off('error', reject);
        server.boundPort = (server.http.address() as AddressInfo).port;
        resolve();
      });
    });
    return server;
  }

  get port(): number {
    return this.boundPort;
  }

  /** Base URL, e.g. `http://127.0.0.1:8000`. */
  get url(): string {
    const host = this.settings.host.includes(':') ? `[${this.settings.host}]` : this.settings.host;
    return `http://${host}:${this.port}`;
  }

  /** Sizes of the engine batches so far. */
  get batchSizes(): readonly number[] {
    return this.scheduler.batchSizes;
  }

  get isClosing(): boolean {
    return this.closing !== null;
  }

  /**
   * Graceful shutdown: stops accepting connections, answers new requests with 503, lets in-flight requests
   * finish for up to `shutdownGraceMs` and then fails them, closes every connection.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => this.http.close(() => resolve()));
      this.http.closeIdleConnections();
      await this.scheduler.close(this.settings.shutdownGraceMs);
      // Requests still reading their body or fetching an image get a moment to reach the closed queue.
      const deadline = Date.now() + 2000;
      while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      this.http.closeAllConnections();
      await stopped;
    })();
    return this.closing;
  }

  private reportError(e: unknown): void {
    this.settings.log?.(`error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  }

  private log(req: IncomingMessage, status: number, started: number): void {
    this.settings.log?.(`${req.method} ${req.url} ${status} ${Date.now() - started} ms`);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    this.inFlight++;
    let status = 500;
    try {
      status = await this.route(req, res);
    } catch (e) {
      const error = e instanceof ApiError ? e : toApiError(e, false);
      if (error.status === 500 && !(e instanceof ApiError)) this.reportError(e);
      status = error.status;
      sendError(res, error);
    } finally {
      this.inFlight--;
      this.log(req, status, started);
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<number> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    const only = (allowed: string) => {
      if (method !== allowed) throw new ApiError(405, `${method} is not allowed on ${path}`, 'method_not_allowed', null, 'invalid_request_error', { allow: allowed });
    };
    if (this.closing) {
      req.resume();
      throw new ApiError(503, 'the server is shutting down', 'server_shutting_down', null, 'server_error', { connection: 'close' });
    }
    if (path === '/health') {
      only('GET');
      sendJson(res, 200, { status: 'ok', model: this.engine.modelId, queued: this.scheduler.waiting, running_batches: this.scheduler.runningBatches });
      return 200;
    }
    if (!path.startsWith('/v1/') && path !== '/v1') throw new ApiError(404, `no route ${path}`, 'not_found');
    if (this.settings.apiKey !== undefined && !keyMatches(req.headers.authorization, this.settings.apiKey)) {
      req.resume();
      throw new ApiError(401, 'invalid or missing API key (send Authorization: Bearer <key>)', 'invalid_api_key', null, 'authentication_error', {
        'www-authenticate': 'Bearer',
      });
    }
    if (path === '/v1/models') {
      only('GET');
      sendJson(res, 200, { object: 'list', data: [this.modelEntry()] });
      return 200;
    }
    if (path.startsWith('/v1/models/')) {
      only('GET');
      const id = decodeURIComponent(path.slice('/v1/models/'.length));
      if (!this.context.modelNames.has(id)) throw new ApiError(404, `the model '${id}' does not exist`, 'model_not_found', 'model');
      sendJson(res, 200, this.modelEntry());
      return 200;
    }
    if (path === '/v1/chat/completions') {
      only('POST');
      return this.completion(req, res);
    }
    throw new ApiError(404, `no route ${path}`, 'not_found');
  }

  private modelEntry() {
    return { id: this.engine.modelId, object: 'model', created: this.created, owned_by: 'blip2-webgpu' };
  }

  private async completion(req: IncomingMessage, res: ServerResponse): Promise<number> {
    const controller = new AbortController();
    let timedOut = false;
    let disconnected = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error('request time limit'));
    }, this.settings.limits.requestTimeoutMs);
    // The client hanging up before the answer is complete cancels its work.
    const onClose = () => {
      if (res.writableFinished) return;
      disconnected = true;
      controller.abort(new Error('client disconnected'));
    };
    res.once('close', onClose);
    try {
      return await handleChatCompletion(this.context, req, res, controller.signal, () => timedOut);
    } catch (e) {
      // Nobody is left to answer; 499 is the usual log status for a request the client closed.
      if (disconnected) return 499;
      const error = toApiError(e, timedOut);
      if (error.status === 500 && !(e instanceof ApiError)) this.reportError(e);
      throw error;
    } finally {
      clearTimeout(timer);
      res.off('close', onClose);
    }
  }
}
