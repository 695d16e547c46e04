// The one way files reach disk whole (docs/OPERATIONS.md, "Output paths"). Two entry points:
//
// - Output paths a user names (`-o`, `--recipe`, `--chain`, ...), by `openOutput` / `writeOutputFile` /
//   `writeOutputChunks`. What is at the path decides how it is written:
//     new path or regular file: atomically (a temporary name beside it, fsync, rename, fsync of the
//       directory); a file being replaced keeps its permissions where they are narrower than ours;
//     character or block device, FIFO: written through, in place, as tar, gzip and curl do (never
//       replaced: `-o /dev/null` as root must leave /dev/null a device);
//     symbolic link: followed; what it points to is written by the rules above (a dangling link's target
//       is created), so the link stays a link. A link in a world-writable sticky directory (/tmp) owned by
//       neither us nor the directory's owner is refused, as the kernel's protected_symlinks would;
//     directory or socket: refused with E_INPUT.
// - State files that a command keeps for itself (inventories, node keys, piece layers, evidence), by
//   `writeFileDurable`: always an atomic replacement of the name itself; nothing is followed. Several at
//   once (the log's tiles) by `writeFilesDurable`: one fsync per file and one per directory per batch.
//
// Either way a temporary file is named `.NAME.PID-NONCE.tmp`, created exclusively, removed on any failure,
// on SIGINT/SIGTERM (output paths) and at exit; one left by a process killed with -9 is removed by the
// next write of the same name once its PID is dead, or is ours but not this process's writing (an earlier
// run with the same PID, as every run is PID 1 in a container).
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { constants as fsc, fstatSync, rmSync, writev as fsWritev, writevSync, type Stats } from 'node:fs';
import { lstat, mkdir, open, link, readdir, readlink, realpath, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { Socket } from 'node:net';
import path from 'node:path';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import { disown, fsyncDir, isLiveOwner, own } from './files.ts';

export interface OutputOptions {
  /** Mode of a new file (before the umask): 0o600 for private keys. */
  mode?: number;
  /** Refuse when something is at the path already (link(2), so even a racing writer loses cleanly). */
  exclusive?: boolean;
  /** Refuse devices and FIFOs: the file must be readable again later (a key beside its .pub). */
  regularOnly?: boolean;
  /** Ends the one-line error: `FILE: cannot write...` by default. */
  what?: string;
}

export interface Output {
  /** The path as given. */
  readonly path: string;
  /** Where the bytes land: the path, or what its symbolic links lead to. */
  readonly target: string;
  /** True when written in place (device, FIFO, /proc link), false when written atomically. */
  readonly through: boolean;
  /** Append bytes (sequentially: a FIFO cannot seek). */
  write(data: Uint8Array): Promise<void>;
  /** Write `chunks` in about 1 MiB batches, one on the thread pool while the next is made; hashed. */
  writeChunks(chunks: AsyncIterable<Uint8Array>, opts?: StdoutOptions): Promise<{ sha256: string; bytes: number }>;
  /** Make the output final and durable. */
  commit(): Promise<void>;
  /** Give up: the temporary file is removed, nothing appears under the name. */
  abort(): Promise<void>;
}

type Plan =
  | { kind: 'atomic'; target: string; replacing?: Stats }
  | { kind: 'through'; target: string; stats: Stats };

/** Decide how FILE is written (see the top of this file); throws the one-line refusals. */
async function planOutput(file: string, opts: OutputOptions): Promise<Plan> {
  const what = opts.what ?? 'cannot write';
  let current = path.resolve(file);
  for (let hops = 0; ; hops++) {
    const st = await lstat(current).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw fromSystemError(err, `${file}: ${what}`);
    });
    if (st === undefined) return { kind: 'atomic', target: current };
    if (opts.exclusive) throw new SourcemeshError('E_INPUT', `${file} exists; refusing to replace it`, { file, errno: 'EEXIST' });
    if (st.isSymbolicLink()) {
      if (hops >= LIMITS.outputSymlinkHops) throw new SourcemeshError('E_INPUT', `${file}: more than ${LIMITS.outputSymlinkHops} symbolic links to follow`, { file });
      await checkLinkOwner(file, current, st);
      // /dev/stdout leads to /proc/self/fd/1, whose "target" (pipe:[123], a deleted file) is no path:
      // the kernel follows such links itself, and what they reach is written through.
      if (current.startsWith('/proc/')) break;
      const to = await readlink(current).catch((err) => { throw fromSystemError(err, `${file}: ${what}`); });
      // Resolved as the kernel resolves it, not lexically: in `sub/../x`, `..` is the parent of where sub leads.
      const next = to.startsWith('/') ? to : `${path.dirname(current)}/${to}`;
      const last = path.basename(next);
      const resolved = last === '..' || last === '.' ? realpath(next) : realpath(path.dirname(next)).then((parent) => path.join(parent, last));
      current = await resolved.catch((err) => { throw fromSystemError(err, `${file}: ${what}`); });
      continue;
    }
    if (st.isFile()) return { kind: 'atomic', target: current, replacing: st };
    return through(file, current, st, opts); // character or block device, FIFO (or refused)
  }
  const st = await stat(file).catch((err) => { throw fromSystemError(err, `${file}: ${what}`); });
  return through(file, current, st, opts);
}

