// A log's directory: the tlog-tiles files any static web server can serve, and the tree head that says
// which of them are committed.
//
//   DIR/checkpoint                    the published checkpoint (signed by the log, cosigned by witnesses)
//   DIR/tile/<L>/<N>[.p/<W>]          Merkle tree tiles
//   DIR/tile/entries/<N>[.p/<W>]      entry bundles
//   DIR/.sourcemesh-log/state.sqlite  the tree head (size, root) and the log's verifier key
//   DIR/.sourcemesh-log/tmp/          files being written (.NAME.PID-NONCE.tmp), renamed into place once synced
//
// Crash safety: data files are written under a temporary name, fsynced, renamed into place and their
// directories fsynced (fs/durable-file.ts writeFilesDurable, one fsync per directory per batch) *before*
// the tree head moves, so a stored head always has its files. Files beyond
// the head (a batch cut short by a crash) are never referenced by a head or a checkpoint and are
// overwritten when the tree reaches them. The tree head moves by compare-and-swap inside an SQLite write
// transaction: the transaction is the lock (SQLite holds it with POSIX advisory locks, which the kernel
// drops when a process dies, so kill -9 leaves no stale lock), and the UPDATE only applies when the stored
// head is still the one this process built on. Two `log serve` processes on one DIR therefore take turns,
// each reloading the tree when the other moved it, and the heads form one chain: never two roots for one size.

import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { fromSystemError, SourcemeshError } from '../../errors.ts';
import { LIMITS, type Limits } from '../../limits.ts';
import { commit, openDatabase, rollback } from '../../fs/sqlite.ts';
import { sweepTemps, writeFilesDurable } from '../../fs/durable-file.ts';
import { isLiveOwner } from '../../fs/files.ts';
import { CompactRange, EMPTY_TREE_HASH, type Hash, HASH_SIZE, hashesEqual } from '../merkle.ts';
import { entryBundlePath, parseEntryBundle, parseTile, TILE_WIDTH, TileHashReader, tilePath, type Tile, type TileFetcher } from '../tiles.ts';
import { checkEdge, hashesAtTileLevel, type TreeEdge, type TreeFile } from './tree.ts';

export interface TreeHead {
  readonly size: number;
  readonly root: Hash;
}

export const STATE_DIR = '.sourcemesh-log';
const SQLITE_BUSY = 5;

export class LogStorage {
  readonly root: string;
  readonly #db: DatabaseSync;
  readonly #staging: string;
  readonly #limits: Limits;
  /** Directories known to exist (and to be durable): no mkdir for them on every batch. */
  readonly #dirs = new Set<string>();
  readonly #statements: { select?: StatementSync; update?: StatementSync } = {};
  /** In-process turn for the SQLite write transaction (one connection, one transaction at a time). */
  #queue: Promise<void> = Promise.resolve();

  private constructor(root: string, db: DatabaseSync, limits: Limits) {
    this.root = root;
    this.#db = db;
    this.#staging = path.join(root, STATE_DIR, 'tmp');
    this.#limits = limits;
  }

  /**
   * Open (creating if needed) the log at `root`, bound to the log key `vkey`: a directory written under
   * one key is refused under another, so one origin never has two keys signing its sizes.
   */
  static async open(root: string, vkey: string, limits: Limits = LIMITS): Promise<LogStorage> {
    const dir = path.resolve(root);
    const state = path.join(dir, STATE_DIR);
    try {
      await mkdir(path.join(state, 'tmp'), { recursive: true });
    } catch (err) {
      throw fromSystemError(err, `${dir}: cannot create the log directory`);
    }
    const db = openDatabase(path.join(state, 'state.sqlite'), `CREATE TABLE IF NOT EXISTS head (id INTEGER PRIMARY KEY CHECK (id = 1),
        size INTEGER NOT NULL, root BLOB NOT NULL);
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);`, "the log's tree head");
    const storage = new LogStorage(dir, db, limits);
    await storage.withLock(async () => {
      const bound = db.prepare(`SELECT value FROM meta WHERE key = 'vkey'`).get() as { value: string } | undefined;
      if (bound !== undefined && bound.value !== vkey) {
        throw new SourcemeshError('E_INPUT', `${dir} is the log of key ${bound.value}, not ${vkey}`, { root: dir });
      }
      const head = storage.#selectHead();
      if (head === undefined) {
        // A directory with tiles or a checkpoint but no tree head lost its state: refuse rather than
        // start a second tree over the first.
        const existing = (await readdir(dir)).filter((name) => name !== STATE_DIR);
        if (existing.includes('tile') || existing.includes('checkpoint')) {
          throw new SourcemeshError('E_VERIFY', `${dir} holds tiles or a checkpoint but no tree head (${STATE_DIR}/state.sqlite); refusing to start a new tree over them`, { root: dir });
        }
        db.prepare('INSERT INTO head (id, size, root) VALUES (1, 0, ?)').run(EMPTY_TREE_HASH);
      }
      if (bound === undefined) db.prepare(`INSERT INTO meta (key, value) VALUES ('vkey', ?)`).run(vkey);
    });
    await storage.#cleanStaging();
    return storage;
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }

