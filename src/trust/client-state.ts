// What a client remembers between runs so that a log can't show it an older or forked view later: the
// newest checkpoint it accepted per log (origin and log key), and the newest release key set it reached per
// rotation chain, in the node's state directory (STATE/trust.sqlite; fs/sqlite.ts: crash-safe).
// `update` is a compare-and-swap in one write transaction: it stores only if the rows are still what the
// verification started from, so two clients verifying at once can't move the state backwards.
//
// Why the key as well as the origin (docs/FORMATS.md, "Client state"): a log re-created with a new key and
// the same origin starts a new tree; compared with the old key's checkpoint it would look like a fork. The
// policy names one log key, so the history that matters is that key's; another key's rows are kept (a
// policy that goes back to that key finds its history again) but never compared.
//
// Schema 2 (PRAGMA user_version) keys checkpoints by (origin, key vkey). Schema 1 keyed them by origin alone;
// opening such a database migrates it in place, in one transaction: its rows keep key '' (unknown), and
// such a row counts for a log key only if its stored note carries that key's valid signature.

import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { fromSystemError, SourcemeshError } from '../errors.ts';
import { openDatabase, writeTransaction } from '../fs/sqlite.ts';
import { openCheckpoint } from './checkpoint.ts';
import { HASH_SIZE, hashesEqual } from './merkle.ts';
import { createVerifier, formatVerifierKey, type VerifierKey } from './note.ts';
import type { StoredCheckpoint, StoredKeySet } from './policy.ts';

const SCHEMA_VERSION = 2;
/** The key column of rows stored before keys were recorded (schema 1). */
const UNKNOWN_KEY = '';

const CHECKPOINTS = `CREATE TABLE IF NOT EXISTS checkpoints (origin TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL,
  root BLOB NOT NULL, note TEXT NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY (origin, key))`;
const KEYSETS = `CREATE TABLE IF NOT EXISTS keysets (chain TEXT PRIMARY KEY, sequence INTEGER NOT NULL, hash TEXT NOT NULL,
  updated INTEGER NOT NULL)`;

interface Row {
  key: string;
  size: number;
  root: Uint8Array;
  note: string;
}

export class TrustState {
  readonly file: string;
  readonly #db: DatabaseSync;

  private constructor(file: string, db: DatabaseSync) {
    this.file = file;
    this.#db = db;
  }

  static open(dir: string): TrustState {
    const file = path.join(path.resolve(dir), 'trust.sqlite');
    const db = openDatabase(file, `${CHECKPOINTS}; ${KEYSETS}`, 'the trust state', 10_000);
    try {
      migrate(db, file);
    } catch (err) {
      db.close();
      throw fromSystemError(err, `${file}: cannot migrate the trust state`);
    }
    return new TrustState(file, db);
  }

  /**
   * The newest checkpoint stored for the log `origin` signed by `key`: its own row, else a row from schema 1
   * whose note `key` signed. A checkpoint of another key of this origin is not returned (see above).
   */
  checkpoint(origin: string, key: VerifierKey): StoredCheckpoint | undefined {
    const vkey = formatVerifierKey(key);
    const rows = this.#db.prepare('SELECT key, size, root, note FROM checkpoints WHERE origin = ? AND key IN (?, ?) ORDER BY key DESC')
      .all(origin, vkey, UNKNOWN_KEY) as unknown as Row[];
    for (const row of rows) {
      if (!Number.isSafeInteger(row.size) || row.size < 0 || !(row.root instanceof Uint8Array) || row.root.length !== HASH_SIZE || typeof row.note !== 'string') {
        throw new SourcemeshError('E_IO', `${this.file}: the stored checkpoint of ${origin} is damaged`, { origin });
      }
      if (row.key === UNKNOWN_KEY && !signedBy(row.note, origin, key)) continue;
      return { size: row.size, root: Buffer.from(row.root), note: row.note, key: vkey };
    }
    return undefined;
  }

