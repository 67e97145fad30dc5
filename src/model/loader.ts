import type { Gpu } from '../gpu/gpu.js';
import { toFloat16Bits, toFloat32, type TensorSource } from '../io/safetensors.js';
import { ST_DTYPE_BYTES } from '../io/safetensors-dtypes.js';
import { packF16Into } from '../kernels/copy.js';
import { groupsPerRow, rowBytes, type QuantScheme } from '../quant/format.js';
import { keepWeight, QuantizedTensor } from '../quant/quantized-tensor.js';
import { quantizeRowsInto } from '../quant/quantize-rows.js';
import { isQuantizedWeight, scalesKey } from '../quant/targets.js';
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
  /**
   * Quantize the scheme's Linear weights (src/quant/targets.ts) to q8 or q4 while loading a float checkpoint,
   * or, for a checkpoint that stores them quantized (`stored`), the scheme it holds (they must agree).
   */
  quantize?: QuantScheme | null;
  /** The checkpoint holds the quantized weights already (codes `KEY`, scales `KEY_scales`) in this scheme. */
  stored?: QuantScheme | null;
  onProgress?: (p: LoadProgress) => void;
  /** Elements converted and uploaded per step: host memory stays near this, not a tensor or a shard. */
  chunkElements?: number;
  /**
   * Where f32 checkpoint values become f16 weights: on the host, or uploaded as f32 and packed by a kernel
   * (a GPU does that in microseconds while the host takes ~3 ns a value). Default: the GPU, except on
   * software adapters, whose kernels are no faster than the host.
   */
  convertOn?: 'host' | 'gpu';
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

/**
 * Where a parameter's data comes from: a checkpoint tensor (float, quantized on the way when `quantize` is
 * set), a stored quantized weight (codes and scales), or the fused bias of older vision checkpoints.
 */
type Plan = {
  key: string;
  param: Parameter;
  from: { kind: 'tensor'; name: string; quantize: QuantScheme | null } | { kind: 'quantized'; codes: string; scales: string; scheme: QuantScheme } | { kind: 'qv_bias'; q: string; v: string };
};

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

/** Whether the parameter at `key` is one the scheme quantizes (a 2-D Linear weight of the listed modules). */
function quantizable(key: string, param: Parameter): boolean {
  return param.shape.length === 2 && param.role === 'matmul' && isQuantizedWeight(key);
}

/**
 * The safetensors dtype and shape a stored quantized [N, K] weight's codes have: [N, groups, bytes per group]. Three
 * dimensions so that no codes tensor has its float weight's shape: transformers only warns about an unknown
 * `quantization_config`, and as [N, K] int8 (q8 at widths that are multiples of 32, as all of BLIP-2's are) it
 * would load the codes as weights and generate garbage; with a third dimension it refuses the folder.
 */
export function storedCodesLayout(scheme: QuantScheme, N: number, K: number): { dtype: 'I8' | 'U8'; shape: [number, number, number] } {
  const G = groupsPerRow(K);
  return { dtype: scheme === 'q8' ? 'I8' : 'U8', shape: [N, G, rowBytes(scheme, K) / G] };
}

/**
 * Matches the model's parameters with the checkpoint, listing every problem at once (nanoGPT-style).
 * `options.stored`: the checkpoint holds quantized weights in that scheme (their codes under the weight's
 * key, their scales under KEY_scales); `options.quantize`: quantize float weights while loading.
 */
