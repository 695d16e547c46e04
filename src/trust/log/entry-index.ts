// The log's index of its own entries, in its state database (storage.ts) beside the tree head:
//   entry     SHA-256 of each entry's bytes -> its index: a statement submitted again byte for byte is
//             answered with the index it has, not logged twice
//   rotation  every rotation statement logged (chain, sequence, index, note), from which the admission
//             policy walks each admitted project's chain to its current key set (rotation.ts's stepForward)
//   quota     per submitting key, when its allowances are whole again (quota.ts)
//   subject   each attestation's subject sha256 and name -> the entries attesting it (subjects.ts), so that
//             a client finds a file's attestations in O(matches) instead of reading the whole log
//   meta      'indexed': how many entries, from index 0, the index covers; 'subjects-indexed' and
//             'subjects-rows': the same for the subject table, and how many rows it holds (a table that is
//             missing, or whose count differs, is rebuilt from the entries when the log opens)
// Rows are written by the batch that logs the entries, inside the write transaction that moves the tree
// head (Sequencer, storage.withLock): after a crash the index covers exactly the stored tree. Lookups
// go through a second connection, which sees only committed rows (WAL), never a batch in progress.

import { hash } from 'node:crypto';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { openDatabase } from '../../fs/sqlite.ts';
import { parseNote } from '../note.ts';
import { type ChainPosition, parseRotationStatement, ROTATION_FORMAT, stepForward } from '../rotation.ts';
import { TILE_WIDTH } from '../tiles.ts';
import { startsWithAscii } from './entries/types.ts';
import type { LogStorage } from './storage.ts';
import { entrySubjectKeys } from './subjects.ts';

const SCHEMA = `CREATE TABLE IF NOT EXISTS entry (hash BLOB PRIMARY KEY, idx INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS rotation (chain TEXT NOT NULL, sequence INTEGER NOT NULL, idx INTEGER NOT NULL, note TEXT NOT NULL,
    PRIMARY KEY (chain, sequence, idx)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS quota (key TEXT PRIMARY KEY, entries_until REAL NOT NULL, bytes_until REAL NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS subject (key BLOB NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (key, idx)) WITHOUT ROWID;`;

const ROTATION_PREFIX = `${ROTATION_FORMAT}\n`;
/** Entries indexed per transaction when catching up with a log written before the index existed. */
const CATCH_UP_ENTRIES = 64 * TILE_WIDTH;

/** SHA-256 of an entry's bytes (one call: cheaper than a Hash object for a few hundred bytes). */
export function entryHash(entry: Uint8Array): Buffer {
  return hash('sha256', entry, 'buffer');
}

/** Quota charges of one batch for one key, in milliseconds of its allowances (quota.ts). */
export interface QuotaDelta {
  readonly entriesMs: number;
  readonly bytesMs: number;
}

export class EntryIndex {
  readonly #storage: LogStorage;
  readonly #db: DatabaseSync;
  readonly #reader: DatabaseSync;
  readonly #s: Record<string, StatementSync> = {};

  private constructor(storage: LogStorage, reader: DatabaseSync) {
    this.#storage = storage;
    this.#db = storage.database;
    this.#reader = reader;
  }

