import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import { ConfigError, parseBlip2Config } from '../../src/model/config.js';
import { fixturePath } from '../paths.js';

const realConfig = JSON.parse(readFileSync(fixturePath('hf/blip2-opt-2.7b/config.json'), 'utf8')) as Record<string, unknown>;
const fullConfig = JSON.parse(readFileSync(fixturePath('hf/config-blip2-opt-2.7b.json'), 'utf8')) as Record<string, Record<string, unknown>>;
const index = JSON.parse(readFileSync(fixturePath('hf/blip2-opt-2.7b/model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };

describe('config', () => {
  it('fills the real, sparse config.json with the defaults transformers writes out', () => {
    const c = parseBlip2Config(realConfig);
    for (const [section, parsed] of [
      ['vision_config', c.vision_config],
      ['qformer_config', c.qformer_config],
      ['text_config', c.text_config],
    ] as const) {
      for (const [k, v] of Object.entries(parsed)) expect(v, `${section}.${k}`).toEqual(fullConfig[section]![k]);
    }
    expect(c.num_query_tokens).toBe(32);
    expect(c.image_token_index).toBe(50265);
    expect(c.vision_config.hidden_size / c.vision_config.num_attention_heads).toBe(88);
  });

  it('rejects configs it cannot run, clearly', () => {
    expect(() => parseBlip2Config({ text_config: { model_type: 't5' } })).toThrow(ConfigError);
    expect(() => parseBlip2Config({ vision_config: { hidden_size: 100, num_attention_heads: 16 } })).toThrow(/divisible/);
    expect(() => parseBlip2Config({ num_query_tokens: -1 })).toThrow(/num_query_tokens/);
    expect(() => parseBlip2Config({ vision_config: { hidden_size: '1408' } })).toThrow(/must be a number/);
    expect(() => parseBlip2Config({ use_decoder_only_language_model: false })).toThrow(/Flan-T5/);
  });
});

describe('parameter names', () => {
  it('are exactly the real checkpoint keys, with the right shapes count and lm_head tied', () => {
    const model = new Blip2ForConditionalGeneration(parseBlip2Config(realConfig));
    const params = model.namedParameters();
    const keys = params.map(([k]) => k).sort();
    expect(keys).toEqual(Object.keys(index.weight_map).sort());
    const total = params.reduce((a, [, p]) => a + p.shape.reduce((x, y) => x * y, 1), 0);
    // 3.74 B parameters, as BLIP2-NOTES says (986 M vision, 105 M Q-Former, 2.65 B OPT).
    expect(total).toBeGreaterThan(3.7e9);
    expect(total).toBeLessThan(3.8e9);
    expect(model.language_model.lm_head.weight).toBe(model.language_model.model.decoder.embed_tokens.weight);
  });

  it('exposes modules by their HF paths and lets a researcher swap one', () => {
    const model = new Blip2ForConditionalGeneration(parseBlip2Config(realConfig));
    const layer = model.getSubmodule('qformer.encoder.layer.2');
    expect(layer).toBe(model.qformer.encoder.layer.at(2));
    expect(model.qformer.encoder.layer.at(1).crossattention).toBeNull();
    model.setSubmodule('qformer.encoder.layer.1', model.qformer.encoder.layer.at(3));
    expect(model.qformer.encoder.layer.at(1)).toBe(model.qformer.encoder.layer.at(3));
  });
});
