/**
 * Decoding on the device against the reference path (decode_on_device: false: every step recorded anew on the
 * host, each token read back before the next step), token for token on every fixture's language model: greedy
 * search with its tokens chosen on the device and read back through the ring (0, 1 and 3 steps of lookahead),
 * rows that end early while the device runs on, every logits processor, stop strings and streaming; sampling
 * and beam search over the replayed step. Also: what the loops measure.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCausalLM, type CausalLMGenerateArgs } from '../../src/generation/generate.js';
import type { DecodeMetrics, TokenEvent } from '../../src/generation/types.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import type { OPTForCausalLM } from '../../src/model/opt.js';
import { Blip2Processor } from '../../src/processing/processor.js';
import { loadFixtures } from '../support/fixtures.js';
import { testGpu } from '../helpers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

/** Three left-padded prompts of the fixture's vocabulary (ids spread over it, deterministic). */
function promptsFor(vocab: number, pad: number): { input_ids: number[][]; attention_mask: number[][] } {
  const id = (i: number) => 3 + ((i * 7919) % (vocab - 3));
  const rows = [
    [id(1), id(2), id(3), id(4), id(5)],
    [id(6), id(7), id(8)],
    [id(9), id(10), id(11), id(12)],
  ];
  const L = 5;
  return {
    input_ids: rows.map((r) => [...new Array<number>(L - r.length).fill(pad), ...r]),
    attention_mask: rows.map((r) => [...new Array<number>(L - r.length).fill(0), ...r.map(() => 1)]),
  };
}