  /** The state database's connection: what must change in the same transaction as the tree head (entry-index.ts) goes through it, inside withLock. */
  get database(): DatabaseSync {
    return this.#db;
  }

  /** The state database's file (entry-index.ts reads committed rows through a connection of its own). */
  get stateFile(): string {
    return path.join(this.root, STATE_DIR, 'state.sqlite');
  }

  // -------------------------------------------------------------------------------------------------
  // The tree head

  #selectHead(): TreeHead | undefined {
    const row = (this.#statements.select ??= this.#db.prepare('SELECT size, root FROM head WHERE id = 1')).get() as { size: number; root: Uint8Array } | undefined;
    if (row === undefined) return undefined;
    if (!Number.isSafeInteger(row.size) || row.size < 0 || !(row.root instanceof Uint8Array) || row.root.length !== HASH_SIZE) {
      throw new SourcemeshError('E_VERIFY', `${this.root}: the stored tree head is damaged`, { root: this.root });
    }
    return { size: row.size, root: Buffer.from(row.root) };
  }

  /** The committed tree head (what another process may have moved since this one last looked). */
  readHead(): TreeHead {
    return this.#selectHead() ?? { size: 0, root: Buffer.from(EMPTY_TREE_HASH) };
  }

  /**
   * Move the tree head from `from` to `to`, only if it is still `from`. Call inside withLock, after the
   * files of `to` are durable. Throws E_LOCKED if another writer moved it (withLock makes that impossible;
   * this is the check that would catch a broken lock).
   */
  swapHead(from: TreeHead, to: TreeHead): void {
    if (to.size < from.size) throw new SourcemeshError('E_INTERNAL', `a tree head never shrinks (${from.size} to ${to.size})`);
    const update = (this.#statements.update ??= this.#db.prepare('UPDATE head SET size = ?, root = ? WHERE id = 1 AND size = ? AND root = ?'));
    const result = update.run(to.size, to.root, from.size, from.root);
    if (result.changes !== 1) {
      throw new SourcemeshError('E_LOCKED', `${this.root}: the tree head moved under this process (another log process on the same directory?)`, { root: this.root });
    }
  }

  /**
   * Run `fn` holding the log's write lock: an SQLite write transaction (BEGIN IMMEDIATE), committed when
   * `fn` resolves and rolled back when it throws. Waits, without blocking the event loop, while another
   * process holds it; E_LOCKED after logLockWaitMs.
   */
  async withLock<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.#queue;
    let release!: () => void;
    this.#queue = new Promise<void>((resolve) => (release = resolve));
    await previous;
    try {
      await this.#begin();
      let result: T;
      try {
        result = await fn();
      } catch (err) {
        rollback(this.#db);
        throw err;
      }
      commit(this.#db, `${this.root}: cannot store the tree head`);
      return result;
    } finally {
      release();
    }
  }

  async #begin(): Promise<void> {
    const deadline = Date.now() + this.#limits.logLockWaitMs;
    for (let delay = 1; ; delay = Math.min(delay * 2, 5)) {
      this.#db.exec('PRAGMA busy_timeout = 0');
      try {
        this.#db.exec('BEGIN IMMEDIATE');
        return;
      } catch (err) {
        if ((err as { errcode?: number }).errcode !== SQLITE_BUSY) throw fromSystemError(err, `${this.root}: cannot lock the tree head`);
      } finally {
        this.#db.exec('PRAGMA busy_timeout = 5000');
      }
      if (Date.now() > deadline) {
        throw new SourcemeshError('E_LOCKED', `${this.root}: another process held the log's lock for over ${this.#limits.logLockWaitMs} ms`, { root: this.root });
      }
      await sleep(delay);
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Files

  /** Write files durably as one batch (fs/durable-file.ts writeFilesDurable), temporaries in the staging directory. */
  async writeFiles(files: readonly { path: string; data: Uint8Array }[]): Promise<void> {
    const synced = await writeFilesDurable(files.map((f) => ({ path: this.#resolve(f.path), data: f.data })), { tempDir: this.#staging, knownDirs: this.#dirs });
    for (const dir of synced) if (this.#dirs.size < 10_000) this.#dirs.add(dir);
  }

  /** Delete the partial versions (`<path>.p/`) of tiles and bundles that are full now (C2SP tlog-tiles: MAY). */
  async removePartials(fullPaths: readonly string[]): Promise<void> {
    await Promise.all(fullPaths.map((p) => {
      const dir = `${this.#resolve(p)}.p`;
      this.#dirs.delete(dir);
      return rm(dir, { recursive: true, force: true }).catch(() => {});
    }));
  }

  #resolve(relative: string): string {
    const target = path.join(this.root, relative);
    if (!target.startsWith(this.root + path.sep)) throw new SourcemeshError('E_INTERNAL', `${relative} is outside the log directory`);
    return target;
  }

  /**
   * Read a tile or entry bundle of `width` (`relative` is its path, `fullRelative` the full one's). A partial
   * one that was deleted is the prefix of the full one (C2SP tlog-tiles); undefined if neither exists.
   */
  async readTileFile(kind: 'tile' | 'entries', relative: string, width: number, fullRelative: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.#resolve(relative));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(err, `${relative}: cannot read`);
    }
    if (width === TILE_WIDTH) return undefined;
    let full: Buffer;
    try {
      full = await readFile(this.#resolve(fullRelative));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw fromSystemError(err, `${fullRelative}: cannot read`);
    }
    if (kind === 'tile') return full.subarray(0, width * HASH_SIZE);
    // An entry bundle's prefix of `width` entries: walk the length prefixes.
    let at = 0;
    for (let i = 0; i < width && at + 2 <= full.length; i++) at += 2 + full.readUInt16BE(at);
    return full.subarray(0, at);
  }

  readonly fetchTile: TileFetcher = async (tile: Tile) => {
    const data = await this.readTileFile('tile', tilePath(tile), tile.width, tilePath({ ...tile, width: TILE_WIDTH }));
    if (data === undefined) throw new SourcemeshError('E_VERIFY', `${this.root}: tile ${tilePath(tile)} is missing`, { tile: tilePath(tile) });
    return data;
  };

  async readEntryBundle(index: number, width: number): Promise<Uint8Array[]> {
    const p = entryBundlePath({ index, width });
    const data = await this.readTileFile('entries', p, width, entryBundlePath({ index, width: TILE_WIDTH }));
    if (data === undefined) throw new SourcemeshError('E_VERIFY', `${this.root}: entry bundle ${p} is missing`, { bundle: p });
    return parseEntryBundle(data, width, this.#limits);
  }

  /** Rebuild the in-memory right edge of the stored tree `head` from its tiles, checking it hashes to the head. */
  async loadEdge(head: TreeHead): Promise<TreeEdge> {
    const reader = new TileHashReader(head.size, this.fetchTile);
    const range = await CompactRange.fromStoredHashes(head.size, reader);
    const tiles: Hash[][] = [];
    for (let level = 0; hashesAtTileLevel(head.size, level) > 0; level++) {
      const count = hashesAtTileLevel(head.size, level);
      const width = count % TILE_WIDTH;
      tiles.push(width === 0 ? [] : parseTile(await this.fetchTile({ level, index: Math.floor(count / TILE_WIDTH), width }), width).map((h) => Buffer.from(h)));
    }
    const width = head.size % TILE_WIDTH;
    const bundle = width === 0 ? [] : (await this.readEntryBundle(Math.floor(head.size / TILE_WIDTH), width)).map((e) => Buffer.from(e));
    const edge: TreeEdge = { size: head.size, range, tiles, bundle };
    checkEdge(edge, head.root);
    return edge;
  }

  // -------------------------------------------------------------------------------------------------
  // The published checkpoint

  async readCheckpoint(): Promise<Buffer | undefined> {
    try {
      return await readFile(path.join(this.root, 'checkpoint'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw fromSystemError(err, `${this.root}/checkpoint: cannot read`);
    }
  }

  /** Replace DIR/checkpoint durably. Call inside withLock, after deciding the new one supersedes the old. */
  async writeCheckpoint(note: string): Promise<void> {
    await this.writeFiles([{ path: 'checkpoint', data: Buffer.from(note, 'utf8') }]);
  }

  /** Files a crashed process left in the staging directory (never ones of a live process). */
  async #cleanStaging(): Promise<void> {
    await sweepTemps(this.#staging);
    // PID-COUNTER: the names of versions before fs/durable-file.ts wrote the log's files.
    for (const name of await readdir(this.#staging).catch(() => [] as string[])) {
      const m = /^(\d+)-\d+$/.exec(name);
      if (m && !isLiveOwner(path.join(this.#staging, name), Number(m[1]))) await rm(path.join(this.#staging, name), { force: true });
    }
  }
}

export function sameHead(a: TreeHead, b: TreeHead): boolean {
  return a.size === b.size && hashesEqual(a.root, b.root);
}

export type { TreeFile };
