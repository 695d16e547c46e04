// Per-key quotas of `log serve`: at most `entriesPerHour` entries and `bytesPerDay` bytes for each key a
// submission is charged to (the keys whose signatures admitted it), whatever address it comes from.
//
// Each allowance is a generic cell rate algorithm (GCRA, the token bucket kept as one number): `until`
// is the moment the key's allowance is whole again; a charge of c units moves it to max(until, now) +
// c·(window/amount), and is refused when that lands more than one window after now. A key may therefore
// spend its whole hourly allowance at once, then one entry every window/amount; the refusal says exactly
// when the next one fits (Retry-After). One number per allowance, additive, with no window boundary that
// would reset a key's allowance at a wall-clock hour: the charges of a batch are added in the same
// transaction that logs it (entry-index.ts), so the counts survive restarts and match the tree.
//
// `take` is pure (the clock is an argument). QuotaBook holds the keys in use in memory, charges at
// admission (so that entries still being sequenced count), and refunds what is not logged.

import type { EntryIndex, QuotaDelta } from './entry-index.ts';

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

export interface QuotaLimits {
  /** 0: no limit. */
  readonly entriesPerHour: number;
  /** 0: no limit. */
  readonly bytesPerDay: number;
}

/**
 * GCRA: charge `units` of an allowance of `amount` per `windowMs` whose state is `until` (ms) at `now` (ms).
 * Returns the new state, or how long until the charge would fit.
 */
export function take(until: number, now: number, units: number, amount: number, windowMs: number): { ok: true; until: number } | { ok: false; retryAfterMs: number } {
  // More than the whole allowance never fits (Infinity: no retry helps).
  if (units > amount) return { ok: false, retryAfterMs: Infinity };
  const next = Math.max(until, now) + (units * windowMs) / amount;
  const over = next - now - windowMs;
  return over <= 1e-6 ? { ok: true, until: next } : { ok: false, retryAfterMs: over };
}

/** What one admitted entry was charged, to refund it or to store it. */
export interface Reservation {
  readonly keys: readonly string[];
  readonly entriesMs: number;
  readonly bytesMs: number;
}

interface Cell {
  entriesUntil: number;
  bytesUntil: number;
  /** Reservations not yet logged or refunded: a cell with some is never evicted. */
  inflight: number;
}

export type Refusal = { readonly key: string; readonly what: string; readonly retryAfterMs: number };

/** The quota identity of a signer: its public key (a vkey's last part), so that renaming a key changes nothing. */
export function quotaKey(vkey: string): string {
  return vkey.slice(vkey.lastIndexOf('+') + 1);
}

export class QuotaBook {
  #limits: QuotaLimits;
  readonly #index: EntryIndex;
  readonly #cells = new Map<string, Cell>();
  readonly #maxCached: number;

  constructor(index: EntryIndex, limits: QuotaLimits, maxCached: number) {
    this.#index = index;
    this.#limits = limits;
    this.#maxCached = maxCached;
  }

  get enabled(): boolean {
    return this.#limits.entriesPerHour > 0 || this.#limits.bytesPerDay > 0;
  }

  #cell(key: string): Cell {
    let cell = this.#cells.get(key);
    if (cell === undefined) {
      if (this.#cells.size >= this.#maxCached) this.#evict();
      cell = { ...this.#index.quota(key), inflight: 0 };
      this.#cells.set(key, cell);
    }
    return cell;
  }

  /** Cells without reservations hold what the database holds: drop the oldest eighth of them. */
  #evict(): void {
    let drop = Math.max(1, this.#cells.size >> 3);
    for (const [key, cell] of this.#cells) {
      if (cell.inflight > 0) continue;
      this.#cells.delete(key);
      if (--drop === 0) return;
    }
  }

  /** Charge one entry of `bytes` to each of `vkeys` at `now`, or say which key is over and until when. */
  reserve(vkeys: readonly string[], bytes: number, now: number): Reservation | Refusal {
    const { entriesPerHour, bytesPerDay } = this.#limits;
    const keys = [...new Set(vkeys.map(quotaKey))];
    if (!this.enabled || keys.length === 0) return { keys: [], entriesMs: 0, bytesMs: 0 };
    const cells = keys.map((k) => this.#cell(k));
    const next: { e: number; b: number }[] = [];
    for (let i = 0; i < keys.length; i++) {
      const cell = cells[i]!;
      const name = vkeys.find((v) => quotaKey(v) === keys[i])!;
      let e = cell.entriesUntil;
      let b = cell.bytesUntil;
      if (entriesPerHour > 0) {
        const r = take(e, now, 1, entriesPerHour, HOUR_MS);
        if (!r.ok) return { key: name, what: `${entriesPerHour} entries per hour`, retryAfterMs: r.retryAfterMs };
        e = r.until;
      }
      if (bytesPerDay > 0) {
        const r = take(b, now, bytes, bytesPerDay, DAY_MS);
        if (!r.ok) return { key: name, what: `${bytesPerDay} bytes per day`, retryAfterMs: r.retryAfterMs };
        b = r.until;
      }
      next.push({ e, b });
    }
    keys.forEach((_, i) => {
      const cell = cells[i]!;
      cell.entriesUntil = next[i]!.e;
      cell.bytesUntil = next[i]!.b;
      cell.inflight++;
    });
    return {
      keys,
      entriesMs: entriesPerHour > 0 ? HOUR_MS / entriesPerHour : 0,
      bytesMs: bytesPerDay > 0 ? (bytes * DAY_MS) / bytesPerDay : 0,
    };
  }

  /** The entry was not logged: give its charge back. */
  refund(r: Reservation): void {
    for (const key of r.keys) {
      const cell = this.#cells.get(key);
      if (cell === undefined) continue;
      cell.entriesUntil -= r.entriesMs;
      cell.bytesUntil -= r.bytesMs;
      cell.inflight--;
    }
  }

  /** The entry was logged (its charge stored with it). */
  settle(r: Reservation): void {
    for (const key of r.keys) {
      const cell = this.#cells.get(key);
      if (cell !== undefined) cell.inflight--;
    }
  }

  /** The charges of logged entries, summed per key, as the database stores them. */
  static deltas(reservations: readonly Reservation[]): Map<string, QuotaDelta> {
    const out = new Map<string, { entriesMs: number; bytesMs: number }>();
    for (const r of reservations) {
      for (const key of r.keys) {
        const d = out.get(key) ?? { entriesMs: 0, bytesMs: 0 };
        d.entriesMs += r.entriesMs;
        d.bytesMs += r.bytesMs;
        out.set(key, d);
      }
    }
    return out;
  }

  /** Another process logged entries on this directory: what is cached may be behind the database. */
  forget(): void {
    for (const [key, cell] of this.#cells) if (cell.inflight === 0) this.#cells.delete(key);
  }
}
