// Content-addressed store: every object is named by the sha256 of its bytes and only ever gets that
// name after the bytes were verified. Layout under the root:
//   objects/sha256/ab/abcdef...   verified objects, read-only
//   tmp/HEX.PID-NONCE.part        partial downloads, owned by one process each (resumable)
//   tmp/HEX.PID-NONCE.part.json   where the partial came from (for If-Range on resume)
//   tmp/HEX.PID-NONCE.part.pieces which pieces of a download split across sources are in place
//                                 (fetch/piece-record.ts); moves with its partial when adopted
//   locks/HEX.lock                "PID HOST START": one process fetches a given object at a time (START:
//                                 when that process started, where the OS says; a PID alone is reused)
//   names/NAME -> ../objects/...  the last object fetched under each distfile name (for `serve --local`)
//   tars/ab/abcdef... -> TARHEX   the tarSha256 of a verified object (derived, recomputable): a symlink,
//                                 so a record appears whole or not at all
// Correctness never depends on the lock: each writer has its own partial file, adopted by atomic
// rename, so two processes that both believe they hold a lock still cannot interleave bytes.
import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { chmod, copyFile, link, mkdir, readFile, rename, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SourcemeshError, fromSystemError, isNotFound } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import { SHA256_HEX } from '../manifest/distfile.ts';
import { disown, ensureDir, fsyncDir, fsyncFile, isLiveOwner, own, ownsHere, readdirIfExists, readlinkIfAny, statIfExists } from '../fs/files.ts';

export interface StoredObject {
  sha256: string;
  size: number;
  path: string;
}

export interface PartialMeta {
  url?: string;
  etag?: string;
  lastModified?: string;
}

/** A partial file this process owns. `size` bytes are already there (from an adopted partial). */
export interface Partial {
  sha256: string;
  path: string;
  size: number;
  meta: PartialMeta;
}

export interface Lock {
  release(): Promise<void>;
}

const PART_RE = /^([0-9a-f]{64})\.(\d+)-([0-9a-f]+)\.part$/;

// Locks and partials this process holds are registered with fs/files.ts `own`: one named with our own PID
// that is not registered was left by an earlier process that had the same PID (in a container every run
// may be PID 1): it is dead.

/** A lock file still empty after this long was never written: its maker died between create and write. */
const EMPTY_LOCK_GRACE_MS = 10_000;

/**
 * When process `pid` started, as "TICKS@BOOT_ID" (Linux /proc: clock ticks since boot, and which boot),
 * or undefined where the OS does not say. With the PID it names one process: a PID reused by a later
 * process has another start.
 */
async function processStart(pid: number): Promise<string | undefined> {
  try {
    bootId ??= (await readFile('/proc/sys/kernel/random/boot_id', 'latin1')).trim();
    const line = await readFile(`/proc/${pid}/stat`, 'latin1');
    // proc(5): "PID (COMM) STATE ..." where COMM may hold anything; starttime is field 22.
    const ticks = line.slice(line.lastIndexOf(')') + 2).split(' ')[19];
    return ticks && /^\d+$/.test(ticks) && /^[0-9a-f-]+$/.test(bootId) ? `${ticks}@${bootId}` : undefined;
  } catch {
    return undefined; // no /proc (not Linux) or the process is gone: the PID alone must do
  }
}
let bootId: string | undefined;

export function defaultStoreRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SOURCEMESH_STORE) return env.SOURCEMESH_STORE;
  const cache = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cache, 'sourcemesh');
}

export class Store {
  readonly root: string;
  private readonly host = os.hostname();

  private constructor(root: string) {
    this.root = root;
  }

  static async open(root: string): Promise<Store> {
    const store = new Store(path.resolve(root));
    for (const sub of ['objects/sha256', 'tmp', 'locks', 'names']) await ensureDir(path.join(store.root, sub), `store ${store.root}`);
    return store;
  }

  objectPath(sha256: string): string {
    checkHex(sha256);
    return path.join(this.root, 'objects', 'sha256', sha256.slice(0, 2), sha256);
  }

  async get(sha256: string): Promise<StoredObject | undefined> {
    const p = this.objectPath(sha256);
    try {
      const s = await stat(p);
      return s.isFile() ? { sha256, size: s.size, path: p } : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw fromSystemError(err, `store object ${p}`);
    }
  }

