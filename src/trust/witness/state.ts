// The witness's durable state: one row per log (origin, size, root, cosigned checkpoint) in node:sqlite,
// STATE/witness.sqlite, WAL with synchronous=FULL: a transaction is on disk when COMMIT returns, and a
// crash at any point leaves either the old row or the new one, never a torn one. BEGIN IMMEDIATE takes
// the write lock before the read, so the check and the store are one step even across processes.

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fromSystemError, SourcemeshError } from '../../errors.ts';
import { HASH_SIZE } from '../merkle.ts';
import type { LogRecord, WitnessStore } from './witness.ts';

export class SqliteWitnessStore implements WitnessStore {
  readonly file: string;
  readonly #db: DatabaseSync;

  private constructor(file: string, db: DatabaseSync) {
    this.file = file;
    this.#db = db;
  }

  static open(dir: string): SqliteWitnessStore {
    const file = path.join(path.resolve(dir), 'witness.sqlite');
    let db: DatabaseSync;
    try {
      mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      db = new DatabaseSync(file);
      // busy_timeout blocks this process only while another witness process on the same state holds
      // the lock for one request (milliseconds); one process per state is the normal case.
      db.exec(`PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
        CREATE TABLE IF NOT EXISTS logs (origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL,
          checkpoint TEXT NOT NULL, updated INTEGER NOT NULL)`);
    } catch (err) {
      throw fromSystemError(err, `${file}: cannot open the witness state`);
    }
    return new SqliteWitnessStore(file, db);
  }

  atomically<T>(fn: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE');
    let result: T;
    try {
      result = fn();
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw err;
    }
    try {
      this.#db.exec('COMMIT');
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw fromSystemError(err, `${this.file}: cannot store the witness state`);
    }
    return result;
  }

  get(origin: string): LogRecord | undefined {
    const row = this.#db.prepare('SELECT size, root, checkpoint FROM logs WHERE origin = ?').get(origin) as { size: number; root: Uint8Array; checkpoint: string } | undefined;
    if (row === undefined) return undefined;
    if (!Number.isSafeInteger(row.size) || row.size < 0 || !(row.root instanceof Uint8Array) || row.root.length !== HASH_SIZE) {
      throw new SourcemeshError('E_VERIFY', `${this.file}: the stored state of ${origin} is damaged`, { origin });
    }
    return { size: row.size, root: Buffer.from(row.root), checkpoint: row.checkpoint };
  }

  put(origin: string, record: LogRecord): void {
    this.#db.prepare(`INSERT INTO logs (origin, size, root, checkpoint, updated) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT(origin) DO UPDATE SET size = excluded.size, root = excluded.root, checkpoint = excluded.checkpoint, updated = excluded.updated`)
      .run(origin, record.size, record.root, record.checkpoint, Date.now());
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}
