/**
 * `blip2 convert`: a float BLIP-2 folder to a compact quantized one in Hugging Face's layout, which loads with
 * no conversion (the stored codes and scales are the GPU layout) in Node and in browsers. docs/quantization.md
 * describes the result. Node only (it lists and copies files).
 */
import { copyFile, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { joinPath, openCheckpoint } from '../io/checkpoint.js';
import { ST_DTYPE_BYTES } from '../io/safetensors-dtypes.js';
import { toFloat16Bits, toFloat32, type TensorSource } from '../io/safetensors.js';
import { writeShardedCheckpoint, type TensorToWrite } from '../io/safetensors-writer.js';
import { readTextFile } from '../io/text-file.js';
import { Blip2ForConditionalGeneration } from '../model/blip2.js';
import { parseBlip2Config } from '../model/config.js';
import { planLoad, storedCodesLayout } from '../model/loader.js';
import { parseQuantizationConfig, quantizationConfig, QuantizationConfigError } from './config.js';
import { groupsPerRow, rowBytes, type QuantScheme } from './format.js';
import { quantizeRowsInto } from './quantize-rows.js';
import { scalesKey } from './targets.js';

export interface ConvertOptions {
  quantize: QuantScheme;
  /** Storage of the other large weights (embeddings, patch embedding): f16 (default) or f32. fp32 parameters stay f32. */
  dtype?: 'f16' | 'f32';
  /** Largest shard in bytes (default 2 GB). */
  maxShardBytes?: number;
  onProgress?: (p: { doneBytes: number; totalBytes: number; key: string }) => void;
}

export interface ConvertResult {
  shards: string[];
  /** Bytes of tensor data written. */
  bytes: number;
  /** Other files copied (tokenizer, processor, generation config...). */
  copied: string[];
}

/** The files of a model folder besides config.json and the weights that a converted copy keeps as they are. */
const COPIED = /^(?:(?:tokenizer|tokenizer_config|special_tokens_map|added_tokens|vocab|preprocessor_config|processor_config|image_processor|generation_config|chat_template)\.(?:json|jinja)|merges\.txt|vocab\.txt|[a-z_]*\.model|README\.md|LICENSE(?:\.\w+)?)$/;

/** Rows of a float weight per read: ~4 M values, an even count. */
const CHUNK_VALUES = 4 * 1024 * 1024;

export async function convertCheckpoint(sourceDir: string, outDir: string, options: ConvertOptions): Promise<ConvertResult> {
  const scheme = options.quantize;
  const dtype = options.dtype ?? 'f16';
  const configText = await readTextFile(joinPath(sourceDir, 'config.json'));
  const configJson = JSON.parse(configText) as Record<string, unknown>;
  const config = parseBlip2Config(configJson);
  const stored = parseQuantizationConfig(configJson.quantization_config, joinPath(sourceDir, 'config.json'));
  if (stored) throw new QuantizationConfigError(`${sourceDir} is already quantized (${stored}); convert the float checkpoint it was made from`);
  await mkdir(outDir, { recursive: true });
  const existing = (await readdir(outDir)).filter((f) => f.endsWith('.safetensors') || f === 'config.json');
  if (existing.length) throw new Error(`${outDir} already holds a model (${existing.slice(0, 3).join(', ')}); choose an empty folder`);

  // The model's parameters tell which tensors exist, their roles and which are quantized; planLoad checks the
  // whole checkpoint first, so a broken source fails before anything is written.
  const model = new Blip2ForConditionalGeneration(config);
  const source = await openCheckpoint(sourceDir);
  try {
    const plan = planLoad(model, source, { quantize: scheme });
    const tensors: TensorToWrite[] = [];
    let totalBytes = 0;
    for (const p of plan) {
      for (const name of p.from.kind === 'qv_bias' ? [p.from.q, p.from.v] : p.from.kind === 'tensor' ? [p.from.name] : []) totalBytes += source.info(name).byteLength;
    }
    let doneBytes = 0;
    const progress = (key: string, bytes: number) => {
      doneBytes += bytes;
      options.onProgress?.({ doneBytes, totalBytes, key });
    };
    for (const p of plan) {
      if (p.from.kind === 'qv_bias') {
        for (const name of [p.from.q, p.from.v]) tensors.push(floatTensor(source, name, 'F32', progress));
      } else if (p.from.kind === 'tensor' && p.from.quantize) {
        tensors.push(...quantizedTensors(source, p.from.name, p.param.shape as [number, number], scheme, progress));
      } else if (p.from.kind === 'tensor') {
        tensors.push(floatTensor(source, p.from.name, p.param.role === 'matmul' && dtype === 'f16' ? 'F16' : 'F32', progress));
      }
    }
    const shards = await writeShardedCheckpoint(outDir, tensors, options.maxShardBytes ?? 2e9, { metadata: { producer: 'blip2-webgpu convert', quantization: scheme } });
    await writeFile(join(outDir, 'config.json'), withQuantizationConfig(configText, quantizationConfig(scheme), dtype));
    const copied: string[] = [];
    for (const name of await readdir(sourceDir)) {
      if (!COPIED.test(name) || !(await stat(join(sourceDir, name))).isFile()) continue;
      await copyFile(join(sourceDir, name), join(outDir, name));
      copied.push(name);
    }
    const bytes = tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1) * ST_DTYPE_BYTES[t.dtype], 0);
    return { shards, bytes, copied };
  } finally {
    await source.close();
  }
}