  /**
   * Take the per-object lock, waiting while a live process holds it. Resolves to undefined when the
   * object appeared in the store while we waited (someone else fetched it: nothing left to do).
   */
  async lock(sha256: string, signal?: AbortSignal, onWait?: (holder: string) => void): Promise<Lock | undefined> {
    checkHex(sha256);
    const lockPath = path.join(this.root, 'locks', `${sha256}.lock`);
    const start = await processStart(process.pid);
    const me = `${process.pid} ${this.host}${start ? ` ${start}` : ''}\n`;
    const deadline = Date.now() + LIMITS.lockWaitMs;
    let told = false;
    for (;;) {
      signal?.throwIfAborted();
      if (await this.get(sha256)) return undefined;
      // Another job of this process holds it (or is taking it): wait, never break it.
      let holder: { content: string; mtimeMs: number } | undefined = { content: `${process.pid} (this process)`, mtimeMs: Date.now() };
      if (!ownsHere(lockPath)) {
        own(lockPath); // before the file exists: a sibling job must not take it for a predecessor's
        try {
          await writeFile(lockPath, me, { flag: 'wx' });
          return {
            release: async () => {
              disown(lockPath);
              await unlink(lockPath).catch(() => {});
            },
          };
        } catch (err) {
          disown(lockPath);
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fromSystemError(err, `lock ${lockPath}`);
        }
        holder = await readLock(lockPath);
        if (holder === undefined) continue; // released meanwhile
        if (await this.isStaleLock(lockPath, holder)) {
          // The holder died (kill -9, a crash, a container restart): break its lock. A race here costs at
          // most duplicate work.
          await unlink(lockPath).catch(() => {});
          continue;
        }
      }
      const who = holder.content.trim().split(' ').slice(0, 2).join(' ') || 'a process still writing the lock'; // PID HOST
      if (!told) {
        onWait?.(who);
        told = true;
      }
      if (Date.now() > deadline) throw new SourcemeshError('E_LOCKED', `${lockPath}: held by ${who} for too long`);
      await sleep(LIMITS.lockPollMs, undefined, { signal });
    }
  }

  /**
   * A lock is stale when its holder is gone: a dead PID on this host, our own PID without our holding it,
   * a live PID whose process started at another time than the lock says (the PID was reused), garbage,
   * or an empty file that stayed empty. A lock from another host is never broken here.
   */
  private async isStaleLock(lockPath: string, holder: { content: string; mtimeMs: number }): Promise<boolean> {
    const { content, mtimeMs } = holder;
    if (content.length === 0) return Date.now() - mtimeMs > EMPTY_LOCK_GRACE_MS; // else still being written
    const [pidText, host, start] = content.trim().split(' ');
    const pid = Number(pidText);
    if (!Number.isInteger(pid) || pid <= 0) return true; // garbage
    if (host !== this.host) return false;
    if (!isLiveOwner(lockPath, pid)) return true;
    if (pid === process.pid) return false;
    if (start === undefined) return false;
    const now = await processStart(pid);
    return now !== undefined && now !== start;
  }

  /** Begin writing an object: adopt a partial left by a dead process, or start an empty one. */
  async beginPartial(sha256: string): Promise<Partial> {
    checkHex(sha256);
    const tmp = path.join(this.root, 'tmp');
    const nonce = randomBytes(6).toString('hex');
    const mine = path.join(tmp, `${sha256}.${process.pid}-${nonce}.part`);
    for (const name of await readdirIfExists(tmp)) {
      const m = PART_RE.exec(name);
      if (!m || m[1] !== sha256 || isLiveOwner(path.join(tmp, name), Number(m[2]))) continue;
      try {
        await rename(path.join(tmp, name), mine); // atomic: only one adopter wins
      } catch (err) {
        if (isNotFound(err)) continue; // another process adopted it first
        throw fromSystemError(err, `store: cannot adopt ${path.join(tmp, name)}`);
      }
      const meta = await readMeta(path.join(tmp, `${name}.json`));
      await rm(path.join(tmp, `${name}.json`), { force: true });
      // The piece record goes with its partial (none: a partial of one source, or none recorded yet).
      await rename(path.join(tmp, `${name}.pieces`), `${mine}.pieces`).catch((err) => {
        if (!isNotFound(err)) throw fromSystemError(err, `store: cannot adopt ${path.join(tmp, `${name}.pieces`)}`);
      });
      const size = (await stat(mine).catch((err) => { throw fromSystemError(err, mine); })).size;
      own(mine);
      return { sha256, path: mine, size, meta: sanitizeMeta(meta) };
    }
    try {
      own(mine);
      await writeFile(mine, '', { flag: 'wx' });
    } catch (err) {
      disown(mine);
      throw fromSystemError(err, `store ${this.root}: cannot create a temporary file`);
    }
    return { sha256, path: mine, size: 0, meta: {} };
  }

  async saveMeta(partial: Partial, meta: PartialMeta): Promise<void> {
    partial.meta = meta;
    await writeFile(`${partial.path}.json`, JSON.stringify(meta)).catch(() => {});
  }

  async discardPartial(partial: Partial): Promise<void> {
    await rm(partial.path, { force: true });
    await rm(`${partial.path}.json`, { force: true });
    await rm(`${partial.path}.pieces`, { force: true });
    disown(partial.path);
  }

