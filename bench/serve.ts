/**
 * Serving under load: continuous and static batching side by side, on the same workload, in one invocation.
 *
 *   npm run bench:serve -- --model DIR [--clients 16 | --rate R] [--requests 64] [--rounds 2] [--max-batch N]
 *                          [--modes continuous,static] [--min-tokens 4] [--max-tokens 48] [--dtype f32|f16]
 *                          [--seed 1] [--json FILE]
 *   npm run bench:serve -- --url http://127.0.0.1:8000 --model DIR ...      (a server already running)
 *   npm run bench:serve -- --model DIR --soak 1000 [--json FILE]            (memory over 1000 requests in a row)
 *
 * For each mode it starts `blip2 serve --batching MODE` on a free loopback port and warms it up (pipelines
 * compile on first use); then rounds alternate between the modes, each sending the same workload (captions and
 * questions about the model folder's images as base64 data URLs, answer lengths uniform in [min-tokens,
 * max-tokens], all streamed). It reports throughput
 * (requests/s, completion tokens/s), time to first token and end-to-end latency (p50/p95/p99), errors, and the
 * server's memory before and after (RSS, GPU live bytes, from /health). `--soak N` sends N requests one after
 * the other instead and reports memory every N/10 requests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Blip2Processor } from '../src/processing/processor.js';
import { assertLoopback, closedLoop, openLoop, seeded, sendOne, summarize, type LoadSummary, type RequestRecord, type WorkItem } from './serve-load.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    url: { type: 'string' },
    clients: { type: 'string', default: '16' },
    rate: { type: 'string' },
    requests: { type: 'string' },
    'max-batch': { type: 'string' },
    modes: { type: 'string', default: 'continuous,static' },
    'min-tokens': { type: 'string', default: '4' },
    'max-tokens': { type: 'string', default: '48' },
    dtype: { type: 'string', default: 'f32' },
    seed: { type: 'string', default: '1' },
    warmup: { type: 'string' },
    images: { type: 'string' },
    soak: { type: 'string' },
    rounds: { type: 'string', default: '2' },
    json: { type: 'string' },
  },
});

function usage(message: string): never {
  console.error(`bench:serve: ${message}`);
  console.error('usage: npm run bench:serve -- --model DIR [--clients 16 | --rate R] [--requests N] [--max-batch N] [--modes continuous,static] [--json FILE]');
  process.exit(2);
}

const int = (name: string, value: string | undefined, lo: number): number => {
  const v = Number(value);
  if (!Number.isInteger(v) || v < lo) usage(`--${name} must be an integer >= ${lo}`);
  return v;
};

if (!args.model) usage('--model DIR is needed (the prompts are counted with its tokenizer; the servers load it)');
const modelDir = args.model;
const clients = int('clients', args.clients, 1);
const rate = args.rate === undefined ? null : Number(args.rate);
if (rate !== null && !(rate > 0)) usage('--rate must be a positive number of requests per second');
// By default the servers hold a sequence for every client (with --rate: the server's own default of 8), so
// that what is measured is how batches are scheduled, not how long a queue is.
const maxBatch = args['max-batch'] === undefined ? (rate === null ? clients : 8) : int('max-batch', args['max-batch'], 1);
const requests = args.requests === undefined ? 4 * clients : int('requests', args.requests, 1);
const rounds = int('rounds', args.rounds, 1);
const minTokens = int('min-tokens', args['min-tokens'], 1);
const maxTokens = int('max-tokens', args['max-tokens'], minTokens);
const seed = int('seed', args.seed, 0);
const warmup = args.warmup === undefined ? 2 * maxBatch : int('warmup', args.warmup, 0);
const soak = args.soak === undefined ? null : int('soak', args.soak, 1);
const modes = args.url ? ['external'] : args.modes.split(',').map((m) => m.trim());
for (const m of modes) if (!['continuous', 'static', 'external'].includes(m)) usage(`unknown mode ${m}`);
if (args.url) assertLoopback(args.url);

// ------------------------------------------------------------------ the workload

const QUESTIONS = [
  'What is in the picture?',
  'What color is it?',
  'Is there a person in this image?',
  'How many objects can you see?',
  'What is the man on the left holding in his hand?',
  'Where was this photo taken?',
  'What is the weather like?',
  'Describe the texture of the surface.',
];

function imageFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => ['.png', '.jpg', '.jpeg', '.webp'].includes(extname(f).toLowerCase()))
    .sort()
    .map((f) => join(dir, f));
}

async function makeWork(n: number, salt: number): Promise<WorkItem[]> {
  const files = imageFiles(args.images ?? modelDir);
  if (files.length === 0) usage(`no images in ${args.images ?? modelDir} (give --images DIR)`);
  const urls = files.map((f) => `data:image/${extname(f).slice(1).replace('jpg', 'jpeg')};base64,${readFileSync(f).toString('base64')}`);
  const processor = await Blip2Processor.fromPretrained(modelDir);
  const config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as { num_query_tokens: number; text_config: { max_position_embeddings: number } };
  const context = config.text_config.max_position_embeddings;
  const random = seeded(seed * 7919 + salt);
  return Array.from({ length: n }, () => {
    const image = urls[Math.floor(random() * urls.length)]!;
    const question = random() < 0.6 ? QUESTIONS[Math.floor(random() * QUESTIONS.length)]! : null;
    const prompt = question ? `Question: ${question} Answer:` : '';
    // What the model reads (query tokens, BOS, prompt) bounds the answer: stay inside the context.
    const promptTokens = processor.encodePrompt(prompt).length + (processor.numQueryTokens === null ? config.num_query_tokens : 0);
    const wanted = minTokens + Math.floor(random() * (maxTokens - minTokens + 1));
    const max_tokens = Math.max(1, Math.min(wanted, context - promptTokens));
    const content = [{ type: 'image_url', image_url: { url: image } }, ...(question ? [{ type: 'text', text: question }] : [])];
    return { kind: question ? 'question' : 'caption', maxTokens: max_tokens, body: { messages: [{ role: 'user', content }], max_tokens } };
  });
}

// ------------------------------------------------------------------ servers

interface Health {
  status: string;
  model: string;
  batching?: string;
  memory?: { rss_bytes: number; heap_used_bytes: number; gpu_live_bytes?: number; gpu_peak_bytes?: number; gpu_pooled_bytes?: number };
}

interface Server {
  url: string;
  stop(): Promise<void>;
}

async function startServer(batching: string): Promise<Server> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', MAIN, 'serve', '--model', modelDir, '--dtype', args.dtype, '--port', '0', '--batching', batching, '--max-batch', String(maxBatch), '--max-queue', '100000', '--quiet'],
    { cwd: ROOT, env: { ...process.env, HF_HUB_OFFLINE: '1' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(log);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`blip2 serve exited with ${code}:\n${log}`)));
  });
  assertLoopback(url);
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

async function health(url: string): Promise<Health> {
  return (await (await fetch(`${url}/health`)).json()) as Health;
}

/** The work addressed to the model the server serves. */
async function forServer(url: string, work: readonly WorkItem[]): Promise<WorkItem[]> {
  const model = (await health(url)).model;
  return work.map((w) => ({ ...w, body: { ...w.body, model } }));
}

