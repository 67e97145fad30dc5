import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { defaultGenerationParams } from '../../src/server/engine.js';
import { FakeEngine } from '../../src/server/fake-engine.js';
import { TINY, fixturePath } from '../paths.js';
import { repoFromFolder, startMockHub } from '../support/mock-hub.js';
import { ROOT, cli, cliInProcess, collect, listeningUrl, startCli } from './run.js';

const CHELSEA = fixturePath('tiny-blip2', 'chelsea.png');
const CAMERA = fixturePath('tiny-blip2', 'camera.png');
const MODEL = ['--model', TINY];

async function expected(image: string, prompt: string, overrides = {}) {
  const [r] = await new FakeEngine().generate([{ image: new Uint8Array(readFileSync(image)), prompt, params: defaultGenerationParams(overrides) }]);
  return r!;
}

describe('blip2 CLI (child process, from sources)', () => {
  it('prints help and version with exit code 0', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage:\n\s+blip2 caption IMAGE/);
    const version = await cli(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toBe((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  });

  it('exits 2 on usage errors with a message on stderr', async () => {
    const none = await cli([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/Usage:/);
    const bad = await cli(['caption', CHELSEA, '--max-new-tokens', 'lots']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^blip2 caption: --max-new-tokens must be an integer/);
    expect(bad.stderr).toMatch(/Try 'blip2 caption --help'/);
    expect(bad.stdout).toBe('');
  });

  it('captions several images as one batch with --json lines', async () => {
    const r = await cli(['caption', CHELSEA, CAMERA, ...MODEL, '--json', '--max-new-tokens', '8']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    for (const [i, image] of [CHELSEA, CAMERA].entries()) {
      const want = await expected(image, '', { maxNewTokens: 8 });
      expect(lines[i]).toMatchObject({
        image,
        prompt: '',
        text: want.sequences[0]!.text,
        token_ids: want.sequences[0]!.tokenIds,
        finish_reason: want.sequences[0]!.finishReason,
        prompt_tokens: want.promptTokens,
        completion_tokens: want.completionTokens,
      });
    }
  });

  it('fails with exit 1 and no stack trace on a runtime error; --verbose adds the stack', async () => {
    const r = await cli(['ask', join(ROOT, 'no-such.png'), 'what?', ...MODEL]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^blip2: .*no-such\.png/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const v = await cli(['ask', CHELSEA, 'what?', '--model', join(ROOT, 'no-such-model-dir/')], { env: { BLIP2_ENGINE_MODULE: join(ROOT, 'no-such-engine.ts') } });
    expect(v.code).toBe(1);
    const verbose = await cli(['ask', CHELSEA, 'what?', ...MODEL, '--verbose'], { env: { BLIP2_ENGINE_MODULE: join(ROOT, 'no-such-engine.ts') } });
    expect(verbose.code).toBe(1);
    expect(verbose.stderr).toMatch(/cannot load the engine module/);
    expect(verbose.stderr).toMatch(/\n\s+at /);
  });

  it('chats over piped stdin, keeping the conversation', async () => {
    const r = await cli(['chat', CHELSEA, ...MODEL, '--json'], { stdin: 'what is it?\nwhat colour?\n/reset\nwhere?\n' });
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { prompt: string; text: string; question: string });
    expect(lines.map((l) => l.question)).toEqual(['what is it?', 'what colour?', 'where?']);
    expect(lines[0]!.prompt).toBe('Question: what is it? Answer:');
    const a1 = lines[0]!.text;
    expect(lines[1]!.prompt).toBe(`Question: what is it? Answer: ${a1}${/[.!?]$/.test(a1) ? '' : '.'} Question: what colour? Answer:`);
    expect(lines[2]!.prompt).toBe('Question: where? Answer:');
    expect(lines[1]!.text).toBe((await expected(CHELSEA, lines[1]!.prompt)).sequences[0]!.text);
  });

  it('serves the OpenAI API and shuts down gracefully on SIGTERM, finishing the request in flight', async () => {
    const child = startCli(['serve', ...MODEL, '--port', '0'], { BLIP2_FAKE_TOKEN_DELAY_MS: '40' });
    const done = collect(child);
    const url = await listeningUrl(child);
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x', maxRetries: 0 });
    const image = `data:image/png;base64,${readFileSync(CHELSEA).toString('base64')}`;
    const stream = await client.chat.completions.create({
      model: 'tiny-blip2', // a local folder is served by its name, never by its path
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: image } }, { type: 'text', text: 'slow?' }] }],
      max_tokens: 12,
      stream: true,
    });
    // SIGTERM once the request is surely in flight (its first chunk came), not after a delay that a loaded
    // machine can outlast before the server has even read the request.
    let text = '';
    let signalled = false;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (!signalled) {
        signalled = true;
        child.kill('SIGTERM');
      }
    }
    expect(signalled).toBe(true);
    expect(text).toBe((await expected(CHELSEA, 'Question: slow? Answer:', { maxNewTokens: 12 })).sequences[0]!.text);
    const r = await done;
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/SIGTERM, finishing in-flight requests/);
    expect(r.stderr).toMatch(/stopped/);
  });

  it('downloads a hub model into the cache, then uses it offline by its repo id', async () => {
    const hub = await startMockHub({ repos: [repoFromFolder('test-org/tiny-blip2', TINY, 'd'.repeat(40))] });
    const cache = await mkdtemp(join(tmpdir(), 'blip2-cli-'));
    try {
      const env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '' };
      const r = await cli(['download', 'test-org/tiny-blip2', '--progress'], { env });
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/Downloading test-org\/tiny-blip2: 100% /);
      const dir = join(cache, 'models--test-org--tiny-blip2', 'snapshots', 'd'.repeat(40));
      expect(r.stdout.trim()).toBe(dir);
      const offline = await cli(['ask', CHELSEA, 'what?', '--model', 'test-org/tiny-blip2', '--json'], { env: { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' } });
      expect(offline.code).toBe(0);
      expect(JSON.parse(offline.stdout).text).toBe((await expected(CHELSEA, 'Question: what? Answer:')).sequences[0]!.text);
      const missing = await cli(['download', 'test-org/other'], { env: { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' } });
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/not in the cache.*offline/);
    } finally {
      await hub.close();
      await rm(cache, { recursive: true, force: true });
    }
  });
});

describe('blip2 CLI (in process)', () => {
  it.each([
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['--frob'], /unknown option '--frob'/],
    [['caption'], /needs at least one IMAGE/],
    [['caption', CHELSEA, '--nope'], /Unknown option '--nope'/],
    [['caption', CHELSEA, '--dtype', 'f8'], /--dtype must be f16 or f32/],
    [['caption', CHELSEA, '--temperature=-1'], /--temperature must be a number in \[0, 2\]/],
    [['caption', CHELSEA, '--top-p', '2'], /--top-p must be a number/],
    [['caption', CHELSEA, '-n', '3'], /n > 1 needs sampling/],
    [['caption', CHELSEA, '--num-beams', '2', '-n', '3'], /cannot exceed --num-beams/],
    [['caption', CHELSEA, '--max-new-tokens'], /argument missing/],
    [['ask', CHELSEA], /needs an IMAGE and a QUESTION/],
    [['chat'], /needs exactly one IMAGE/],
    [['chat', CHELSEA, '--temperature', '1', '-n', '2'], /one answer per turn/],
    [['serve', 'extra'], /takes no arguments/],
    [['serve', '--port', '70000'], /--port must be an integer in \[0, 65535\]/],
    [['serve', '--default-max-tokens', '600'], /cannot exceed --max-tokens-limit/],
    [['download', 'a/b', 'c/d'], /at most one MODEL/],
  ])('%j is a usage error (exit 2)', async (args, message) => {
    const r = await cliInProcess(args as string[]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  });

  it('has help for every command', async () => {
    for (const command of ['caption', 'ask', 'chat', 'serve', 'download', 'bench']) {
      const r = await cliInProcess([command, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: blip2 ${command}`));
    }
  });

  it('prints plain captions, prefixed by the image when there are several', async () => {
    const one = await cliInProcess(['caption', CHELSEA, ...MODEL, '--prompt', 'a photo of']);
    expect(one.code).toBe(0);
    expect(one.stdout).toBe(`${(await expected(CHELSEA, 'a photo of')).sequences[0]!.text}\n`);
    const two = await cliInProcess(['caption', CHELSEA, CAMERA, ...MODEL, '--batch-size', '1']);
    expect(two.stdout.split('\n').filter(Boolean).map((l) => l.split(': ')[0])).toEqual([CHELSEA, CAMERA]);
  });

  it('returns several sampled sequences with -n, and timings with --verbose', async () => {
    const r = await cliInProcess(['ask', CHELSEA, 'what', 'is', 'it?', ...MODEL, '--temperature', '0.7', '-n', '3', '--seed', '5', '--json', '--verbose']);
    expect(r.code).toBe(0);
    const line = JSON.parse(r.stdout) as { sequences: { text: string; token_ids: number[] }[]; text: string; prompt: string };
    expect(line.prompt).toBe('Question: what is it? Answer:');
    expect(line.sequences).toHaveLength(3);
    expect(line.text).toBe(line.sequences[0]!.text);
    expect(r.stderr).toMatch(/engine loaded: \d+ ms/);
    expect(r.stderr).toMatch(/generated 1 result\(s\): \d+ ms \(\d+ tokens/);
  });

  it('reports a model folder without weights clearly', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'blip2-empty-'));
    try {
      const r = await cliInProcess(['caption', CHELSEA, '--model', empty]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/lacks config\.json, model\.safetensors/);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});