function through(file: string, target: string, st: Stats, opts: OutputOptions): Plan {
  if (st.isDirectory()) throw new SourcemeshError('E_INPUT', `${file}: is a directory; give the name of a file to write`, { file });
  if (st.isSocket()) throw new SourcemeshError('E_INPUT', `${file}: is a socket, which cannot be written as a file`, { file });
  if (opts.regularOnly) throw new SourcemeshError('E_INPUT', `${file}: is ${kindOf(st)}; this output must be a regular file or a new path`, { file });
  return { kind: 'through', target, stats: st };
}

function kindOf(st: Stats): string {
  return st.isCharacterDevice() ? 'a character device' : st.isBlockDevice() ? 'a block device' : st.isFIFO() ? 'a FIFO' : 'reached through /proc';
}

/**
 * The kernel's protected_symlinks rule (fs.protected_symlinks=1), applied by us because a rename in
 * the link's target directory would bypass it: in a sticky world-writable directory, follow a link only
 * when we or the directory's owner own it. Otherwise anyone could point /tmp/out.tar at /etc/passwd.
 */
async function checkLinkOwner(file: string, link: string, st: Stats): Promise<void> {
  const euid = process.geteuid?.();
  if (euid === undefined || st.uid === euid) return;
  const dir = await stat(path.dirname(link)).catch((err) => { throw fromSystemError(err, `${file}: cannot write`); });
  if ((dir.mode & 0o1002) === 0o1002 && st.uid !== dir.uid) {
    throw new SourcemeshError('E_PERMISSION', `${file}: a symbolic link owned by another user in the world-writable sticky directory ${path.dirname(link)}; refusing to follow it`, { file });
  }
}

/** Open FILE for writing by the rules at the top of this file. */
export function openOutput(file: string, opts: OutputOptions = {}): Promise<Output> {
  return openPlanned(file, opts, false);
}

async function openPlanned(file: string, opts: OutputOptions, retried: boolean): Promise<Output> {
  const plan = await planOutput(file, opts);
  const what = opts.what ?? 'cannot write';
  if (plan.kind === 'through') {
    // No O_CREAT: the thing must still be there; no O_TRUNC before we know it is not a regular file.
    const fh = await open(file, fsc.O_WRONLY | fsc.O_NOCTTY).catch((err) => { throw fromSystemError(err, `${file}: ${what}`); });
    let st: Stats;
    try {
      st = await fh.stat();
      if (st.isFile() && !plan.stats.isFile()) {
        // A regular file took the device's place between the look and the open: decide again, once.
        await fh.close();
        if (retried) throw new SourcemeshError('E_IO', `${file}: ${what}: it keeps changing between a device and a file`, { file });
        return openPlanned(file, opts, true);
      }
      if (st.isFile()) await fh.truncate(0); // reached through /proc/self/fd/N: as a shell's `>` would
    } catch (err) {
      await fh.close().catch(() => {});
      throw fromSystemError(err, `${file}: ${what}`);
    }
    return new ThroughOutput(file, plan.target, fh, st, what);
  }
  return AtomicOutput.create(file, plan.target, plan.replacing, opts, true);
}

