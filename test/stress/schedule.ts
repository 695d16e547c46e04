// The fault schedule of a stress run, decided from the seed alone (pure: the same seed, sizes and kinds
// give the same faults at the same times), so a failing run is replayed exactly with `--seed`.
import { Prng } from '../helpers/prng.ts';

export const FAULT_KINDS = ['kill', 'stop', 'partition', 'loss', 'latency', 'bandwidth', 'reset', 'liar', 'refuse', 'replace', 'disk-full', 'seed-kill', 'seed-liar', 'time-liar', 'bogus-attest'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/**
 * Faults on a mirror that leave its HTTP service alone (its BitTorrent seed killed or lying; a forged
 * attestation in its name): they don't count towards the mirrors under a fault, and the checker's
 * completion rule still counts the mirror as up.
 */
export const BESIDE_SERVING: ReadonlySet<FaultKind> = new Set(['seed-kill', 'seed-liar', 'bogus-attest']);
/** Faults that last to the end of the run. */
const PERMANENT: ReadonlySet<FaultKind> = new Set(['liar', 'replace', 'bogus-attest', 'seed-liar']);

export interface Fault {
  kind: FaultKind;
  /** ms from the start of the load phase. */
  at: number;
  /** ms; absent: to the end of the run (a liar, a replaced upstream file). */
  until?: number;
  /** A node name: m1..mN, log, w1..w3, up. */
  target: string;
  /** Loss percentage, latency ms, bandwidth bytes/s, reset probability percent, the replaced file, a lying clock's offset (s). */
  param?: number | string;
}

export interface ScheduleInput {
  seed: number;
  mirrors: number;
  durationMs: number;
  kinds: readonly FaultKind[];
  /** The distfile names upstream may replace. */
  files: readonly string[];
  clients: number;
}

/** Which nodes a kind may hit. */
function targets(kind: FaultKind, mirrors: number): string[] {
  const ms = Array.from({ length: mirrors }, (_, i) => `m${i + 1}`);
  switch (kind) {
    case 'kill':
    case 'stop':
      return [...ms, 'log', 'w1', 'w2', 'w3'];
    case 'refuse':
    case 'time-liar':
      return ['w1', 'w2', 'w3'];
    case 'replace':
      return ['up'];
    default:
      return ms;
  }
}

/**
 * Faults for the run. Each kind given appears at least once, the rest drawn at random; the rules that keep
 * the promise checkable: at any time at most half of the mirrors (rounded down, at least one kept honest
 * and up) are under a fault, at most one witness is down or refusing (a 2-of-3 quorum stays possible), and
 * liars are at most a fifth of the mirrors (at least one when asked for). One forged attestation at most,
 * so that a builders' quorum of two honest mirrors stays possible, and one lying seed.
 */
export function planFaults(input: ScheduleInput): Fault[] {
  const rng = new Prng(input.seed ^ 0x5eed);
  const { durationMs, mirrors } = input;
  const out: Fault[] = [];
  if (input.kinds.length === 0 || mirrors < 2) return out;
  const start = Math.round(durationMs * 0.1);
  const end = Math.round(durationMs * 0.8);
  const count = Math.max(input.kinds.length, Math.round((durationMs / 60_000) * 8));
  const order: FaultKind[] = [...input.kinds];
  while (order.length < count) order.push(input.kinds[rng.below(input.kinds.length)]!);
  const maxLiars = Math.max(1, Math.floor(mirrors / 5));
  const busy = (target: string, from: number, to: number) =>
    out.some((f) => f.target === target && !BESIDE_SERVING.has(f.kind) && f.at < to && (f.until ?? Infinity) > from);
  const mirrorsBusy = (from: number, to: number) =>
    new Set(out.filter((f) => f.target.startsWith('m') && !BESIDE_SERVING.has(f.kind) && f.at < to && (f.until ?? Infinity) > from).map((f) => f.target)).size;
  const witnessesBusy = (from: number, to: number) =>
    out.some((f) => /^w\d$/.test(f.target) && f.at < to && (f.until ?? Infinity) > from);
  // Faults that last to the end are placed first: the others fit around them.
  const placing = [...order.entries()].sort((a, b) => Number(PERMANENT.has(b[1])) - Number(PERMANENT.has(a[1])));
  for (const [i, kind] of placing) {
    if (kind === 'liar' && out.filter((f) => f.kind === 'liar').length >= maxLiars) continue;
    if ((kind === 'bogus-attest' || kind === 'seed-liar') && out.some((f) => f.kind === kind)) continue;
    const permanent = PERMANENT.has(kind);
    const beside = BESIDE_SERVING.has(kind);
    // First try the fault's own slot of the window (jittered), then anywhere in it, shorter each time.
    for (let attempt = 0; attempt < 24; attempt++) {
      const slot = (end - start) / order.length;
      const at = attempt === 0 ? Math.round(start + slot * i + rng.below(Math.max(1, Math.round(slot / 2)))) : start + rng.below(end - start);
      const span = Math.round(Math.min(15_000, Math.max(2_000, durationMs / 12)) * (0.5 + rng.below(1000) / 1000) / (1 + attempt / 4));
      const until = permanent ? undefined : at + span;
      const to = until ?? Infinity;
      const candidates = targets(kind, mirrors).filter((t) => {
        if (beside) return !out.some((f) => f.target === t && f.kind === kind && f.at < to && (f.until ?? Infinity) > at);
        if (busy(t, at, to)) return false;
        if (t.startsWith('m') && mirrorsBusy(at, to) + 1 > Math.floor(mirrors / 2)) return false;
        if (/^w\d$/.test(t) && witnessesBusy(at, to)) return false;
        return true;
      });
      if (candidates.length === 0) continue;
      const target = candidates[rng.below(candidates.length)]!;
      const f: Fault = { kind, at, target, ...(until !== undefined ? { until } : {}) };
      if (kind === 'loss') f.param = 10 + rng.below(30);
      if (kind === 'latency') f.param = 50 + rng.below(250);
      if (kind === 'bandwidth') f.param = (64 + rng.below(448)) * 1024;
      if (kind === 'reset') f.param = 20 + rng.below(50);
      if (kind === 'replace') f.param = input.files[rng.below(input.files.length)];
      if (kind === 'time-liar') f.param = (rng.below(2) === 0 ? 1 : -1) * (600 + rng.below(3000)); // seconds off
      out.push(f);
      break;
    }
  }
  return out.sort((a, b) => a.at - b.at || (a.target < b.target ? -1 : 1));
}

export function parseFaultKinds(list: string): FaultKind[] {
  if (list === 'all') return [...FAULT_KINDS];
  if (list === 'none' || list === '') return [];
  const kinds = list.split(',').map((k) => k.trim());
  for (const k of kinds) if (!(FAULT_KINDS as readonly string[]).includes(k)) throw new Error(`--faults: unknown fault kind ${JSON.stringify(k)} (known: ${FAULT_KINDS.join(', ')}, all, none)`);
  return kinds as FaultKind[];
}
