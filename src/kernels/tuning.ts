import { adapterLabel } from '../gpu/capabilities.js';
import type { Gpu } from '../gpu/gpu.js';
import { Tensor, type DType } from '../tensor.js';
import type { GemmProblem, VariantChoice } from './linear-problem.js';
import { GEMV_MAX_ROWS, tiledWorkgroupBytes } from './linear-variants.js';

/**
 * Which linear/matmul kernel runs a problem. By default a rule of thumb by shape and adapter class
 * (measured on lavapipe, reasoned for GPUs); `tuneLinear` replaces it by measurement for given
 * shapes, and the winners are cached per device (and can be exported and imported, keyed by adapter).
 */

/** The shape class a tuning result applies to. */
export interface TuneShape {
  M: number;
  K: number;
  N: number;
  /** Activations (x). Default f32. */
  xDtype?: DType;
  /** Weights. Default f16 where the device has shader-f16, else f32. */
  wDtype?: DType;
}

export interface TuneOptions {
  /** Also try products in f16 (less precise than f32 math: about 1e-3 relative). Default false. */
  allowF16Math?: boolean;
  /** Runs per candidate after warm-up (the fastest counts). Default 5. */
  runs?: number;
  /** Measure on software adapters too (their rule of thumb was itself measured). Default false. */
  force?: boolean;
}

/** Tuning results, portable between runs on the same adapter. */
export interface TuningTable {
  adapter: string;
  choices: Record<string, VariantChoice>;
}

const tables = new WeakMap<Gpu, Map<string, VariantChoice>>();

function key(M: number, K: number, N: number, layout: string, a: DType, b: string): string {
  return `${M}x${K}x${N}|${layout}|${a}|${b}`;
}

function problemKey(p: GemmProblem): string {
  return key(p.M, p.K, p.N, p.aLayout === 'km' ? `km-${p.bLayout}` : p.bLayout, p.a.dtype, p.bFormat);
}

/** The rule of thumb. */
export function defaultVariant(gpu: Gpu, p: Pick<GemmProblem, 'M' | 'N' | 'bLayout' | 'aLayout'>): VariantChoice {
  // Weight gradients (A stored transposed) have one kernel; they are small next to the frozen model's products.
  if (p.aLayout === 'km') return { kind: 'tiled', tile: p.M <= 32 ? 'tile32' : 'tile64' };
  const software = gpu.caps.isSoftware;
  if (software) {
    // Measured on lavapipe at 2560 -> 10240 with f16 weights: gemv-rows wins up to M = 2, ties at 3-4,
    // and from M = 5 (beam search) the register-blocked kernel is about 1.8x faster.
    return p.bLayout === 'nk' && p.M <= 2 ? { kind: 'gemv-rows' } : { kind: 'regblock' };
  }
  if (p.bLayout === 'nk' && p.M <= GEMV_MAX_ROWS) return { kind: 'gemv-coop' };
  // Big tiles only where they still give every multiprocessor several workgroups; short ones where
  // 64 rows would mostly compute padding (the Q-Former's 32 queries).
  if (p.M <= 32) return { kind: 'tiled', tile: 'tile32' };
  const big = p.M >= 512 && p.N >= 512 && tiledWorkgroupBytes('tile128', false) <= gpu.caps.maxComputeWorkgroupStorageSize;
  return { kind: 'tiled', tile: big ? 'tile128' : 'tile64' };
}

/** The variant for `p` on `gpu`: a tuned one for this exact problem class, else the rule of thumb. */
export function pickVariant(gpu: Gpu, p: GemmProblem): VariantChoice {
  return tables.get(gpu)?.get(problemKey(p)) ?? defaultVariant(gpu, p);
}