// ------------------------------------------------------------------ runs

interface ModeResult extends LoadSummary {
  batching: string;
  memory_before: Health['memory'];
  memory_after: Health['memory'];
}

/**
 * Every mode's server is started and warmed up first, then the rounds alternate between them (continuous,
 * static, continuous, ...), so that a machine whose load drifts (other work on it) weighs on both alike.
 * Throughput is completed work over the summed wall time of a mode's rounds; percentiles are over all its requests.
 */
async function loadRuns(work: WorkItem[], warm: WorkItem[]): Promise<Record<string, ModeResult>> {
  const servers: { mode: string; server: Server; batching: string; measured: WorkItem[] }[] = [];
  try {
    for (const mode of modes) {
      const server = mode === 'external' ? { url: args.url!, stop: async () => {} } : await startServer(mode);
      servers.push({ mode, server, batching: (await health(server.url)).batching ?? mode, measured: await forServer(server.url, work) });
      const warming = await forServer(server.url, warm);
      if (warming.length > 0) await closedLoop(server.url, warming, Math.min(clients, warming.length));
    }
    const runs = new Map<string, { records: RequestRecord[]; wallMs: number; before: Health['memory']; after: Health['memory'] }>();
    for (let round = 0; round < rounds; round++) {
      for (const { mode, server, measured } of servers) {
        console.error(`${mode}, round ${round + 1}/${rounds}: ${measured.length} requests, ${rate === null ? `${clients} clients` : `${rate} req/s`}...`);
        const before = (await health(server.url)).memory;
        const { records, wallMs } = rate === null ? await closedLoop(server.url, measured, clients) : await openLoop(server.url, measured, rate, seed + round);
        const after = (await health(server.url)).memory;
        const soFar = runs.get(mode);
        runs.set(mode, { records: [...(soFar?.records ?? []), ...records], wallMs: (soFar?.wallMs ?? 0) + wallMs, before: soFar?.before ?? before, after });
      }
    }
    const results: Record<string, ModeResult> = {};
    for (const { mode, batching } of servers) {
      const r = runs.get(mode)!;
      results[mode] = { batching, ...summarize(r.records, r.wallMs), memory_before: r.before, memory_after: r.after };
    }
    return results;
  } finally {
    for (const { server } of servers) await server.stop();
  }
}

