import { GROUP_SIZE, QUANT_SCHEMES, isQuantScheme, type QuantScheme } from './format.js';
import { QUANTIZED_MODULES } from './targets.js';

/**
 * The `quantization_config` of a converted folder's config.json: it names the scheme so that a loader knows
 * what the safetensors hold, and states the layout for anyone reading them elsewhere (docs/quantization.md).
 */
export interface QuantizationConfig {
  quant_method: typeof QUANT_METHOD;
  /** 'q8' or 'q4'. */
  scheme: QuantScheme;
  bits: 8 | 4;
  group_size: typeof GROUP_SIZE;
  symmetric: true;
  scale_dtype: 'float16';
  /** Module patterns (`*` = a layer index) whose `.weight` is quantized; every other tensor is a float. */
  modules: string[];
  /** How codes and scales are stored (informative; docs/quantization.md has the details). */
  storage: string;
}

export const QUANT_METHOD = 'blip2-webgpu';

/** A converted folder whose quantization_config this version cannot read. */
export class QuantizationConfigError extends Error {
  override readonly name = 'QuantizationConfigError';
}

export function quantizationConfig(scheme: QuantScheme): QuantizationConfig {
  return {
    quant_method: QUANT_METHOD,
    scheme,
    bits: scheme === 'q8' ? 8 : 4,
    group_size: GROUP_SIZE,
    symmetric: true,
    scale_dtype: 'float16',
    modules: [...QUANTIZED_MODULES],
    storage:
      scheme === 'q8'
        ? 'KEY: I8 [out, 32 * ceil(in / 32)] codes (zero past in); KEY_scales: F16 [out, ceil(in / 32)]; w = code * scale of its group of 32 columns'
        : 'KEY: U8 [out, 16 * ceil(in / 32)], two 4-bit two\'s complement codes per byte, even column in the low nibble (zero past in); KEY_scales: F16 [out, ceil(in / 32)]; w = code * scale of its group of 32 columns',
  };
}

/**
 * The scheme a config.json's `quantization_config` names, or null when there is none. Anything this version
 * does not read exactly (another method, scheme, group size or module set) is an error, never a guess.
 */
export function parseQuantizationConfig(raw: unknown, where: string): QuantScheme | null {
  if (raw === undefined || raw === null) return null;
  const fail = (why: string) => new QuantizationConfigError(`${where}: quantization_config ${why}`);
  if (typeof raw !== 'object' || Array.isArray(raw)) throw fail('must be an object');
  const c = raw as Record<string, unknown>;
  if (c.quant_method !== QUANT_METHOD) {
    throw fail(`names quant_method ${JSON.stringify(c.quant_method)}; this version reads only '${QUANT_METHOD}' folders (made by \`blip2 convert\`)`);
  }
  if (!isQuantScheme(c.scheme)) throw fail(`names an unknown scheme ${JSON.stringify(c.scheme)} (known: ${QUANT_SCHEMES.join(', ')})`);
  if (c.group_size !== GROUP_SIZE) throw fail(`has group_size ${JSON.stringify(c.group_size)}; the ${c.scheme} scheme uses ${GROUP_SIZE}`);
  if (c.bits !== undefined && c.bits !== (c.scheme === 'q8' ? 8 : 4)) throw fail(`has bits ${JSON.stringify(c.bits)}, which does not match scheme ${c.scheme}`);
  const modules = c.modules;
  if (!Array.isArray(modules) || modules.length !== QUANTIZED_MODULES.length || !QUANTIZED_MODULES.every((m) => modules.includes(m))) {
    throw fail(`quantizes modules ${JSON.stringify(modules)}; this version reads folders that quantize exactly ${JSON.stringify(QUANTIZED_MODULES)}`);
  }
  return c.scheme;
}
