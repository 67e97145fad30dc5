/**
 * The autograd engine's behaviour on its own (views, accumulation, no-grad regions, freeing, dropout's replayed
 * mask) and on the tiny model (activation checkpointing gives the same gradients, parameter selections,
 * gradients reaching OPT's fused q/k/v when it trains, a researcher's own layer trained through the hooks).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { add, dropout, layerNorm, linear, mul } from '../../src/autograd/functional.js';
import { manualSeed } from '../../src/autograd/random.js';
import { freeGraph, graphStats, noGrad } from '../../src/autograd/tape.js';
import type { Gpu } from '../../src/gpu/gpu.js';
import { Blip2ForConditionalGeneration } from '../../src/model/blip2.js';
import { Module, Parameter } from '../../src/model/module.js';
import { Linear } from '../../src/model/nn.js';
import { dequantizeRef, quantizeRef } from '../../src/cpu/quantize.js';
import { QuantizedTensor } from '../../src/quant/quantized-tensor.js';
import type { QFormerLayerOutput } from '../../src/model/blip2-qformer.js';
import { disposeTree, keep, Tensor, tidy } from '../../src/tensor.js';
import { markTrainable } from '../../src/training/select.js';
import { randn, testGpu } from '../helpers.js';
import { TINY } from '../paths.js';
import { loadTrainingReference, type TrainingReference } from '../support/training-reference.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

function param(values: ArrayLike<number>, shape: number[]): Parameter {
  const p = new Parameter(shape);
  p.tensor = keep(Tensor.from(gpu, values, shape));
  p.requires_grad = true;
  return p;
}

const sum = (t: Tensor) => tidy(() => linear(t.reshape([1, t.size]), Tensor.from(gpu, new Float32Array(t.size).fill(1), [1, t.size])).reshape([1]));

describe('autograd engine', () => {
  it('follows views: a row range of a parameter gets its gradient in place, zeros elsewhere', async () => {
    const p = param([1, 2, 3, 4, 5, 6], [3, 2]);
    const loss = tidy(() => sum(mul(p.value.rows(1, 2), 3)));
    loss.backward();
    expect(Array.from(await p.grad!.read())).toEqual([0, 0, 3, 3, 3, 3]);
    loss.dispose();
    p.dispose();
  });

  it('accumulates gradients over backward calls until zero_grad, and over two uses of one tensor', async () => {
    const p = param([1, -2], [2]);
    for (let i = 0; i < 2; i++) {
      const loss = tidy(() => sum(add(mul(p.value, 2), p.value)));
      loss.backward();
      loss.dispose();
    }
    expect(Array.from(await p.grad!.read())).toEqual([6, 6]);
    p.zero_grad();
    expect(p.grad).toBeNull();
    p.dispose();
  });

  it('passes gradients through quantized frozen weights to the input (dX = dY W\'), and refuses to train a quantized weight', async () => {
    const w = Array.from({ length: 3 * 40 }, (_, i) => Math.sin(i) / 4);
    for (const scheme of ['q8', 'q4'] as const) {
      const rows = quantizeRef(w, 3, 40, scheme);
      const q = QuantizedTensor.from(gpu, rows);
      const p = param(Array.from({ length: 2 * 40 }, (_, i) => Math.cos(i)), [2, 40]);
      // d sum(x W'^T) / dx[m, k] = sum_n W'[n, k], the dequantized weight's column sums, for every row m.
      const loss = tidy(() => sum(linear(p.value, q)));
      loss.backward();
      const wq = dequantizeRef(rows);
      const colSums = Array.from({ length: 40 }, (_, k) => wq[k]! + wq[40 + k]! + wq[80 + k]!);
      const got = await p.grad!.read();
      for (let i = 0; i < 80; i++) expect(got[i]!, `${scheme} dx[${i}]`).toBeCloseTo(colSums[i % 40]!, 5);
      expect(graphStats().nodes).toBe(0);
      // Held by a Parameter, a quantized weight stays frozen: asking to train it is an error, not a silent no-op.
      const held = new Parameter([3, 40], 'matmul');
      held.quantized = q;
      expect(() => (held.requires_grad = true)).toThrow(/is quantized .* it can only be frozen/);
      for (const t of [loss, q, p]) t.dispose();
    }
  });

  it('records nothing under noGrad, frees a graph that is not differentiated, and refuses a second backward', async () => {
    const p = param([1, 2], [2]);
    const none = noGrad(() => tidy(() => sum(mul(p.value, 2))));
    expect(graphStats().nodes).toBe(0);
    expect(() => none.backward()).toThrow(/does not depend on any parameter/);
    none.dispose();
    const kept = tidy(() => sum(mul(p.value, 2)));
    expect(graphStats().nodes).toBeGreaterThan(0);
    freeGraph();
    expect(graphStats()).toEqual({ nodes: 0, savedTensors: 0 });
    expect(() => kept.backward()).toThrow(/already freed/);
    kept.dispose();
    p.dispose();
  });

  it("linear with a LayerNorm prologue (OPT's decode path) records the LayerNorm and the product: gradients as unfused", async () => {
    const [R, K, N] = [3, 40, 5];
    const x = randn(R * K, 11);
    const grads = async (fused: boolean) => {
      const w = param(randn(N * K, 12), [N, K]);
      const g = param(randn(K, 13).map((v) => 1 + 0.1 * v), [K]);
      const b = param(randn(K, 14), [K]);
      const loss = tidy(() => {
        const xt = Tensor.from(gpu, x, [R, K]);
        const y = fused ? linear(xt, w.value, null, { layerNorm: { weight: g.value, bias: b.value, eps: 1e-5 } }) : linear(layerNorm(xt, g.value, b.value, 1e-5), w.value);
        return sum(mul(y, y));
      });
      loss.backward();
      loss.dispose();
      const out = [await w.grad!.read(), await g.grad!.read(), await b.grad!.read()].map((a) => Array.from(a));
      for (const p of [w, g, b]) p.dispose();
      return out;
    };
    const [unfused, fused] = [await grads(false), await grads(true)];
    expect(fused).toEqual(unfused);
    expect(graphStats()).toEqual({ nodes: 0, savedTensors: 0 });
  });

  it('dropout: identity in eval mode; in training a mask replayed from its seed in the backward pass', async () => {
    const n = 4096;
    const p = param(randn(n, 1), [n]);
    const ev = tidy(() => dropout(p.value, 0.25, false));
    expect(Array.from(await ev.read())).toEqual(Array.from(await p.value.read()));
    ev.dispose();
    freeGraph();
    manualSeed(7);
    const y = keep(tidy(() => dropout(p.value, 0.25, true)));
    const loss = tidy(() => sum(y));
    loss.backward();
    const [yv, g, x] = [await y.read(), await p.grad!.read(), await p.value.read()];
    let dropped = 0;
    for (let i = 0; i < n; i++) {
      if (yv[i] === 0) {
        dropped++;
        expect(g[i]).toBe(0);
      } else {
        expect(g[i]).toBeCloseTo(1 / 0.75, 6);
        expect(yv[i]).toBeCloseTo(x[i]! / 0.75, 5);
      }
    }
    expect(dropped / n).toBeGreaterThan(0.2);
    expect(dropped / n).toBeLessThan(0.3);
    manualSeed(7);
    const again = noGrad(() => dropout(p.value, 0.25, true));
    expect(Array.from(await again.read())).toEqual(Array.from(yv));
    for (const t of [y, loss, again]) t.dispose();
    p.dispose();
  });
});

describe('training the tiny model', () => {
  let ref: TrainingReference;
  let model: Blip2ForConditionalGeneration;
  let pixel_values: Tensor;
  beforeAll(async () => {
    ref = await loadTrainingReference(TINY);
    model = await Blip2ForConditionalGeneration.fromPretrained(TINY, { gpu, dtype: 'f32', trainable: 'qformer' });
    pixel_values = keep(Tensor.from(gpu, ref.inputs.pixel_values, ref.inputs.pixelShape));
  });
  afterAll(async () => {
    pixel_values?.dispose();
    model?.dispose();
    await ref?.close();
  });

  async function grads(): Promise<Map<string, Float32Array>> {
    const { input_ids, attention_mask, labels } = ref.inputs;
    const out = model.call({ pixel_values, input_ids, attention_mask, labels });
    const loss = keep(out.loss!.ref());
    disposeTree(out);
    loss.backward();
    loss.dispose();
    const m = new Map<string, Float32Array>();
    for (const [name, p] of model.namedParameters()) if (p.grad) m.set(name, (await p.grad.read()) as Float32Array);
    model.zero_grad();
    return m;
  }

  it('recomputing OPT layers in the backward pass (gradient checkpointing) gives the same gradients', async () => {
    const plain = await grads();
    model.language_model.gradient_checkpointing_enable();
    const recomputed = await grads();
    model.language_model.gradient_checkpointing_enable(false);
    expect([...recomputed.keys()]).toEqual([...plain.keys()]);
    for (const [name, g] of plain) expect(Array.from(recomputed.get(name)!), name).toEqual(Array.from(g));
    expect(graphStats()).toEqual({ nodes: 0, savedTensors: 0 });
  });

  it('gives nearly the same gradients with the frozen weights in f16 (trained ones are f32 master copies)', async () => {
    const exact = await grads();
    const half = await Blip2ForConditionalGeneration.fromPretrained(TINY, { gpu, dtype: 'f16', trainable: 'qformer' });
    expect(half.language_model.lm_head.weight.value.dtype).toBe('f16');
    expect(half.language_projection.weight.value.dtype).toBe('f32');
    const { input_ids, attention_mask, labels } = ref.inputs;
    const out = half.call({ pixel_values, input_ids, attention_mask, labels });
    const loss = keep(out.loss!.ref());
    disposeTree(out);
    loss.backward();
    loss.dispose();
    // f16 weights move the tiny model's logits by up to 0.16 (its f16_reference.json): the gradients follow
    // within a few percent, pointing the same way (a wrong read of the f16 weights would point anywhere).
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (const [name, p] of half.trainableParameters()) {
      const a = exact.get(name)!;
      const b = await p.grad!.read();
      for (let i = 0; i < a.length; i++) {
        dot += a[i]! * b[i]!;
        na += a[i]! ** 2;
        nb += b[i]! ** 2;
      }
    }
    // Measured: cosine 0.9962, norm ratio 1.029.
    expect(dot / Math.sqrt(na * nb)).toBeGreaterThan(0.98);
    expect(Math.abs(Math.sqrt(nb / na) - 1)).toBeLessThan(0.1);
    half.dispose();
  });

  it('trains only the selected parameters: some Q-Former layers, only the query tokens', async () => {
    markTrainable(model, { qformerLayers: [1] });
    let g = await grads();
    expect([...g.keys()].every((k) => k.startsWith('qformer.encoder.layer.1.'))).toBe(true);
    expect(g.size).toBe(model.namedParameters().filter(([k]) => k.startsWith('qformer.encoder.layer.1.')).length);
    markTrainable(model, 'query_tokens');
    g = await grads();
    expect([...g.keys()]).toEqual(['query_tokens']);
    expect(() => markTrainable(model, ['no.such.module.'])).toThrow(/matches no parameter/);
    markTrainable(model, 'qformer');
  });

  it("reaches OPT's fused q/k/v projection and token embeddings when the language model trains too", async () => {
    markTrainable(model, (n) => !n.startsWith('vision_model.'));
    const g = await grads();
    for (const k of ['language_model.model.decoder.layers.0.self_attn.q_proj.weight', 'language_model.model.decoder.layers.1.self_attn.k_proj.bias', 'language_model.model.decoder.embed_tokens.weight']) {
      expect(g.has(k), k).toBe(true);
      expect(g.get(k)!.some((v) => v !== 0), k).toBe(true);
    }
    markTrainable(model, 'qformer');
  });

  it("trains a researcher's replacement layer built from the differentiable ops (docs/research.md)", async () => {
    const c = model.config.qformer_config;
    // A layer that adds a learned projection of its input: LayerNorm-free, residual, from F ops only.
    class Adapter extends Module<[Tensor, Tensor, boolean], QFormerLayerOutput> {
      proj = new Linear(c.hidden_size, c.hidden_size, { role: 'fp32' });
      forward(h: Tensor): QFormerLayerOutput {
        return { hidden_states: this.proj.call(h, { residual: h }), self_attention: null, cross_attention: null };
      }
    }
    const adapter = new Adapter();
    adapter.proj.weight.tensor = keep(Tensor.from(gpu, randn(c.hidden_size ** 2, 3, 0.01), [c.hidden_size, c.hidden_size]));
    adapter.proj.bias!.tensor = keep(Tensor.from(gpu, new Float32Array(c.hidden_size), [c.hidden_size]));
    const original = model.qformer.encoder.layer.at(1);
    model.qformer.encoder.layer.set(1, adapter as never);
    markTrainable(model, ['qformer.encoder.layer.1.']);
    const g = await grads();
    expect([...g.keys()].sort()).toEqual(['qformer.encoder.layer.1.proj.bias', 'qformer.encoder.layer.1.proj.weight']);
    expect(g.get('qformer.encoder.layer.1.proj.weight')!.some((v) => v !== 0)).toBe(true);
    model.qformer.encoder.layer.set(1, original);
    adapter.dispose();
    markTrainable(model, 'qformer');
  });
});

describe('a Q-Former with fewer queries (docs/finetuning.md)', () => {
  it('learns its own query embeddings through query_embeds', async () => {
    const model = await Blip2ForConditionalGeneration.fromPretrained(TINY, { gpu, dtype: 'f32' });
    const ref = await loadTrainingReference(TINY);
    const c = model.config;
    const Q = 4;
    // Start from the first Q learned queries; everything else stays frozen.
    const queries = new Parameter([1, Q, c.qformer_config.hidden_size]);
    queries.tensor = keep(tidy(() => model.query_tokens.value.reshape([c.num_query_tokens, -1]).rows(0, Q).reshape([1, Q, -1]).ref()));
    queries.requires_grad = true;
    const image = c.image_token_index!;
    const text = ref.inputs.input_ids.map((row) => row.filter((id) => id !== image));
    const input_ids = text.map((row) => [...new Array<number>(Q).fill(image), ...row]);
    const labels = input_ids.map((row, b) => row.map((id, i) => (i < Q ? -100 : ref.inputs.labels[b]![i - Q + c.num_query_tokens]!)));
    const attention_mask = input_ids.map((row, b) => row.map((_, i) => (i < Q ? 1 : ref.inputs.attention_mask[b]![i - Q + c.num_query_tokens]!)));
    const pixel_values = Tensor.from(gpu, ref.inputs.pixel_values, ref.inputs.pixelShape);
    const out = model.call({ pixel_values, input_ids, attention_mask, labels, query_embeds: queries.value });
    const loss = keep(out.loss!.ref());
    disposeTree(out);
    loss.backward();
    expect(queries.grad!.shape).toEqual([1, Q, c.qformer_config.hidden_size]);
    expect((await queries.grad!.read()).some((v) => v !== 0)).toBe(true);
    expect(model.trainableParameters()).toEqual([]);
    for (const t of [loss, pixel_values]) t.dispose();
    queries.dispose();
    model.dispose();
    await ref.close();
  });
});
