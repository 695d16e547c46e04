// What each mirror has done for us, kept in the node's state (node:sqlite, beside the store): bytes
// served and how fast, failures, and lies with their evidence. Fetch orders mirrors by it; `sourcemesh
// mirrors status` shows it.
import type { DatabaseSync } from 'node:sqlite';
import path from 'node:path';
import { openDatabase, writeTransaction } from '../fs/sqlite.ts';

export interface MirrorRecord {
  mirror: string;
  files: number;
  bytes: number;
  ms: number;
  failures: number;
  lies: number;
  lastSeen: number;
  lastLie?: string;
}

export interface Outcome {
  mirror: string;
  /** Verified bytes it served, and how long that took. */
  bytes?: number;
  ms?: number;
  failed?: boolean;
  /** Evidence of a lie (file, range, hashes). */
  lie?: string;
}

export class Reputation {
  readonly file: string;
  private readonly db: DatabaseSync;

  private constructor(file: string, db: DatabaseSync) {
    this.file = file;
    this.db = db;
  }

  static open(storeRoot: string): Reputation {
    const file = path.join(storeRoot, 'node.sqlite');
    const db = openDatabase(file, `CREATE TABLE IF NOT EXISTS mirrors (
        mirror TEXT PRIMARY KEY, files INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
        ms INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, lies INTEGER NOT NULL DEFAULT 0,
        last_seen INTEGER NOT NULL DEFAULT 0, last_lie TEXT)`, 'the mirror reputation database');
    return new Reputation(file, db);
  }

  /** Record one run's outcomes in one transaction (two fetches may share a store). */
  record(outcomes: Outcome[], now = Date.now()): void {
    if (!outcomes.length) return;
    const upsert = this.db.prepare(`INSERT INTO mirrors (mirror, files, bytes, ms, failures, lies, last_seen, last_lie)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT(mirror) DO UPDATE SET files = files + excluded.files, bytes = bytes + excluded.bytes, ms = ms + excluded.ms,
        failures = failures + excluded.failures, lies = lies + excluded.lies, last_seen = excluded.last_seen,
        last_lie = COALESCE(excluded.last_lie, last_lie)`);
    writeTransaction(this.db, () => {
      for (const o of outcomes) {
        upsert.run(o.mirror, o.bytes ? 1 : 0, o.bytes ?? 0, o.ms ?? 0, o.failed ? 1 : 0, o.lie ? 1 : 0, now, o.lie ?? null);
      }
    }, `${this.file}: cannot record mirror reputation`);
  }

  all(): MirrorRecord[] {
    return this.db.prepare('SELECT mirror, files, bytes, ms, failures, lies, last_seen AS lastSeen, last_lie AS lastLie FROM mirrors ORDER BY mirror').all()
      .map((r) => ({ ...(r as unknown as MirrorRecord), lastLie: (r as { lastLie: string | null }).lastLie ?? undefined }));
  }

  close(): void {
    this.db.close();
  }
}

/**
 * A weight for ordering mirrors (plan.ts `weightedOrder`): by failure ratio and speed; unknown mirrors
 * get a middling weight so that they are tried and measured. A mirror with a recorded lie gets 0, which
 * the plan reads as "last resort": after every mirror without one, always, not merely less likely
 * first.
 */
export function mirrorWeight(r: MirrorRecord | undefined): number {
  if (!r) return 1;
  if (r.lies > 0) return 0;
  const attempts = r.files + r.failures;
  const reliability = attempts ? (r.files + 1) / (attempts + 1) : 1;
  const rate = r.ms > 0 ? r.bytes / r.ms : 1000; // bytes per ms
  return reliability * Math.min(4, Math.max(0.25, Math.log10(1 + rate) / 3));
}

