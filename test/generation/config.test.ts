/** Generation settings: HF defaults, the checkpoints' generation_config.json, validation as HF validates. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  GenerationConfigError,
  HF_GENERATION_DEFAULTS,
  generationConfigFromJson,
  maxLengthFor,
  readGenerationConfigJson,
  type GenerationOptions,
} from '../../src/generation/config.js';
import { resolveGenerationConfig } from '../../src/generation/generate.js';
import { parseBlip2Config } from '../../src/model/config.js';
import { fixturePath } from '../paths.js';

const json = (rel: string): unknown => JSON.parse(readFileSync(fixturePath(rel), 'utf8'));

describe('generation config', () => {
  it('takes eos/bos/pad from the checkpoint (real: eos 50118 = "\\n"; tiny: 202) and HF defaults otherwise', async () => {
    for (const [dir, eos] of [
      ['hf/blip2-opt-2.7b', 50118],
      ['tiny-blip2', 202],
    ] as const) {
      const text = parseBlip2Config(json(`${dir}/config.json`)).text_config;
      const c = generationConfigFromJson(await readGenerationConfigJson(fixturePath(dir)), text);
      expect(c.eos_token_id).toEqual([eos]);
      expect(c.bos_token_id).toBe(2);
      expect(c.pad_token_id).toBe(1);
      expect({ ...c, eos_token_id: [], bos_token_id: null, pad_token_id: null }).toEqual(HF_GENERATION_DEFAULTS);
    }
    expect(await readGenerationConfigJson(fixturePath('images'))).toBeNull();
  });

  it('options override, lists of eos ids work, max_new_tokens wins over max_length', () => {
    const base = generationConfigFromJson({ eos_token_id: [5, 6], max_length: 30 }, { bos_token_id: 2, eos_token_id: 9, pad_token_id: 1 });
    expect(base.eos_token_id).toEqual([5, 6]);
    expect(maxLengthFor(base, 10)).toBe(30);
    const c = resolveGenerationConfig(base, { max_new_tokens: 4, eos_token_id: 7, stop: ['\n'] });
    expect(c.eos_token_id).toEqual([7]);
    expect(maxLengthFor(c, 10)).toBe(14);
    expect(c.stop).toEqual(['\n']);
    expect(base.stop).toEqual([]);
  });

  it('pad falls back to the first eos id, as HF', () => {
    const base = generationConfigFromJson({ pad_token_id: null }, { bos_token_id: 2, eos_token_id: 9, pad_token_id: 1 });
    expect(base.pad_token_id).toBeNull();
    expect(resolveGenerationConfig(base, {}).pad_token_id).toBe(9);
  });

  const bad: [GenerationOptions, RegExp][] = [
    [{ max_new_tokens: 0 }, /max_new_tokens/],
    [{ max_new_tokens: 2.5 }, /max_new_tokens/],
    [{ num_beams: 0 }, /num_beams/],
    [{ temperature: 0 }, /temperature/],
    [{ top_p: 1.5 }, /top_p/],
    [{ top_k: -1 }, /top_k/],
    [{ repetition_penalty: 0 }, /repetition_penalty/],
    [{ early_stopping: 'sometimes' as never }, /early_stopping/],
    [{ num_return_sequences: 2 }, /greedy/],
    [{ num_beams: 2, num_return_sequences: 3 }, /num_return_sequences/],
    [{ num_beams: 2, do_sample: true }, /beam sampling/],
    [{ eos_token_id: -1 }, /eos_token_id/],
    [{ stop: [''] }, /stop/],
    [{ seed: 1.5 }, /seed/],
    [{ row_seeds: [1, 2.5] }, /row_seeds must be a non-empty list of integers/],
    [{ row_seeds: [] }, /row_seeds/],
    [{ seed: 1, row_seeds: [2] }, /either seed or row_seeds/],
  ];
  for (const [options, message] of bad) {
    it(`rejects ${JSON.stringify(options)}`, () => {
      const base = generationConfigFromJson(null, { bos_token_id: 2, eos_token_id: 9, pad_token_id: 1 });
      expect(() => resolveGenerationConfig(base, options)).toThrow(GenerationConfigError);
      expect(() => resolveGenerationConfig(base, options)).toThrow(message);
    });
  }
});
