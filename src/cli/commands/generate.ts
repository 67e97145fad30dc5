/** `blip2 caption` and `blip2 ask`: one batch (or a few) of image + prompt requests, results on stdout. */
import { captionPrompt, vqaPrompt } from '../../processing/index.js';
import { contextOverflow } from '../../server/context-limit.js';
import {
  EngineInputError,
  type Engine,
  type GenerateOptions,
  type GenerateRequest,
  type GenerateResult,
  type GenerationParams,
  type ImageInput,
} from '../../server/engine.js';
import { loadEngine } from '../engine-loader.js';
import { ASK_HELP, CAPTION_HELP } from '../help.js';
import { EXIT_FAILURE, EXIT_OK, UsageError, writeLine, type CliIo } from '../io.js';
import {
  COMMON_OPTIONS,
  GENERATION_OPTIONS,
  MODEL_OPTIONS,
  generationSettings,
  modelSettings,
  numberOption,
  outputSettings,
  parse,
  type Parsed,
} from '../options.js';
import { printResults, timingLine, type OutputRecord } from '../output.js';
import { ImageReadError, displayImage, readCliImage } from './images.js';

interface Job {
  image: string;
  prompt: string;
}

/** A job's image as read before the model loads, or why it cannot be used. */
type Input = { image: ImageInput } | { error: string };

/**
 * Reads every image first: an unusable one is reported at once (stderr) and skipped, so that a bad file among
 * many costs neither the model load nor the other images' answers.
 */
async function readInputs(io: CliIo, jobs: readonly Job[]): Promise<Input[]> {
  const inputs: Input[] = [];
  for (const j of jobs) {
    try {
      inputs.push({ image: await readCliImage(io, j.image) });
    } catch (e) {
      if (!(e instanceof ImageReadError)) throw e;
      writeLine(io.stderr, `blip2: ${e.message}`);
      inputs.push({ error: e.reason });
    }
  }
  return inputs;
}

/** A prompt (with its image tokens) plus --max-new-tokens beyond the model's context is a value out of range. */
async function checkContext(command: string, engine: Engine, prompts: readonly string[], params: GenerationParams): Promise<void> {
  if (engine.contextLength === undefined) return;
  for (const prompt of new Set(prompts)) {
    const overflow = contextOverflow(await engine.promptTokens(prompt), params.maxNewTokens, engine.contextLength, '--max-new-tokens');
    if (overflow) throw new UsageError(overflow, command);
  }
}

/**
 * Generates for the jobs of one batch that have images; one whose image the engine cannot decode gets its error
 * (and stderr line) and the others run again without it.
 */
async function generateBatch(io: CliIo, engine: Engine, requests: Map<number, GenerateRequest>, options: GenerateOptions, shown: (i: number) => string) {
  const outcomes = new Map<number, GenerateResult | string>();
  let pending = [...requests.keys()];
  while (pending.length > 0) {
    try {
      const results = await engine.generate(pending.map((i) => requests.get(i)!), options);
      pending.forEach((i, k) => outcomes.set(i, results[k]!));
      pending = [];
    } catch (e) {
      const culprit = e instanceof EngineInputError ? pending[e.requestIndex] : undefined;
      if (culprit === undefined) throw e;
      writeLine(io.stderr, `blip2: ${shown(culprit)}: ${(e as Error).message}`);
      outcomes.set(culprit, (e as Error).message);
      pending = pending.filter((i) => i !== culprit);
    }
  }
  return outcomes;
}