export function planLoad(model: Module, source: TensorSource, options: { quantize?: QuantScheme | null; stored?: QuantScheme | null } = {}): Plan[] {
  const plan: Plan[] = [];
  const missing: string[] = [];
  const misshaped: string[] = [];
  const used = new Set<string>();
  const stored = options.stored ?? null;
  if (stored && options.quantize && options.quantize !== stored) {
    throw new Error(`the checkpoint holds ${stored} weights; quantizing them to ${options.quantize} is not possible (load it with quantize '${stored}' or none)`);
  }
  for (const [key, param] of model.namedParameters()) {
    if (source.has(key)) {
      used.add(key);
      const info = source.info(key);
      if (stored && quantizable(key, param)) {
        const [N, K] = param.shape as [number, number];
        const want = storedCodesLayout(stored, N, K);
        const sKey = scalesKey(key);
        // [N, row bytes] is the layout of folders converted before the codes got their third dimension: same bytes.
        const flat = [N, rowBytes(stored, K)];
        if (info.dtype !== want.dtype || !(sameShape(info.shape, want.shape) || sameShape(info.shape, flat))) {
          misshaped.push(`${key}: checkpoint ${info.dtype}[${info.shape.join(', ')}], ${stored} codes of [${N}, ${K}] are ${want.dtype}[${want.shape.join(', ')}]`);
        }
        if (!source.has(sKey)) {
          missing.push(sKey);
        } else {
          used.add(sKey);
          const si = source.info(sKey);
          const G = groupsPerRow(K);
          if (si.dtype !== 'F16' || !sameShape(si.shape, [N, G])) misshaped.push(`${sKey}: checkpoint ${si.dtype}[${si.shape.join(', ')}], expected F16[${N}, ${G}]`);
        }
        plan.push({ key, param, from: { kind: 'quantized', codes: key, scales: sKey, scheme: stored } });
        continue;
      }
      if (!sameShape(info.shape, param.shape)) misshaped.push(`${key}: checkpoint [${info.shape.join(', ')}], model [${param.shape.join(', ')}]`);
      else if (!info.dtype.startsWith('F') && info.dtype !== 'BF16') misshaped.push(`${key}: checkpoint holds ${info.dtype} values, not floats`);
      else plan.push({ key, param, from: { kind: 'tensor', name: key, quantize: quantizable(key, param) ? (options.quantize ?? null) : null } });
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
  switch (p.from.kind) {
    case 'tensor':
      return source.info(p.from.name).byteLength;
    case 'quantized':
      return source.info(p.from.codes).byteLength + source.info(p.from.scales).byteLength;
    case 'qv_bias':
      return source.info(p.from.q).byteLength + source.info(p.from.v).byteLength;
  }
}

/**
 * One chunk of a checkpoint tensor and where it goes: `count` elements from element `start` of `name`, written
 * into `dst` from element `dstElement` (converted to dst's float type, or as raw bytes into u32 codes); or, with
 * `quantize`, whole rows of a float weight quantized into a QuantizedTensor.
 */
interface Piece {
  name: string;
  start: number;
  count: number;
  dst: Tensor;
  dstElement: number;
  quantize?: { target: QuantizedTensor; row0: number; rows: number };
}

/** The chunks of tensor `name`, written into `dst` from element `dstElement` on. */
function piecesOf(source: TensorSource, name: string, dst: Tensor, dstElement: number, chunkElements: number): Piece[] {
  const info = source.info(name);
  const count = info.byteLength / ST_DTYPE_BYTES[info.dtype];
  const pieces: Piece[] = [];
  for (let e = 0; e < count; e += chunkElements) pieces.push({ name, start: e, count: Math.min(chunkElements, count - e), dst, dstElement: dstElement + e });
  return pieces;
}

/**
 * Whole rows of the float weight `name` per chunk, quantized into `target`: an even number of rows, so each
 * chunk's scales start at a 4-byte boundary of the scales tensor.
 */
function quantizedPiecesOf(name: string, target: QuantizedTensor, chunkElements: number): Piece[] {
  const [N, K] = target.shape;
  const perChunk = Math.max(2, Math.floor(chunkElements / K / 2) * 2);
  const pieces: Piece[] = [];
  for (let r = 0; r < N; r += perChunk) {
    const rows = Math.min(perChunk, N - r);
    pieces.push({ name, start: r * K, count: rows * K, dst: target.codes, dstElement: 0, quantize: { target, row0: r, rows } });
  }
  return pieces;
}

/**
 * Streams `pieces` from the checkpoint onto the GPU: the next chunk is read while the current one is converted
 * and written, through two read buffers and one conversion buffer that live for the whole load (fresh buffers
 * per chunk cost more in page faults and garbage collection than the conversion itself).
 */
async function streamPieces(
  gpu: Gpu,
  source: TensorSource,
  pieces: readonly Piece[],
  chunkElements: number,
  convertOnGpu: boolean,
  onPiece: (p: Piece, bytes: number) => Promise<void>,
): Promise<void> {
  const itemBytes = (p: Piece) => ST_DTYPE_BYTES[source.info(p.name).dtype];
  const widest = pieces.reduce((m, p) => Math.max(m, itemBytes(p)), 1);
  const longest = pieces.reduce((m, p) => Math.max(m, p.count), 0);
  const reads = [new Uint8Array(longest * widest), new Uint8Array(longest * widest)];
  // Quantizer outputs, made on first use, sized for the largest quantized piece.
  const quantized = pieces.filter((p) => p.quantize).map((p) => ({ rows: p.quantize!.rows, K: p.quantize!.target.K, scheme: p.quantize!.target.scheme }));
  const codeBytes = quantized.reduce((m, q) => Math.max(m, q.rows * rowBytes(q.scheme, q.K)), 0);
  const scaleCount = quantized.reduce((m, q) => Math.max(m, q.rows * groupsPerRow(q.K)), 0);
  let codes: Uint8Array | null = null;
  let scales: Uint16Array | null = null;
  // Conversion targets, made on first use: a GPU-packed f16 load needs neither, an f32 load of f32 data no floats.
  let halves: Uint16Array | null = null;
  let floats: Float32Array | null = null;
  // f32 pieces bound for f16 weights go up as they are and are packed on the GPU (whole pairs, 4-byte aligned).
  const staging = convertOnGpu ? Tensor.empty(gpu, [chunkElements], 'f32') : null;
  const packsOnGpu = (p: Piece, dtype: string) =>
    staging !== null && dtype === 'F32' && p.dst.dtype === 'f16' && p.count % 2 === 0 && (p.dst.byteOffset + p.dstElement * 2) % 4 === 0;
  const read = (i: number): Promise<Uint8Array> => {
    const p = pieces[i]!;
    const target = reads[i % 2]!.subarray(0, p.count * itemBytes(p));
    return source.readBytesInto(p.name, p.start * itemBytes(p), target).then(() => target);
  };
  let next: Promise<Uint8Array> | null = pieces.length ? read(0) : null;
  try {
    for (let i = 0; i < pieces.length; i++) {
      const raw = await next!;
      next = i + 1 < pieces.length ? read(i + 1) : null;
      const p = pieces[i]!;
      const dtype = source.info(p.name).dtype;
      const dstByte = p.dst.byteOffset + p.dstElement * (p.dst.dtype === 'f16' ? 2 : 4);
      // writeBuffer copies its data before returning, so the host buffers can be reused at once; a large write
      // first submits the recorded work, so the staging buffer is only rewritten after the last pack ran.
      if (p.quantize) {
        const { target, row0, rows } = p.quantize;
        const [, K] = target.shape;
        const rb = rowBytes(target.scheme, K);
        const G = groupsPerRow(K);
        const values = toFloat32(dtype, raw, dtype === 'F32' ? undefined : (floats ??= new Float32Array(longest)).subarray(0, p.count));
        const c = (codes ??= new Uint8Array(codeBytes)).subarray(0, rows * rb);
        const sc = (scales ??= new Uint16Array(scaleCount)).subarray(0, rows * G);
        quantizeRowsInto(values, rows, K, target.scheme, c, sc);
        gpu.write(target.codes.buffer, target.codes.byteOffset + row0 * rb, c);
        gpu.write(target.scales.buffer, target.scales.byteOffset + row0 * G * 2, sc);
      } else if (p.dst.dtype === 'u32') {
        // Stored quantized codes: the checkpoint's bytes are the GPU layout.
        gpu.write(p.dst.buffer, p.dst.byteOffset + p.start * itemBytes(p), raw);
      } else if (packsOnGpu(p, dtype)) {
        gpu.write(staging!.buffer, staging!.byteOffset, raw);
        packF16Into(staging!, p.count, p.dst.buffer, dstByte);
      } else {
        const data =
          p.dst.dtype === 'f16'
            ? toFloat16Bits(dtype, raw, (halves ??= new Uint16Array(longest)).subarray(0, p.count))
            : toFloat32(dtype, raw, dtype === 'F32' ? undefined : (floats ??= new Float32Array(longest)).subarray(0, p.count));
        gpu.write(p.dst.buffer, dstByte, data);
      }
      await onPiece(p, raw.length);
    }
  } finally {
    // A failure leaves at most one read in flight: let it settle rather than reject unobserved.
    await next?.catch(() => undefined);
    staging?.dispose();
  }
}

/**
 * Loads every parameter of `model` from `source` onto the GPU, converting F32/BF16/F16 to the parameter's
 * storage dtype on the way. Host memory stays near one chunk; Dawn's staging memory is drained regularly.
 */
export async function loadWeights(model: Module, source: TensorSource, gpu: Gpu, options: LoadOptions): Promise<void> {
  const plan = planLoad(model, source, { quantize: options.quantize, stored: options.stored });
  // A multiple of 64 elements: f16 writes stay 4-byte aligned, raw code chunks whole words.
  const chunk = Math.max(64, Math.floor((options.chunkElements ?? 4 * 1024 * 1024) / 64) * 64);
  const totalBytes = plan.reduce((a, p) => a + plannedBytes(source, p), 0);
  let loadedBytes = 0;
  let sinceSync = 0;
  const created: (Tensor | QuantizedTensor)[] = [];
  try {
    const pieces: Piece[] = [];
    for (const p of plan) {
      const label = p.key;
      if (p.from.kind === 'quantized' || (p.from.kind === 'tensor' && p.from.quantize)) {
        const scheme = p.from.kind === 'quantized' ? p.from.scheme : p.from.quantize!;
        const q = keepWeight(QuantizedTensor.empty(gpu, p.param.shape as [number, number], scheme, { persistent: true, label }));
        created.push(q);
        if (p.from.kind === 'quantized') {
          pieces.push(...piecesOf(source, p.from.codes, q.codes, 0, chunk), ...piecesOf(source, p.from.scales, q.scales, 0, chunk));
        } else {
          pieces.push(...quantizedPiecesOf(p.from.name, q, chunk));
        }
        continue;
      }
      const dtype: DType = p.param.role === 'matmul' ? options.dtype : 'f32';
      const t = keep(Tensor.empty(gpu, p.param.shape, dtype, { persistent: true, label }));
      created.push(t);
      if (p.from.kind === 'tensor') {
        pieces.push(...piecesOf(source, p.from.name, t, 0, chunk));
      } else {
        // Older checkpoints: qkv bias = cat(q_bias, zeros, v_bias).
        const third = p.param.shape[0]! / 3;
        t.write(new Float32Array(t.size));
        pieces.push(...piecesOf(source, p.from.q, t, 0, chunk), ...piecesOf(source, p.from.v, t, 2 * third, chunk));
      }
    }
    const keyOf = new Map<Tensor, string>();
    plan.forEach((p, i) => {
      const c = created[i]!;
      if (c instanceof QuantizedTensor) keyOf.set(c.codes, p.key).set(c.scales, p.key);
      else keyOf.set(c, p.key);
    });
    const convertOnGpu = (options.convertOn ?? (gpu.caps.isSoftware ? 'host' : 'gpu')) === 'gpu';
    await streamPieces(gpu, source, pieces, chunk, convertOnGpu, async (piece, bytes) => {
      loadedBytes += bytes;
      sinceSync += bytes;
      options.onProgress?.({ key: keyOf.get(piece.dst)!, loadedBytes, totalBytes });
      if (sinceSync > 256 * 1024 * 1024) {
        await gpu.sync();
        sinceSync = 0;
      }
    });
    await gpu.sync();
  } catch (e) {
    for (const t of created) t.dispose();
    throw e;
  }
  plan.forEach((p, i) => {
    p.param.dispose();
    const c = created[i]!;
    if (c instanceof QuantizedTensor) p.param.quantized = c;
    else p.param.tensor = c;
  });
}
