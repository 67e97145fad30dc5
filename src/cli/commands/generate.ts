/** `blip2 caption` and `blip2 ask`: one batch (or a few) of image + prompt requests, results on stdout. */
import { captionPrompt, vqaPrompt } from '../../processing/index.js';
import type { GenerateRequest, GenerateResult, GenerationParams, ImageInput } from '../../server/engine.js';
import { loadEngine } from '../engine-loader.js';
import { ASK_HELP, CAPTION_HELP } from '../help.js';
import { EXIT_OK, UsageError, writeLine, type CliIo } from '../io.js';
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
import { printResults, timingLine, type ResultRecord } from '../output.js';
import { readCliImage } from './images.js';

interface Job {
  image: string;
  prompt: string;
}

async function run(io: CliIo, command: string, p: Parsed, jobs: Job[], batchSize: number): Promise<number> {
  const out = outputSettings(p);
  const params: GenerationParams = generationSettings(command, p);
  const settings = modelSettings(command, p, io.env);
  const images: ImageInput[] = [];
  for (const j of jobs) images.push(await readCliImage(io, j.image));
  const { engine, model, timings } = await loadEngine({ io, settings, quiet: out.quiet, verbose: out.verbose });
  try {
    if (out.verbose) {
      writeLine(io.stderr, timingLine(`model ${model.modelId} (${model.source}) resolved`, timings.resolveMs));
      writeLine(io.stderr, timingLine('engine loaded', timings.loadMs));
    }
    // Stream the answer as it is generated when a person watches a single answer.
    const stream = jobs.length === 1 && params.n === 1 && !out.json && io.stdout.isTTY === true;
    for (let start = 0; start < jobs.length; start += batchSize) {
      const batch = jobs.slice(start, start + batchSize);
      const requests: GenerateRequest[] = batch.map((j, i) => ({ image: images[start + i]!, prompt: j.prompt, params }));
      const t0 = Date.now();
      let results: GenerateResult[];
      if (stream) {
        let streamed = '';
        results = await engine.generate(requests, {
          onToken: (e) => {
            streamed += e.text;
            io.stdout.write(e.text);
          },
        });
        // Beam search streams nothing: print what was not shown yet.
        const text = results[0]!.sequences[0]!.text;
        writeLine(io.stdout, text.startsWith(streamed) ? text.slice(streamed.length) : `\n${text}`);
      } else {
        results = await engine.generate(requests);
      }
      const ms = Date.now() - t0;
      if (out.verbose) writeLine(io.stderr, timingLine(`generated ${batch.length} result(s)`, ms, results.reduce((n, r) => n + r.completionTokens, 0)));
      const records: ResultRecord[] = batch.map((j, i) => ({ image: j.image, prompt: j.prompt, result: results[i]! }));
      if (!stream) printResults(io, records, { json: out.json, withImage: jobs.length > 1 });
    }
  } finally {
    await engine.dispose();
  }
  return EXIT_OK;
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