/** Write a whole output file (see `openOutput`): never a partial one under its name. */
export async function writeOutputFile(file: string, data: string | Uint8Array, opts: OutputOptions = {}): Promise<void> {
  const out = await openOutput(file, opts);
  try {
    await out.write(typeof data === 'string' ? Buffer.from(data) : data);
    await out.commit();
  } catch (err) {
    await out.abort();
    throw err;
  }
}

/** Stream `chunks` into an output file (see `openOutput`); returns their sha256 and length. */
export async function writeOutputChunks(file: string, chunks: AsyncIterable<Uint8Array>, opts: OutputOptions & StdoutOptions = {}): Promise<{ sha256: string; bytes: number }> {
  const out = await openOutput(file, opts);
  try {
    const written = await out.writeChunks(chunks, opts);
    await out.commit();
    return written;
  } catch (err) {
    await out.abort();
    throw err;
  }
}

/**
 * Replace a state file FILE with `data`, atomically and durably; a link at FILE is replaced, not
 * followed. With `exclusive`, returns false (writing nothing) when FILE exists already. A string for
 * `options` is `what`.
 */
export async function writeFileDurable(file: string, data: string | Uint8Array, options: Omit<OutputOptions, 'regularOnly'> | string = {}): Promise<boolean> {
  const opts = typeof options === 'string' ? { what: options } : options;
  const target = path.resolve(file);
  const out = await AtomicOutput.create(file, target, undefined, opts, false);
  try {
    await out.write(typeof data === 'string' ? Buffer.from(data) : data);
    await out.commit();
    return true;
  } catch (err) {
    await out.abort();
    if (opts.exclusive && (err as SourcemeshError).details?.errno === 'EEXIST') return false;
    throw err;
  }
}

export interface DurableFile {
  readonly path: string;
  readonly data: Uint8Array;
}

export interface BatchOptions {
  /**
   * Where the temporary files are made, on the file system of every target, instead of beside each one:
   * its owner sweeps it (`sweepTemps`) before its first batch, where a file written alone sweeps its own
   * directory every time. The log keeps them out of the directory it serves.
   */
  tempDir?: string;
  /** Directories known to exist: not made again. */
  knownDirs?: ReadonlySet<string>;
  /** Ends the one-line error: `FILE: cannot write` by default. */
  what?: string;
}

/**
 * Write several state files as one batch (group commit): each written and fsynced under a temporary name
 * (`.NAME.PID-NONCE.tmp`, as `writeFileDurable`), renamed into place (its directory made if missing), then
 * each distinct directory fsynced once: N files in D directories cost N + D fsyncs, not 2N. A name is
 * replaced, not followed. Each file is whole or absent after a crash; the batch is not all or nothing.
 * Returns the directories synced (with the parents of directories it made).
 */
export async function writeFilesDurable(files: readonly DurableFile[], options: BatchOptions = {}): Promise<Set<string>> {
  const { tempDir, knownDirs, ...opts } = options;
  const what = opts.what ?? 'cannot write';
  const dirs = new Set<string>();
  const written = await Promise.allSettled(files.map(async (file) => {
    const target = path.resolve(file.path);
    const parent = path.dirname(target);
    if (!knownDirs?.has(parent)) {
      const created = await mkdir(parent, { recursive: true }).catch((err) => { throw fromSystemError(err, `${target}: ${what}`); });
      // A new directory's entry lives in its parent: sync every parent from the first one made down.
      if (created !== undefined) for (let d = parent; d.length >= created.length; d = path.dirname(d)) dirs.add(path.dirname(d));
    }
    const out = await AtomicOutput.create(target, target, undefined, opts, false, tempDir);
    try {
      await out.write(file.data);
      await out.commitFile();
    } catch (err) {
      await out.abort();
      throw err;
    }
    dirs.add(parent);
  }));
  const failed = written.find((w) => w.status === 'rejected');
  if (failed) throw failed.reason;
  await Promise.all([...dirs].map((dir) => fsyncDir(dir).catch((err) => { throw fromSystemError(err, `${dir}: cannot sync`); })));
  return dirs;
}

