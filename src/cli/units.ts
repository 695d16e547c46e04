// Human-friendly quantities on the command line: durations (30s, 15m, 6h, 1d) and sizes (500M, 4GiB).
import { SourcemeshError } from '../errors.ts';

const DURATION: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m || Number(m[1]) <= 0) throw new SourcemeshError('E_USAGE', `${flag} ${text}: expected a duration such as 90s, 15m, 6h or 1d`);
  return Number(m[1]) * DURATION[m[2]!]!;
}

/** Sizes as GNU tools read them: K, M, G, T and KiB... are powers of 1024; KB, MB, GB, TB of 1000. */
export function parseSize(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(?:([KMGT])(i?B)?|B)?$/i.exec(text.trim());
  if (!m) throw new SourcemeshError('E_USAGE', `${flag} ${text}: expected a size such as 500M, 4G, 4GiB or 4GB`);
  const power = m[2] ? 'KMGT'.indexOf(m[2].toUpperCase()) + 1 : 0;
  const base = m[3]?.toUpperCase() === 'B' ? 1000 : 1024;
  return Math.floor(Number(m[1]) * base ** power);
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 7_200_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}
