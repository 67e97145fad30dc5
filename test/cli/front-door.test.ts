/**
 * The CLI as a new user meets it (issue 16), with the deterministic fake engine: a bad image among many, chats
 * that outgrow the context, one range table with the server, short data: URIs, the offline download message,
 * the served model id, and a parent that goes away.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { servedModelId } from '../../src/cli/engine-loader.js';
import { displayImage } from '../../src/cli/commands/images.js';
import { defaultGenerationParams } from '../../src/server/engine.js';
import { FakeEngine } from '../../src/server/fake-engine.js';
import { GENERATION_RANGES, rangeText, type ParamRange } from '../../src/server/generation-ranges.js';
import { Blip2Server } from '../../src/server/http-server.js';
import { TINY, fixturePath } from '../paths.js';
import { FAKE_ENGINE, MAIN, ROOT, cliInProcess, collect, listeningUrl, startCli } from './run.js';

const CHELSEA = fixturePath('tiny-blip2', 'chelsea.png');
const CAMERA = fixturePath('tiny-blip2', 'camera.png');
const MODEL = ['--model', TINY];
const chelseaBytes = new Uint8Array(readFileSync(CHELSEA));

async function answerOf(image: string, prompt: string, overrides = {}) {
  const [r] = await new FakeEngine().generate([{ image: new Uint8Array(readFileSync(image)), prompt, params: defaultGenerationParams(overrides) }]);
  return r!.sequences[0]!.text;
}

const jsonLines = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** Runs `body` with extra process environment for the fake engine (it reads process.env). */
async function withEnv<T>(vars: Record<string, string>, body: () => Promise<T>): Promise<T> {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await body();
  } finally {
    for (const [k, v] of Object.entries(before)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe('images that cannot be used', () => {
  let dir: string;
  let truncated: string;
  let corrupt: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blip2-front-'));
    truncated = join(dir, 'trunc.png');
    await writeFile(truncated, chelseaBytes.subarray(0, Math.floor(chelseaBytes.length / 2)));
    // A whole file (every chunk present) whose compressed data is garbage: only decoding finds out.
    corrupt = join(dir, 'corrupt.png');
    const bytes = chelseaBytes.slice();
    const idat = Buffer.from(bytes).indexOf('IDAT');
    bytes.fill(0x55, idat + 4, idat + 200);
    await writeFile(corrupt, bytes);
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('captions the good images, names the bad one, and exits 1 at the end', async () => {
    const r = await cliInProcess(['caption', CHELSEA, truncated, CAMERA, ...MODEL]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(`${CHELSEA}: ${await answerOf(CHELSEA, '')}\n${CAMERA}: ${await answerOf(CAMERA, '')}\n`);
    expect(r.stderr).toMatch(new RegExp(`^blip2: ${truncated.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: truncated PNG`, 'm'));

    const json = await cliInProcess(['caption', CHELSEA, truncated, CAMERA, ...MODEL, '--json']);
    expect(json.code).toBe(1);
    const records = jsonLines(json.stdout);
    expect(records.map((x) => x.image)).toEqual([CHELSEA, truncated, CAMERA]);
    expect(records[1]).toEqual({ image: truncated, prompt: '', error: expect.stringMatching(/^truncated PNG/) });
    expect(records[0]!.text).toBe(await answerOf(CHELSEA, ''));
    expect(records[2]!.text).toBe(await answerOf(CAMERA, ''));
  });

  it('finds a truncated file before the model loads', async () => {
    // An engine module that does not exist: reaching the model load would fail differently.
    const r = await cliInProcess(['caption', truncated, ...MODEL, '--json'], { BLIP2_ENGINE_MODULE: join(ROOT, 'no-such-engine.ts') });
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(/engine module/);
    expect(r.stderr).toMatch(/trunc\.png: truncated PNG/);
    expect(jsonLines(r.stdout)).toEqual([{ image: truncated, prompt: '', error: expect.stringMatching(/^truncated PNG/) }]);
  });

  it('takes an image that only fails to decode out of its batch; the others keep their answers', async () => {
    const r = await cliInProcess(['caption', CAMERA, corrupt, CHELSEA, ...MODEL, '--json', '--prompt', 'a photo of']);
    expect(r.code).toBe(1);
    const records = jsonLines(r.stdout);
    expect(records.map((x) => 'error' in x)).toEqual([false, true, false]);
    expect(records[1]!.error).toMatch(/the image cannot be used/);
    expect(records[0]!.text).toBe(await answerOf(CAMERA, 'a photo of'));
    expect(records[2]!.text).toBe(await answerOf(CHELSEA, 'a photo of'));
    expect(r.stderr).toMatch(/corrupt\.png: the image cannot be used/);
  });

  it('shows a data: URI as its header and size, never whole', async () => {
    const uri = `data:image/png;base64,${Buffer.from(chelseaBytes).toString('base64')}`;
    const shown = `data:image/png;base64,…(${Math.round(chelseaBytes.length / 1024)} KB)`;
    expect(displayImage(uri)).toBe(shown);
    const text = await cliInProcess(['caption', uri, CAMERA, ...MODEL]);
    expect(text.code).toBe(0);
    expect(text.stdout.split('\n')[0]).toBe(`${shown}: ${await answerOf(CHELSEA, '')}`);
    const json = await cliInProcess(['caption', uri, ...MODEL, '--json']);
    expect(jsonLines(json.stdout)[0]!.image).toBe(shown);
    expect(json.stdout.length).toBeLessThan(1000);
    const bad = await cliInProcess(['caption', `data:image/png;base64,${Buffer.from(chelseaBytes.subarray(0, 5000)).toString('base64')}`, ...MODEL]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^blip2: data:image\/png;base64,…\(5 KB\): truncated PNG/);
    expect(bad.stderr.length).toBeLessThan(500);
  });
});

describe('chat that outgrows the context', () => {
  it('answers a question after one that cannot fit even alone, and drops the oldest turns for the others', async () => {
    const context = 60;
    const long = `${'word '.repeat(40)}?`;
    // 33 image+BOS tokens, "Question : ... ? Answer :" around 41 words: too long with 8 new tokens.
    const r = await withEnv({ BLIP2_FAKE_CONTEXT_LENGTH: String(context) }, () =>
      cliInProcess(['chat', CHELSEA, ...MODEL, '--json', '--max-new-tokens', '8'], {}, `${long}\nwho?\nwhat is it?\nwhere is it now?\n`),
    );
    expect(r.code).toBe(1);
    const lines = jsonLines(r.stdout) as { question: string; prompt: string; text?: string; error?: string }[];
    expect(lines.map((l) => l.question)).toEqual([long.trim(), 'who?', 'what is it?', 'where is it now?']);
    expect(lines[0]!.error).toMatch(/^this question does not fit the model's context: the prompt is \d+ tokens \(image tokens included\) and --max-new-tokens is 8: /);
    expect(r.stderr).toMatch(/^blip2 chat: this question does not fit/m);
    expect(lines[1]!.prompt).toBe('Question: who? Answer:');
    expect(lines[1]!.text).toBe(await answerOf(CHELSEA, 'Question: who? Answer:', { maxNewTokens: 8 }));
    const engine = new FakeEngine({ contextLength: context });
    for (const l of lines.slice(1)) {
      expect(l.error).toBeUndefined();
      expect((await engine.promptTokens(l.prompt)) + 8).toBeLessThanOrEqual(context);
      expect(l.prompt.endsWith(`Question: ${l.question} Answer:`)).toBe(true);
    }
    // The third turn's prompt could not hold both earlier answers: the oldest went first.
    expect(lines[3]!.prompt).not.toMatch(/Question: who\?/);
  });
});

describe('one range table for the CLI and the server', () => {
  let server: Blip2Server;
  beforeAll(async () => {
    // Operator limits at the table's bounds, so that the table alone decides.
    server = await Blip2Server.start(new FakeEngine({ modelId: 'm' }), { port: 0, limits: { maxTokens: 1_000_000, maxN: 64 } });
  });
  afterAll(async () => {
    await server.close();
  });

  const outside = (r: ParamRange) => (r.loOpen ? r.lo : r.lo - 1);
  const cases = Object.entries(GENERATION_RANGES).flatMap(([, r]) => [
    [r, r.integer && r.hi < 1e9 ? r.hi + 1 : r.hi * 2],
    [r, outside(r)],
  ]) as [ParamRange, number][];

  it.each(cases.filter(([r]) => r.api !== 'seed' && r.api !== 'max_tokens'))('refuses %s = %s alike in both', async (r, value) => {
    const cli = await cliInProcess(['caption', CHELSEA, ...MODEL, r.cli, String(value)]);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain(`${r.cli} must be ${r.integer ? 'an integer' : 'a number'} in ${rangeText(r)} (got '${value}')`);
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] }], [r.api]: value }),
    });
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as { error: { message: string; param: string } };
    expect(error.param).toBe(r.api);
    expect(error.message).toContain(`in ${rangeText(r)} (got ${value})`);
  });

  it('reads negative numbers after a flag, and refuses a token limit beyond the context with status 2', async () => {
    const neg = await cliInProcess(['caption', CHELSEA, ...MODEL, '--temperature', '-1']);
    expect(neg.code).toBe(2);
    expect(neg.stderr).toMatch(/^blip2 caption: --temperature must be a number in \[0, 2\] \(got '-1'\)/);
    const seeded = await cliInProcess(['ask', CHELSEA, 'what?', ...MODEL, '--temperature', '0.5', '--seed', '-3', '--json']);
    expect(seeded.code).toBe(0);
    expect(jsonLines(seeded.stdout)[0]!.text).toBe(await answerOf(CHELSEA, 'Question: what? Answer:', { temperature: 0.5, seed: -3 }));
    const beyond = await cliInProcess(['caption', CHELSEA, ...MODEL, '--max-new-tokens', '3000']);
    expect(beyond.code).toBe(2);
    expect(beyond.stderr).toMatch(/--max-new-tokens is 3000: \d+ tokens, more than the model's context of 2048; --max-new-tokens can be at most 2015 for this prompt/);
    expect(beyond.stderr).toMatch(/Try 'blip2 caption --help'/);
    expect(beyond.stdout).toBe('');
  });
});

