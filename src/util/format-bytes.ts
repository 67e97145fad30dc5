/** Bytes in binary units for messages and the demo ("1.50 GiB"); quotas without a limit read "unlimited". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return 'unlimited';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) (v /= 1024), u++;
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}