  /** Open the index of `storage`'s log, indexing entries logged before it existed. */
  static async open(storage: LogStorage): Promise<EntryIndex> {
    const hadSubjects = storage.database.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'subject'`).get() !== undefined;
    storage.database.exec(SCHEMA);
    const index = new EntryIndex(storage, openDatabase(storage.stateFile, '', "the log's entry index"));
    await index.#catchUp();
    await index.#checkSubjects(hadSubjects);
    return index;
  }

  #stmt(db: DatabaseSync, sql: string): StatementSync {
    const key = `${db === this.#reader ? 'r' : 'w'}:${sql}`;
    return (this.#s[key] ??= db.prepare(sql));
  }

  /** The index of a logged entry with this hash (committed batches only). */
  lookup(hash: Uint8Array): number | undefined {
    const row = this.#stmt(this.#reader, 'SELECT idx FROM entry WHERE hash = ?').get(hash) as { idx: number } | undefined;
    return row?.idx;
  }

  /** The same, through the writer connection: inside withLock, what this transaction sees. */
  lookupLocked(hash: Uint8Array): number | undefined {
    const row = this.#stmt(this.#db, 'SELECT idx FROM entry WHERE hash = ?').get(hash) as { idx: number } | undefined;
    return row?.idx;
  }

  /**
   * Record entries `base`, `base + 1`, ... (their bytes and hashes), and each key's quota charges at `now`.
   * Call inside withLock, after the tree head moved to `base + entries.length`.
   */
  record(entries: readonly Uint8Array[], hashes: readonly Uint8Array[], base: number, quota: ReadonlyMap<string, QuotaDelta>, now: number): void {
    const insert = this.#stmt(this.#db, 'INSERT OR IGNORE INTO entry (hash, idx) VALUES (?, ?)');
    for (let i = 0; i < entries.length; i++) {
      insert.run(hashes[i]!, base + i);
      if (startsWithAscii(entries[i]!, ROTATION_PREFIX)) this.#recordRotation(entries[i]!, base + i);
    }
    this.#setIndexed(base + entries.length);
    this.#recordSubjects(entries, base);
    if (quota.size === 0) return;
    const upsert = this.#stmt(this.#db, `INSERT INTO quota (key, entries_until, bytes_until) VALUES ($key, $now + $e, $now + $b)
      ON CONFLICT (key) DO UPDATE SET entries_until = max(entries_until, $now) + $e, bytes_until = max(bytes_until, $now) + $b`);
    for (const [key, d] of quota) upsert.run({ key, now, e: d.entriesMs, b: d.bytesMs });
  }

  /** Forget quota rows whose allowances are whole again at `now` (as good as no row). Inside withLock. */
  pruneQuota(now: number): void {
    this.#stmt(this.#db, 'DELETE FROM quota WHERE entries_until <= ? AND bytes_until <= ?').run(now, now);
  }

  /** When the key's allowances are whole again (0, 0 when it has no row). */
  quota(key: string): { entriesUntil: number; bytesUntil: number } {
    const row = this.#stmt(this.#reader, 'SELECT entries_until, bytes_until FROM quota WHERE key = ?').get(key) as { entries_until: number; bytes_until: number } | undefined;
    return { entriesUntil: row?.entries_until ?? 0, bytesUntil: row?.bytes_until ?? 0 };
  }

  /**
   * Walk the chain from `start` through the rotation statements in the log: at each step the first logged
   * statement (lowest index) that validly follows. `locked`: read through the writer connection (inside withLock).
   */
  walk(start: ChainPosition, locked = false): ChainPosition {
    const rows = this.#stmt(locked ? this.#db : this.#reader, 'SELECT sequence, note FROM rotation WHERE chain = ? AND sequence > ? ORDER BY sequence, idx')
      .all(start.chain, start.sequence) as { sequence: number; note: string }[];
    let at = start;
    for (const row of rows) {
      if (row.sequence <= at.sequence) continue;
      if (row.sequence > at.sequence + 1) break;
      try {
        at = stepForward(at, { statement: row.note });
      } catch {
        // Not signed by the chain's current keys, or not following: not a step of this chain.
      }
    }
    return at;
  }

  #recordRotation(entry: Uint8Array, index: number): void {
    let chain: string;
    let sequence: number;
    let note: string;
    try {
      const parsed = parseNote(entry);
      const s = parseRotationStatement(parsed.text);
      ({ chain, sequence } = s);
      note = Buffer.from(entry).toString('utf8');
    } catch {
      return; // logged unchecked (--admit-unsigned) and malformed: no step of any chain
    }
    this.#stmt(this.#db, 'INSERT OR IGNORE INTO rotation (chain, sequence, idx, note) VALUES (?, ?, ?, ?)').run(chain, sequence, index, note);
  }

  #indexed(): number {
    const row = this.#stmt(this.#db, `SELECT value FROM meta WHERE key = 'indexed'`).get() as { value: string } | undefined;
    return row === undefined ? 0 : Number(row.value);
  }

  #setIndexed(size: number): void {
    this.#stmt(this.#db, `INSERT INTO meta (key, value) VALUES ('indexed', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(String(size));
  }

  /** Index the entries a log written before the index existed holds, a transaction per CATCH_UP_ENTRIES. */
  async #catchUp(): Promise<void> {
    await this.#catchUpWith(() => this.#indexed(), (entries, from) => this.record(entries, entries.map(entryHash), from, new Map(), 0));
  }

  /**
   * Feed `record` the entries from `indexed()` to the log's size, under the log's lock, CATCH_UP_ENTRIES
   * at a time (whole bundles, the first one cut where `indexed()` says), so appends are never held long.
   */
  async #catchUpWith(indexed: () => number, record: (entries: Uint8Array[], from: number) => void): Promise<void> {
    for (;;) {
      const done = await this.#storage.withLock(async () => {
        const size = this.#storage.readHead().size;
        let from = indexed();
        if (from >= size) return true;
        const until = Math.min(size, from - (from % TILE_WIDTH) + CATCH_UP_ENTRIES);
        while (from < until) {
          const bundle = Math.floor(from / TILE_WIDTH);
          const width = Math.min(TILE_WIDTH, size - bundle * TILE_WIDTH);
          const entries = (await this.#storage.readEntryBundle(bundle, width)).slice(from % TILE_WIDTH);
          record(entries, from);
          from += entries.length;
        }
        return from >= size;
      });
      if (done) return;
    }
  }

