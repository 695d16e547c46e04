// "Now" for trust decisions (`release verify`, `fetch` and `mirror sync --trust-policy`): signed time from
// the policy's witnesses when the policy names Roughtime endpoints, else the local clock floored by the
// time the witnesses have already signed. The floor is the quorum-th newest cosignature timestamp of the
// policy's witnesses on an accepted checkpoint: at least `quorum` of them said it was that late. It is kept
// in STATE/time.sqlite (fs/sqlite.ts: survives kill -9) per witness set and never moves backwards.
// Either way a local clock that disagrees with signed time by more than the policy's maxSkewSeconds
// (default limits.signedTimeSkewSeconds) is refused: a clock set back would let a replayed stale
// checkpoint pass, one set ahead would refuse everything. docs/OPERATIONS.md, "Signed time".
import { createHash } from 'node:crypto';
import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import { fromSystemError, SourcemeshError } from '../errors.ts';
import { writeFileDurable } from '../fs/durable-file.ts';
import { openDatabase, writeTransaction } from '../fs/sqlite.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { openCheckpoint } from '../trust/checkpoint.ts';
import { createVerifier } from '../trust/note.ts';
import type { TrustPolicy } from '../trust/policy.ts';
import { measure, type Measurement, type MeasureOptions } from './client.ts';
import { judge, type Judgement } from './measure.ts';
import { formatProof } from './proof.ts';

export interface SignedInterval {
  /** POSIX seconds: the true time is within [earliest, latest]. */
  readonly earliest: number;
  readonly latest: number;
}

export interface NowDecision {
  /** POSIX seconds to decide with. */
  readonly now: number;
  readonly source: 'roughtime' | 'floor' | 'local';
  /** Local clock minus signed time (0 when the local clock is inside the signed interval). */
  readonly skew?: number;
}

/**
 * Pure: the "now" to decide with. With a signed interval, the local clock clamped into it; with only a
 * floor, the later of the local clock and the floor. E_POLICY when the local clock is more than
 * `maxSkew` seconds outside the signed interval, or behind the floor.
 */
export function decideNow(local: number, signed: SignedInterval | undefined, floor: number | undefined, maxSkew: number): NowDecision {
  if (signed !== undefined) {
    const skew = local < signed.earliest ? local - signed.earliest : local > signed.latest ? local - signed.latest : 0;
    if (Math.abs(skew) > maxSkew) {
      throw new SourcemeshError('E_POLICY', `the local clock is ${describe(skew)} the time the witnesses signed (${iso(signed.earliest)} .. ${iso(signed.latest)}); the bound is ${maxSkew} s: set the clock right`, { local, ...signed, skew });
    }
    const now = Math.floor(Math.min(Math.max(local, signed.earliest), signed.latest));
    return { now: floor !== undefined ? Math.max(now, floor) : now, source: 'roughtime', skew };
  }
  if (floor !== undefined) {
    if (floor - local > maxSkew) {
      throw new SourcemeshError('E_POLICY', `the local clock is ${describe(local - floor)} the time the witnesses already signed (${iso(floor)}); the bound is ${maxSkew} s: set the clock right`, { local, floor, skew: local - floor });
    }
    return local >= floor ? { now: Math.floor(local), source: 'local' } : { now: floor, source: 'floor', skew: local - floor };
  }
  return { now: Math.floor(local), source: 'local' };
}

function describe(skew: number): string {
  const s = Math.round(Math.abs(skew));
  return `${s} s ${skew < 0 ? 'behind' : 'ahead of'}`;
}

function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// ---------------------------------------------------------------------------------------------------
// The floor, kept per witness set

const SCHEMA = 'CREATE TABLE IF NOT EXISTS floor (witnesses TEXT PRIMARY KEY, seconds INTEGER NOT NULL, updated INTEGER NOT NULL)';

/** The witness set a floor belongs to: the quorum and the sorted public keys. */
function witnessSetId(policy: TrustPolicy): string {
  const keys = policy.witnesses.keys.map((k) => Buffer.from(k.publicKey).toString('hex')).sort();
  return createHash('sha256').update(`${policy.witnesses.quorum}\n${keys.join('\n')}`).digest('hex');
}

function floorFile(stateDir: string): string {
  return path.join(stateDir, 'time.sqlite');
}

export function readFloor(stateDir: string, policy: TrustPolicy): number | undefined {
  const db = openDatabase(floorFile(stateDir), SCHEMA, 'the signed-time floor');
  try {
    const row = db.prepare('SELECT seconds FROM floor WHERE witnesses = ?').get(witnessSetId(policy)) as { seconds: number } | undefined;
    return row?.seconds;
  } finally {
    db.close();
  }
}

