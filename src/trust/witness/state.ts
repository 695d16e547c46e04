// The witness's durable state: one row per log (origin, size, root, cosigned checkpoint) in
// STATE/witness.sqlite (fs/sqlite.ts: crash-safe; the check and the store are one write transaction,
// even across processes).

import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { SourcemeshError } from '../../errors.ts';
import { openDatabase, writeTransaction } from '../../fs/sqlite.ts';
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
    // busy_timeout blocks this process only while another witness process on the same state holds
    // the lock for one request (milliseconds); one process per state is the normal case.
    const db = openDatabase(file, `CREATE TABLE IF NOT EXISTS logs (origin TEXT PRIMARY KEY, size INTEGER NOT NULL,
      root BLOB NOT NULL, checkpoint TEXT NOT NULL, updated INTEGER NOT NULL)`, 'the witness state');
    return new SqliteWitnessStore(file, db);
  }

  atomically<T>(fn: () => T): T {
    return writeTransaction(this.#db, fn, `${this.file}: cannot store the witness state`);
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