// Temporary files alive in this process: removed at exit whatever the cause, and (output paths) on
// SIGINT/SIGTERM, after which their writers fail instead of renaming.
const live = new Set<AtomicOutput>();
let exitHook = false;

/** How long an interrupted writer may take to meet the interruption and fail in its own words. */
const INTERRUPT_GRACE_MS = 3000;

function onSignal(signal: NodeJS.Signals): void {
  const again = [...live].some((o) => o.interrupted !== undefined);
  for (const out of live) if (out.interruptible) out.interrupt(signal);
  // The temporary files are gone. A writer normally stops at its next batch with one line; one whose
  // producer waits on a stalled input (a FIFO, a terminal) never gets there, so a second signal, or
  // the grace running out, lets the signal do what it does by default (as gzip or tar would at once).
  if (again) resignal(signal);
  else setTimeout(() => { if ([...live].some((o) => o.interrupted !== undefined)) resignal(signal); }, INTERRUPT_GRACE_MS).unref();
}

function resignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) return; // someone else handles it (a server's graceful stop)
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.kill(process.pid, signal);
}

function track(out: AtomicOutput): void {
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => { for (const o of live) rmSync(o.temp, { force: true }); });
  }
  const before = [...live].some((o) => o.interruptible);
  live.add(out);
  if (out.interruptible && !before) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
}

