// Parsers for the human units the options take.

const SIZE_SUFFIX: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** "512", "4k", "16M", "10G", "10GiB", "1.5T" → bytes (K, M, G, T are powers of 1024, as
 * truncate(1) reads them); "10GB" is 10^10 bytes, as truncate reads it; NaN when malformed. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?[bB])?\s*$/.exec(text);
  if (!m) return NaN;
  const unit = m[2]!.toLowerCase();
  const decimal = unit !== '' && m[3] !== undefined && m[3].toLowerCase() === 'b';
  const factor = decimal ? 1000 ** ('kmgt'.indexOf(unit) + 1) : SIZE_SUFFIX[unit] ?? NaN;
  const v = Number(m[1]) * factor;
  return Number.isSafeInteger(Math.round(v)) ? Math.round(v) : NaN;
}

const DURATION_UNIT: Record<string, number> = { '': 1, ms: 0.001, s: 1, m: 60, min: 60, h: 3600, d: 86400 };

/** "30", "30s", "500ms", "5m", "5min", "10h", "1d", "1h30m" → seconds; NaN when malformed. */
export function parseDuration(text: string): number {
  const t = text.trim().replace(/(\d)\s+(?=[a-z])/g, '$1').replace(/([a-z])\s+(?=\d)/g, '$1');
  if (!/^(\d+(\.\d+)?(ms|min|[smhd])?)+$/.test(t)) return NaN;
  let total = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|min|[smhd])?/g)) total += Number(m[1]) * DURATION_UNIT[m[2] ?? '']!;
  return Math.round(total * 1000) / 1000;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}
