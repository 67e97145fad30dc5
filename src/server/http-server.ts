/**
 * The OpenAI-compatible HTTP server: routing, API-key check, per-request time limit, request log and graceful
 * shutdown. The work itself is in `completions.ts` and the queue in `scheduler.ts`.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Server as NetServer, type AddressInfo } from 'node:net';
import { deviceLost, handleChatCompletion, modelNotFound, toApiError, type CompletionContext } from './completions.js';
import { ContinuousScheduler } from './continuous-scheduler.js';
import type { Engine, EngineLostError } from './engine.js';
import { ApiError } from './errors.js';
import { sendError, sendJson } from './http-io.js';
import { Scheduler, type RequestQueue } from './scheduler.js';
import { defaultServerSettings, type ServerSettings, type ServerSettingsInput } from './server-options.js';

function keyMatches(header: string | undefined, apiKey: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
  if (!m) return false;
  const given = Buffer.from(m[1]!.trim());
  const expected = Buffer.from(apiKey);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * An error message as it may go to the log: data URLs and long base64 runs (a JSON parser's excerpt of a body
 * can hold some) are cut out, and the message is capped.
 */
function loggable(message: string): string {
  const cut = message
    .replace(/data:[^,\s]{0,100},[A-Za-z0-9+/=\s]*/gi, 'data:…')
    .replace(/[A-Za-z0-9+/=]{40,}/g, '…')
    .replace(/\s+/g, ' ');
  return cut.length > 300 ? `${cut.slice(0, 299)}…` : cut;
}

/** How long a shutting-down server keeps answering requests that reach it on connections already open. */
const SHUTDOWN_LINGER_MS = 1000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Reads and drops a request's body, for at most `ms`. */
function drainBody(req: IncomingMessage, ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (req.readableEnded) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      req.off('end', done).off('error', done).off('close', done);
      resolve();
    }
    req.once('end', done).once('error', done).once('close', done);
    req.resume();
  });
}

export class Blip2Server {
  private readonly http: Server;
  private readonly scheduler: RequestQueue;
  private readonly context: CompletionContext;
  /** The batching in use: continuous when asked for and the engine has a decode batch. */
  readonly batching: 'continuous' | 'static';
  /** Resolves when the engine is lost (its GPU device): requests then fail with 503 and /health says so. */
  readonly lost: Promise<EngineLostError>;
  private lostError: EngineLostError | null = null;
  private closing: Promise<void> | null = null;
  /** The served model ids, listed by /v1/models; the first is the one responses carry. */
  readonly servedNames: readonly string[];
  private readonly created = Math.floor(Date.now() / 1000);
  private inFlight = 0;
  private boundPort = 0;

