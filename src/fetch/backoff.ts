// Exponential backoff with jitter. Pure: the caller supplies the random number.

/** Delay before retry number `attempt` (0-based): base * 2^attempt, capped, scaled by a factor in [0.5, 1). */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** attempt);
  return Math.round(ceiling * (0.5 + random / 2));
}

/** RFC 9110 §10.2.3 Retry-After: delay-seconds or an HTTP-date. Undefined when absent or unusable. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const when = Date.parse(value);
  return Number.isNaN(when) ? undefined : Math.max(0, when - now);
}
