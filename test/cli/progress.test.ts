import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProgressBar, formatBytes } from '../../src/cli/progress.js';

function capture() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString()));
  return { stream, text: () => text };
}

describe('progress bars', () => {
  it('formats byte counts', () => {
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(1500)).toBe('1.50 kB');
    expect(formatBytes(14_979_047_424)).toBe('15.0 GB');
  });

  it('prints one line per 10 % when not on a terminal', () => {
    const out = capture();
    const bar = new ProgressBar(out.stream, 'Downloading m', { interactive: false, unit: 'bytes' });
    for (let done = 0; done <= 1000; done += 50) bar.update(done, 1000, 'model.safetensors');
    bar.finish();
    const lines = out.text().trim().split('\n');
    expect(lines).toHaveLength(11);
    expect(lines[0]).toBe('Downloading m: 0% 0 B/1.00 kB model.safetensors');
    expect(lines.at(-1)).toBe('Downloading m: 100% 1.00 kB/1.00 kB model.safetensors');
    expect(out.text()).not.toContain('\r');
  });

  it('redraws in place on a terminal and ends with a newline', () => {
    const out = capture();
    const bar = new ProgressBar(out.stream, 'Loading weights', { interactive: true, unit: 'items', width: 10 });
    bar.update(1, 4);
    bar.update(4, 4, 'last');
    bar.finish();
    expect(out.text()).toMatch(/^\r\x1b\[2KLoading weights \[###\.{7}\]  25% 1\/4/);
    expect(out.text()).toContain('\r\x1b[2KLoading weights [##########] 100% 4/4 last\n');
  });
});