interface SoakSample {
  requests: number;
  rss_bytes: number;
  heap_used_bytes: number;
  gpu_live_bytes?: number;
  gpu_pooled_bytes?: number;
}

async function soakRun(mode: string, work: WorkItem[], warm: WorkItem[]) {
  const server = mode === 'external' ? { url: args.url!, stop: async () => {} } : await startServer(mode);
  try {
    for (const item of await forServer(server.url, warm)) await sendOne(server.url, item);
    work = await forServer(server.url, work);
    const sample = async (done: number): Promise<SoakSample> => {
      const m = (await health(server.url)).memory!;
      return { requests: done, rss_bytes: m.rss_bytes, heap_used_bytes: m.heap_used_bytes, gpu_live_bytes: m.gpu_live_bytes, gpu_pooled_bytes: m.gpu_pooled_bytes };
    };
    const samples = [await sample(0)];
    const every = Math.max(1, Math.floor(work.length / 10));
    let errors = 0;
    const t0 = performance.now();
    for (const [i, item] of work.entries()) {
      if (!(await sendOne(server.url, item)).ok) errors++;
      if ((i + 1) % every === 0 || i + 1 === work.length) samples.push(await sample(i + 1));
    }
    const first = samples[0]!;
    const last = samples.at(-1)!;
    return {
      batching: (await health(server.url)).batching ?? mode,
      requests: work.length,
      errors,
      wall_s: (performance.now() - t0) / 1000,
      samples,
      rss_growth_bytes: last.rss_bytes - first.rss_bytes,
      gpu_live_growth_bytes: last.gpu_live_bytes !== undefined && first.gpu_live_bytes !== undefined ? last.gpu_live_bytes - first.gpu_live_bytes : null,
    };
  } finally {
    await server.stop();
  }
}

const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memory_bytes: totalmem(), node: process.version };
const mib = (b: number | undefined) => (b === undefined ? '-' : `${(b / 2 ** 20).toFixed(1)} MiB`);
const workload = {
  model: modelDir,
  dtype: args.dtype,
  // An external server's own --max-batch is not known here.
  max_batch: args.url ? null : maxBatch,
  seed,
  ...(soak === null ? { clients: rate === null ? clients : null, rate_per_s: rate, requests_per_round: requests, rounds, answer_tokens: [minTokens, maxTokens], warmup } : { soak }),
};
console.error(`machine: ${machine.cpu}, ${machine.cores} cores`);