function untrack(out: AtomicOutput): void {
  live.delete(out);
  disown(out.temp);
  if (out.interruptible && ![...live].some((o) => o.interruptible)) {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** `.NAME.PID-NONCE.tmp`, the name cut so that the whole stays within NAME_MAX (255 bytes). */
function tempPrefix(base: string): string {
  const b = Buffer.from(base);
  if (b.length <= 200) return `.${base}.`;
  let cut = 200;
  while (cut > 0 && (b[cut]! & 0xc0) === 0x80) cut--; // not inside a UTF-8 sequence
  return `.${b.subarray(0, cut).toString()}.`;
}

/** Remove temporaries of TARGET left by processes that are gone (see `sweepTemps`). */
async function sweepStale(target: string): Promise<void> {
  await sweep(path.dirname(target), tempPrefix(path.basename(target)));
}

/**
 * Remove every temporary in DIR (`.NAME.PID-NONCE.tmp`, any NAME) left by a process that is gone (kill -9,
 * power loss) or by an earlier process with our PID (fs/files.ts isLiveOwner: in a container every run may
 * be PID 1); a live writer's is kept. For the `tempDir` of `writeFilesDurable`, before its first batch.
 * Returns how many were removed.
 */
export function sweepTemps(dir: string): Promise<number> {
  return sweep(dir, undefined);
}

async function sweep(dir: string, prefix: string | undefined): Promise<number> {
  let removed = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (prefix !== undefined && !name.startsWith(prefix)) continue;
    const m = prefix === undefined ? /^\..*\.(\d+)-[0-9a-f]{8}\.tmp$/.exec(name) : /^(\d+)-[0-9a-f]{8}\.tmp$/.exec(name.slice(prefix.length));
    if (m && !isLiveOwner(path.join(dir, name), Number(m[1]))) {
      await rm(path.join(dir, name), { force: true });
      removed++;
    }
  }
  return removed;
}

class AtomicOutput implements Output {
  readonly through = false;
  private fh: FileHandle | undefined;
  /** The signal that stopped this output, if one did. */
  interrupted: NodeJS.Signals | undefined;

  readonly path: string;
  readonly target: string;
  readonly temp: string;
  /** An output path (SIGINT/SIGTERM stop it), not a state file. */
  readonly interruptible: boolean;
  private readonly opts: OutputOptions;

  private constructor(file: string, target: string, temp: string, interruptible: boolean, opts: OutputOptions) {
    this.path = file;
    this.target = target;
    this.temp = temp;
    this.interruptible = interruptible;
    this.opts = opts;
  }

  /** With `tempDir`, the temporary file is made there (its owner sweeps it: `sweepTemps`), else beside TARGET. */
  static async create(file: string, target: string, replacing: Stats | undefined, opts: OutputOptions, interruptible: boolean, tempDir?: string): Promise<AtomicOutput> {
    const what = opts.what ?? 'cannot write';
    if (tempDir === undefined) await sweepStale(target);
    const temp = path.join(tempDir ?? path.dirname(target), `${tempPrefix(path.basename(target))}${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
    const out = new AtomicOutput(file, target, temp, interruptible, opts);
    own(temp); // before it exists: another write of the same name in this process must not sweep it
    try {
      out.fh = await open(temp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, opts.mode ?? 0o644);
    } catch (err) {
      disown(temp);
      throw fromSystemError(err, `${file}: ${what}`);
    }
    track(out);
    try {
      // Never wider than the file it replaces (a 0600 file stays private), nor than asked for.
      if (replacing) {
        const mode = (await out.fh.stat()).mode & 0o777;
        if ((mode & replacing.mode & 0o777) !== mode) await out.fh.chmod(mode & replacing.mode & 0o777);
      }
    } catch (err) {
      await out.abort();
      throw fromSystemError(err, `${file}: ${what}`);
    }
    return out;
  }

  interrupt(signal: NodeJS.Signals): void {
    this.interrupted = signal;
    rmSync(this.temp, { force: true });
  }

  private checkInterrupted(): void {
    if (this.interrupted) throw new SourcemeshError('E_IO', `${this.path}: interrupted by ${this.interrupted}; nothing was written under this name`, { file: this.path, signal: this.interrupted });
  }

  private check(): FileHandle {
    this.checkInterrupted();
    if (!this.fh) throw new SourcemeshError('E_INTERNAL', `${this.path}: written after it was closed`);
    return this.fh;
  }

  async write(data: Uint8Array): Promise<void> {
    await writeAll(this.check().fd, [data]).catch((err) => { throw this.fail(err); });
  }

  async writeChunks(chunks: AsyncIterable<Uint8Array>, opts: StdoutOptions = {}): Promise<{ sha256: string; bytes: number }> {
    return writeOverlapped(this.check().fd, chunks, () => void this.check(), true, opts.written).catch((err) => { throw this.fail(err); });
  }

  async commit(): Promise<void> {
    await this.commitFile();
    try {
      await fsyncDir(path.dirname(this.target));
    } catch (err) {
      throw this.fail(err);
    }
  }

  /** Sync the temporary file and rename it into place; its directory is not synced (`commit` or the batch does that). */
  async commitFile(): Promise<void> {
    const fh = this.check();
    try {
      await fh.sync();
      await fh.close();
      this.fh = undefined;
      this.checkInterrupted();
      if (this.opts.exclusive) {
        await link(this.temp, this.target);
        await rm(this.temp, { force: true });
      } else {
        await rename(this.temp, this.target);
      }
      untrack(this);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new SourcemeshError('E_INPUT', `${this.path} exists; refusing to replace it`, { file: this.path, errno: 'EEXIST' });
      throw this.fail(err);
    }
  }

  async abort(): Promise<void> {
    await this.fh?.close().catch(() => {});
    this.fh = undefined;
    if (live.has(this)) {
      await rm(this.temp, { force: true }).catch(() => {});
      untrack(this);
    }
  }

  /** Our errors as they are; a system error after an interruption (the temporary file is gone) as that. */
  private fail(err: unknown): SourcemeshError {
    if (err instanceof SourcemeshError) return err;
    try {
      this.checkInterrupted();
    } catch (interrupted) {
      return interrupted as SourcemeshError;
    }
    return fromSystemError(err, `${this.path}: ${this.opts.what ?? 'cannot write'}`);
  }
}

class ThroughOutput implements Output {
  readonly through = true;
  readonly path: string;
  readonly target: string;
  private fh: FileHandle | undefined;
  private readonly st: Stats;
  private readonly what: string;

  constructor(file: string, target: string, fh: FileHandle, st: Stats, what: string) {
    this.path = file;
    this.target = target;
    this.fh = fh;
    this.st = st;
    this.what = what;
  }

  private handle(): FileHandle {
    if (!this.fh) throw new SourcemeshError('E_INTERNAL', `${this.path}: written after it was closed`);
    return this.fh;
  }

  async write(data: Uint8Array): Promise<void> {
    await writeAll(this.handle().fd, [data]).catch((err) => { throw fromSystemError(err, `${this.path}: ${this.what}`); });
  }

  async writeChunks(chunks: AsyncIterable<Uint8Array>, opts: StdoutOptions = {}): Promise<{ sha256: string; bytes: number }> {
    return writeOverlapped(this.handle().fd, chunks, undefined, true, opts.written).catch((err) => { throw fromSystemError(err, `${this.path}: ${this.what}`); });
  }

  async commit(): Promise<void> {
    const fh = this.handle();
    try {
      // A disk or a file behind /proc holds data worth flushing; a tty, /dev/null or a pipe cannot fsync.
      if (this.st.isFile() || this.st.isBlockDevice()) await fh.sync();
      await fh.close();
      this.fh = undefined;
    } catch (err) {
      throw fromSystemError(err, `${this.path}: ${this.what}`);
    }
  }

  async abort(): Promise<void> {
    await this.fh?.close().catch(() => {});
    this.fh = undefined;
  }
}

/**
 * Write all of `bufs` at the descriptor's offset (FIFOs and devices: no positions), one writev(2) for
 * them where the kernel takes them whole, carrying on after a short write (as src/fs/write-fully.ts does
 * for a FileHandle; here on a bare descriptor, stdout among them, which may be non-blocking).
 */
async function writeAll(fd: number, bufs: readonly Uint8Array[]): Promise<void> {
  let rest = bufs.filter((b) => b.length > 0);
  while (rest.length > 0) {
    let n: number;
    try {
      n = await new Promise<number>((resolve, reject) => fsWritev(fd, rest, null, (err, written) => (err ? reject(err) : resolve(written))));
    } catch (err) {
      // A non-blocking descriptor (a pipe someone set O_NONBLOCK on) that is full: wait, then again.
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      await new Promise((resolve) => setTimeout(resolve, 1));
      continue;
    }
    while (rest.length > 0 && n >= rest[0]!.length) n -= rest.shift()!.length;
    if (n > 0) rest = [rest[0]!.subarray(n), ...rest.slice(1)];
  }
}

/**
 * Write and hash `chunks` in batches of about 1 MiB, with one batch being written (one writev(2) on
 * libuv's thread pool, no copy into one buffer) while the next is produced: a write that blocks on a slow
 * reader, such as a pipe, does not stop the producer. `check` runs before each batch (an interrupted
 * output stops there); `written` is told of each chunk once its batch is written.
 */
async function writeOverlapped(fd: number, chunks: AsyncIterable<Uint8Array>, check: () => void = () => {}, hashing = true, written?: (chunk: Uint8Array) => void): Promise<{ sha256: string; bytes: number }> {
  const hash = hashing ? createHash('sha256') : undefined;
  let bytes = 0;
  let batch: Uint8Array[] = [];
  let batchBytes = 0;
  let inFlight: Promise<void> = Promise.resolve();
  const flush = async () => {
    if (!batchBytes) return;
    const bufs = batch;
    batch = [];
    batchBytes = 0;
    await inFlight;
    check();
    inFlight = writeAll(fd, bufs).then(() => { if (written) for (const b of bufs) written(b); });
    inFlight.catch(() => {}); // awaited before the next batch and at the end
  };
  try {
    for await (const chunk of chunks) {
      hash?.update(chunk);
      bytes += chunk.length;
      batch.push(chunk);
      batchBytes += chunk.length;
      if (batchBytes >= 1 << 20 || batch.length >= STDOUT_IOV) await flush();
    }
    await flush();
  } finally {
    await inFlight.catch(() => {});
  }
  await inFlight;
  // Not hashed when the caller said so: the empty string never escapes writeChunksToStdout.
  return { sha256: hash ? hash.digest('hex') : '', bytes };
}

/**
 * Write `chunks` to standard output (`-o -`), hashing them unless `hash` is false. A file or terminal is
 * written on the thread pool (writeOverlapped). A pipe or socket is put in non-blocking mode (a Socket on
 * fd 1 does that) and topped up with writev(2) each time a chunk is produced: the reader gets bytes as
 * soon as they exist and the producer never sleeps while it has work, even between event-loop turns.
 * What the pipe does not take now waits in a queue; past 4 MiB it goes to the Socket and we wait for the
 * reader to drain it (docs/BENCHMARKS.md, bench:archive).
 */
export async function writeChunksToStdout(chunks: AsyncIterable<Uint8Array>, opts?: StdoutOptions & { hash?: true }): Promise<{ sha256: string; bytes: number }>;
export async function writeChunksToStdout(chunks: AsyncIterable<Uint8Array>, opts: StdoutOptions & { hash: boolean }): Promise<{ sha256?: string; bytes: number }>;
export async function writeChunksToStdout(chunks: AsyncIterable<Uint8Array>, opts: StdoutOptions & { hash?: boolean } = {}): Promise<{ sha256?: string; bytes: number }> {
  try {
    const st = fstatSync(1);
    if (!st.isFIFO() && !st.isSocket()) return await writeOverlapped(1, chunks, undefined, opts.hash ?? true, opts.written);
    const out = new Socket({ fd: 1, readable: false, writable: true });
    let failure: Error | undefined;
    out.on('error', (err) => { failure ??= err; });
    const hash = opts.hash === false ? undefined : createHash('sha256');
    let bytes = 0;
    const queue: Uint8Array[] = [];
    let queued = 0;
    // As much of the queue as the pipe takes now, while the Socket holds nothing (its bytes go first).
    const topUp = () => {
      while (queued > 0 && out.writableLength === 0) {
        const batch = queue.length > STDOUT_IOV ? queue.slice(0, STDOUT_IOV) : queue;
        let asked = 0;
        for (const b of batch) asked += b.length;
        let n: number;
        try {
          n = writevSync(1, batch);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return; // full: the reader is behind
          throw err;
        }
        queued -= n;
        const short = n < asked;
        while (n > 0) {
          const head = queue[0]!;
          if (n >= head.length) {
            queue.shift();
            n -= head.length;
            opts.written?.(head);
          } else {
            queue[0] = head.subarray(n);
            n = 0;
          }
        }
        if (short) return; // the pipe is full now
      }
    };
    try {
      for await (const chunk of chunks) {
        if (failure) throw failure;
        hash?.update(chunk);
        bytes += chunk.length;
        if (chunk.length === 0) continue;
        queue.push(chunk);
        queued += chunk.length;
        topUp();
        if (queued > 4 << 20) {
          // The reader is slower than we are: let the Socket feed it, and wait until it has taken all.
          for (const b of queue.splice(0)) out.write(b);
          queued = 0;
          // events.once removes both of its listeners ('drain' and 'error') whichever comes: nothing
          // accumulates over thousands of waits.
          while (out.writableLength > 0 && !failure) await once(out, 'drain').catch(() => {});
        }
      }
      for (const b of queue.splice(0)) out.write(b);
      await new Promise<void>((resolve) => out.end(resolve));
      if (failure) throw failure;
    } finally {
      out.destroy();
    }
    return { sha256: hash?.digest('hex'), bytes };
  } catch (err) {
    throw err instanceof SourcemeshError ? err : fromSystemError(err, 'standard output');
  }
}

export interface StdoutOptions {
  /** Told of each chunk the kernel has taken whole (a pipe's queue, a file's batch): nothing here keeps it after. */
  written?: (chunk: Uint8Array) => void;
}

/** At most this many buffers per writev(2) (IOV_MAX is 1024 on Linux). */
const STDOUT_IOV = 256;
