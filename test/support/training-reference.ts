/**
 * A fixture's training reference (training.json/.safetensors: transformers' float32 run) and, where the folder
 * has one, training64.safetensors (transformers' float64 run of the same setting, scripts/ref/training64.py).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, readFloat32, readIntegers } from '../../src/io/safetensors.js';

export interface TrainingMeta {
  trainable: string[];
  losses: number[];
  grad_norms_before_clipping: number[];
  optimizer: { lr: number; betas: [number, number]; eps: number; weight_decay: number; clip_grad_norm: number; steps: number };
  other_schedule_max_abs_diff_by_group: Record<string, number>;
}

export interface TrainingReference {
  meta: TrainingMeta;
  inputs: { pixel_values: Float32Array; pixelShape: number[]; input_ids: number[][]; attention_mask: number[][]; labels: number[][] };
  /** transformers' float32 tensors by name (grad.step0.KEY, param.after_step1.KEY, param.after_step3.KEY). */
  f32: SafetensorsFile;
  /** The float64 run, when the folder has it. */
  f64: { file: SafetensorsFile; losses: number[] } | null;
  close(): Promise<void>;
}

export function hasTrainingReference(dir: string): boolean {
  return existsSync(join(dir, 'training.json')) && existsSync(join(dir, 'training.safetensors'));
}

export async function loadTrainingReference(dir: string): Promise<TrainingReference> {
  const meta = JSON.parse(readFileSync(join(dir, 'training.json'), 'utf8')) as TrainingMeta;
  const f32 = await SafetensorsFile.open(join(dir, 'training.safetensors'));
  const rows = async (name: string): Promise<number[][]> => {
    const flat = await readIntegers(f32, name);
    const [B, L] = f32.info(name).shape as [number, number];
    return Array.from({ length: B }, (_, b) => flat.slice(b * L, (b + 1) * L));
  };
  const inputs = {
    pixel_values: await readFloat32(f32, 'inputs.pixel_values'),
    pixelShape: [...f32.info('inputs.pixel_values').shape],
    input_ids: await rows('inputs.input_ids'),
    attention_mask: await rows('inputs.attention_mask'),
    labels: await rows('inputs.labels'),
  };
  const p64 = join(dir, 'training64.safetensors');
  let f64: TrainingReference['f64'] = null;
  if (existsSync(p64)) {
    const file = await SafetensorsFile.open(p64);
    f64 = { file, losses: JSON.parse(file.metadata.losses ?? '[]') as number[] };
  }
  return {
    meta,
    inputs,
    f32,
    f64,
    close: async () => {
      await f32.close();
      await f64?.file.close();
    },
  };
}
