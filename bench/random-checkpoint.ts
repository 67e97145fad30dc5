/**
 * Writes a random-weight BLIP-2 checkpoint with the real blip2-opt-2.7b config, key names, shapes and shard
 * layout (two fp32 safetensors shards, as on the hub), for benchmarks and memory checks without the real weights.
 * `--layers V,Q,T` keeps the real widths, heads and vocabulary but only V vision, Q Q-Former and T OPT layers:
 * a "real-dims" model small enough for a browser tab (2,2,2: 1.5 GB fp32 on disk, 0.75 GB in f16).
 *
 *   npx tsx bench/random-checkpoint.ts OUT_DIR [--config-dir test/fixtures/hf/blip2-opt-2.7b] [--layers V,Q,T]
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSafetensors, type TensorToWrite } from '../src/io/safetensors-writer.js';
import { Blip2ForConditionalGeneration } from '../src/model/blip2.js';
import { parseBlip2Config } from '../src/model/config.js';

const DEFAULT_CONFIG_DIR = fileURLToPath(new URL('../test/fixtures/hf/blip2-opt-2.7b/', import.meta.url));

/** xorshift128+ uniform floats in [-a, a): fast enough for 3.7 B values. */
function fillUniform(out: Float32Array, seed: number, a: number): void {
  let s0 = (seed * 2654435761) >>> 0 || 1;
  let s1 = (seed ^ 0x9e3779b9) >>> 0 || 2;
  for (let i = 0; i < out.length; i++) {
    let x = s0;
    const y = s1;
    s0 = y;
    x ^= x << 23;
    x ^= x >>> 17;
    x ^= y ^ (y >>> 26);
    s1 = x >>> 0;
    out[i] = (((s0 + s1) >>> 0) / 4294967296 - 0.5) * 2 * a;
  }
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Values that keep a 39-layer ViT and a 32-layer OPT finite in f16: LayerNorm 1/0, biases 0, weights ~ N(0, 0.02)-sized. */
function randomTensor(key: string, shape: readonly number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const isNorm = /(layer_norm|layernorm|LayerNorm|final_layer_norm|post_layernorm)[^.]*\.weight$/.test(key);
  if (isNorm) return out.fill(1);
  if (key.endsWith('.bias') || key.endsWith('_bias')) return out;
  fillUniform(out, hash(key), 0.02 * Math.sqrt(3));
  return out;
}

/** Layer counts of a reduced ("real-dims") checkpoint. */
export interface LayerCounts {
  vision: number;
  qformer: number;
  text: number;
}

/** 'V,Q,T' -> counts (each a positive integer). */
export function parseLayers(spec: string): LayerCounts {
  const n = spec.split(',').map(Number);
  if (n.length !== 3 || n.some((v) => !Number.isInteger(v) || v < 1)) throw new Error(`--layers wants three positive integers V,Q,T (vision, Q-Former, OPT), got '${spec}'`);
  return { vision: n[0]!, qformer: n[1]!, text: n[2]! };
}

/**
 * config.json text with `num_hidden_layers` set in each sub-config, edited as text: a JSON round trip would write
 * 1.0 as 1, which transformers' strict config classes refuse for float fields (initializer_factor).
 */
export function withLayerCounts(configText: string, layers: LayerCounts): string {
  let text = configText;
  for (const [section, n] of [['vision_config', layers.vision], ['qformer_config', layers.qformer], ['text_config', layers.text]] as const) {
    const open = new RegExp(`"${section}"\\s*:\\s*\\{`).exec(text);
    if (!open) throw new Error(`config.json has no ${section}`);
    const start = open.index + open[0].length;
    let depth = 1;
    let end = start;
    for (; end < text.length && depth > 0; end++) depth += text[end] === '{' ? 1 : text[end] === '}' ? -1 : 0;
    const body = text.slice(start, end - 1);
    // Only the sub-config's own key, not one of a nested object.
    const own = /^(\s*(?:"[^"]*"\s*:\s*(?:"[^"]*"|[^{},\[\]]+|\[[^\]]*\])\s*,\s*)*?)"num_hidden_layers"\s*:\s*\d+/.exec(body);
    const edited = own ? body.replace(/"num_hidden_layers"\s*:\s*\d+/, `"num_hidden_layers": ${n}`) : `\n    "num_hidden_layers": ${n},${body}`;
    text = text.slice(0, start) + edited + text.slice(end - 1);
  }
  return text;
}

