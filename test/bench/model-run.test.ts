// bench:model's measurement in Node (lavapipe) on every fixture: the cold caption is transformers' greedy
// caption, the stages add up, and the report follows the schema.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { adapterInfo, makeReport } from '../../bench/environment.js';
import { nodeEnvironment } from '../../bench/environment-node.js';
import { runModelBench, runModelBenches } from '../../bench/model-run.js';
import { validateReport } from '../../bench/report-schema.js';
import { getGpu } from '../../src/gpu/gpu.js';
import { loadFixtures } from '../support/fixtures.js';

describe('bench:model in Node', () => {
  it.each(loadFixtures().map((f) => ({ name: f.name, f })))("$name: cold caption equals transformers' greedy tokens, report in the schema", async ({ f }) => {
    const caption = f.manifest.cases.find((c) => c.prompt === '')!;
    const gpu = await getGpu();
    const run = await runModelBench({ gpu, model: f.dir, dtype: 'f32', image: `${f.dir}/${caption.image_file}`, imageName: caption.image_file, tokens: caption.greedy.new_tokens.length, runs: 1 });
    expect(run.e2e!.token_ids).toEqual(caption.greedy.new_tokens);
    expect(run.e2e!.ttft_ms).toBeCloseTo(run.e2e!.processor_ms + run.e2e!.vision_ms + run.e2e!.qformer_ms + run.e2e!.prefill_ms, 6);
    expect(run.prefill_tokens).toBe(caption.input_ids.length);
    const report = validateReport(makeReport({ suite: 'model', env: nodeEnvironment(), adapter: adapterInfo(gpu), model: [run] }));
    expect(report.runtime.kind).toBe('node');
    expect(report.runtime.dawn).toMatch(/^webgpu /);
    expect(report.adapter!.features.length).toBeGreaterThan(0);
    expect(gpu.stats().liveBytes).toBe(0); // the model was disposed
  });
});

describe('bench:model with several configurations', () => {
  const withQuantized = loadFixtures().filter((f) => existsSync(join(f.dir, 'quantized.json')));
  it('has a fixture with quantized references', () => expect(withQuantized.length).toBeGreaterThan(0));
  it.each(withQuantized.map((f) => ({ name: f.name, f })))('$name: --sequential holds one model on the device at a time, each entry its own cold caption', async ({ f }) => {
    const caption = f.manifest.cases.find((c) => c.prompt === '')!;
    const q8 = (JSON.parse(readFileSync(join(f.dir, 'quantized.json'), 'utf8')) as { schemes: { q8: { cases: { name: string; greedy: { new_tokens: number[] } }[] } } }).schemes.q8;
    const gpu = await getGpu();
    const before = gpu.stats().liveBytes;
    const liveAtCold: number[] = [];
    const options = (quantize?: 'q8') => ({
      gpu, model: f.dir, dtype: 'f32' as const, quantize, image: `${f.dir}/${caption.image_file}`, imageName: caption.image_file,
      tokens: caption.greedy.new_tokens.length, runs: 1,
      onProgress: (m: string) => void (m.startsWith('cold caption') && liveAtCold.push(gpu.stats().liveBytes - before)),
    });
    const [float, quantized] = await runModelBenches([options(), options('q8')], 'sequential');
    expect(float!.variant.quantize ?? null).toBeNull();
    expect(quantized!.variant.quantize).toBe('q8');
    expect(float!.e2e!.token_ids).toEqual(caption.greedy.new_tokens);
    expect(quantized!.e2e!.token_ids).toEqual(q8.cases.find((c) => c.name === caption.name)!.greedy.new_tokens.slice(0, caption.greedy.new_tokens.length));
    // When the second configuration captions, the first one's weights are gone (loaded together, both would be live).
    const [floatWeights, q8Weights] = [float!.memory.weights_bytes!, quantized!.memory.weights_bytes!];
    expect(liveAtCold[1]!).toBeLessThan(floatWeights + q8Weights);
    expect(liveAtCold[1]!).toBeGreaterThanOrEqual(q8Weights);
    expect(gpu.stats().liveBytes).toBe(before);
  });
});
