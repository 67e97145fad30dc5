/**
 * The research hooks documented in docs/research.md, on every fixture checkpoint: observe any module with
 * forward hooks, replace outputs, swap a Q-Former layer, run with a different number of query tokens, read the
 * cross-attention maps (shapes from each checkpoint's config). The GPU-memory check runs after all of them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/gpu/gpu.js';
import { mul } from '../../src/kernels/elementwise.js';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import type { QFormerLayerOutput } from '../../src/model/blip2-qformer.js';
import { Module } from '../../src/model/module.js';
import { disposeTree, keep, Tensor, tidy } from '../../src/tensor.js';
import { maxAbsDiff, testGpu } from '../helpers.js';
import { loadFixtures, readFloat32 } from '../support/fixtures.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

for (const fx of loadFixtures()) {
  // A question case: its prompt has text after the image tokens and BOS.
  const c = fx.manifest.cases.find((x) => x.prompt !== '') ?? fx.manifest.cases[0]!;
  let model: Blip2ForConditionalGeneration;
  let pixel_values: Tensor;
  let baseline = 0;

  describe(`research hooks: ${fx.name}`, () => {
    beforeAll(async () => {
      model = await Blip2ForConditionalGeneration.fromPretrained(fx.dir, { gpu, dtype: 'f32' });
      const ex = await fx.expected();
      pixel_values = Tensor.from(gpu, await readFloat32(ex, `${c.name}.pixel_values`), fx.tensorShape(`${c.name}.pixel_values`));
      await ex.close();
      await gpu.sync();
      baseline = gpu.stats().liveBytes;
    });
    afterAll(() => {
      pixel_values?.dispose();
      model?.dispose();
    });
    /** The last Q-Former layer's index. */
    const last = () => model.config.qformer_config.num_hidden_layers - 1;

    describe('hooks', () => {
      it('a forward hook observes any module by its HF path, and can be removed', async () => {
        const seen: Tensor[] = [];
        const layer = model.getSubmodule(`qformer.encoder.layer.${last()}`) as Module<unknown[], QFormerLayerOutput>;
        const handle = layer.registerForwardHook((_m, _args, out) => {
          seen.push(keep(out.hidden_states.ref())); // keep(): the forward's tidy() would free it otherwise
        });
        const out = tidy(() => model.qformer.call(model.query_tokens.value, model.vision_model.call(pixel_values).last_hidden_state, { output_hidden_states: true }));
        expect(seen.length).toBe(1);
        expect(maxAbsDiff(await seen[0]!.read(), await out.hidden_states![last() + 1]!.read())).toBe(0);
        handle.remove();
        disposeTree(tidy(() => model.qformer.call(model.query_tokens.value, model.vision_model.call(pixel_values).last_hidden_state)));
        expect(seen.length).toBe(1);
        seen[0]!.dispose();
        disposeTree(out);
      });

      it('a hook that returns a value replaces the module output', async () => {
        const base = tidy(() => model.get_image_features(pixel_values).language_model_inputs);
        const handle = model.language_projection.registerForwardHook((_m, _a, out) => mul(out, 2));
        const doubled = tidy(() => model.get_image_features(pixel_values).language_model_inputs);
        handle.remove();
        const a = await base.read();
        const b = await doubled.read();
        expect(maxAbsDiff(b, a.map((v) => v * 2))).toBe(0);
        base.dispose();
        doubled.dispose();
      });

      it('a swapped Q-Former layer takes part in the forward pass', async () => {
        const original = model.qformer.encoder.layer.at(last());
        class Identity extends Module<[Tensor, Tensor, boolean], QFormerLayerOutput> {
          forward(h: Tensor): QFormerLayerOutput {
            return { hidden_states: h.ref(), self_attention: null, cross_attention: null };
          }
        }
        const image = tidy(() => model.vision_model.call(pixel_values).last_hidden_state);
        const full = tidy(() => model.qformer.call(model.query_tokens.value, image, { output_hidden_states: true }));
        model.setSubmodule(`qformer.encoder.layer.${last()}`, new Identity() as unknown as typeof original);
        try {
          const swapped = tidy(() => model.qformer.call(model.query_tokens.value, image).last_hidden_state);
          // With the last layer the identity, the output is the layer before's output.
          expect(maxAbsDiff(await swapped.read(), await full.hidden_states![last()]!.read())).toBe(0);
          swapped.dispose();
        } finally {
          model.qformer.encoder.layer.set(last(), original);
        }
        image.dispose();
        disposeTree(full);
      });

      it('runs with a different number of query tokens', async () => {
        const Q = 3;
        const { num_query_tokens, image_token_index, qformer_config, text_config } = model.config;
        const queries = tidy(() => model.query_tokens.value.reshape([num_query_tokens, -1]).rows(0, Q).reshape([1, Q, -1]));
        // The case's ids (image tokens, BOS, text) with Q image tokens instead of num_query_tokens.
        const ids = [...new Array<number>(Q).fill(image_token_index!), ...c.input_ids.filter((id) => id !== image_token_index)];
        const out = tidy(() => model.call({ pixel_values, input_ids: [ids], query_embeds: queries }));
        expect(out.qformer_outputs.last_hidden_state.shape).toEqual([1, Q, qformer_config.hidden_size]);
        expect(out.logits.shape).toEqual([1, ids.length, text_config.vocab_size]);
        expect((await out.logits.read()).every(Number.isFinite)).toBe(true);
        expect(() => tidy(() => model.call({ pixel_values, input_ids: [c.input_ids], query_embeds: queries }))).toThrow(/<image> tokens/);
        queries.dispose();
        disposeTree(out);
      });

      it('returns the Q-Former cross-attention maps, rows summing to 1', async () => {
        const image = tidy(() => model.vision_model.call(pixel_values).last_hidden_state);
        const out = tidy(() => model.qformer.call(model.query_tokens.value, image, { output_attentions: true }));
        const { qformer_config: q, vision_config: v, num_query_tokens: Q } = model.config;
        // Cross-attention in the layers whose index is a multiple of cross_attention_frequency.
        const crossLayers = Array.from({ length: q.num_hidden_layers }, (_, i) => i).filter((i) => i % q.cross_attention_frequency === 0);
        expect(out.cross_attentions!.length).toBe(crossLayers.length);
        const tokens = (v.image_size / v.patch_size) ** 2 + 1;
        for (const maps of out.cross_attentions!) {
          expect(maps.shape).toEqual([1, q.num_attention_heads, Q, tokens]);
          const values = await maps.read();
          for (let r = 0; r < q.num_attention_heads * Q; r++) {
            let s = 0;
            for (let j = 0; j < tokens; j++) s += values[r * tokens + j]!;
            expect(Math.abs(s - 1)).toBeLessThan(1e-5);
          }
        }
        image.dispose();
        disposeTree(out);
      });
    });

    describe('replacing weights by hand', () => {
      it("OPT's fused q/k/v projection follows parameters replaced after loading", async () => {
        const { copy } = await import('../../src/kernels/copy.js');
        const attn = model.language_model.model.decoder.layers.at(0).self_attn;
        const ids = [c.input_ids];
        const before = tidy(() => model.call({ pixel_values, input_ids: ids }).logits);
        const original = attn.q_proj.weight.tensor!;
        // Same values in a separate buffer: the fused weights are stale now, so the forward concatenates afresh.
        attn.q_proj.weight.tensor = keep(copy(original));
        const same = tidy(() => model.call({ pixel_values, input_ids: ids }).logits);
        expect(maxAbsDiff(await same.read(), await before.read())).toBe(0);
        attn.q_proj.weight.tensor.dispose();
        attn.q_proj.weight.tensor = keep(mul(original, 0.5));
        const changed = tidy(() => model.call({ pixel_values, input_ids: ids }).logits);
        expect(maxAbsDiff(await changed.read(), await before.read())).toBeGreaterThan(1e-3);
        attn.q_proj.weight.tensor.dispose();
        attn.q_proj.weight.tensor = original;
        const restored = tidy(() => model.call({ pixel_values, input_ids: ids }).logits);
        expect(maxAbsDiff(await restored.read(), await before.read())).toBe(0);
        for (const t of [before, same, changed, restored]) t.dispose();
      });
    });

    it('the hooks left no GPU memory behind', async () => {
      await gpu.sync();
      expect(gpu.stats().liveBytes).toBe(baseline);
    });
  });
}