if (soak !== null) {
  const work = await makeWork(soak, 2);
  const warm = await makeWork(Math.max(1, warmup), 1);
  const report: Record<string, unknown> = { bench: 'serve-soak', date: new Date().toISOString(), machine, workload, load_average_before: loadavg() };
  for (const mode of modes) {
    console.error(`${mode}: ${soak} requests in a row...`);
    const r = await soakRun(mode, work, warm);
    report[mode] = r;
    console.log(`\n${mode}: ${r.requests} requests in ${r.wall_s.toFixed(1)} s, ${r.errors} errors`);
    console.log(`${'requests'.padStart(9)} ${'RSS'.padStart(12)} ${'heap'.padStart(12)} ${'GPU live'.padStart(12)} ${'GPU pooled'.padStart(12)}`);
    for (const s of r.samples) console.log(`${String(s.requests).padStart(9)} ${mib(s.rss_bytes).padStart(12)} ${mib(s.heap_used_bytes).padStart(12)} ${mib(s.gpu_live_bytes).padStart(12)} ${mib(s.gpu_pooled_bytes).padStart(12)}`);
    console.log(`growth: RSS ${mib(r.rss_growth_bytes)}, GPU live ${r.gpu_live_growth_bytes === null ? '-' : `${r.gpu_live_growth_bytes} bytes`}`);
  }
  report.load_average_after = loadavg();
  if (args.json) writeFileSync(args.json, JSON.stringify(report, null, 2) + '\n');
} else {
  const work = await makeWork(requests, 2);
  const warm = await makeWork(warmup, 1);
  const report: Record<string, unknown> = { bench: 'serve', date: new Date().toISOString(), machine, workload };
  // Other work on the machine moves the numbers: the load average says how much there was.
  const loadBefore = loadavg();
  const results = await loadRuns(work, warm);
  Object.assign(report, results, { load_average: { before: loadBefore, after: loadavg() } });
  const fmt = (p: { p50: number; p95: number; p99: number }) => `${p.p50.toFixed(0)}/${p.p95.toFixed(0)}/${p.p99.toFixed(0)}`;
  console.log(`\n${requests} requests x ${rounds} rounds per mode, ${rate === null ? `${clients} concurrent clients` : `Poisson arrivals at ${rate}/s`}, answers of ${minTokens}-${maxTokens} tokens${args.url ? '' : `, max batch ${maxBatch}`}, ${machine.cpu}`);
  console.log(`${'mode'.padEnd(11)} ${'req/s'.padStart(7)} ${'tok/s'.padStart(8)} ${'TTFT p50/p95/p99 ms'.padStart(21)} ${'latency p50/p95/p99 ms'.padStart(24)} ${'errors'.padStart(6)} ${'RSS after'.padStart(11)}`);
  for (const [mode, r] of Object.entries(results)) {
    console.log(
      `${mode.padEnd(11)} ${r.requests_per_s.toFixed(2).padStart(7)} ${r.tokens_per_s.toFixed(1).padStart(8)} ${fmt(r.ttft_ms).padStart(21)} ${fmt(r.latency_ms).padStart(24)} ${String(r.errors).padStart(6)} ${mib(r.memory_after?.rss_bytes).padStart(11)}`,
    );
  }
  const c = results.continuous;
  const s = results.static;
  if (c && s) {
    const ratios = { tokens_per_s: c.tokens_per_s / s.tokens_per_s, requests_per_s: c.requests_per_s / s.requests_per_s, ttft_p95: c.ttft_ms.p95 / s.ttft_ms.p95, latency_p95: c.latency_ms.p95 / s.latency_ms.p95 };
    report.continuous_over_static = ratios;
    console.log(`load average (1/5/15 min) before ${loadBefore.map((l) => l.toFixed(1)).join('/')}, after ${loadavg().map((l) => l.toFixed(1)).join('/')}`);
    console.log(`continuous / static: throughput x${ratios.tokens_per_s.toFixed(2)} (tokens/s), x${ratios.requests_per_s.toFixed(2)} (requests/s); p95 TTFT x${ratios.ttft_p95.toFixed(2)}; p95 latency x${ratios.latency_p95.toFixed(2)}`);
  }
  if (args.json) writeFileSync(args.json, JSON.stringify(report, null, 2) + '\n');
}
