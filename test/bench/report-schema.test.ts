// The report schema: every stored report follows it, the older formats convert without changing a number, the
// transformers peer (bench/device/hf_reference.py, run in the reference chroot) writes it too, and bad reports are
// refused with the field that is wrong.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CASE_FILES } from '../../bench/cases/index.js';
import { readReport } from '../../bench/report-files.js';
import { REPORT_SCHEMA, ReportFormatError, validateReport } from '../../bench/report-schema.js';
import { reportKind, upgradeReport } from '../../bench/report-upgrade.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const measurements = join(root, 'docs/measurements');
const tiny = JSON.parse(readFileSync(join(root, 'test/fixtures/tiny-blip2/cases.json'), 'utf8')) as { cases: { name: string; prompt: string; greedy: { new_tokens: number[] } }[] };

describe('report schema', () => {
  it.each(readdirSync(measurements).filter((f) => f.endsWith('.json')))('docs/measurements/%s is a current report', (file) => {
    const json = JSON.parse(readFileSync(join(measurements, file), 'utf8')) as unknown;
    expect(reportKind(json)).toBe('v1');
    const r = validateReport(json, file);
    expect(r.kernels?.length || r.model?.length).toBeGreaterThan(0);
  });

  it('converts the old bench:kernels, bench:model and hf_reference.py formats keeping every number', () => {
    const adapter = { label: 'mesa / software / llvmpipe (node-dawn)', adapter: { vendor: 'mesa', architecture: 'software', device: 'llvmpipe-256-bits', description: 'llvmpipe', runtime: 'node-dawn' }, f16: true, subgroups: true, timestampQuery: true, isSoftware: true, maxBufferSize: 4294967295, subgroupMinSize: 8, subgroupMaxSize: 8 };
    const kernels = upgradeReport(
      { adapter, roofline: { gflops: 166.1536, gbps: 13.04, source: 'preset' }, results: [{ kernel: 'linear', shape: '1x2560->10240', dtype: 'f16w/f32a', ms: 8.38, wall_ms: 8.38, timing: 'wall', gflops: 6.257, gbps: 6.27, roofline_fraction: 0.48 }, { kernel: 'attention', shape: 's', dtype: 'f32q/f16kv', ms: null, error: 'no shader-f16' }] },
      { label: 'old-kernels' },
    );
    expect(kernels.suite).toBe('kernels');
    expect(kernels.adapter!.features).toEqual(['shader-f16', 'subgroups', 'timestamp-query']);
    expect(kernels.adapter!.limits.maxBufferSize).toBe(4294967295);
    expect(kernels.kernels![0]).toMatchObject({ ms: 8.38, wall_ms: 8.38, timing: 'wall-clock', gflops: 6.257, gbps: 6.27, roofline_fraction: 0.48, flops: Math.round(6.257 * 8.38e6), bytes: Math.round(6.27 * 8.38e6) });
    expect(kernels.kernels![1]).toMatchObject({ ms: null, error: 'no shader-f16' });
    expect(kernels.roofline).toEqual({ gflops: 166.1536, gbps: 13.04, source: 'preset' });

    const model = upgradeReport(
      { adapter: { ...adapter.adapter, label: 'x', f16: true, subgroups: true }, dtype: 'f16', checkpoint: '/tmp/blip2-random', load_s: 28.78, peak_host_bytes: 9233858560, peak_host_bytes_during_load: 7926743040, gpu_bytes: 7714692096, gpu_peak_bytes: 7783249152, vision_ms: 16157.6, qformer_ms: 666.3, prefill_ms: 8123.6, prefill_tokens: 41, decode_ms_per_token: 1076.1, decode_tokens: 20, runs: 2, reference: { source: 'issue #4', vision_ms: 4100, decode_ms_per_token: 1330 } },
      { label: 'old-model' },
    );
    const run = model.model![0]!;
    expect(run).toMatchObject({ model: { name: 'blip2-random', random_weights: true }, variant: { dtype: 'f16' }, load_s: 28.78, prefill_tokens: 41, decode_tokens: 20, runs: 2 });
    expect(run.memory).toEqual({ weights_bytes: 7714692096, peak_device_bytes: 7783249152, peak_host_bytes: 9233858560, peak_host_bytes_during_load: 7926743040 });
    expect(run.stages).toEqual({ vision_ms: 16157.6, qformer_ms: 666.3, prefill_ms: 8123.6, decode_ms_per_token: 1076.1 });
    expect(run.metrics).toMatchObject({ reference_vision_ms: 4100, reference_decode_ms_per_token: 1330 });

    const hf = upgradeReport({ transformers: '5.17.0', torch: '2.11.0+cu130', device: 'NVIDIA H200', runs: [{ dtype: 'torch.float16', load_s: 4.54, prefill_tokens: 41, vision_ms: 14.8, qformer_ms: 9.3, prefill_ms: 19.1, decode_ms_per_token: 18.5 }] }, { label: 'old-hf' });
    expect(hf.engine).toMatchObject({ name: 'transformers', version: '5.17.0', peer: true });
    expect(hf.model![0]).toMatchObject({ variant: { dtype: 'f16' }, load_s: 4.54, stages: { vision_ms: 14.8, qformer_ms: 9.3, prefill_ms: 19.1, decode_ms_per_token: 18.5 } });
  });

  it("reads the transformers peer's report (hf_reference.py in the reference chroot): same schema, transformers' greedy tokens", () => {
    const r = readReport(join(root, 'test/fixtures/bench/hf-reference-tiny.json'));
    expect(r.schema).toBe(REPORT_SCHEMA);
    expect(r.engine).toMatchObject({ name: 'transformers', peer: true });
    expect(r.runtime.kind).toBe('python');
    const run = r.model![0]!;
    const caption = tiny.cases.find((c) => c.prompt === '')!;
    expect(run.e2e!.token_ids!.slice(0, caption.greedy.new_tokens.length)).toEqual(caption.greedy.new_tokens);
    expect(run.e2e!.ttft_ms).toBeCloseTo(run.e2e!.processor_ms + run.e2e!.vision_ms + run.e2e!.qformer_ms + run.e2e!.prefill_ms, 6);
    expect(run.model.dims).toMatchObject({ vision_hidden: 32, text_layers: 2, num_query_tokens: 8 });
  });

  it('refuses bad reports, naming the field', () => {
    const good = readReport(join(measurements, 'lavapipe-node-model-tiny.json'));
    const bad = (patch: (r: Record<string, unknown>) => void) => {
      const r = structuredClone(good) as unknown as Record<string, unknown>;
      patch(r);
      return () => validateReport(r);
    };
    expect(bad((r) => (r.version = 2))).toThrow(/report\.version/);
    expect(bad((r) => ((r.model as { stages: Record<string, unknown> }[])[0]!.stages.vision_ms = 'fast'))).toThrow(/model\[0\]\.stages\.vision_ms/);
    expect(bad((r) => delete r.model)).toThrow(ReportFormatError);
    expect(() => upgradeReport({ hello: 1 }, { label: 'x.json' })).toThrow(/x\.json: not a benchmark report/);
  });

  it('bench/cases/index.ts lists every case file (Node and the browser bundle share that list)', () => {
    const files = readdirSync(join(root, 'bench/cases'))
      .filter((f) => f.endsWith('.ts') && f !== 'index.ts')
      .map((f) => f.replace(/\.ts$/, ''))
      .sort();
    expect(Object.keys(CASE_FILES).sort()).toEqual(files);
  });
});
