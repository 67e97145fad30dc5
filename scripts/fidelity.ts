/**
 * Measures the fidelity tables of docs/fidelity.md on every fixture (test/fixtures/* and BLIP2_FIXTURES): runs
 * the data-driven parity tests with BLIP2_FIDELITY_LOG set, so the numbers are exactly what the tests assert,
 * and prints per fixture, rule and tensor group our largest error, the recorded scale it is measured against,
 * their ratio and the bound; then the margin reports of the reduced-precision token claims.
 *
 *   npm run fidelity [-- --out report.md]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const TEST_FILES = ['test/model/parity.test.ts', 'test/generation/hf-parity.test.ts', 'test/model/no-shader-f16.test.ts'];

interface CheckRecord {
  kind: 'check';
  fixture: string;
  name: string;
  rule: string;
  group: string;
  scale: number;
  source: string;
  multiple: number;
  bound: number;
  magnitude: number;
  maxAbs: number;
  ok: boolean;
}
interface MarginRecord {
  kind: 'margins';
  label: string;
  logitError: number;
  steps: number;
  claimed: number;
  lowMargin: number;
  flips: string[];
  violations: number;
}

function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  return Math.abs(x) >= 0.01 && Math.abs(x) < 1000 ? x.toPrecision(3) : x.toExponential(2);
}

function main(): void {
  const outIdx = process.argv.indexOf('--out');
  const out = outIdx >= 0 ? process.argv[outIdx + 1] : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'blip2-fidelity-'));
  const log = join(dir, 'checks.jsonl');
  writeFileSync(log, '');
  try {
    const run = spawnSync('npx', ['vitest', 'run', ...TEST_FILES], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, BLIP2_FIDELITY_LOG: log } });
    const records = readFileSync(log, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as CheckRecord | MarginRecord);
    const report = render(records, run.status === 0);
    if (out) writeFileSync(out, report);
    process.stdout.write(report);
    if (run.status !== 0) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function render(records: (CheckRecord | MarginRecord)[], passed: boolean): string {
  const rows = new Map<string, { fixture: string; rule: string; group: string; scale: number; multiple: number; maxAbs: number; ratio: number; bound: number; n: number; ok: boolean }>();
  for (const r of records) {
    if (r.kind !== 'check') continue;
    const key = `${r.fixture}\u0000${r.rule}\u0000${r.group}`;
    const ratio = r.scale > 0 ? r.maxAbs / r.scale : Infinity;
    const cur = rows.get(key);
    if (!cur) rows.set(key, { fixture: r.fixture, rule: r.rule, group: r.group, scale: r.scale, multiple: r.multiple, maxAbs: r.maxAbs, ratio, bound: r.bound, n: 1, ok: r.ok });
    else {
      cur.n++;
      cur.ok &&= r.ok;
      if (r.maxAbs / r.bound > cur.maxAbs / cur.bound) Object.assign(cur, { maxAbs: r.maxAbs, ratio, bound: r.bound });
    }
  }
  const lines: string[] = [];
  const fixtures = [...new Set([...rows.values()].map((r) => r.fixture))];
  for (const fixture of fixtures) {
    lines.push(`### ${fixture}`, '', '| rule | tensor group | our max abs error | recorded scale | error / scale | bound (largest of the case) | checks |', '|---|---|---:|---:|---:|---:|---:|');
    for (const r of [...rows.values()].filter((x) => x.fixture === fixture)) {
      lines.push(`| ${r.rule} | \`${r.group}\` | ${fmt(r.maxAbs)} | ${fmt(r.scale)} | ${fmt(r.ratio)} | ${fmt(r.bound)} (${r.multiple}x) | ${r.n}${r.ok ? '' : ' **FAIL**'} |`);
    }
    lines.push('');
  }
  const margins = records.filter((r): r is MarginRecord => r.kind === 'margins');
  if (margins.length) {
    lines.push('### Reduced-precision greedy tokens', '', '| run | logit error | steps claimed (margin > error) | below the error | changed there |', '|---|---:|---:|---:|---|');
    for (const m of margins) lines.push(`| ${m.label} | ${fmt(m.logitError)} | ${m.claimed} of ${m.steps} | ${m.lowMargin} | ${m.flips.length ? m.flips.join('; ') : 'none'} |`);
    lines.push('');
  }
  lines.push(passed ? 'All checks passed.' : '**Some tests failed** (see the output above).', '');
  return lines.join('\n');
}

main();
