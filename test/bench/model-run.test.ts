// bench:model's measurement in Node (lavapipe) on the tiny fixture: the cold caption is transformers' greedy
// caption, the stages add up, and the report follows the schema.
import { describe, expect, it } from 'vitest';
import { adapterInfo, makeReport } from '../../bench/environment.js';
import { nodeEnvironment } from '../../bench/environment-node.js';
import { runModelBench } from '../../bench/model-run.js';
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