async function run(io: CliIo, command: string, p: Parsed, jobs: Job[], batchSize: number): Promise<number> {
  const out = outputSettings(p);
  const params: GenerationParams = generationSettings(command, p);
  const settings = modelSettings(command, p, io.env);
  const shown = (i: number) => displayImage(jobs[i]!.image);
  const inputs = await readInputs(io, jobs);
  let failed = inputs.some((x) => 'error' in x);
  if (inputs.every((x) => 'error' in x)) {
    if (out.json) printResults(io, inputs.map((x, i) => ({ image: shown(i), prompt: jobs[i]!.prompt, error: (x as { error: string }).error })), { json: true, withImage: false });
    return EXIT_FAILURE;
  }
  const { engine, model, timings } = await loadEngine({ io, settings, quiet: out.quiet, verbose: out.verbose });
  try {
    if (out.verbose) {
      writeLine(io.stderr, timingLine(`model ${model.modelId} (${model.source}) resolved`, timings.resolveMs));
      writeLine(io.stderr, timingLine('engine loaded', timings.loadMs));
    }
    await checkContext(command, engine, jobs.map((j) => j.prompt), params);
    // Stream the answer as it is generated when a person watches a single answer.
    const stream = jobs.length === 1 && params.n === 1 && !out.json && io.stdout.isTTY === true;
    for (let start = 0; start < jobs.length; start += batchSize) {
      const batch = jobs.slice(start, start + batchSize).map((_, k) => start + k);
      const requests = new Map<number, GenerateRequest>();
      for (const i of batch) {
        const input = inputs[i]!;
        if ('image' in input) requests.set(i, { image: input.image, prompt: jobs[i]!.prompt, params });
      }
      const t0 = Date.now();
      let streamed = '';
      const options: GenerateOptions = stream
        ? {
            onToken: (e) => {
              streamed += e.text;
              io.stdout.write(e.text);
            },
          }
        : {};
      const outcomes = await generateBatch(io, engine, requests, options, shown);
      const records: OutputRecord[] = batch.map((i) => {
        const input = inputs[i]!;
        const outcome = 'error' in input ? input.error : outcomes.get(i)!;
        const base = { image: shown(i), prompt: jobs[i]!.prompt };
        return typeof outcome === 'string' ? { ...base, error: outcome } : { ...base, result: outcome };
      });
      failed ||= records.some((r) => 'error' in r);
      const results = records.flatMap((r) => ('result' in r ? [r.result] : []));
      if (out.verbose) writeLine(io.stderr, timingLine(`generated ${results.length} result(s)`, Date.now() - t0, results.reduce((n, r) => n + r.completionTokens, 0)));
      if (stream && results.length === 1) {
        // Beam search streams nothing: print what was not shown yet.
        const text = results[0]!.sequences[0]!.text;
        writeLine(io.stdout, text.startsWith(streamed) ? text.slice(streamed.length) : `\n${text}`);
      } else {
        printResults(io, records, { json: out.json, withImage: jobs.length > 1 });
      }
    }
  } finally {
    await engine.dispose();
  }
  return failed ? EXIT_FAILURE : EXIT_OK;
}

export async function captionCommand(io: CliIo, args: readonly string[]): Promise<number> {
  const p = parse('caption', args, { ...COMMON_OPTIONS, ...MODEL_OPTIONS, ...GENERATION_OPTIONS, prompt: { type: 'string' }, 'batch-size': { type: 'string' } });
  if (p.values.help) {
    io.stdout.write(CAPTION_HELP);
    return EXIT_OK;
  }
  if (p.positionals.length === 0) throw new UsageError('needs at least one IMAGE', 'caption');
  const batchSize = numberOption('caption', p, 'batch-size', 1, 1024, true) ?? 8;
  const prompt = captionPrompt(typeof p.values.prompt === 'string' ? p.values.prompt : undefined);
  return run(io, 'caption', p, p.positionals.map((image) => ({ image, prompt })), batchSize);
}

export async function askCommand(io: CliIo, args: readonly string[]): Promise<number> {
  const p = parse('ask', args, { ...COMMON_OPTIONS, ...MODEL_OPTIONS, ...GENERATION_OPTIONS });
  if (p.values.help) {
    io.stdout.write(ASK_HELP);
    return EXIT_OK;
  }
  const [image, ...words] = p.positionals;
  const question = words.join(' ').trim();
  if (!image || !question) throw new UsageError('needs an IMAGE and a QUESTION', 'ask');
  return run(io, 'ask', p, [{ image, prompt: vqaPrompt(question) }], 1);
}
