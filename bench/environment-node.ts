/** The Node side of bench/environment.ts: OS, CPU, Node and Dawn versions, and the git commit of this checkout. */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Environment } from './environment.js';
import type { HostInfo, ProjectInfo } from './report-schema.js';

/** The checkout: the nearest folder above this module with the project's package.json (bundles move the module), else the working directory. */
function findRoot(): string {
  let dir = fileURLToPath(new URL('./', import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(`${dir}package.json`) && readJson(`${dir}package.json`)?.name === 'blip2-webgpu') return dir;
    const parent = fileURLToPath(new URL('../', `file://${dir}`));
    if (parent === dir) break;
    dir = parent;
  }
  return `${process.cwd()}/`;
}

const ROOT = findRoot();

function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function readJson(path: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** The project's name, version and git state (commit, its date, uncommitted changes). */
export function projectInfo(): ProjectInfo {
  const pkg = readJson(`${ROOT}package.json`) ?? {};
  const status = git(['status', '--porcelain', '--untracked-files=no']);
  return {
    name: String(pkg.name ?? 'blip2-webgpu'),
    version: String(pkg.version ?? '0.0.0'),
    commit: git(['rev-parse', 'HEAD']),
    commit_date: git(['log', '-1', '--format=%cI']),
    ...(status !== null ? { dirty: status.length > 0 } : {}),
  };
}

/** Clock of the host CPU in GHz (os.cpus() reports 0 in some VMs; /proc/cpuinfo still knows); 0 when unknown. */
export function cpuGhz(): number {
  const speeds = os.cpus().map((c) => c.speed).filter((s) => s > 0);
  if (speeds.length) return Math.max(...speeds) / 1000;
  try {
    const m = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return Number(m[1]) / 1000;
  } catch {
    // not Linux
  }
  return 0;
}

function cpuSimd(): string | undefined {
  try {
    const flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
    if (/\bavx512f\b/.test(flags)) return 'avx512';
    if (/\bavx2\b/.test(flags)) return 'avx2';
    if (/\bsse4_2\b/.test(flags)) return 'sse4.2';
  } catch {
    // not Linux
  }
  return os.arch() === 'arm64' ? 'neon' : undefined;
}

export function hostInfo(): HostInfo {
  const cpus = os.cpus();
  return {
    os: `${os.type()} ${os.release()}`,
    arch: os.arch(),
    cpu_model: cpus[0]?.model.trim(),
    cpu_cores: os.availableParallelism(),
    cpu_ghz: Number(cpuGhz().toFixed(3)),
    cpu_simd: cpuSimd(),
    memory_bytes: os.totalmem(),
    ...(os.platform() !== 'win32' ? { load_average: os.loadavg().map((v) => Number(v.toFixed(2))) } : {}),
    source: 'self',
  };
}

export function nodeEnvironment(): Environment {
  // Dawn for Node: the project's node_modules, or the trimmed copy GPU-machine bundles carry (bench/device/build.mjs).
  const dawn = [`${ROOT}node_modules/webgpu/package.json`, `${ROOT}.dev/node_modules/webgpu/package.json`].map(readJson).find((j) => j !== null) ?? null;
  return {
    project: projectInfo(),
    runtime: { kind: 'node', node: process.version, ...(dawn ? { dawn: `webgpu ${String(dawn.version)}` } : {}) },
    host: hostInfo(),
  };
}