  /**
   * Give a verified partial its final name: fsync the data, rename into objects/, fsync the
   * directory. The caller has checked the digest of exactly these bytes.
   */
  async commit(partial: Partial): Promise<StoredObject> {
    const dest = this.objectPath(partial.sha256);
    try {
      await fsyncFile(partial.path);
      await chmod(partial.path, 0o444);
      await mkdir(path.dirname(dest), { recursive: true });
      await rename(partial.path, dest);
      disown(partial.path);
      await fsyncDir(path.dirname(dest));
      await rm(`${partial.path}.json`, { force: true });
      await rm(`${partial.path}.pieces`, { force: true });
      return { sha256: partial.sha256, size: (await stat(dest)).size, path: dest };
    } catch (err) {
      throw fromSystemError(err, `store: cannot commit ${partial.sha256}`);
    }
  }

  /** Point names/NAME at an object (atomically: a temporary symlink renamed over the old one). */
  async recordName(name: string, sha256: string): Promise<void> {
    const target = path.join('..', 'objects', 'sha256', sha256.slice(0, 2), sha256);
    const link = path.join(this.root, 'names', name);
    if ((await readlinkIfAny(link)) === target) return;
    const temp = path.join(this.root, 'names', `.${name}.${process.pid}.tmp`);
    own(temp);
    try {
      await rm(temp, { force: true });
      await symlink(target, temp);
      await rename(temp, link);
    } catch (err) {
      throw fromSystemError(err, `${link}: cannot record the name`);
    } finally {
      disown(temp);
    }
  }

  /** The object names/NAME points at, if it is a stored object. */
  async byName(name: string): Promise<StoredObject | undefined> {
    if (name.startsWith('.') || name.includes('/')) return undefined;
    const target = await readlinkIfAny(path.join(this.root, 'names', name));
    const sha = path.basename(target);
    if (!SHA256_HEX.test(sha) || target !== path.join('..', 'objects', 'sha256', sha.slice(0, 2), sha)) return undefined;
    return this.get(sha);
  }

  /** The tarSha256 recorded for object `sha256` (see recordTarSha256), if any. */
  async cachedTarSha256(sha256: string): Promise<string | undefined> {
    const target = await readlinkIfAny(this.tarRecordPath(sha256));
    return SHA256_HEX.test(target) ? target : undefined;
  }

  /**
   * Record that object `sha256` decompresses to a tar with sha256 `tarSha256`, once that was computed
   * from its bytes: later runs need not decompress it again. Never fails the caller's work: a record
   * that cannot be written is only recomputed next time.
   */
  async recordTarSha256(sha256: string, tarSha256: string): Promise<void> {
    checkHex(tarSha256);
    const record = this.tarRecordPath(sha256);
    await mkdir(path.dirname(record), { recursive: true })
      .then(() => symlink(tarSha256, record))
      .catch(() => {}); // EEXIST: recorded already (the same derived value)
  }

  private tarRecordPath(sha256: string): string {
    checkHex(sha256);
    return path.join(this.root, 'tars', sha256.slice(0, 2), sha256);
  }

  /** Name -> object, from names/, skipping links that do not point at a stored object. */
  async names(): Promise<Map<string, StoredObject>> {
    const out = new Map<string, StoredObject>();
    for (const name of (await readdirIfExists(path.join(this.root, 'names'))).sort()) {
      if (name.startsWith('.')) continue;
      const target = await readlinkIfAny(path.join(this.root, 'names', name));
      const sha = path.basename(target);
      if (!SHA256_HEX.test(sha) || target !== path.join('..', 'objects', 'sha256', sha.slice(0, 2), sha)) continue;
      const obj = await this.get(sha);
      if (obj) out.set(name, obj);
    }
    return out;
  }

  async *list(): AsyncGenerator<StoredObject> {
    const base = path.join(this.root, 'objects', 'sha256');
    for (const fan of (await readdirIfExists(base)).sort()) {
      if (!/^[0-9a-f]{2}$/.test(fan)) continue;
      for (const name of (await readdirIfExists(path.join(base, fan))).sort()) {
        if (!SHA256_HEX.test(name) || !name.startsWith(fan)) continue;
        const p = path.join(base, fan, name);
        const s = await statIfExists(p);
        if (s?.isFile()) yield { sha256: name, size: s.size, path: p };
      }
    }
  }

