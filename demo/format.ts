// Human-readable numbers for the demo's status lines.

export { formatBytes } from '../src/util/format-bytes.js';

export function formatMs(ms: number): string {
  return ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** Generation timings: the first token includes image preprocessing, vision tower, Q-Former and the prompt's prefill. */
export function formatGeneration(t: { firstTokenMs: number | null; totalMs: number; tokens: number }): string {
  const parts = [`${t.tokens} token${t.tokens === 1 ? '' : 's'} in ${formatMs(t.totalMs)}`];
  if (t.firstTokenMs !== null) {
    parts.push(`first token after ${formatMs(t.firstTokenMs)}`);
    if (t.tokens > 1) parts.push(`then ${((t.tokens - 1) / ((t.totalMs - t.firstTokenMs) / 1000)).toFixed(1)} tokens/s`);
  }
  return parts.join(' · ');
}

/** A stored date (ISO 8601) in local time, to the minute: "2025-12-03 12:14". */
export function formatDate(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
}