  /**
   * Entries filed under the subject `key` (subjects.ts), in log order, after index `after`, at most `max`
   * (committed batches only). A hint: the caller re-reads each entry before answering with it.
   */
  subjects(key: Uint8Array, after: number, max: number): number[] {
    const rows = this.#stmt(this.#reader, 'SELECT idx FROM subject WHERE key = ? AND idx > ? ORDER BY idx LIMIT ?').all(key, after, max) as { idx: number }[];
    return rows.map((r) => r.idx);
  }

  /** Forget the subject table and file every entry again (a row was found not to hold). */
  async rebuildSubjects(): Promise<void> {
    await this.#storage.withLock(async () => this.#resetSubjects());
    await this.#catchUpSubjects();
  }

  #meta(key: string): number {
    const row = this.#stmt(this.#db, 'SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return row === undefined ? 0 : Number(row.value);
  }

  #setMeta(key: string, value: number): void {
    this.#stmt(this.#db, 'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, String(value));
  }

  #resetSubjects(): void {
    this.#db.exec('DELETE FROM subject');
    this.#setMeta('subjects-indexed', 0);
    this.#setMeta('subjects-rows', 0);
  }

  /** File entries `base`... under their subjects, when the table covers exactly the entries before them. */
  #recordSubjects(entries: readonly Uint8Array[], base: number): void {
    if (this.#meta('subjects-indexed') !== base) return; // behind: #catchUpSubjects files them in order
    const insert = this.#stmt(this.#db, 'INSERT OR IGNORE INTO subject (key, idx) VALUES (?, ?)');
    let rows = 0;
    for (let i = 0; i < entries.length; i++) {
      for (const key of entrySubjectKeys(entries[i]!)) rows += Number(insert.run(key, base + i).changes);
    }
    this.#setMeta('subjects-indexed', base + entries.length);
    if (rows) this.#setMeta('subjects-rows', this.#meta('subjects-rows') + rows);
  }

  /** A table created just now (missing before) or holding another number of rows than recorded is rebuilt. */
  async #checkSubjects(hadTable: boolean): Promise<void> {
    await this.#storage.withLock(async () => {
      const count = (this.#stmt(this.#db, 'SELECT count(*) AS n FROM subject').get() as { n: number }).n;
      if (!hadTable || count !== this.#meta('subjects-rows') || this.#meta('subjects-indexed') > this.#storage.readHead().size) this.#resetSubjects();
    });
    await this.#catchUpSubjects();
  }

  async #catchUpSubjects(): Promise<void> {
    await this.#catchUpWith(() => this.#meta('subjects-indexed'), (entries, from) => this.#recordSubjects(entries, from));
  }

  close(): void {
    if (this.#reader.isOpen) this.#reader.close();
  }
}
