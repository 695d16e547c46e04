// What `serve` may serve: an index of name -> file (path, size, sha256, validators), built by listing a
// mirror root or a store, never from a request. The server looks requests up here and opens only paths
// this index holds, so no request path ever becomes a file system path.
//
// A mirror root (`serve --root`) contributes its regular files ROOT/NAME (symlinks only when they
// resolve inside the root and outside its hidden directories), and its piece layers ROOT/sha256/HEX.pieces.
// Dotfiles, directories and ROOT/.sourcemesh/ (private state) are never indexed. A store
// (`serve --local`) contributes STORE/objects/sha256/ab/HEX by their hash and STORE/names/NAME symlinks
// whose target resolves inside STORE/objects/.
//
// MirrorContent keeps the index and the signed inventory in step: rebuilt when the inventory file
// changes (mirror sync wrote a new one), on SIGHUP, or when a served file was found changed.
import { createHash } from 'node:crypto';
import { watch, type Dirent, type FSWatcher, type Stats } from 'node:fs';
import { lstat, readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import type { Limits } from '../limits.ts';
import { nameProblem, SHA256_HEX } from '../manifest/distfile.ts';
import { sha256File } from '../store/digest.ts';
import { formatVerifierKey, type SignerKey } from '../trust/note.ts';
import { buildInventory, generatedSeconds, INVENTORY_PATH, parseInventory, writeInventory, type InventoryFile } from './inventory.ts';
import { formatHttpDate } from './ranges.ts';

export interface IndexedFile {
  /** The name it is served under (for a store object with no name, its hex digest). */
  readonly name: string;
  /** The real path opened to serve it. */
  readonly path: string;
  readonly size: number;
  readonly sha256: string;
  readonly dev: number;
  readonly ino: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  /** Strong entity tag: the sha256 in quotes, the same on every mirror. */
  readonly etag: string;
  /** Last-Modified in whole seconds, and as an HTTP-date. */
  readonly lastModified: number;
  readonly lastModifiedHttp: string;
  /** RFC 9530 Repr-Digest of the whole file. */
  readonly reprDigest: string;
}

export interface FileIndex {
  readonly byName: ReadonlyMap<string, IndexedFile>;
  readonly bySha256: ReadonlyMap<string, IndexedFile>;
  /** BEP 52 piece layers, by the sha256 of the file they describe. */
  readonly pieces: ReadonlyMap<string, IndexedFile>;
  /** What was left out and why (symlinks that escape, unreadable files, bad names). */
  readonly skipped: readonly { name: string; why: string }[];
  /** Bytes hashed to build this index (0 when every hash was known). */
  readonly hashedBytes: number;
}

export interface HashHints {
  /** The index this one replaces: a file with the same path, inode, size, mtime and ctime keeps its hash. */
  previous?: FileIndex;
  /** A verified inventory: its hash is trusted for a file of the listed size whose mtime and ctime are before `generated`. */
  inventory?: { generated: number; files: ReadonlyMap<string, { size: number; sha256: string }> };
  /** Files never to serve whatever their name (the node key, hard-linked by mistake). */
  exclude?: readonly { dev: number; ino: number }[];
}

export function indexedFile(name: string, file: string, st: Stats, sha256: string): IndexedFile {
  const lastModified = Math.floor(st.mtimeMs / 1000);
  return {
    name, path: file, size: st.size, sha256, dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs,
    etag: `"${sha256}"`, lastModified, lastModifiedHttp: formatHttpDate(lastModified),
    reprDigest: `sha-256=:${Buffer.from(sha256, 'hex').toString('base64')}:`,
  };
}

const sameFile = (a: { dev: number; ino: number; size: number; mtimeMs: number; ctimeMs: number }, b: Stats) =>
  a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A directory entry's name if it is one we could ever serve: valid UTF-8, a plain name, not hidden. */
function servableName(raw: Buffer): string | undefined {
  let name: string;
  try {
    name = utf8.decode(raw);
  } catch {
    return undefined;
  }
  if (name.startsWith('.') || nameProblem(name) !== undefined) return undefined;
  return name;
}

/** Is `inner` strictly inside `outer` (both real paths), through no hidden directory or file? */
function insideVisible(outer: string, inner: string): boolean {
  const rel = path.relative(outer, inner);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return false;
  return rel.split(path.sep).every((seg) => seg !== '' && !seg.startsWith('.'));
}

class Hasher {
  hashedBytes = 0;
  private readonly previous = new Map<string, IndexedFile>();
  private readonly hints: HashHints;

  constructor(hints: HashHints) {
    this.hints = hints;
    const prev = hints.previous;
    if (prev) for (const f of [...prev.byName.values(), ...prev.bySha256.values(), ...prev.pieces.values()]) this.previous.set(f.path, f);
  }

  excluded(st: Stats): boolean {
    return (this.hints.exclude ?? []).some((x) => x.dev === st.dev && x.ino === st.ino);
  }

  /**
   * The sha256 of `file` as `st` describes it: known from the previous index or the inventory, else
   * hashed. A file that changes while it is hashed is hashed again (at most three times).
   */
  async sha256(name: string, file: string, st: Stats): Promise<{ sha256: string; st: Stats }> {
    const prev = this.previous.get(file);
    if (prev && sameFile(prev, st)) return { sha256: prev.sha256, st };
    const inv = this.hints.inventory;
    const listed = inv?.files.get(name);
    if (inv && listed && listed.size === st.size && st.mtimeMs < inv.generated * 1000 && st.ctimeMs < inv.generated * 1000) return { sha256: listed.sha256, st };
    for (let attempt = 0; attempt < 3; attempt++) {
      const sha256 = await sha256File(file);
      this.hashedBytes += st.size;
      const after = await stat(file);
      if (sameFile(st, after)) return { sha256, st };
      st = after;
    }
    throw new SourcemeshError('E_IO', `${file}: keeps changing while it is hashed`);
  }
}

/** Index a mirror root: ROOT/NAME and ROOT/sha256/HEX.pieces. */
export async function indexRoot(root: string, hints: HashHints = {}): Promise<FileIndex> {
  const rootReal = await realpath(root).catch((err) => {
    throw fromSystemError(err, `mirror root ${root}`);
  });
  const byName = new Map<string, IndexedFile>();
  const bySha256 = new Map<string, IndexedFile>();
  const pieces = new Map<string, IndexedFile>();
  const skipped: { name: string; why: string }[] = [];
  const hasher = new Hasher(hints);
  let entries: Dirent<Buffer>[];
  try {
    entries = await readdir(rootReal, { withFileTypes: true, encoding: 'buffer' });
  } catch (err) {
    throw fromSystemError(err, `mirror root ${root}`);
  }
  for (const entry of entries) {
    const name = servableName(entry.name);
    if (name === undefined) {
      const shown = entry.name.toString('utf8');
      if (!shown.startsWith('.')) skipped.push({ name: shown, why: 'not a plain UTF-8 file name' });
      continue;
    }
    const full = path.join(rootReal, name);
    try {
      let file = full;
      let st = await lstat(full);
      if (st.isSymbolicLink()) {
        // Serve a symlink only when what it names is a regular file inside the root and not hidden.
        const real = await realpath(full).catch(() => undefined);
        if (real === undefined) {
          skipped.push({ name, why: 'a dangling symlink' });
          continue;
        }
        if (!insideVisible(rootReal, real)) {
          skipped.push({ name, why: 'a symlink that leads outside the root or into a hidden path' });
          continue;
        }
        file = real;
        st = await stat(real);
      }
      if (!st.isFile()) continue; // directories, sockets, devices: never served, never listed
      if (hasher.excluded(st)) {
        skipped.push({ name, why: 'the node key' });
        continue;
      }
      const { sha256, st: now } = await hasher.sha256(name, file, st);
      const f = indexedFile(name, file, now, sha256);
      byName.set(name, f);
      if (!bySha256.has(sha256)) bySha256.set(sha256, f);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed while we listed
      skipped.push({ name, why: fromSystemError(err, name).message });
    }
  }
  // Piece layers that sync writes beside the files: regular files only, for files we serve.
  const pieceDir = path.join(rootReal, 'sha256');
  const layerNames = await readdir(pieceDir).catch(() => [] as string[]);
  for (const layer of layerNames) {
    const m = /^([0-9a-f]{64})\.pieces$/.exec(layer);
    if (!m || !bySha256.has(m[1]!)) continue;
    const file = path.join(pieceDir, layer);
    const st = await lstat(file).catch(() => undefined);
    if (!st?.isFile() || hasher.excluded(st)) continue;
    try {
      const { sha256, st: now } = await hasher.sha256(`sha256/${layer}`, file, st);
      pieces.set(m[1]!, indexedFile(`sha256/${layer}`, file, now, sha256));
    } catch (err) {
      skipped.push({ name: `sha256/${layer}`, why: fromSystemError(err, layer).message });
    }
  }
  return { byName, bySha256, pieces, skipped, hashedBytes: hasher.hashedBytes };
}

/**
 * Index a store for `serve --local`: every object by its sha256 (the store gives an object its name
 * only after verifying it, so the name is its hash), and names/NAME symlinks that resolve to one.
 */
export async function indexStore(store: string, hints: HashHints = {}): Promise<FileIndex> {
  const storeReal = await realpath(store).catch((err) => {
    throw fromSystemError(err, `store ${store}`);
  });
  const objects = path.join(storeReal, 'objects', 'sha256');
  const byName = new Map<string, IndexedFile>();
  const bySha256 = new Map<string, IndexedFile>();
  const skipped: { name: string; why: string }[] = [];
  const hasher = new Hasher(hints);
  for (const fan of (await readdir(objects).catch(() => [] as string[])).sort()) {
    if (!/^[0-9a-f]{2}$/.test(fan)) continue;
    for (const hex of (await readdir(path.join(objects, fan)).catch(() => [] as string[])).sort()) {
      if (!SHA256_HEX.test(hex) || !hex.startsWith(fan)) continue;
      const file = path.join(objects, fan, hex);
      const st = await lstat(file).catch(() => undefined);
      if (!st?.isFile() || hasher.excluded(st)) continue;
      bySha256.set(hex, indexedFile(hex, file, st, hex));
    }
  }
  const namesDir = path.join(storeReal, 'names');
  let entries: Dirent<Buffer>[] = [];
  try {
    entries = await readdir(namesDir, { withFileTypes: true, encoding: 'buffer' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(err, `store names ${namesDir}`);
  }
  for (const entry of entries) {
    const name = servableName(entry.name);
    if (name === undefined || !entry.isSymbolicLink()) continue;
    const real = await realpath(path.join(namesDir, name)).catch(() => undefined);
    if (real === undefined) continue; // dangling: the object was collected
    const hex = path.basename(real);
    const obj = bySha256.get(hex);
    if (!insideVisible(objects, real) || obj === undefined || obj.path !== real) {
      skipped.push({ name, why: 'a name that does not lead to a stored object' });
      continue;
    }
    byName.set(name, { ...obj, name });
  }
  return { byName, bySha256, pieces: new Map(), skipped, hashedBytes: hasher.hashedBytes };
}

// ---------------------------------------------------------------------------------------------------
// The served content: index plus signed inventory, kept in step

export type ContentSource = { kind: 'root'; root: string } | { kind: 'store'; store: string };

/** The inventory as served: the note's bytes and their validators. */
export interface ServedInventory {
  readonly body: Buffer;
  readonly etag: string;
  readonly lastModified: number;
  readonly lastModifiedHttp: string;
  /** kept: the file on disk was current; written: we regenerated and wrote it; memory: served from memory only. */
  readonly state: 'kept' | 'written' | 'memory';
}

export type ContentEvent =
  | { kind: 'indexed'; files: number; objects: number; hashedBytes: number; ms: number; inventory: ServedInventory['state']; skipped: FileIndex['skipped'] }
  | { kind: 'warning'; message: string };

export interface ContentOptions {
  source: ContentSource;
  key: SignerKey;
  limits: Limits;
  /** The node key's file, never served even if hard-linked into the root. */
  keyFile?: string;
  onEvent?: (e: ContentEvent) => void;
  clock?: () => Date;
}

export class MirrorContent {
  private current: FileIndex;
  private served: ServedInventory;
  private readonly opts: ContentOptions;
  private running: Promise<void> | undefined;
  private again = false;
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;

  private constructor(opts: ContentOptions, index: FileIndex, served: ServedInventory) {
    this.opts = opts;
    this.current = index;
    this.served = served;
  }

  /** Build the index (hashing what is not known) and make sure the inventory describes it. */
  static async open(opts: ContentOptions): Promise<MirrorContent> {
    const empty: FileIndex = { byName: new Map(), bySha256: new Map(), pieces: new Map(), skipped: [], hashedBytes: 0 };
    const content = new MirrorContent(opts, empty, inventoryEntity(Buffer.alloc(0), 0, 'memory'));
    await content.rebuild();
    return content;
  }

  get index(): FileIndex {
    return this.current;
  }

  get inventory(): ServedInventory {
    return this.served;
  }

  /** Where the inventory lives on disk (mirror roots only). */
  get inventoryFile(): string | undefined {
    return this.opts.source.kind === 'root' ? path.join(this.opts.source.root, INVENTORY_PATH) : undefined;
  }

  /** Rebuild now (SIGHUP, a changed file); concurrent calls coalesce into one more run. */
  refresh(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.rebuild().catch((err) => this.opts.onEvent?.({ kind: 'warning', message: `reindex failed: ${(err as Error).message}` }));
        } while (this.again);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  /**
   * Rebuild when the inventory file is replaced (mirror roots: `mirror sync` writes one after each
   * run) or a name is added to the store (`--local`: fetch records names/NAME).
   */
  watch(): void {
    const dir = this.opts.source.kind === 'root' ? path.dirname(this.inventoryFile!) : path.join(this.opts.source.store, 'names');
    const wanted = this.opts.source.kind === 'root' ? path.basename(this.inventoryFile!) : undefined;
    try {
      this.watcher = watch(dir, { persistent: false }, (_event, file) => {
        if (wanted !== undefined && file !== null && file !== wanted) return;
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => void this.onWatched(), 200);
        this.debounce.unref();
      });
      this.watcher.on('error', (err) => this.opts.onEvent?.({ kind: 'warning', message: `watching ${dir} stopped: ${err.message}` }));
    } catch (err) {
      this.opts.onEvent?.({ kind: 'warning', message: `cannot watch ${dir} (${(err as Error).message}): send SIGHUP to reindex` });
    }
  }

  close(): void {
    clearTimeout(this.debounce);
    this.watcher?.close();
  }

  private async onWatched(): Promise<void> {
    const file = this.inventoryFile;
    if (file !== undefined) {
      // Our own write also fires the watcher: nothing to do when the file is what we serve.
      const text = await readFile(file).catch(() => undefined);
      if (text !== undefined && text.equals(this.served.body)) return;
    }
    await this.refresh();
  }

  private async rebuild(): Promise<void> {
    const { source, key, limits } = this.opts;
    const clock = this.opts.clock ?? (() => new Date());
    const t0 = performance.now();
    const start = clock();
    const exclude = this.opts.keyFile ? await stat(this.opts.keyFile).then((s) => [{ dev: s.dev, ino: s.ino }], () => []) : [];
    let existing: { body: Buffer; files: InventoryFile[]; generated: number; mtime: number } | undefined;
    const file = this.inventoryFile;
    if (file !== undefined) existing = await this.readInventory(file);
    const hints: HashHints = {
      previous: this.current, exclude,
      inventory: existing ? { generated: existing.generated, files: new Map(existing.files.map((f) => [f.name, f])) } : undefined,
    };
    const index = source.kind === 'root' ? await indexRoot(source.root, hints) : await indexStore(source.store, hints);
    const files = [...index.byName.values()].map((f) => ({ name: f.name, size: f.size, sha256: f.sha256 }));
    let served: ServedInventory;
    if (existing && sameListing(existing.files, files)) {
      served = inventoryEntity(existing.body, existing.mtime, 'kept');
    } else {
      const note = Buffer.from(buildInventory(files, key, start, limits));
      let state: ServedInventory['state'] = 'memory';
      if (source.kind === 'root') {
        try {
          await writeInventory(source.root, note.toString('utf8'));
          state = 'written';
        } catch (err) {
          this.opts.onEvent?.({ kind: 'warning', message: `${(err as Error).message}; serving it from memory` });
        }
      }
      served = inventoryEntity(note, Math.floor(start.getTime() / 1000), state);
    }
    this.current = index;
    this.served = served;
    this.opts.onEvent?.({ kind: 'indexed', files: index.byName.size, objects: index.bySha256.size, hashedBytes: index.hashedBytes, ms: performance.now() - t0, inventory: served.state, skipped: index.skipped });
  }

  /** The inventory on disk if it verifies with our key; else undefined (it will be rewritten). */
  private async readInventory(file: string): Promise<{ body: Buffer; files: InventoryFile[]; generated: number; mtime: number } | undefined> {
    const st = await lstat(file).catch(() => undefined);
    if (!st) return undefined;
    if (!st.isFile() || st.size > this.opts.limits.inventoryBytes) {
      this.opts.onEvent?.({ kind: 'warning', message: `${file} is not a regular file of at most ${this.opts.limits.inventoryBytes} bytes: regenerating it` });
      return undefined;
    }
    const body = await readFile(file).catch(() => undefined);
    if (body === undefined) return undefined;
    try {
      const inv = parseInventory(body, this.opts.key, this.opts.limits);
      return { body, files: inv.files, generated: generatedSeconds(inv.generated)!, mtime: Math.floor(st.mtimeMs / 1000) };
    } catch (err) {
      this.opts.onEvent?.({ kind: 'warning', message: `${file} does not verify with the node key ${formatVerifierKey(this.opts.key)} (${(err as Error).message}): regenerating it` });
      return undefined;
    }
  }
}

function sameListing(a: readonly InventoryFile[], b: InventoryFile[]): boolean {
  if (a.length !== b.length) return false;
  const sorted = [...b].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  return a.every((f, i) => f.name === sorted[i]!.name && f.size === sorted[i]!.size && f.sha256 === sorted[i]!.sha256);
}

function inventoryEntity(body: Buffer, lastModified: number, state: ServedInventory['state']): ServedInventory {
  return { body, etag: `"${createHash('sha256').update(body).digest('hex')}"`, lastModified, lastModifiedHttp: formatHttpDate(lastModified), state };
}