  private constructor(
    readonly engine: Engine,
    readonly settings: ServerSettings,
  ) {
    const queueOptions = { maxBatch: settings.maxBatch, maxConcurrent: settings.maxConcurrentBatches, maxQueue: settings.maxQueue };
    const createDecodeBatch = engine.createDecodeBatch?.bind(engine);
    if (settings.batching === 'continuous' && createDecodeBatch) {
      this.scheduler = new ContinuousScheduler(engine, createDecodeBatch, queueOptions);
      this.batching = 'continuous';
    } else {
      this.scheduler = new Scheduler(engine, queueOptions);
      this.batching = 'static';
    }
    this.lost = new Promise((resolve) => {
      void engine.lost?.then((e) => {
        this.lostError = e;
        this.reportError(e);
        // Nothing queued or running can finish: everybody gets a 503 now.
        void this.scheduler.close(0, e);
        resolve(e);
      });
    });
    // vLLM's --served-model-name: the names clients may use, the first one in responses. Without them the
    // engine's id is served, and its last path segment (`blip2-opt-2.7b` of `Salesforce/blip2-opt-2.7b`) is accepted too.
    const explicit = settings.servedModelNames?.filter((n) => n.length > 0) ?? [];
    this.servedNames = explicit.length ? [...new Set(explicit)] : [engine.modelId];
    const names = new Set(this.servedNames);
    const base = engine.modelId.split('/').filter(Boolean).pop();
    if (!explicit.length && base) names.add(base);
    this.context = {
      engine,
      scheduler: this.scheduler,
      settings,
      modelNames: names,
      servedModel: this.servedNames[0]!,
      reportError: (e) => this.reportError(e),
    };
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
   *
   * Connections already open are not dropped at once (http.Server.close would drop the idle ones): a request
   * that a client wrote before the shutdown but the server had not parsed yet arrives on such a connection, and
   * it gets its 503 (Connection: close) instead of a reset, for `SHUTDOWN_LINGER_MS`. Only then are the idle
   * connections closed, and every connection once the requests in flight are done.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const lingerUntil = Date.now() + SHUTDOWN_LINGER_MS;
      // net.Server's close: stop listening, keep the open connections (resolves once they are all gone).
      const stopped = new Promise<void>((resolve) => NetServer.prototype.close.call(this.http, () => resolve()));
      await this.scheduler.close(this.settings.shutdownGraceMs);
      // Requests still reading their body or fetching an image get a moment to reach the closed queue.
      const settle = async (until: number) => {
        while (this.inFlight > 0 && Date.now() < until) await sleep(10);
      };
      await settle(Date.now() + 2000);
      while (Date.now() < lingerUntil && (await this.openConnections()) > 0) await sleep(10);
      this.http.closeIdleConnections();
      await settle(Date.now() + 2000); // a request parsed during the linger is answered 503 quickly
      this.http.closeAllConnections();
      await stopped;
    })();
    return this.closing;
  }

  private openConnections(): Promise<number> {
    return new Promise((resolve) => this.http.getConnections((e, n) => resolve(e ? 0 : n)));
  }

  private reportError(e: unknown): void {
    this.settings.log?.(`error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  }

  /** One line per request; a refused one also says why (type, code, param, message: never image data). */
  private log(req: IncomingMessage, status: number, started: number, error?: ApiError): void {
    const why = error ? ` ${error.type} ${error.code ?? '-'}${error.param ? ` (${error.param})` : ''}: ${loggable(error.message)}` : '';
    this.settings.log?.(`${req.method} ${req.url} ${status} ${Date.now() - started} ms${why}`);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    this.inFlight++;
    let status = 500;
    let error: ApiError | undefined;
    try {
      status = await this.route(req, res);
    } catch (e) {
      error = e instanceof ApiError ? e : toApiError(e, false);
      if (error.status === 500 && !(e instanceof ApiError)) this.reportError(e);
      status = error.status;
      sendError(res, error);
    } finally {
      this.inFlight--;
      this.log(req, status, started, error);
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<number> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    const only = (allowed: string) => {
      if (method !== allowed) throw new ApiError(405, `${method} is not allowed on ${path}`, 'method_not_allowed', null, 'invalid_request_error', { allow: allowed });
    };
    if (this.closing) {
      // Read the body first: answering while the client still writes, then closing, can reset the connection
      // under the client before it reads the answer.
      await drainBody(req, SHUTDOWN_LINGER_MS);
      throw new ApiError(503, 'the server is shutting down', 'server_shutting_down', null, 'server_error', { connection: 'close' });
    }
    if (path === '/health') {
      only('GET');
      const status = this.lostError ? 503 : 200;
      sendJson(res, status, this.health());
      return status;
    }
    if (this.lostError) {
      req.resume();
      throw deviceLost();
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
      sendJson(res, 200, { object: 'list', data: this.servedNames.map((id) => this.modelEntry(id)) });
      return 200;
    }
    if (path.startsWith('/v1/models/')) {
      only('GET');
      const id = decodeURIComponent(path.slice('/v1/models/'.length));
      if (!this.context.modelNames.has(id)) throw modelNotFound(id, this.context.servedModel);
      sendJson(res, 200, this.modelEntry(this.servedNames.includes(id) ? id : this.context.servedModel));
      return 200;
    }
    if (path === '/v1/chat/completions') {
      only('POST');
      return this.completion(req, res);
    }
    throw new ApiError(404, `no route ${path}`, 'not_found');
  }

  /** /health: 200 `ok`, or 503 `device_lost` (load balancers and supervisors take the replica out). */
  private health() {
    const rss = process.memoryUsage();
    const gpu = this.engine.memory?.();
    return {
      status: this.lostError ? 'device_lost' : 'ok',
      model: this.servedNames[0],
      batching: this.batching,
      queued: this.scheduler.waiting,
      running: this.scheduler.running,
      running_batches: this.scheduler.runningBatches,
      memory: {
        rss_bytes: rss.rss,
        heap_used_bytes: rss.heapUsed,
        ...(gpu ? { gpu_live_bytes: gpu.gpuLiveBytes, gpu_peak_bytes: gpu.gpuPeakBytes, gpu_pooled_bytes: gpu.gpuPooledBytes } : {}),
      },
    };
  }

  private modelEntry(id: string) {
    return { id, object: 'model', created: this.created, owned_by: 'blip2-webgpu' };
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
