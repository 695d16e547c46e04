// The node's own record (DIR/node.sqlite): the outcome of each mirror sync (from the JSON report
// `mirror sync --json` prints) and samples of the mirror's size over time, for the panel's charts. Only
// what the node saw itself; a lost row costs a point on a chart, never a served byte.
import type { DatabaseSync } from 'node:sqlite';
import path from 'node:path';
import { openDatabase } from '../fs/sqlite.ts';

export interface SyncRecord {
  at: number;
  seconds: number;
  added: number;
  addedBytes: number;
  unchanged: number;
  quarantined: number;
  failed: number;
}

export interface SizeSample {
  at: number;
  bytes: number;
  files: number;
}

/** Rows kept of each kind: the charts show the last ones. */
const KEEP = 1000;

export class NodeState {
  readonly #db: DatabaseSync;

  private constructor(db: DatabaseSync) {
    this.#db = db;
  }

  static open(dir: string): NodeState {
    return new NodeState(openDatabase(path.join(dir, 'node.sqlite'), `
      CREATE TABLE IF NOT EXISTS syncs (at INTEGER NOT NULL, seconds REAL NOT NULL, added INTEGER NOT NULL, added_bytes INTEGER NOT NULL,
        unchanged INTEGER NOT NULL, quarantined INTEGER NOT NULL, failed INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS sizes (at INTEGER NOT NULL, bytes INTEGER NOT NULL, files INTEGER NOT NULL);`, 'the node state'));
  }

  addSync(r: SyncRecord): void {
    this.#db.prepare('INSERT INTO syncs VALUES (?, ?, ?, ?, ?, ?, ?)').run(r.at, r.seconds, r.added, r.addedBytes, r.unchanged, r.quarantined, r.failed);
    this.#db.prepare('DELETE FROM syncs WHERE rowid <= (SELECT max(rowid) FROM syncs) - ?').run(KEEP);
  }

  addSize(s: SizeSample): void {
    this.#db.prepare('INSERT INTO sizes VALUES (?, ?, ?)').run(s.at, s.bytes, s.files);
    this.#db.prepare('DELETE FROM sizes WHERE rowid <= (SELECT max(rowid) FROM sizes) - ?').run(KEEP);
  }

  syncs(limit = 50): SyncRecord[] {
    return (this.#db.prepare('SELECT at, seconds, added, added_bytes AS addedBytes, unchanged, quarantined, failed FROM syncs ORDER BY rowid DESC LIMIT ?').all(limit) as unknown as SyncRecord[]).reverse();
  }

  sizes(limit = 200): SizeSample[] {
    return (this.#db.prepare('SELECT at, bytes, files FROM sizes ORDER BY rowid DESC LIMIT ?').all(limit) as unknown as SizeSample[]).reverse();
  }

  close(): void {
    this.#db.close();
  }
}

/**
 * Reads `mirror sync --json` output line by line: each run's report is one pretty-printed JSON object
 * (its first line `{`, its last `}`); anything else is skipped. A report that does not parse is dropped.
 */
export class SyncReportReader {
  #lines: string[] | undefined;
  readonly #max: number;

  constructor(maxLines = 200_000) {
    this.#max = maxLines;
  }

  /** The record when `line` completes a report. */
  push(line: string, at: number): SyncRecord | undefined {
    if (line === '{') this.#lines = [];
    if (this.#lines === undefined) return undefined;
    this.#lines.push(line);
    if (this.#lines.length > this.#max) this.#lines = undefined;
    if (line !== '}' || this.#lines === undefined) return undefined;
    const text = this.#lines.join('\n');
    this.#lines = undefined;
    try {
      const r = JSON.parse(text) as { seconds?: unknown; added?: { size?: number }[]; unchanged?: unknown[]; quarantined?: unknown[]; failed?: unknown[] };
      if (!Array.isArray(r.added) || !Array.isArray(r.unchanged) || !Array.isArray(r.quarantined) || !Array.isArray(r.failed)) return undefined;
      return {
        at, seconds: typeof r.seconds === 'number' ? r.seconds : 0, added: r.added.length,
        addedBytes: r.added.reduce((n, f) => n + (typeof f?.size === 'number' ? f.size : 0), 0),
        unchanged: r.unchanged.length, quarantined: r.quarantined.length, failed: r.failed.length,
      };
    } catch {
      return undefined;
    }
  }
}
