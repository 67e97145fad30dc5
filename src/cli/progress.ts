/**
 * Progress bars on stderr. On a terminal the bar redraws in place (at most ~10 times a second); when forced
 * on a pipe (`--progress`) it prints a plain line every 10 %, so logs stay readable.
 */
import type { Writable } from 'node:stream';

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export interface ProgressOptions {
  /** Redraw in place (a terminal) or print milestone lines. */
  interactive: boolean;
  /** How `done`/`total` read: bytes or plain counts. */
  unit: 'bytes' | 'items';
  width?: number;
}

export class ProgressBar {
  private lastDraw = 0;
  private lastMilestone = -1;
  private readonly started = Date.now();
  private drawn = false;

  constructor(
    private readonly stream: Writable,
    private readonly label: string,
    private readonly options: ProgressOptions,
  ) {}

  update(done: number, total: number, detail = ''): void {
    const fraction = total > 0 ? Math.min(1, done / total) : 0;
    if (!this.options.interactive) {
      const milestone = Math.floor(fraction * 10);
      if (milestone <= this.lastMilestone) return;
      this.lastMilestone = milestone;
      this.stream.write(`${this.label}: ${Math.round(fraction * 100)}% ${this.amount(done, total)}${detail ? ` ${detail}` : ''}\n`);
      return;
    }
    const now = Date.now();
    if (now - this.lastDraw < 100 && done < total) return;
    this.lastDraw = now;
    const width = this.options.width ?? 24;
    const filled = Math.round(fraction * width);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    const seconds = (now - this.started) / 1000;
    const rate = this.options.unit === 'bytes' && seconds > 0.5 ? ` ${formatBytes(done / seconds)}/s` : '';
    const text = `${this.label} [${bar}] ${String(Math.round(fraction * 100)).padStart(3)}% ${this.amount(done, total)}${rate}${detail ? ` ${detail}` : ''}`;
    this.stream.write(`\r\x1b[2K${text}`);
    this.drawn = true;
  }

  /** Leaves the finished bar on its own line. */
  finish(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }

  private amount(done: number, total: number): string {
    return this.options.unit === 'bytes' ? `${formatBytes(done)}/${formatBytes(total)}` : `${done}/${total}`;
  }
}
