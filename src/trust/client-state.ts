// What a client remembers between runs so that a log can't show it an older or forked view later: the
// newest checkpoint it accepted per log origin, and the newest release key set it reached per rotation
// chain, in the node's state directory (STATE/trust.sqlite; fs/sqlite.ts: crash-safe).
// `update` is a compare-and-swap in one write transaction: it stores only if the rows are still what the
// verification started from, so two clients verifying at once can't move the state backwards.

import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { fromSystemError, SourcemeshError } from '../errors.ts';
import { openDatabase, writeTransaction } from '../fs/sqlite.ts';
import { HASH_SIZE, hashesEqual } from './merkle.ts';
import type { StoredCheckpoint, StoredKeySet } from './policy.ts';

export class TrustState {
  readonly file: string;
  readonly #db: DatabaseSync;

  private constructor(file: string, db: DatabaseSync) {
    this.file = file;
    this.#db = db;
  }

  static open(dir: string): TrustState {
    const file = path.join(path.resolve(dir), 'trust.sqlite');
    const db = openDatabase(file, `CREATE TABLE IF NOT EXISTS checkpoints (origin TEXT PRIMARY KEY, size INTEGER NOT NULL,
        root BLOB NOT NULL, note TEXT NOT NULL, updated INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS keysets (chain TEXT PRIMARY KEY, sequence INTEGER NOT NULL, hash TEXT NOT NULL,
        updated INTEGER NOT NULL)`, 'the trust state', 10_000);
    return new TrustState(file, db);
  }

  checkpoint(origin: string): StoredCheckpoint | undefined {
    const row = this.#db.prepare('SELECT size, root, note FROM checkpoints WHERE origin = ?').get(origin) as { size: number; root: Uint8Array; note: string } | undefined;
    if (row === undefined) return undefined;
    if (!Number.isSafeInteger(row.size) || row.size < 0 || !(row.root instanceof Uint8Array) || row.root.length !== HASH_SIZE) {
      throw new SourcemeshError('E_IO', `${this.file}: the stored checkpoint of ${origin} is damaged`, { origin });
    }
    return { size: row.size, root: Buffer.from(row.root), note: row.note };
  }

  keySet(chain: string): StoredKeySet | undefined {
    const row = this.#db.prepare('SELECT sequence, hash FROM keysets WHERE chain = ?').get(chain) as { sequence: number; hash: string } | undefined;
    return row === undefined ? undefined : { chain, sequence: row.sequence, hash: row.hash };
  }

  /**
   * Store `checkpoint` and `keySet` if the rows still hold `expected` (what the verification read).
   * Returns false, storing nothing, if another process changed them meanwhile: verify again.
   */
  update(origin: string, expected: { checkpoint?: StoredCheckpoint; keySet?: StoredKeySet }, checkpoint: StoredCheckpoint, keySet: StoredKeySet): boolean {
    const what = `${this.file}: cannot store the trust state`;
    try {
      return writeTransaction(this.#db, () => {
        const cp = this.checkpoint(origin);
        const ks = this.keySet(keySet.chain);
        const same = (cp === undefined) === (expected.checkpoint === undefined) && (cp === undefined || (cp.size === expected.checkpoint!.size && hashesEqual(cp.root, expected.checkpoint!.root)))
          && (ks === undefined) === (expected.keySet === undefined) && (ks === undefined || (ks.sequence === expected.keySet!.sequence && ks.hash === expected.keySet!.hash));
        if (!same) return false;
        const now = Date.now();
        this.#db.prepare(`INSERT INTO checkpoints (origin, size, root, note, updated) VALUES (?, ?, ?, ?, ?)
          ON CONFLICT(origin) DO UPDATE SET size = excluded.size, root = excluded.root, note = excluded.note, updated = excluded.updated`)
          .run(origin, checkpoint.size, checkpoint.root, checkpoint.note, now);
        this.#db.prepare(`INSERT INTO keysets (chain, sequence, hash, updated) VALUES (?, ?, ?, ?)
          ON CONFLICT(chain) DO UPDATE SET sequence = excluded.sequence, hash = excluded.hash, updated = excluded.updated`)
          .run(keySet.chain, keySet.sequence, keySet.hash, now);
        return true;
      }, what);
    } catch (err) {
      throw fromSystemError(err, what);
    }
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }
}
