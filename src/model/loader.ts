import type { Gpu } from '../gpu/gpu.js';
import { toFloat16Bits, toFloat32, type TensorSource } from '../io/safetensors.js';
import { ST_DTYPE_BYTES } from '../io/safetensors-dtypes.js';
import { keep, Tensor, type DType } from '../tensor.js';
import type { Module, Parameter } from './module.js';

export interface LoadProgress {
  key: string;
  loadedBytes: number;
  totalBytes: number;
}

export interface LoadOptions {
  /** Storage of `matmul` parameters; `fp32` parameters always load as f32. */
  dtype: 'f16' | 'f32';
  onProgress?: (p: LoadProgress) => void;
  /** Elements converted and uploaded per step: host memory stays near this, not a tensor or a shard. */
  chunkElements?: number;
}

export class CheckpointMismatchError extends Error {
  override readonly name = 'CheckpointMismatchError';
  constructor(
    readonly missing: string[],
    readonly unexpected: string[],
    readonly misshaped: string[],
  ) {
    const parts: string[] = [];
    const list = (title: string, keys: string[]) => {
      if (keys.length) parts.push(`${title} (${keys.length}):\n  ${keys.slice(0, 50).join('\n  ')}${keys.length > 50 ? `\n  ... and ${keys.length - 50} more` : ''}`);
    };
    list('missing keys', missing);
    list('unexpected keys', unexpected);
    list('shape mismatches', misshaped);
    super(`the checkpoint does not match the model:\n${parts.join('\n')}`);
  }
}

/** Where a parameter's data comes from: a checkpoint tensor, or the fused bias of older vision checkpoints. */
type Plan = { key: string; param: Parameter; from: { kind: 'tensor'; name: string } | { kind: 'qv_bias'; q: string; v: string } };

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** Keys a checkpoint may hold that the model legitimately does not use. */
function ignorable(key: string, model: Module): boolean {
  // A tied lm_head: transformers ignores the stored copy and uses embed_tokens.
  if (key.endsWith('lm_head.weight')) {
    const owners = model.namedParameters().map(([k]) => k);
    return !owners.includes(key);
  }
  return false;
}

/** Matches the model's parameters with the checkpoint, listing every problem at once (nanoGPT-style). */
export function planLoad(model: Module, source: TensorSource): Plan[] {
  const plan: Plan[] = [];
  const missing: string[] = [];
  const misshaped: string[] = [];
  const used = new Set<string>();
  for (const [key, param] of model.namedParameters()) {
    if (source.has(key)) {
      used.add(key);
      const shape = source.info(key).shape;
      if (!sameShape(shape, param.shape)) misshaped.push(`${key}: checkpoint [${shape.join(', ')}], model [${param.shape.join(', ')}]`);
      else plan.push({ key, param, from: { kind: 'tensor', name: key } });
      continue;
    }
    const legacy = key.endsWith('.qkv.bias') ? key.slice(0, -'qkv.bias'.length) : null;
    if (legacy !== null && source.has(`${legacy}q_bias`) && source.has(`${legacy}v_bias`)) {
      const q = `${legacy}q_bias`;
      const v = `${legacy}v_bias`;
      used.add(q).add(v);
      const third = param.shape[0]! / 3;
      for (const k of [q, v]) {
        const s = source.info(k).shape;
        if (!sameShape(s, [third])) misshaped.push(`${k}: checkpoint [${s.join(', ')}], model [${third}]`);
      }
      plan.push({ key, param, from: { kind: 'qv_bias', q, v } });
      continue;
    }
    missing.push(key);
  }
  const unexpected = source.keys().filter((k) => !used.has(k) && !ignorable(k, model));
  if (missing.length || unexpected.length || misshaped.length) throw new CheckpointMismatchError(missing, unexpected.sort(), misshaped);
  return plan;
}

function plannedBytes(source: TensorSource, p: Plan): number {
  return p.from.kind === 'tensor' ? source.info(p.from.name).byteLength : source.info(p.from.q).byteLength + source.info(p.from.v).byteLength;
}

/** Streams a tensor (or part of one) from the checkpoint into `dst` at element `dstOffset`, chunk by chunk. */
async function upload(gpu: Gpu, source: TensorSource, name: string, dst: Tensor, dstOffset: number, chunkElements: number, onBytes: (n: number) => void): Promise<void> {
  const info = source.info(name);
  const item = ST_DTYPE_BYTES[info.dtype];
  const count = info.byteLength / item;
  const outBytes = dst.dtype === 'f16' ? 2 : 4;
  for (let e = 0; e < count; e += chunkElements) {
    const n = Math.min(chunkElements, count - e);
    const raw = await source.readBytes(name, e * item, n * item);
    const data = dst.dtype === 'f16' ? toFloat16Bits(info.dtype, raw) : toFloat32(info.dtype, raw);
    gpu.write(dst.buffer, dst.byteOffset + (dstOffset + e) * outBytes, data);
    onBytes(n * item);
  }
}

/**
 * Loads every parameter of `model` from `source` onto the GPU, converting F32/BF16/F16 to the parameter's
 * storage dtype on the way. Host memory stays near one chunk; Dawn's staging memory is drained regularly.
 */
export async function loadWeights(model: Module, source: TensorSource, gpu: Gpu, options: LoadOptions): Promise<void> {
  const plan = planLoad(model, source);
  const chunk = Math.max(2, Math.floor((options.chunkElements ?? 4 * 1024 * 1024) / 2) * 2); // even: f16 writes stay 4-byte aligned
  const totalBytes = plan.reduce((a, p) => a + plannedBytes(source, p), 0);
  let loadedBytes = 0;
  let sinceSync = 0;
  const created: Tensor[] = [];
  try {
    for (const p of plan) {
      const dtype: DType = p.param.role === 'matmul' ? options.dtype : 'f32';
      const t = keep(Tensor.empty(gpu, p.param.shape, dtype, { persistent: true, label: p.key }));
      created.push(t);
      const onBytes = (n: number) => {
        loadedBytes += n;
        sinceSync += n;
        options.onProgress?.({ key: p.key, loadedBytes, totalBytes });
      };
      if (p.from.kind === 'tensor') {
        await upload(gpu, source, p.from.name, t, 0, chunk, onBytes);
      } else {
        // Older checkpoints: qkv bias = cat(q_bias, zeros, v_bias).
        const third = p.param.shape[0]! / 3;
        t.write(new Float32Array(t.size));
        await upload(gpu, source, p.from.q, t, 0, chunk, onBytes);
        await upload(gpu, source, p.from.v, t, 2 * third, chunk, onBytes);
      }
      if (sinceSync > 256 * 1024 * 1024) {
        await gpu.sync();
        sinceSync = 0;
      }
    }
    await gpu.sync();
  } catch (e) {
    for (const t of created) t.dispose();
    throw e;
  }
  plan.forEach((p, i) => {
    p.param.tensor?.dispose();
    p.param.tensor = created[i]!;
  });
}