/** The quorum-th newest cosignature timestamp of the policy's witnesses on `checkpoint`; undefined if fewer. */
export function quorumTimestamp(checkpoint: string, policy: TrustPolicy, limits: Limits = LIMITS): number | undefined {
  const witnesses = policy.witnesses.keys.map(createVerifier);
  const opened = openCheckpoint(checkpoint, [createVerifier(policy.log.key), ...witnesses], limits);
  const times = opened.note.verified.filter((s) => witnesses.includes(s.verifier as never) && s.timestamp !== undefined).map((s) => s.timestamp!);
  times.sort((a, b) => b - a);
  return times[policy.witnesses.quorum - 1];
}

/** Raise the floor to what `checkpoint`'s cosignatures show (never lower it). Returns the floor now kept. */
export function raiseFloor(stateDir: string, policy: TrustPolicy, checkpoint: string): number | undefined {
  const candidate = quorumTimestamp(checkpoint, policy);
  const db = openDatabase(floorFile(stateDir), SCHEMA, 'the signed-time floor');
  try {
    return writeTransaction(db, () => {
      const id = witnessSetId(policy);
      const row = db.prepare('SELECT seconds FROM floor WHERE witnesses = ?').get(id) as { seconds: number } | undefined;
      if (candidate === undefined || (row !== undefined && row.seconds >= candidate)) return row?.seconds;
      db.prepare('INSERT INTO floor (witnesses, seconds, updated) VALUES (?, ?, ?) ON CONFLICT (witnesses) DO UPDATE SET seconds = excluded.seconds, updated = excluded.updated')
        .run(id, candidate, Math.floor(Date.now() / 1000));
      return candidate;
    }, `${floorFile(stateDir)}: cannot store the signed-time floor`);
  } finally {
    db.close();
  }
}

// ---------------------------------------------------------------------------------------------------
// Asking the witnesses

export interface SignedTimeResult extends Judgement {
  readonly measurement: Measurement;
  /** The local wall clock (POSIX ms) at the instant the interval is for. */
  readonly localAt: number;
  /** Where the chained proof was written. */
  readonly proofFile?: string;
}

/**
 * Measure the policy's Roughtime witnesses and judge them (k of n). The proof is written to `proofFile`
 * when given, and to STATE/roughtime/ whenever a witness contradicted the others.
 */
export async function signedTime(policy: TrustPolicy, o: { stateDir: string; proofFile?: string; measure?: MeasureOptions }): Promise<SignedTimeResult> {
  if (policy.time === undefined) throw new SourcemeshError('E_USAGE', 'the trust policy names no Roughtime witnesses (time.roughtime)');
  const m = await measure(policy.time.roughtime, o.measure);
  let j: Judgement;
  try {
    j = judge(m.chain.map((e) => ({ server: e.server, sent: e.sent, received: e.received, midpoint: Number(e.verified.midpoint), radius: e.verified.radius })), policy.time.quorum, m.at);
  } catch (err) {
    if (err instanceof SourcemeshError && m.failed.length > 0) {
      throw new SourcemeshError(err.code, `${err.message}; no valid answer from ${m.failed.map((f) => `${f.server} (${f.reason})`).join(', ')}`, err.details);
    }
    throw err;
  }
  let proofFile = o.proofFile;
  if (proofFile === undefined && j.liars.length > 0) {
    proofFile = path.join(o.stateDir, 'roughtime', `${new Date(m.wallAt).toISOString().replace(/[:.]/g, '-')}-malfeasance.json`);
  }
  if (proofFile !== undefined) {
    await mkdir(path.dirname(proofFile), { recursive: true, mode: 0o700 }).catch((err: unknown) => {
      throw fromSystemError(err, `${path.dirname(proofFile!)}: cannot make the directory for the Roughtime proof`);
    });
    await writeFileDurable(proofFile, formatProof(m.chain), 'Roughtime proof');
  }
  return { ...j, measurement: m, localAt: m.wallAt, ...(proofFile === undefined ? {} : { proofFile }) };
}

/**
 * The "now" for a trust decision under `policy`: signed time when it names Roughtime witnesses, else the
 * floor. `local` is the local clock in POSIX seconds (tests set it back).
 */
export async function trustedNow(policy: TrustPolicy, o: { stateDir: string; local: () => number; measure?: MeasureOptions }): Promise<NowDecision & { signed?: SignedTimeResult }> {
  const floor = readFloor(o.stateDir, policy);
  const maxSkew = policy.time?.maxSkewSeconds ?? LIMITS.signedTimeSkewSeconds;
  if (policy.time === undefined) return decideNow(o.local(), undefined, floor, maxSkew);
  const signed = await signedTime(policy, { stateDir: o.stateDir, ...(o.measure ? { measure: o.measure } : {}) });
  // The interval is for the instant the measurement ended; the local clock is read now, shortly after.
  const elapsed = Date.now() - signed.localAt;
  const interval = { earliest: (signed.earliest + elapsed) / 1000, latest: (signed.latest + elapsed) / 1000 };
  return { ...decideNow(o.local(), interval, floor, maxSkew), signed };
}