function candidates(gpu: Gpu, s: Required<TuneShape>, options: TuneOptions): VariantChoice[] {
  const list: VariantChoice[] = [];
  if (s.M <= GEMV_MAX_ROWS) {
    list.push({ kind: 'gemv-rows' }, { kind: 'gemv-coop', subgroups: false });
    if (gpu.caps.subgroups) list.push({ kind: 'gemv-coop', subgroups: true });
  }
  list.push({ kind: 'regblock' }, { kind: 'tiled', tile: 'tile32' }, { kind: 'tiled', tile: 'tile64' });
  if (tiledWorkgroupBytes('tile128', false) <= gpu.caps.maxComputeWorkgroupStorageSize) list.push({ kind: 'tiled', tile: 'tile128' });
  if (options.allowF16Math && gpu.caps.f16) {
    list.push({ kind: 'tiled', tile: 'tile64', f16Math: true });
    if (tiledWorkgroupBytes('tile128', true) <= gpu.caps.maxComputeWorkgroupStorageSize) list.push({ kind: 'tiled', tile: 'tile128', f16Math: true });
  }
  return list;
}

/**
 * Times every candidate kernel on each shape (random operands, [N, K] weights as in `linear`) and
 * caches the fastest for this device. Later `linear`/`matmul` calls with the same M, K, N, layout and
 * dtypes use it. Returns the choices made.
 */
export async function tuneLinear(gpu: Gpu, shapes: readonly TuneShape[], options: TuneOptions = {}): Promise<Record<string, VariantChoice>> {
  const made: Record<string, VariantChoice> = {};
  if (gpu.caps.isSoftware && !options.force) return made;
  // Imported lazily: linear.ts itself depends on this module.
  const { linearWithVariant } = await import('./linear.js');
  let table = tables.get(gpu);
  if (!table) tables.set(gpu, (table = new Map()));
  const runs = options.runs ?? 5;
  for (const shape of shapes) {
    const s: Required<TuneShape> = { xDtype: 'f32', wDtype: 'f16', ...shape };
    const x = Tensor.from(gpu, new Float32Array(s.M * s.K).fill(0.25), [s.M, s.K], s.xDtype);
    const w = Tensor.from(gpu, new Float32Array(s.N * s.K).fill(0.125), [s.N, s.K], s.wDtype);
    const y = Tensor.empty(gpu, [s.M, s.N], s.xDtype);
    try {
      let best: { choice: VariantChoice; ms: number } | null = null;
      for (const choice of candidates(gpu, s, options)) {
        try {
          linearWithVariant(choice, x, w, null, { out: y }); // compile and warm up
          await gpu.sync();
          let fastest = Infinity;
          for (let i = 0; i < runs; i++) {
            const t0 = performance.now();
            linearWithVariant(choice, x, w, null, { out: y });
            await gpu.sync();
            fastest = Math.min(fastest, performance.now() - t0);
          }
          if (!best || fastest < best.ms) best = { choice, ms: fastest };
        } catch {
          // A candidate this device cannot run (limits, features) is simply not a candidate.
        }
      }
      if (best) {
        const k = key(s.M, s.K, s.N, 'nk', s.xDtype, s.wDtype);
        table.set(k, best.choice);
        made[k] = best.choice;
      }
    } finally {
      x.dispose();
      w.dispose();
      y.dispose();
    }
  }
  return made;
}

/** The tuned choices of this device, to store and `importTuning` in a later run. */
export function exportTuning(gpu: Gpu): TuningTable {
  return { adapter: adapterLabel(gpu.caps.adapter), choices: Object.fromEntries(tables.get(gpu) ?? []) };
}

/** Restores exported choices; ignored (returns false) when they were measured on another adapter. */
export function importTuning(gpu: Gpu, t: TuningTable): boolean {
  if (t.adapter !== adapterLabel(gpu.caps.adapter)) return false;
  let table = tables.get(gpu);
  if (!table) tables.set(gpu, (table = new Map()));
  for (const [k, v] of Object.entries(t.choices)) table.set(k, v);
  return true;
}

/** Forgets this device's tuned choices. */
export function clearTuning(gpu: Gpu): void {
  tables.delete(gpu);
}
