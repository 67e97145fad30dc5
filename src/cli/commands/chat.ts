/**
 * `blip2 chat IMAGE`: questions from stdin, one per line, answered in the context of the earlier turns. Works
 * on a terminal (prompt, streamed answers) and on a pipe (one answer line, or JSON line, per question).
 */
import { createInterface } from 'node:readline';
import { chatPrompt, vqaPrompt, type ChatTurn } from '../../processing/index.js';
import { contextOverflow } from '../../server/context-limit.js';
import type { Engine, GenerationParams } from '../../server/engine.js';
import { loadEngine } from '../engine-loader.js';
import { CHAT_HELP } from '../help.js';
import { EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, UsageError, writeLine, type CliIo } from '../io.js';
import { COMMON_OPTIONS, GENERATION_OPTIONS, MODEL_OPTIONS, generationSettings, modelSettings, outputSettings, parse } from '../options.js';
import { jsonLine, timingLine } from '../output.js';
import { displayImage, readCliImage } from './images.js';

/**
 * The prompt for `question`, dropping the oldest turns until it fits the model's context with --max-new-tokens
 * new tokens (counting the image tokens, as the model does); `error` when the question does not fit even alone.
 */
async function fittingPrompt(engine: Engine, turns: ChatTurn[], question: string, params: GenerationParams): Promise<{ prompt: string; dropped: number; error?: string }> {
  const context = engine.contextLength;
  for (let dropped = 0; ; dropped++) {
    const prompt = turns.length ? chatPrompt(turns, question) : vqaPrompt(question);
    if (context === undefined) return { prompt, dropped };
    const overflow = contextOverflow(await engine.promptTokens(prompt), params.maxNewTokens, context, '--max-new-tokens');
    if (!overflow) return { prompt, dropped };
    if (turns.length === 0) return { prompt, dropped, error: `this question does not fit the model's context: ${overflow}` };
    turns.shift();
  }
}

export async function chatCommand(io: CliIo, args: readonly string[]): Promise<number> {
  const p = parse('chat', args, { ...COMMON_OPTIONS, ...MODEL_OPTIONS, ...GENERATION_OPTIONS });
  if (p.values.help) {
    io.stdout.write(CHAT_HELP);
    return EXIT_OK;
  }
  if (p.positionals.length !== 1) throw new UsageError('needs exactly one IMAGE', 'chat');
  const imagePath = p.positionals[0]!;
  const out = outputSettings(p);
  const params = generationSettings('chat', p);
  if (params.n !== 1) throw new UsageError('keeps one answer per turn: --num-return-sequences must be 1', 'chat');
  const settings = modelSettings('chat', p, io.env);
  const image = await readCliImage(io, imagePath);
  const { engine } = await loadEngine({ io, settings, quiet: out.quiet, verbose: out.verbose });
  const interactive = io.stdin.isTTY === true;
  const streamAnswers = interactive && !out.json && io.stdout.isTTY === true;
  const rl = createInterface({ input: io.stdin, output: interactive ? io.stdout : undefined, terminal: interactive });
  let interrupted = false;
  rl.on('SIGINT', () => {
    interrupted = true;
    rl.close();
  });
  const turns: ChatTurn[] = [];
  const shownImage = displayImage(imagePath);
  let unanswered = 0;
  try {
    if (interactive && !out.quiet) writeLine(io.stderr, `Chatting about ${shownImage}. /reset forgets the conversation, /quit or Ctrl-D ends it.`);
    if (interactive) rl.prompt();
    for await (const line of rl) {
      const question = line.trim();
      if (question === '/quit' || question === '/exit') break;
      if (question === '/reset') {
        turns.length = 0;
        if (interactive && !out.quiet) writeLine(io.stderr, '(conversation cleared)');
      } else if (question) {
        const { prompt, dropped, error } = await fittingPrompt(engine, turns, question, params);
        if (dropped > 0 && interactive && !out.quiet) writeLine(io.stderr, `(${dropped} earlier turn(s) no longer fit the model's context and were dropped)`);
        if (error !== undefined) {
          // Said for this question; the session goes on.
          unanswered++;
          writeLine(io.stderr, `blip2 chat: ${error}`);
          if (out.json) writeLine(io.stdout, jsonLine({ image: shownImage, prompt, question, error }));
        } else {
          const t0 = Date.now();
          let streamed = '';
          const [result] = await engine.generate([{ image, prompt, params }], {
            onToken: streamAnswers
              ? (e) => {
                  streamed += e.text;
                  io.stdout.write(e.text);
                }
              : undefined,
          });
          const answer = result!.sequences[0]!;
          if (out.json) writeLine(io.stdout, jsonLine({ image: shownImage, prompt, question, result: result! }));
          else if (streamAnswers) writeLine(io.stdout, answer.text.startsWith(streamed) ? answer.text.slice(streamed.length) : `\n${answer.text}`);
          else writeLine(io.stdout, answer.text);
          if (out.verbose) writeLine(io.stderr, timingLine('answered', Date.now() - t0, result!.completionTokens));
          turns.push({ question, answer: answer.text });
        }
      }
      if (interactive) rl.prompt();
    }
  } finally {
    rl.close();
    await engine.dispose();
  }
  if (interactive) writeLine(io.stdout);
  return interrupted ? EXIT_INTERRUPTED : unanswered > 0 ? EXIT_FAILURE : EXIT_OK;
}
