/**
 * Reading report files (any version: bench/report-upgrade.ts) in Node.
 *
 *   npx tsx bench/report-files.ts FILE... [--in-place]   # prints each in the current schema, or rewrites it
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { BenchReport } from './report-schema.js';
import { upgradeReport } from './report-upgrade.js';

/** The commit that added `path` and its date, if it is tracked by git. */
function addedIn(path: string): { commit: string; date: string } | null {
  try {
    const out = execFileSync('git', ['log', '--diff-filter=A', '--format=%H %cI', '--', basename(path)], { cwd: dirname(path), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const last = out.split('\n').filter(Boolean).pop();
    if (!last) return null;
    const [commit, date] = last.split(' ');
    return { commit: commit!, date: date! };
  } catch {
    return null;
  }
}

/** A report file in the current schema; older formats are converted (their label: the file name). */
export function readReport(path: string): BenchReport {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
  const added = addedIn(path);
  return upgradeReport(json, {
    label: basename(path).replace(/\.json$/, ''),
    created: added?.date ?? statSync(path).mtime.toISOString(),
    origin: `${basename(path)}${added ? `, stored in commit ${added.commit.slice(0, 10)}` : ''}`,
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const inPlace = args.includes('--in-place');
  for (const file of args.filter((a) => a !== '--in-place')) {
    const report = readReport(file);
    const text = `${JSON.stringify(report, null, 2)}\n`;
    if (inPlace) {
      writeFileSync(file, text);
      console.error(`${file}: ${report.converted_from ?? 'current schema'}`);
    } else process.stdout.write(text);
  }
}