  /**
   * Remove what no live process owns: stale locks, temporary files of dead processes whose object is
   * already stored or whose partial is gone (others stay: a later fetch resumes them, unless
   * `partials` is set), and, when `keep` is given, every object not in it. Fetch runs it (without
   * `keep`) before it starts, so a run after a crash leaves no garbage.
   */
  async gc(opts: { keep?: Set<string>; partials?: boolean } = {}): Promise<{ removedObjects: StoredObject[]; removedTemp: number; freedBytes: number }> {
    const removedObjects: StoredObject[] = [];
    let removedTemp = 0;
    let freedBytes = 0;
    for (const name of await readdirIfExists(path.join(this.root, 'locks'))) {
      const p = path.join(this.root, 'locks', name);
      const holder = await readLock(p);
      if (holder && (await this.isStaleLock(p, holder))) {
        await unlink(p).catch(() => {});
        removedTemp++;
      }
    }
    const tmp = path.join(this.root, 'tmp');
    for (const name of await readdirIfExists(tmp)) {
      const m = /^([0-9a-f]{64})\.(\d+)-[0-9a-f]+\.part(\.json|\.pieces)?$/.exec(name);
      if (m && isLiveOwner(path.join(tmp, m[3] ? name.slice(0, -m[3].length) : name), Number(m[2]))) continue;
      // A durable write's temporary name (.NAME.PID-RAND.tmp, fs/durable-file.ts) while its writer lives.
      const writing = /^\..*\.(\d+)-[0-9a-f]+\.tmp$/.exec(name);
      if (writing && isLiveOwner(path.join(tmp, name), Number(writing[1]))) continue;
      const orphanMeta = m?.[3] !== undefined && !(await statIfExists(path.join(tmp, name.slice(0, -m[3].length))));
      if (m && !orphanMeta && !opts.partials && !(await this.get(m[1]!))) continue; // a later fetch resumes it
      const p = path.join(tmp, name);
      freedBytes += (await statIfExists(p))?.size ?? 0;
      await rm(p, { force: true, recursive: true });
      removedTemp++;
    }
    if (opts.keep) {
      for await (const obj of this.list()) {
        if (opts.keep.has(obj.sha256)) continue;
        await unlink(obj.path);
        removedObjects.push(obj);
        freedBytes += obj.size;
      }
    }
    // tarSha256 records whose object is gone (only with `keep`: a record costs 64 bytes, fetch's gc
    // stays quick).
    const tars = path.join(this.root, 'tars');
    for (const fan of opts.keep ? await readdirIfExists(tars) : []) {
      for (const name of await readdirIfExists(path.join(tars, fan))) {
        if (SHA256_HEX.test(name) && (await this.get(name))) continue;
        await rm(path.join(tars, fan, name), { force: true });
        removedTemp++;
      }
    }
    // Names whose object is gone, and temporary links of dead processes.
    for (const name of await readdirIfExists(path.join(this.root, 'names'))) {
      const p = path.join(this.root, 'names', name);
      const temp = /^\..*\.(\d+)\.tmp$/.exec(name);
      if (temp ? !isLiveOwner(p, Number(temp[1])) : !(await statIfExists(p))) {
        await rm(p, { force: true });
        removedTemp++;
      }
    }
    return { removedObjects, removedTemp, freedBytes };
  }
}

// Only ENOENT and ENOTDIR mean that something is not there (fs/files.ts): EACCES, EIO, ELOOP and the like are
// faults of the store's disk, reported as such, never taken for a missing object, name or record.

/**
 * Where an adopted partial came from: only a hint for If-Range, so a missing or torn file (a crash in the
 * middle of writing it) is no hint at all, never a reason to give up the partial.
 */
async function readMeta(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return {};
    throw fromSystemError(err, file);
  }
  try {
    return JSON.parse(text);
  } catch {
    return {};
  }
}

/** A lock file's content and age; undefined when it is gone. */
async function readLock(lockPath: string): Promise<{ content: string; mtimeMs: number } | undefined> {
  try {
    const [content, s] = await Promise.all([readFile(lockPath, 'utf8'), stat(lockPath)]);
    return { content, mtimeMs: s.mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fromSystemError(err, `lock ${lockPath}`);
  }
}

function checkHex(sha256: string): void {
  if (!SHA256_HEX.test(sha256)) throw new SourcemeshError('E_INPUT', `"${sha256}" is not a sha256 (64 lowercase hex digits)`);
}

function sanitizeMeta(meta: unknown): PartialMeta {
  const m = (meta ?? {}) as Record<string, unknown>;
  const str = (x: unknown) => (typeof x === 'string' && x.length < 4096 ? x : undefined);
  return { url: str(m.url), etag: str(m.etag), lastModified: str(m.lastModified) };
}

/** Hard-link when the file system allows it, else copy; either way into a temporary name first. */
export async function linkOrCopy(src: string, tempDest: string): Promise<'linked' | 'copied'> {
  try {
    await link(src, tempDest);
    return 'linked';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK' && code !== 'ENOTSUP') throw err;
  }
  await copyFile(src, tempDest, fsc.COPYFILE_FICLONE);
  await fsyncFile(tempDest);
  return 'copied';
}
