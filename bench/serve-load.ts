/**
 * The load generator of `npm run bench:serve`: a workload of chat requests (captions and questions, mixed
 * answer lengths, images as base64 data URLs), sent to a server at a fixed concurrency (closed loop) or at
 * Poisson arrival times (open loop), streamed so that the time to the first token is seen; and the statistics
 * of what came back. Loopback only: the URL is checked before anything is sent.
 */
import { isIP } from 'node:net';

export interface WorkItem {
  body: Record<string, unknown>;
  /** Prompt kind, for the report. */
  kind: 'caption' | 'question';
  maxTokens: number;
}

export interface RequestRecord {
  ok: boolean;
  /** ms from send to the first streamed chunk (the first token); null when none came. */
  ttftMs: number | null;
  latencyMs: number;
  completionTokens: number;
  error?: string;
}

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  mean: number;
}

export interface LoadSummary {
  requests: number;
  completed: number;
  errors: number;
  error_samples: string[];
  wall_s: number;
  requests_per_s: number;
  tokens_per_s: number;
  completion_tokens: number;
  ttft_ms: Percentiles;
  latency_ms: Percentiles;
}

/** Throws unless `url` is http on a loopback IP literal (127.0.0.0/8 or ::1): benchmarks never leave the machine. */
export function assertLoopback(url: string): void {
  const u = new URL(url);
  // The URL parser normalises IPv6 literals, so every spelling of ::1 reads [::1] here.
  const loopback = (isIP(u.hostname) === 4 && u.hostname.split('.')[0] === '127') || u.hostname === '[::1]';
  if (u.protocol !== 'http:' || !loopback) throw new Error(`the benchmark only talks to loopback addresses (127.0.0.0/8, ::1), not ${url}`);
}

/** xorshift32: the workload and arrival times are a function of the seed. */
export function seeded(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/** Linear interpolation between closest ranks (numpy's default). */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function percentiles(values: readonly number[]): Percentiles {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  return { p50: percentile(s, 0.5), p95: percentile(s, 0.95), p99: percentile(s, 0.99), mean };
}

/** Sends one streamed request and records when its first chunk and its end arrived. */
export async function sendOne(baseUrl: string, item: WorkItem): Promise<RequestRecord> {
  const start = performance.now();
  let ttftMs: number | null = null;
  try {
    const res = await fetch(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...item.body, stream: true, stream_options: { include_usage: true } }),
    });
    if (res.status !== 200 || !res.body) {
      const text = await res.text();
      return { ok: false, ttftMs: null, latencyMs: performance.now() - start, completionTokens: 0, error: `HTTP ${res.status}: ${text.slice(0, 200)}` };
    }
    const decoder = new TextDecoder();
    let buffered = '';
    let tokens = 0;
    let error: string | undefined;
    const reader = res.body.getReader();
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      const chunk = read.value;
      ttftMs ??= performance.now() - start;
      buffered += decoder.decode(chunk, { stream: true });
      let cut: number;
      while ((cut = buffered.indexOf('\n\n')) >= 0) {
        const event = buffered.slice(0, cut).trim();
        buffered = buffered.slice(cut + 2);
        if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
        const data = JSON.parse(event.slice(6)) as { usage?: { completion_tokens: number } | null; error?: { message: string; code: string } };
        if (data.error) error = `${data.error.code}: ${data.error.message}`;
        if (data.usage) tokens = data.usage.completion_tokens;
      }
    }
    const latencyMs = performance.now() - start;
    return error ? { ok: false, ttftMs, latencyMs, completionTokens: 0, error } : { ok: true, ttftMs, latencyMs, completionTokens: tokens };
  } catch (e) {
    return { ok: false, ttftMs, latencyMs: performance.now() - start, completionTokens: 0, error: (e as Error).message };
  }
}

/** `clients` workers, each sending its next request as soon as its last one ended, until the work is done. */
export async function closedLoop(baseUrl: string, work: readonly WorkItem[], clients: number): Promise<{ records: RequestRecord[]; wallMs: number }> {
  const records: RequestRecord[] = new Array(work.length);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < work.length) {
        const i = next++;
        records[i] = await sendOne(baseUrl, work[i]!);
      }
    }),
  );
  return { records, wallMs: performance.now() - t0 };
}

/** Requests sent at Poisson arrival times (exponential gaps of mean 1/rate s), whatever is still running. */
export async function openLoop(baseUrl: string, work: readonly WorkItem[], rate: number, seed: number): Promise<{ records: RequestRecord[]; wallMs: number }> {
  const random = seeded(seed ^ 0x5bd1e995);
  let at = 0;
  const times = work.map(() => (at += -Math.log(1 - random()) / rate) * 1000);
  const t0 = performance.now();
  const records = await Promise.all(
    work.map(async (item, i) => {
      const wait = t0 + times[i]! - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      return sendOne(baseUrl, item);
    }),
  );
  return { records, wallMs: performance.now() - t0 };
}

export function summarize(records: readonly RequestRecord[], wallMs: number): LoadSummary {
  const ok = records.filter((r) => r.ok);
  const tokens = ok.reduce((n, r) => n + r.completionTokens, 0);
  const wall_s = wallMs / 1000;
  const failed = records.filter((r) => !r.ok);
  return {
    requests: records.length,
    completed: ok.length,
    errors: failed.length,
    error_samples: [...new Set(failed.map((r) => r.error ?? 'unknown'))].slice(0, 5),
    wall_s,
    requests_per_s: ok.length / wall_s,
    tokens_per_s: tokens / wall_s,
    completion_tokens: tokens,
    ttft_ms: percentiles(ok.map((r) => r.ttftMs!).filter((v) => v !== null)),
    latency_ms: percentiles(ok.map((r) => r.latencyMs)),
  };
}