describe('served model ids and offline downloads', () => {
  it('serves a local folder by its name and --served-model-name NAME... as vLLM does', async () => {
    for (const [extra, listed] of [
      [[], ['tiny-blip2']],
      [['--served-model-name', 'blip2', 'gpt-4o-mini'], ['blip2', 'gpt-4o-mini']],
    ] as [string[], string[]][]) {
      const child = startCli(['serve', '--model', TINY, '--port', '0', ...extra]);
      const done = collect(child);
      try {
        const url = await listeningUrl(child);
        const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x', maxRetries: 0 });
        expect((await client.models.list()).data.map((m) => m.id)).toEqual(listed);
        const image = `data:image/png;base64,${Buffer.from(chelseaBytes).toString('base64')}`;
        const r = await client.chat.completions.create({ model: listed.at(-1)!, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: image } }] }] });
        expect(r.model).toBe(listed[0]);
        await expect(client.chat.completions.create({ model: TINY, messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
      } finally {
        child.kill('SIGTERM');
      }
      const r = await done;
      expect(r.stderr).toMatch(new RegExp(`^blip2 serve: ${listed.join(', ')} listening on`, 'm'));
    }
    expect(servedModelId({ dir: '/home/u/.cache/huggingface/hub/models--Salesforce--blip2-opt-2.7b/snapshots/abc123', modelId: '/x', source: 'local', downloaded: [] })).toBe(
      'Salesforce/blip2-opt-2.7b',
    );
    expect(servedModelId({ dir: '/srv/models/my-blip2', modelId: '../models/my-blip2/', source: 'local', downloaded: [] })).toBe('my-blip2');
  });

  it('says that HF_HUB_OFFLINE is what blocks blip2 download', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'blip2-offline-'));
    try {
      const r = await cliInProcess(['download', 'test-org/tiny-blip2'], { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/not in the cache .*HF_HUB_OFFLINE=1 is set \(offline mode\), which forbids downloading it: unset HF_HUB_OFFLINE/);
      expect(r.stderr).not.toMatch(/with network access first/);
    } finally {
      await rm(cache, { recursive: true, force: true });
    }
  });
});