export async function writeRandomCheckpoint(outDir: string, configDir = DEFAULT_CONFIG_DIR, log: (s: string) => void = () => {}, layers?: LayerCounts): Promise<void> {
  mkdirSync(outDir, { recursive: true });
  const configSource = readFileSync(join(configDir, 'config.json'), 'utf8');
  const configText = layers ? withLayerCounts(configSource, layers) : configSource;
  const configJson = JSON.parse(configText) as unknown;
  const model = new Blip2ForConditionalGeneration(parseBlip2Config(configJson));
  const shapes = new Map(model.namedParameters().map(([k, p]) => [k, p.shape]));
  const index = JSON.parse(readFileSync(join(configDir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  const weightMap: Record<string, string> = {};
  const shards = new Map<string, string[]>();
  for (const [key, shard] of Object.entries(index.weight_map)) {
    // A reduced model drops the keys of the layers it does not have; the rest must all be parameters.
    if (!shapes.has(key) && layers && /\.layers?\.\d+\./.test(key)) continue;
    if (!shapes.has(key)) throw new Error(`index key ${key} is not a model parameter`);
    weightMap[key] = shard;
    if (!shards.has(shard)) shards.set(shard, []);
    shards.get(shard)!.push(key);
  }
  let total = 0;
  for (const [shard, keys] of [...shards].sort()) {
    keys.sort();
    const tensors: TensorToWrite[] = keys.map((key) => {
      const shape = shapes.get(key)!;
      total += shape.reduce((a, b) => a * b, 4);
      return { name: key, dtype: 'F32', shape, data: () => randomTensor(key, shape) };
    });
    log(`writing ${shard} (${keys.length} tensors)`);
    await writeSafetensors(join(outDir, shard), tensors, { format: 'pt' });
  }
  writeFileSync(join(outDir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  writeFileSync(join(outDir, 'config.json'), configText);
  for (const f of ['generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'vocab.json', 'merges.txt', 'preprocessor_config.json', 'processor_config.json']) {
    if (existsSync(join(configDir, f))) copyFileSync(join(configDir, f), join(outDir, f));
  }
  const what = layers ? `the real blip2-opt-2.7b widths, heads and vocabulary but ${layers.vision} vision, ${layers.qformer} Q-Former and ${layers.text} OPT layers` : 'the real blip2-opt-2.7b config';
  writeFileSync(join(outDir, 'RANDOM_WEIGHTS.md'), `Random weights with ${what}, key names, shapes and shard layout. Written by bench/random-checkpoint.ts; useful for speed and memory measurements only.\n`);
}

// Run as a script (tsx bench/random-checkpoint.ts, or its bundle), not when imported by bench/model.ts.
if (/random-checkpoint\.(ts|js|mjs)$/.test(process.argv[1] ?? '')) {
  const out = process.argv[2];
  if (!out) {
    console.error('usage: tsx bench/random-checkpoint.ts OUT_DIR [--config-dir DIR]');
    process.exit(2);
  }
  const i = process.argv.indexOf('--config-dir');
  const l = process.argv.indexOf('--layers');
  const t0 = Date.now();
  await writeRandomCheckpoint(out, i > 0 ? process.argv[i + 1] : undefined, (s) => console.error(s), l > 0 ? parseLayers(process.argv[l + 1] ?? '') : undefined);
  console.error(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
