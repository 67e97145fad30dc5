// The README's "Measured" table and docs/benchmarks.md's result tables are generated from docs/measurements/:
// the committed text must equal what scripts/measured-docs.ts makes (run `npm run docs:measured` after adding a report).
import { describe, expect, it } from 'vitest';
import { generatedFiles, loadMeasurements, readmeMeasured } from '../../scripts/measured-docs.js';

describe('generated docs', () => {
  const reports = loadMeasurements();

  it.each(generatedFiles(reports).map((f) => ({ ...f, name: f.path.split('/').slice(-2).join('/') })))('$name equals what docs/measurements/ gives', ({ current, wanted }) => {
    expect(current).toBe(wanted);
  });

  it('the README table shows the stored numbers', () => {
    const h200 = reports.get('h200-model-f16-session2-gpupack')!.model![0]!;
    const text = readmeMeasured(reports);
    expect(text).toContain(`${h200.stages.decode_ms_per_token!.toFixed(2)} ms`);
    expect(text).toContain(`${(h200.memory.weights_bytes! / 2 ** 30).toFixed(2)} GiB`);
  });
});