function exited(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  // Reparented to an init that has not reaped it yet: a zombie has exited too.
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

describe('a parent that goes away', () => {
  /**
   * Starts `blip2 serve` through a wrapper process that, like npx, forwards no signal, and returns the wrapper,
   * the server's pid and everything the server writes to stderr.
   */
  async function serveThroughWrapper(env: Record<string, string>) {
    const script = `
      const { spawn } = require('node:child_process');
      const c = spawn(process.execPath, ['--import', 'tsx', ${JSON.stringify(MAIN)}, 'serve', '--model', ${JSON.stringify(TINY)}, '--port', '0'],
        { stdio: ['ignore', 'ignore', 'inherit'], cwd: ${JSON.stringify(ROOT)} });
      console.log(c.pid);
      setInterval(() => {}, 1000);`;
    const wrapper = spawn(process.execPath, ['-e', script], {
      env: { ...process.env, npm_command: '', BLIP2_EXIT_WITH_PARENT: '', BLIP2_ENGINE_MODULE: FAKE_ENGINE, HF_HUB_OFFLINE: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    wrapper.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const pid = await new Promise<number>((resolve) => wrapper.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
    const deadline = Date.now() + 60_000;
    while (!/listening on/.test(stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    return { wrapper, pid, stderr: () => stderr };
  }

  async function until(check: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (check()) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return check();
  }

  it('stops gracefully when npm started it and its parent is killed', async () => {
    const { wrapper, pid, stderr } = await serveThroughWrapper({ npm_command: 'exec' });
    expect(stderr()).toMatch(/listening on/);
    wrapper.kill('SIGKILL');
    const gone = await until(() => exited(pid), 15_000);
    if (!gone) process.kill(pid, 'SIGKILL');
    expect(gone).toBe(true);
    expect(stderr()).toMatch(/the parent process \d+ exited; stopping as on SIGTERM/);
    expect(stderr()).toMatch(/blip2 serve: stopped/);
  });

  it('keeps running after its parent exits when not started by npm (nohup and the like)', async () => {
    const { wrapper, pid, stderr } = await serveThroughWrapper({});
    expect(stderr()).toMatch(/listening on/);
    wrapper.kill('SIGKILL');
    try {
      await new Promise((r) => setTimeout(r, 2500));
      expect(exited(pid)).toBe(false);
    } finally {
      if (!exited(pid)) process.kill(pid, 'SIGTERM');
    }
  });
});