for (const fx of loadFixtures()) {
  describe(`${fx.name}: decoding on the device gives the reference path's tokens`, () => {
    let model: Blip2ForConditionalGeneration;
    let lm: OPTForCausalLM;
    let processor: Blip2Processor;
    let base: Pick<CausalLMGenerateArgs, 'input_ids' | 'attention_mask'>;
    let eos: number;
    beforeAll(async () => {
      model = await Blip2ForConditionalGeneration.fromPretrained(fx.dir, { gpu, dtype: 'f16' });
      lm = model.language_model;
      processor = await Blip2Processor.fromPretrained(fx.dir);
      base = promptsFor(lm.config.vocab_size, lm.config.pad_token_id);
      // An eos that the greedy rows reach at different steps: the third token row 0 generates without one.
      const free = await generateCausalLM(lm, { ...base, max_new_tokens: 8, eos_token_id: null, decode_on_device: false });
      eos = free.new_tokens[0]![2]!;
    });
    afterAll(() => model?.dispose());

    async function both(options: Partial<CausalLMGenerateArgs>, lookaheads: number[] = [0, 1, 3]): Promise<void> {
      const before = gpu.stats().liveBytes;
      const refEvents: TokenEvent[] = [];
      const beams = (options.num_beams ?? 1) > 1; // beam search does not stream
      const ref = await generateCausalLM(lm, { ...base, ...options, decode_on_device: false, ...(beams ? {} : { onToken: (e: TokenEvent) => refEvents.push(e) }) });
      for (const lookahead of lookaheads) {
        const events: TokenEvent[] = [];
        const metrics = {} as DecodeMetrics;
        const out = await generateCausalLM(lm, { ...base, ...options, decode_lookahead: lookahead, decode_metrics: metrics, ...(beams ? {} : { onToken: (e: TokenEvent) => events.push(e) }) });
        const what = `${JSON.stringify(options)} lookahead ${lookahead}`;
        expect(out.sequences, what).toEqual(ref.sequences);
        expect(out.new_tokens, what).toEqual(ref.new_tokens);
        expect(out.finish_reasons, what).toEqual(ref.finish_reasons);
        expect(events, what).toEqual(refEvents);
        // Beam scores are float32 sums of log-probabilities: the fused LayerNorm sums in another order.
        if (beams) out.sequences_scores!.forEach((v, i) => expect(Math.abs(v - ref.sequences_scores![i]!), what).toBeLessThan(1e-4));
        if (!options.do_sample && !beams) {
          expect(metrics.mode, what).toBe('device');
          // Only the first step may wait: with lookahead the host submits every later step before reading back.
          expect(metrics.readbackWaits, what).toBe(lookahead === 0 ? metrics.steps : 0);
        }
      }
      await gpu.sync();
      expect(gpu.stats().liveBytes, 'GPU memory left behind').toBe(before);
    }

    it('greedy: rows ending at different steps are padded while the device runs on', async () => {
      await both({ max_new_tokens: 10, eos_token_id: eos });
      await both({ max_new_tokens: 10, eos_token_id: [eos, 99], pad_token_id: 0 });
      await both({ max_new_tokens: 1, eos_token_id: eos }, [0, 1]); // the prompt's token only: no step
    });

    it('greedy with every processor on the device: repetition penalty, no-repeat n-grams, min lengths', async () => {
      await both({ max_new_tokens: 9, eos_token_id: eos, repetition_penalty: 1.7 }, [1]);
      await both({ max_new_tokens: 9, eos_token_id: eos, no_repeat_ngram_size: 2 }, [1]);
      await both({ max_new_tokens: 9, eos_token_id: eos, no_repeat_ngram_size: 1, repetition_penalty: 0.8 }, [1]);
      await both({ max_new_tokens: 9, eos_token_id: eos, min_new_tokens: 5 }, [1]);
      await both({ max_length: 12, eos_token_id: eos, min_length: 9 }, [1]);
    });

    it('greedy: stop strings and streamed text', async () => {
      const free = await generateCausalLM(lm, { ...base, max_new_tokens: 8, eos_token_id: null, decode_on_device: false, tokenizer: processor });
      const text = processor.decode(free.new_tokens[1]!.slice(0, 4), { skipSpecialTokens: true });
      const stop = text.trim().slice(-2);
      if (stop.length === 0) return; // nothing printable to stop on in this fixture's first tokens
      await both({ max_new_tokens: 8, eos_token_id: eos, stop: [stop], tokenizer: processor }, [0, 2]);
    });

    it('sampling (seeded, row seeds, top-k/top-p, temperature) and beam search over the replayed step', async () => {
      await both({ max_new_tokens: 7, do_sample: true, seed: 11, top_k: 20, top_p: 0.9, temperature: 0.7, eos_token_id: eos }, [0]);
      await both({ max_new_tokens: 6, do_sample: true, row_seeds: [1, 2, 3], num_return_sequences: 2, eos_token_id: eos, repetition_penalty: 1.2 }, [0]);
      await both({ max_new_tokens: 6, num_beams: 3, num_return_sequences: 2, eos_token_id: eos, no_repeat_ngram_size: 2 }, [0]);
    });

    it('forward hooks on the language model run at every step: decoding takes the reference path then', async () => {
      let calls = 0;
      const handle = lm.model.decoder.layers.at(0).registerForwardHook(() => void calls++);
      try {
        const metrics = {} as DecodeMetrics;
        const out = await generateCausalLM(lm, { ...base, max_new_tokens: 4, eos_token_id: null, decode_metrics: metrics });
        expect(metrics.mode).toBe('host');
        expect(calls).toBe(4); // the prompt and three steps
        const ref = await generateCausalLM(lm, { ...base, max_new_tokens: 4, eos_token_id: null, decode_on_device: false });
        expect(out.sequences).toEqual(ref.sequences);
      } finally {
        handle.remove();
      }
    });

    it('measures dispatches, host time and read-back waits per step', async () => {
      const device = {} as DecodeMetrics;
      const host = {} as DecodeMetrics;
      await generateCausalLM(lm, { ...base, max_new_tokens: 6, eos_token_id: null, decode_lookahead: 1, decode_metrics: device });
      await generateCausalLM(lm, { ...base, max_new_tokens: 6, eos_token_id: null, decode_on_device: false, decode_metrics: host });
      expect(device).toMatchObject({ mode: 'device', lookahead: 1, steps: 5, readbackWaits: 0 });
      expect(host).toMatchObject({ mode: 'host', steps: 5, readbackWaits: 5 });
      expect(device.dispatches).toBeLessThan(host.dispatches);
      expect(device.hostRecordMs).toBeGreaterThan(0);
      expect(device.wallMs).toBeGreaterThan(0);
    });
  });
}
