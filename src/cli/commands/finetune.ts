/**
 * `blip2 finetune --model DIR --data FILE --out DIR`: trains the Q-Former (or another selection) on images with
 * captions or question/answer pairs, and writes a Hugging Face folder that transformers and this project load.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { getRngState, setRngState } from '../../autograd/random.js';
import { getGpu, releaseGpu } from '../../gpu/gpu.js';
import { HubError, resolveModel } from '../../io/hub.js';
import { Blip2ForConditionalGeneration } from '../../model/blip2.js';
import { Blip2Processor } from '../../processing/processor.js';
import { loadTrainingState, saveFinetuned, saveTrainingState, type TrainingState } from '../../training/checkpoint.js';
import { DataError, parseTrainingData, type PromptFormat, type TrainExample } from '../../training/data.js';
import type { ParameterSelection } from '../../training/select.js';
import { Trainer } from '../../training/trainer.js';
import { CliError, EXIT_OK, UsageError, writeLine, type CliIo } from '../io.js';
import { COMMON_OPTIONS, flag, numberOption, parse, quantizeOption, type Parsed } from '../options.js';
import { ProgressBar } from '../progress.js';

export const FINETUNE_HELP = `Usage: blip2 finetune --model DIR --data FILE --out DIR [options]

Fine-tunes BLIP-2 on images with captions (or questions and answers) on the GPU, BLIP-2 stage 2 style: the
Q-Former, its query tokens and the language projection learn; the vision tower and the language model stay
frozen (the loss flows back through the language model). Writes a Hugging Face folder to --out.

Data (--data): JSON Lines, one {"image": PATH|URL, "text": "..."} per line (optional "question" for VQA;
paths relative to the file), or a COCO captions file {"images": [...], "annotations": [...]}.

      --model ID|DIR        model folder or hub id to start from
      --resume DIR          continue a run from a folder it saved (--out or a checkpoint-N inside it)
      --data FILE           training examples
      --out DIR             where the fine-tuned model goes (checkpoint-N folders inside with --save-every)
      --eval FILE           held-out examples (or --eval-fraction F of --data, default none)
      --eval-fraction F     hold out this fraction of --data (by the seeded order)
      --eval-every N        held-out loss every N steps (default: at the end of every epoch)
      --format caption|vqa  caption (default) or "Question: {question} Answer: {text}"
      --prompt TEXT         caption prefix the model continues, not learned (e.g. "a photo of")
      --epochs N            passes over the data (default 1)
      --max-steps N         stop after N optimizer steps (overrides --epochs)
      --batch-size N        examples per optimizer step (default 4)
      --micro-batch-size N  examples per forward pass; gradients accumulate (default: --batch-size)
      --lr LR               peak learning rate (default 1e-4)
      --weight-decay W      AdamW decoupled weight decay (default 0.05)
      --warmup N            linear warm-up steps (default 0)
      --schedule S          cosine (default) or constant
      --max-grad-norm N     clip_grad_norm_ (default 1; 0 turns clipping off)
      --trainable SEL       qformer (default: Q-Former, query tokens, projection), query_tokens,
                            layers:I,J (Q-Former layers, with query tokens and projection),
                            all-but-vision (also the language model)
      --dtype f16|f32       storage of the frozen weights (default f16); trained ones are always f32
      --quantize q8|q4      hold the frozen vision and language-model layers' Linear weights as 8- or 4-bit
                            codes (docs/quantization.md; a folder made by blip2 convert is quantized already);
                            the loss still flows back through them, and --out keeps the input's weights
      --gradient-checkpointing  recompute language-model layers in the backward pass (less memory)
      --dropout             Q-Former dropout (model.train()); off by default
      --seed N              data order and dropout (default 0)
      --save-every N        also write DIR/checkpoint-STEP every N steps (resumable)
      --progress            progress bar even when stderr is not a terminal
  -v, --verbose             more detail; stack traces on errors
  -q, --quiet               nothing on stderr but errors
  -h, --help                this help
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  model: { type: 'string', short: 'm' },
  resume: { type: 'string' },
  data: { type: 'string' },
  out: { type: 'string' },
  eval: { type: 'string' },
  'eval-fraction': { type: 'string' },
  'eval-every': { type: 'string' },
  format: { type: 'string' },
  prompt: { type: 'string' },
  epochs: { type: 'string' },
  'max-steps': { type: 'string' },
  'batch-size': { type: 'string' },
  'micro-batch-size': { type: 'string' },
  lr: { type: 'string' },
  'weight-decay': { type: 'string' },
  warmup: { type: 'string' },
  schedule: { type: 'string' },
  'max-grad-norm': { type: 'string' },
  trainable: { type: 'string' },
  dtype: { type: 'string' },
  quantize: { type: 'string' },
  'gradient-checkpointing': { type: 'boolean' },
  dropout: { type: 'boolean' },
  seed: { type: 'string' },
  'save-every': { type: 'string' },
  progress: { type: 'boolean' },
} as const;

const C = 'finetune';

function str(p: Parsed, key: string): string | undefined {
  const v = p.values[key];
  return typeof v === 'string' ? v : undefined;
}

function selectionOf(raw: string): ParameterSelection {
  if (raw === 'qformer' || raw === 'query_tokens') return raw;
  if (raw === 'all-but-vision') return (name: string) => !name.startsWith('vision_model.');
  const m = /^layers:(\d+(,\d+)*)$/.exec(raw);
  if (m) return { qformerLayers: m[1]!.split(',').map(Number), queryTokens: true, projection: true };
  throw new UsageError(`--trainable must be qformer, query_tokens, layers:I,J or all-but-vision (got '${raw}')`, C);
}

/** Reads a data file and makes image paths absolute (relative to the file); local images must exist. */
function readExamples(io: CliIo, path: string): TrainExample[] {
  const file = isAbsolute(path) ? path : resolve(io.cwd, path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  let examples: TrainExample[];
  try {
    examples = parseTrainingData(text, path);
  } catch (e) {
    throw e instanceof DataError ? new CliError(e.message) : e;
  }
  const base = dirname(file);
  const missing: string[] = [];
  for (const ex of examples) {
    const image = ex.image as string;
    if (/^(https?:|data:)/i.test(image)) continue;
    ex.image = isAbsolute(image) ? image : resolve(base, image);
    if (!existsSync(ex.image)) missing.push(`${ex.source}: ${image}`);
  }
  if (missing.length) throw new CliError(`missing image${missing.length > 1 ? 's' : ''}:\n  ${missing.slice(0, 20).join('\n  ')}${missing.length > 20 ? `\n  ... and ${missing.length - 20} more` : ''}`);
  return examples;
}

export async function finetuneCommand(io: CliIo, args: readonly string[]): Promise<number> {
  const p = parse(C, args, OPTIONS);
  if (p.values.help) {
    io.stdout.write(FINETUNE_HELP);
    return EXIT_OK;
  }
  if (p.positionals.length) throw new UsageError(`unexpected argument '${p.positionals[0]}'`, C);
  const resumeDir = str(p, 'resume');
  const modelArg = resumeDir ?? str(p, 'model');
  const dataPath = str(p, 'data');
  const outArg = str(p, 'out');
  if (!modelArg) throw new UsageError('needs --model DIR (or --resume DIR)', C);
  if (!dataPath) throw new UsageError('needs --data FILE', C);
  if (!outArg) throw new UsageError('needs --out DIR', C);
  const format = (str(p, 'format') ?? 'caption') as PromptFormat;
  if (format !== 'caption' && format !== 'vqa') throw new UsageError(`--format must be caption or vqa (got '${format}')`, C);
  const schedule = str(p, 'schedule') ?? 'cosine';
  if (schedule !== 'cosine' && schedule !== 'constant') throw new UsageError(`--schedule must be cosine or constant (got '${schedule}')`, C);
  const dtype = str(p, 'dtype') ?? 'f16';
  if (dtype !== 'f16' && dtype !== 'f32') throw new UsageError(`--dtype must be f16 or f32 (got '${dtype}')`, C);
  const trainableRaw = str(p, 'trainable') ?? 'qformer';
  const selection = selectionOf(trainableRaw);
  const batchSize = numberOption(C, p, 'batch-size', 1, 65536, true) ?? 4;
  const settings = {
    data: dataPath,
    format,
    prompt: str(p, 'prompt'),
    batchSize,
    microBatchSize: numberOption(C, p, 'micro-batch-size', 1, batchSize, true) ?? batchSize,
    lr: numberOption(C, p, 'lr', 0, 10, false) ?? 1e-4,
    weightDecay: numberOption(C, p, 'weight-decay', 0, 10, false) ?? 0.05,
    warmupSteps: numberOption(C, p, 'warmup', 0, 1e9, true) ?? 0,
    schedule,
    maxGradNorm: numberOption(C, p, 'max-grad-norm', 0, 1e9, false) ?? 1,
    trainable: trainableRaw,
    dtype,
    quantize: quantizeOption(C, p),
    seed: numberOption(C, p, 'seed', 0, 2 ** 31, true) ?? 0,
    dropout: flag(p, 'dropout'),
  };
  const epochs = numberOption(C, p, 'epochs', 1, 1e6, true) ?? 1;
  const maxSteps = numberOption(C, p, 'max-steps', 1, 1e9, true);
  const evalEvery = numberOption(C, p, 'eval-every', 1, 1e9, true);
  const saveEvery = numberOption(C, p, 'save-every', 1, 1e9, true);
  const evalFraction = numberOption(C, p, 'eval-fraction', 0, 0.9, false) ?? 0;
  const quiet = flag(p, 'quiet');
  const verbose = flag(p, 'verbose');

  // Everything that can be checked before the model loads is.
  let examples = readExamples(io, dataPath);
  let held: TrainExample[] = str(p, 'eval') ? readExamples(io, str(p, 'eval')!) : [];
  if (evalFraction > 0) {
    const n = Math.max(1, Math.round(examples.length * evalFraction));
    if (n >= examples.length) throw new UsageError(`--eval-fraction ${evalFraction} leaves no training examples`, C);
    held = [...held, ...examples.slice(examples.length - n)];
    examples = examples.slice(0, examples.length - n);
  }
  const outDir = isAbsolute(outArg) ? outArg : resolve(io.cwd, outArg);
  mkdirSync(outDir, { recursive: true });

  let modelDir: string;
  try {
    modelDir = resumeDir ? resolve(io.cwd, resumeDir) : (await resolveModel(modelArg, { env: io.env })).dir;
  } catch (e) {
    throw e instanceof HubError ? new CliError(e.message) : e;
  }
  const progressOn = !quiet && (io.stderr.isTTY === true || flag(p, 'progress'));
  const gpu = await getGpu();
  const t0 = Date.now();
  const model = await Blip2ForConditionalGeneration.fromPretrained(modelDir, { gpu, dtype, quantize: settings.quantize, trainable: selection });
  const processor = await Blip2Processor.fromPretrained(modelDir);
  if (flag(p, 'gradient-checkpointing')) model.language_model.gradient_checkpointing_enable();
  const names = model.trainableParameters().map(([n]) => n);
  if (!quiet) {
    const count = model.trainableParameters().reduce((n, [, q]) => n + q.value.size, 0);
    writeLine(io.stderr, `Loaded ${modelDir} in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${count.toLocaleString('en-US')} trainable parameters (${names.length} tensors, ${trainableRaw}), frozen weights ${model.quantization ?? dtype}`);
  }
  const stepsPerEpoch = Math.ceil(examples.length / batchSize);
  const totalSteps = maxSteps ?? epochs * stepsPerEpoch;
  const trainer = new Trainer(model, processor, { ...settings, totalSteps, schedule: settings.schedule as 'cosine' | 'constant' });
  let state: TrainingState = { step: 0, epoch: 0, batchInEpoch: 0, settings, history: [] };
  try {
    let items;
    let heldItems;
    try {
      items = trainer.prepare(examples);
      heldItems = trainer.prepare(held);
    } catch (e) {
      throw e instanceof DataError ? new CliError(e.message) : e;
    }
    if (resumeDir) {
      state = await loadTrainingState(trainer.optimizer, names, modelDir);
      // A resumed run continues the same optimisation: the settings that shape it must not change.
      const changed = Object.entries(settings).filter(([k, v]) => JSON.stringify(state.settings[k]) !== JSON.stringify(v)).map(([k]) => k);
      if (changed.length) throw new CliError(`--resume: the run was started with other settings (${changed.map((k) => `${k}: ${JSON.stringify(state.settings[k])}`).join(', ')}); give the same ones`);
      trainer.step = state.step;
      if (state.rng !== undefined) setRngState(state.rng);
      if (!quiet) writeLine(io.stderr, `Resuming at step ${state.step} (epoch ${state.epoch + 1}, batch ${state.batchInEpoch + 1})`);
    }
    const save = async (dir: string) => {
      mkdirSync(dir, { recursive: true });
      state.rng = getRngState();
      await saveFinetuned(model, modelDir, dir);
      await saveTrainingState(trainer.optimizer, names, state, dir);
    };
    const evaluate = async () => {
      if (!heldItems.length) return undefined;
      const loss = await trainer.evaluate(heldItems);
      return loss;
    };
    const bar = progressOn ? new ProgressBar(io.stderr, 'Training', { interactive: io.stderr.isTTY === true, unit: 'items' }) : null;
    const started = Date.now();
    const startStep = trainer.step;
    let last: { loss: number } | null = null;
    outer: for (let epoch = state.epoch; ; epoch++) {
      const batches = trainer.epochBatches(items, epoch);
      for (let b = epoch === state.epoch ? state.batchInEpoch : 0; b < batches.length; b++) {
        if (trainer.step >= totalSteps) break outer;
        const r = await trainer.trainStep(batches[b]!);
        last = r;
        state.step = r.step;
        state.epoch = b + 1 === batches.length ? epoch + 1 : epoch;
        state.batchInEpoch = b + 1 === batches.length ? 0 : b + 1;
        const rate = (r.step - startStep) / ((Date.now() - started) / 1000);
        const entry: TrainingState['history'][number] = { step: r.step, loss: r.loss };
        const endOfEpoch = state.batchInEpoch === 0;
        if ((evalEvery ? r.step % evalEvery === 0 : endOfEpoch) || r.step === totalSteps) entry.evalLoss = await evaluate();
        state.history.push(entry);
        bar?.update(r.step, totalSteps, `loss ${r.loss.toFixed(4)} ${rate.toFixed(2)} steps/s lr ${r.lr.toExponential(2)}`);
        if (verbose || entry.evalLoss !== undefined) {
          if (bar && io.stderr.isTTY) io.stderr.write('\n');
          if (!quiet) writeLine(io.stderr, `step ${r.step}/${totalSteps}: loss ${r.loss.toFixed(4)}${entry.evalLoss !== undefined ? `, held-out loss ${entry.evalLoss.toFixed(4)}` : ''}, grad norm ${r.gradNorm.toFixed(3)}, ${rate.toFixed(2)} steps/s`);
        }
        if (saveEvery && r.step % saveEvery === 0 && r.step < totalSteps) await save(resolve(outDir, `checkpoint-${r.step}`));
      }
      if (trainer.step >= totalSteps) break;
    }
    bar?.finish();
    await save(outDir);
    if (!quiet) {
      const first = state.history[0]?.loss;
      writeLine(io.stderr, `Saved ${outDir} after ${state.step} steps${last && first !== undefined ? `: loss ${first.toFixed(4)} -> ${last.loss.toFixed(4)}` : ''}`);
    }
    writeLine(io.stdout, JSON.stringify({ out: outDir, steps: state.step, first_loss: state.history[0]?.loss ?? null, last_loss: last?.loss ?? null, eval_loss: [...state.history].reverse().find((h) => h.evalLoss !== undefined)?.evalLoss ?? null }));
  } finally {
    trainer.dispose();
    model.dispose();
    await releaseGpu();
  }
  return EXIT_OK;
}