/**
 * The source's config.json text with `quantization_config` appended (and, for f16 storage, the top-level dtype
 * set to float16), edited as text: a JSON round trip in JavaScript writes 1.0 as 1, and transformers 5 refuses
 * an integer where its config classes declare a float (initializer_factor).
 */
export function withQuantizationConfig(text: string, qc: object, dtype: 'f16' | 'f32'): string {
  let t = text.trimEnd();
  if (!t.startsWith('{') || !t.endsWith('}')) throw new Error('config.json is not a JSON object');
  // HF writes configs with 2-space indentation: a key at exactly two spaces is a top-level one.
  if (dtype === 'f16') t = t.replace(/^( {2}"(?:torch_)?dtype":\s*)"[^"]*"/m, '$1"float16"');
  const body = t.slice(0, -1).trimEnd();
  const sep = body.endsWith('{') ? '' : ',';
  return `${body}${sep}\n  "quantization_config": ${JSON.stringify(qc, null, 2).replace(/\n/g, '\n  ')}\n}\n`;
}

/** A float tensor stored as `out` (F16 or F32), read and converted when the writer asks for it. */
function floatTensor(source: TensorSource, name: string, out: 'F16' | 'F32', progress: (key: string, bytes: number) => void): TensorToWrite {
  const info = source.info(name);
  return {
    name,
    dtype: out,
    shape: info.shape,
    data: async () => {
      const raw = await source.readBytes(name);
      progress(name, raw.byteLength);
      return out === 'F16' ? toFloat16Bits(info.dtype, raw).slice() : toFloat32(info.dtype, raw).slice();
    },
  };
}

/** Codes (KEY) and scales (KEY_scales) of a quantized weight, made chunk by chunk of rows when the writer asks. */
function quantizedTensors(source: TensorSource, name: string, shape: [number, number], scheme: QuantScheme, progress: (key: string, bytes: number) => void): TensorToWrite[] {
  const [N, K] = shape;
  const rb = rowBytes(scheme, K);
  const G = groupsPerRow(K);
  const layout = storedCodesLayout(scheme, N, K);
  const info = source.info(name);
  const item = ST_DTYPE_BYTES[info.dtype];
  let scales: Uint16Array | null = null;
  const codes = async (): Promise<Uint8Array> => {
    const out = new Uint8Array(N * rb);
    const s = (scales = new Uint16Array(N * G));
    const rowsPerChunk = Math.max(2, Math.floor(CHUNK_VALUES / K / 2) * 2);
    for (let r = 0; r < N; r += rowsPerChunk) {
      const rows = Math.min(rowsPerChunk, N - r);
      const raw = await source.readBytes(name, r * K * item, rows * K * item);
      quantizeRowsInto(toFloat32(info.dtype, raw), rows, K, scheme, out.subarray(r * rb, (r + rows) * rb), s.subarray(r * G, (r + rows) * G));
      progress(name, raw.byteLength);
    }
    return out;
  };
  return [
    { name, dtype: layout.dtype, shape: layout.shape, data: codes },
    {
      name: scalesKey(name),
      dtype: 'F16',
      shape: [N, G],
      data: () => {
        // The writer asks for tensors in order, so the codes (and with them the scales) are made first.
        if (!scales) throw new Error(`convert: scales of ${name} requested before its codes`);
        const s = scales;
        scales = null;
        return s;
      },
    },
  ];
}
