import { getPlatform } from '../platform/index.js';

/**
 * Every WGSL file the engine uses (wgsl/NAME.wgsl). They are loaded once when a device is created, so
 * that kernel dispatch stays synchronous. A test keeps this list equal to the folder's contents.
 */
export const SHADER_NAMES = [
  'attention_backward',
  'attention_backward_prep',
  'attention_combine',
  'attention_common',
  'attention_decode',
  'attention_lanes',
  'attention_probs',
  'attention_rows',
  'adamw',
  'argmax',
  'cast',
  'cross_entropy',
  'dropout',
  'copy',
  'decode_attention',
  'decode_common',
  'decode_embed',
  'decode_state',
  'flash_attention',
  'softmax',
  'topk',
  'elementwise',
  'exp_common',
  'embedding',
  'embedding_backward',
  'im2col',
  'rows',
  'scatter',
  'layernorm',
  'layernorm_common',
  'layernorm_backward',
  'layernorm_thread',
  'logits_ids',
  'logits_scale',
  'linear_common',
  'gemv_rows',
  'gemv_coop',
  'matmul_regblock',
  'matmul_tiled',
  'naive_matmul',
  'fill',
  'grad_norm',
  'reduce_rows',
] as const;

export type ShaderName = (typeof SHADER_NAMES)[number] | (string & {});

let baseUrl: URL = new URL('../../wgsl/', import.meta.url);

/** Where the .wgsl files are served from; browser bundles that move them set this. */
export function setShaderBaseUrl(url: string | URL): void {
  baseUrl = new URL(String(url).endsWith('/') ? String(url) : `${String(url)}/`, globalThis.location?.href);
}

export async function loadShaderSources(names: readonly string[] = SHADER_NAMES): Promise<Map<string, string>> {
  const platform = await getPlatform();
  const entries = await Promise.all(
    names.map(async (n) => {
      const url = new URL(`${n}.wgsl`, baseUrl);
      try {
        return [n, await platform.readText(url)] as const;
      } catch (e) {
        throw new Error(`cannot load shader ${n}.wgsl from ${url.href}: ${(e as Error).message}`);
      }
    }),
  );
  return new Map(entries);
}
