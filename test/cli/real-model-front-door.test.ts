/**
 * The CLI's front door with the real BLIP-2 engine on every fixture checkpoint (issue 16): a quiet run prints
 * nothing on stderr (Dawn's adapter warnings included), a chat question too long for the context gets its own
 * error while the next one is answered, and a token limit beyond the context is a usage error.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { captionCases, greedyAnswerOf, questionCases, questionOf } from '../support/cases.js';
import { loadFixtures } from '../support/fixtures.js';
import { MAIN, ROOT, cli, collect } from './run.js';

/** An empty BLIP2_ENGINE_MODULE leaves the CLI on its default engine, the BLIP-2 one. */
const REAL_ENGINE = { BLIP2_ENGINE_MODULE: '' };

for (const fx of loadFixtures()) {
  const MODEL = ['--model', relative(ROOT, fx.dir), '--dtype', 'f32'];
  const CONTEXT = (JSON.parse(readFileSync(join(fx.dir, 'config.json'), 'utf8')) as { text_config: { max_position_embeddings: number } }).text_config
    .max_position_embeddings;
  const caption = captionCases(fx)[0] ?? fx.manifest.cases[0]!;
  const question = questionCases(fx)[0];

  describe(`blip2 CLI front door with the real engine: ${fx.name}`, () => {
    it.skipIf(!question)('leaves stderr empty with --quiet, Dawn adapter warnings included, where stderr is a pipe', async () => {
      const c = question!;
      const args = ['ask', relative(ROOT, fx.imagePath(c)), questionOf(c)!, ...MODEL, '--max-new-tokens', String(c.greedy.new_tokens.length)];
      // A shell pipeline gives the CLI a real pipe as stderr, as `blip2 ... 2>&1 | less` does (Node's own child
      // stdio pipes are sockets, which cannot be silenced: see src/platform/native-stderr.ts).
      const throughPipe = (extra: string[]) =>
        collect(
          spawn('sh', ['-c', '{ "$@" 2>&1 1>&3 3>&- | cat 1>&2 3>&-; } 3>&1', 'sh', process.execPath, '--import', 'tsx', MAIN, ...args, ...extra], {
            cwd: ROOT,
            env: { ...process.env, ...REAL_ENGINE, HF_HUB_OFFLINE: '1' },
            stdio: ['pipe', 'pipe', 'pipe'],
          }),
        );
      const quiet = await throughPipe(['--quiet']);
      expect(quiet.stdout).toBe(`${greedyAnswerOf(c)}\n`);
      expect(quiet.stderr).toBe('');
      const plain = await throughPipe([]);
      expect(plain.stdout).toBe(`${greedyAnswerOf(c)}\n`);
      expect(plain.stderr).not.toMatch(/artificially reduced/);
    });

    it('says a chat question does not fit the context and answers the next one', async () => {
      const image = relative(ROOT, fx.imagePath(caption));
      // The question, repeated until it cannot fit the model's context on its own.
      const long = 'and then what happened next in the picture? '.repeat(Math.ceil(CONTEXT / 8)).trim();
      const r = await cli(['chat', image, ...MODEL, '--json', '--max-new-tokens', '4'], { env: REAL_ENGINE, stdin: `${long}\nwho?\n` });
      expect(r.code).toBe(1);
      const [first, second] = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { question: string; prompt: string; text?: string; error?: string; prompt_tokens?: number });
      expect(first!.question).toBe(long);
      expect(first!.error).toMatch(new RegExp(`^this question does not fit the model's context: the prompt is \\d+ tokens .*more than the model's context of ${CONTEXT}`));
      expect(second!.question).toBe('who?');
      expect(second!.prompt).toBe('Question: who? Answer:');
      expect(second!.error).toBeUndefined();
      expect(typeof second!.text).toBe('string');
      expect(second!.prompt_tokens! + 4).toBeLessThanOrEqual(CONTEXT);
      expect(r.stderr).toMatch(/^blip2 chat: this question does not fit/m);
    });

    it('refuses --max-new-tokens beyond the context with status 2 and the largest value that fits', async () => {
      const c = caption;
      const r = await cli(['caption', relative(ROOT, fx.imagePath(c)), ...MODEL, '--max-new-tokens', String(CONTEXT)], { env: REAL_ENGINE });
      expect(r.code).toBe(2);
      const promptTokens = c.input_ids.length;
      expect(r.stderr).toContain(
        `blip2 caption: the prompt is ${promptTokens} tokens (image tokens included) and --max-new-tokens is ${CONTEXT}: ` +
          `${promptTokens + CONTEXT} tokens, more than the model's context of ${CONTEXT}; --max-new-tokens can be at most ${CONTEXT - promptTokens} for this prompt`,
      );
      expect(r.stdout).toBe('');
    });
  });
}
