/**
 * Saving a fine-tuned model as a Hugging Face folder (loadable by transformers' from_pretrained and by us) and
 * the optimizer state that resumes training. The weights keep the input checkpoint's keys, shapes and dtypes:
 * trained tensors come from the device (f32, converted to the stored dtype), every frozen one is copied byte for
 * byte from the input checkpoint (so f16 copies held on the device never replace exact f32 weights).
 */
import { joinPath, openCheckpoint } from '../io/checkpoint.js';
import { SUPPORT_FILES } from '../io/model-files.js';
import type { StDType } from '../io/safetensors-dtypes.js';
import { readFloat32, SafetensorsFile } from '../io/safetensors.js';
import { writeSafetensors, writeShardedCheckpoint, type TensorToWrite } from '../io/safetensors-writer.js';
import type { Blip2ForConditionalGeneration } from '../model/blip2.js';
import { getPlatform } from '../platform/index.js';
import { f32ArrayToF16 } from '../util/half.js';
import type { AdamW } from './adamw.js';

/** Files of a HF model folder besides the weights, copied as they are when present (chat templates too). */
export const SIDE_FILES: readonly string[] = [...SUPPORT_FILES, 'chat_template.json', 'chat_template.jinja'];

/** transformers' default shard size when saving. */
export const DEFAULT_MAX_SHARD_BYTES = 5 * 1024 ** 3;

function f32ToBf16(src: Float32Array): Uint16Array {
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const x = u[i]!;
    // Round to nearest even; NaN stays NaN.
    out[i] = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

function asStored(values: Float32Array, dtype: StDType, key: string): ArrayBufferView {
  switch (dtype) {
    case 'F32':
      return values;
    case 'F16':
      return f32ArrayToF16(values);
    case 'BF16':
      return f32ToBf16(values);
    default:
      throw new Error(`${key}: a trained tensor stored as ${dtype} cannot be written back`);
  }
}

export interface SaveModelOptions {
  maxShardBytes?: number;
  onProgress?: (file: string, index: number, count: number) => void;
}

/**
 * Writes `model`'s weights into `outDir` (which must exist) in the layout of the checkpoint at `sourceDir`,
 * plus its side files (config, tokenizer, processor). Returns the weight files written.
 */
export async function saveFinetuned(model: Blip2ForConditionalGeneration, sourceDir: string, outDir: string, options: SaveModelOptions = {}): Promise<string[]> {
  const source = await openCheckpoint(sourceDir);
  try {
    const trained = new Map(model.trainableParameters());
    const keys = source.keys();
    for (const name of trained.keys()) if (!source.has(name)) throw new Error(`the trained parameter ${name} is not in the input checkpoint; it cannot be saved in its layout`);
    const tensors: TensorToWrite[] = keys.map((key) => {
      const info = source.info(key);
      const p = trained.get(key);
      return {
        name: key,
        dtype: info.dtype,
        shape: info.shape,
        data: p ? async () => asStored((await p.value.read()) as Float32Array, info.dtype, key) : () => source.readBytes(key),
      };
    });
    const total = keys.reduce((n, k) => n + source.info(k).byteLength, 0);
    const maxShard = options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
    let files: string[];
    if (total <= maxShard) {
      options.onProgress?.('model.safetensors', 0, 1);
      await writeSafetensors(joinPath(outDir, 'model.safetensors'), tensors, { format: 'pt' });
      files = ['model.safetensors'];
    } else {
      files = await writeShardedCheckpoint(outDir, tensors, maxShard, { onShard: options.onProgress });
    }
    await copySideFiles(sourceDir, outDir);
    return files;
  } finally {
    await source.close();
  }
}

async function copySideFiles(from: string, to: string): Promise<void> {
  const platform = await getPlatform();
  for (const name of SIDE_FILES) {
    let src;
    try {
      src = await platform.openBytes(joinPath(from, name));
    } catch {
      continue; // not part of this folder
    }
    try {
      const bytes = await src.read(0, src.size);
      const sink = await platform.createSink(joinPath(to, name));
      try {
        await sink.write(bytes);
      } finally {
        await sink.close();
      }
    } finally {
      await src.close();
    }
  }
}

/** What resumes a run besides the weights: optimizer moments and counters, and the loop's position. */
export interface TrainingState {
  /** Optimizer steps taken. */
  step: number;
  /** Epochs completed, and the position in the current one. */
  epoch: number;
  batchInEpoch: number;
  /** The settings the run started with (the command line), for a resumed run to check. */
  settings: Record<string, unknown>;
  /** Position of the dropout stream (autograd/random.ts), so a resumed run draws the masks it would have. */
  rng?: number;
  /** Held-out losses so far. */
  history: { step: number; loss: number; evalLoss?: number }[];
}

/** optimizer.safetensors (exp_avg.KEY, exp_avg_sq.KEY; per-key step counts in the metadata) and trainer_state.json. */
export async function saveTrainingState(optimizer: AdamW, names: readonly string[], state: TrainingState, outDir: string): Promise<void> {
  if (names.length !== optimizer.params.length) throw new Error('saveTrainingState: one name per optimizer parameter');
  const st = optimizer.stateTensors();
  const tensors: TensorToWrite[] = [];
  const steps: Record<string, number> = {};
  names.forEach((name, i) => {
    const s = st[i]!;
    steps[name] = s.step;
    tensors.push({ name: `exp_avg.${name}`, dtype: 'F32', shape: s.exp_avg.shape, data: async () => (await s.exp_avg.read()) as Float32Array });
    tensors.push({ name: `exp_avg_sq.${name}`, dtype: 'F32', shape: s.exp_avg_sq.shape, data: async () => (await s.exp_avg_sq.read()) as Float32Array });
  });
  await writeSafetensors(joinPath(outDir, 'optimizer.safetensors'), tensors, { steps: JSON.stringify(steps), lr: String(optimizer.lr) });
  const platform = await getPlatform();
  const sink = await platform.createSink(joinPath(outDir, 'trainer_state.json'));
  try {
    await sink.write(new TextEncoder().encode(JSON.stringify(state, null, 2) + '\n'));
  } finally {
    await sink.close();
  }
}

/** Restores what saveTrainingState wrote into `optimizer` (parameters by `names`) and returns the loop state. */
export async function loadTrainingState(optimizer: AdamW, names: readonly string[], dir: string): Promise<TrainingState> {
  const platform = await getPlatform();
  const file = await SafetensorsFile.open(joinPath(dir, 'optimizer.safetensors'));
  try {
    const steps = JSON.parse(file.metadata.steps ?? '{}') as Record<string, number>;
    const states = [];
    for (const name of names) {
      if (!file.has(`exp_avg.${name}`) || steps[name] === undefined) throw new Error(`${dir}: the saved optimizer state has nothing for ${name}; resume with the same trainable selection`);
      states.push({ step: steps[name]!, exp_avg: await readFloat32(file, `exp_avg.${name}`), exp_avg_sq: await readFloat32(file, `exp_avg_sq.${name}`) });
    }
    optimizer.loadState(states);
  } finally {
    await file.close();
  }
  const src = await platform.openBytes(joinPath(dir, 'trainer_state.json'));
  try {
    return JSON.parse(new TextDecoder().decode(await src.read(0, src.size))) as TrainingState;
  } finally {
    await src.close();
  }
}