  /** The vkeys (or '' for a schema 1 row) under which checkpoints of `origin` are stored. */
  keysOf(origin: string): string[] {
    return (this.#db.prepare('SELECT key FROM checkpoints WHERE origin = ? ORDER BY key').all(origin) as { key: string }[]).map((r) => r.key);
  }

  keySet(chain: string): StoredKeySet | undefined {
    const row = this.#db.prepare('SELECT sequence, hash FROM keysets WHERE chain = ?').get(chain) as { sequence: number; hash: string } | undefined;
    return row === undefined ? undefined : { chain, sequence: row.sequence, hash: row.hash };
  }

  /**
   * Store `checkpoint` (for `origin` and `key`) and `keySet` if the rows still hold `expected` (what the
   * verification read). Returns false, storing nothing, if another process changed them meanwhile: verify
   * again. A schema 1 row this key signed is replaced by the keyed row. Without `keySet` (attestations read
   * from the log, attest/log-source.ts) only the checkpoint is compared and stored.
   */
  update(origin: string, key: VerifierKey, expected: { checkpoint?: StoredCheckpoint; keySet?: StoredKeySet }, checkpoint: StoredCheckpoint, keySet?: StoredKeySet): boolean {
    const what = `${this.file}: cannot store the trust state`;
    const vkey = formatVerifierKey(key);
    try {
      return writeTransaction(this.#db, () => {
        const cp = this.checkpoint(origin, key);
        const ks = keySet === undefined ? undefined : this.keySet(keySet.chain);
        const same = (cp === undefined) === (expected.checkpoint === undefined) && (cp === undefined || (cp.size === expected.checkpoint!.size && hashesEqual(cp.root, expected.checkpoint!.root)))
          && (keySet === undefined || ((ks === undefined) === (expected.keySet === undefined) && (ks === undefined || (ks.sequence === expected.keySet!.sequence && ks.hash === expected.keySet!.hash))));
        if (!same) return false;
        const now = Date.now();
        this.#db.prepare(`INSERT INTO checkpoints (origin, key, size, root, note, updated) VALUES (?, ?, ?, ?, ?, ?)
          ON CONFLICT(origin, key) DO UPDATE SET size = excluded.size, root = excluded.root, note = excluded.note, updated = excluded.updated`)
          .run(origin, vkey, checkpoint.size, checkpoint.root, checkpoint.note, now);
        const legacy = this.#db.prepare('SELECT note FROM checkpoints WHERE origin = ? AND key = ?').get(origin, UNKNOWN_KEY) as { note: string } | undefined;
        if (legacy !== undefined && signedBy(legacy.note, origin, key)) this.#db.prepare('DELETE FROM checkpoints WHERE origin = ? AND key = ?').run(origin, UNKNOWN_KEY);
        if (keySet !== undefined) this.#db.prepare(`INSERT INTO keysets (chain, sequence, hash, updated) VALUES (?, ?, ?, ?)
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

/** Whether `note` is a checkpoint of `origin` with a valid signature by `key`. */
function signedBy(note: string, origin: string, key: VerifierKey): boolean {
  if (key.name !== origin) return false;
  try {
    return openCheckpoint(note, [createVerifier(key)]).checkpoint.origin === origin;
  } catch {
    return false; // not signed by this key (or not a checkpoint at all): not this key's history
  }
}

/**
 * Bring a database to SCHEMA_VERSION in one write transaction (a crash leaves the old schema or the new,
 * and a second process opening it meanwhile waits, then finds it done).
 */
function migrate(db: DatabaseSync, file: string): void {
  const version = () => (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
  if (version() === SCHEMA_VERSION) return;
  writeTransaction(db, () => {
    const v = version();
    if (v === SCHEMA_VERSION) return;
    if (v > SCHEMA_VERSION) throw new SourcemeshError('E_UNSUPPORTED', `${file}: trust state schema ${v} is newer than this sourcemesh knows (${SCHEMA_VERSION})`);
    const columns = (db.prepare('PRAGMA table_info(checkpoints)').all() as { name: string }[]).map((c) => c.name);
    if (!columns.includes('key')) {
      // Schema 1: checkpoints keyed by origin alone. Its rows move over with the unknown key.
      db.exec(`ALTER TABLE checkpoints RENAME TO checkpoints_v1; ${CHECKPOINTS};
        INSERT INTO checkpoints (origin, key, size, root, note, updated) SELECT origin, '${UNKNOWN_KEY}', size, root, note, updated FROM checkpoints_v1;
        DROP TABLE checkpoints_v1`);
    }
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
  }, `${file}: cannot migrate the trust state`);
}
