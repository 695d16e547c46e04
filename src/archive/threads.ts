// Git snapshots made on worker threads: our archiver and deflate are JavaScript on one thread, so several
// snapshots at once in one process would take turns on it, while `git archive | gzip -n` runs as two
// processes per snapshot. The one pool serves `rebuild` (hash: sha256 and size, the bytes stay on the
// thread) and the snapshot generator of `fetch` / `mirror sync` (stream: the compressed bytes come back in
// transferred chunks, at most WINDOW chunks ahead of the reader). A thread runs exactly the code the
// main thread would (openArchive, then compressChunks), so the bytes do not depend on where it ran.
//
// A thread keeps the last repository it read open for a moment (REUSE_MS): the entries of one repository
// (live-bootstrap has 19 of gnulib) parse its pack indexes and warm its caches once per thread, not once
// per entry; a job goes to an idle thread that holds its repository when there is one. A new pack in the
// clone (a fetch between two entries) opens the repository again.
//
// The same module is the worker: started with workerData.role === ROLE, it serves the messages below.
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { Worker, isMainThread, parentPort, threadId, workerData } from 'node:worker_threads';
import { SourcemeshError, type ErrorCode } from '../errors.ts';
import { readdirIfExistsSync } from '../fs/files.ts';
import { limitsWith } from '../limits.ts';
import type { GitSource } from '../manifest/distfile.ts';
import { compressChunks } from './compress.ts';
import { Repository } from './git/repository.ts';
import { openArchive } from './index.ts';

const ROLE = 'sourcemesh-archive-thread';
/** Chunks a thread may send ahead of the reader (each up to the archive's chunk size, 512 KiB). */
const WINDOW = 4;
/** How long a thread keeps its last repository open for the next entry of the same repository. */
const REUSE_MS = 2000;

type Job = { id: number; kind: 'hash' | 'stream'; repoDir: string; commit: string; git: GitSource };
type ToThread = { job: Job } | { credit: number; id: number } | { cancel: number };
/** Where a job ran: the thread, and whether it had to open the repository (false: reused). */
export interface JobPlace { threadId: number; opened: boolean }
type FromThread =
  | { id: number; chunk: Uint8Array }
  | ({ id: number; done: true; sha256?: string; bytes?: number } & JobPlace)
  | { id: number; error: { code: string; message: string } };

interface Running {
  onChunk(c: Uint8Array): void;
  onDone(a: Extract<FromThread, { done: true }>): void;
  onError(e: Error): void;
}

interface Slot { w: Worker; repoDir?: string; running?: { id: number; r: Running } }

/** A fixed number of threads, each making one snapshot at a time; end them with close(). */
export class ArchiveThreads {
  readonly #slots: Slot[] = [];
  readonly #queue: { job: Job; r: Running }[] = [];
  #seq = 0;
  /** Where each finished job ran, in order of completion (for tests and reports). */
  readonly places: JobPlace[] = [];

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const w = new Worker(new URL(import.meta.url), { workerData: { role: ROLE }, name: 'sm-archive' });
      const slot: Slot = { w };
      w.on('message', (m: FromThread) => {
        const running = slot.running;
        if (!running || running.id !== m.id) return; // a cancelled job's late chunks
        if ('chunk' in m) return running.r.onChunk(m.chunk);
        slot.running = undefined;
        w.unref();
        if ('error' in m) running.r.onError(new SourcemeshError(m.error.code as ErrorCode, m.error.message));
        else { this.places.push({ threadId: m.threadId, opened: m.opened }); running.r.onDone(m); }
        this.#pump();
      });
      const fail = (err: Error) => {
        const running = slot.running;
        slot.running = undefined;
        running?.r.onError(new SourcemeshError('E_INTERNAL', `an archive thread failed: ${err.message}`, {}, { cause: err }));
      };
      w.on('error', fail);
      w.on('exit', (code) => { if (code !== 0) fail(new Error(`exit ${code}`)); });
      // An idle pool does not keep the process alive (after the listeners: adding one refs the port again).
      w.unref();
      this.#slots.push(slot);
    }
  }

  /** The sha256 and size of the snapshot of `commit` in the clone `repoDir`, compressed as `git` says. */
  hash(repoDir: string, commit: string, git: GitSource): Promise<{ sha256: string; bytes: number }> {
    return new Promise((resolve, reject) => {
      this.#queue.push({
        job: { id: ++this.#seq, kind: 'hash', repoDir, commit, git },
        r: { onChunk: () => {}, onDone: (a) => resolve({ sha256: a.sha256!, bytes: a.bytes! }), onError: reject },
      });
      this.#pump();
    });
  }

  /** The snapshot's bytes, made on a thread; abandoning the generator stops the thread's work. */
  async *stream(repoDir: string, commit: string, git: GitSource, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const id = ++this.#seq;
    const chunks: Uint8Array[] = [];
    let finished = false;
    let failure: Error | undefined;
    let wake: (() => void) | undefined;
    const poke = () => { wake?.(); wake = undefined; };
    this.#queue.push({
      job: { id, kind: 'stream', repoDir, commit, git },
      r: {
        onChunk: (c) => { chunks.push(c); poke(); },
        onDone: () => { finished = true; poke(); },
        onError: (e) => { failure = e; poke(); },
      },
    });
    const onAbort = () => { failure ??= signal!.reason instanceof Error ? signal!.reason : new SourcemeshError('E_INTERNAL', 'aborted'); poke(); };
    signal?.addEventListener('abort', onAbort, { once: true });
    this.#pump();
    let ended = false;
    try {
      for (;;) {
        if (failure) throw failure;
        const c = chunks.shift();
        if (c) {
          this.#send(id, { credit: 1, id });
          yield c;
          continue;
        }
        if (finished) { ended = true; return; }
        await new Promise<void>((resolve) => { wake = resolve; });
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!ended) this.#cancel(id);
    }
  }

  #send(id: number, m: ToThread): void {
    const slot = this.#slots.find((s) => s.running?.id === id);
    slot?.w.postMessage(m);
  }

  #cancel(id: number): void {
    const queued = this.#queue.findIndex((q) => q.job.id === id);
    if (queued >= 0) { this.#queue.splice(queued, 1); return; }
    // The thread stops at its next chunk and answers with an error nobody waits for; the slot frees then.
    const slot = this.#slots.find((s) => s.running?.id === id);
    if (slot) {
      slot.running!.r = { onChunk: () => {}, onDone: () => {}, onError: () => {} };
      slot.w.postMessage({ cancel: id } satisfies ToThread);
    }
  }

  #pump(): void {
    while (this.#queue.length) {
      const idle = this.#slots.filter((s) => !s.running);
      if (!idle.length) return;
      const next = this.#queue.shift()!;
      // Prefer the thread that holds this repository open.
      const slot = idle.find((s) => s.repoDir === next.job.repoDir) ?? idle.find((s) => s.repoDir === undefined) ?? idle[0]!;
      slot.running = { id: next.job.id, r: next.r };
      slot.repoDir = next.job.repoDir;
      slot.w.ref();
      slot.w.postMessage({ job: next.job } satisfies ToThread);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.#slots.map((s) => s.w.terminate()));
  }
}

let shared: ArchiveThreads | undefined;
/** The process's pool for snapshot generation: one thread per core, at most 4, made on first use. */
export function sharedArchiveThreads(): ArchiveThreads {
  shared ??= new ArchiveThreads(Math.max(1, Math.min(4, availableParallelism())));
  return shared;
}

// ---- the thread's side ----

/** The repository this thread read last, with the pack files it had then. */
let kept: { dir: string; packs: string; repo: Repository; timer?: NodeJS.Timeout } | undefined;

function packNames(repo: Repository): string {
  return readdirIfExistsSync(path.join(repo.commonDir, 'objects', 'pack')).sort().join('\n');
}

function repositoryFor(dir: string): { repo: Repository; opened: boolean } {
  if (kept) clearTimeout(kept.timer);
  if (kept && kept.dir === dir && packNames(kept.repo) === kept.packs) return { repo: kept.repo, opened: false };
  kept?.repo.close();
  kept = undefined;
  const repo = Repository.open(dir, limitsWith());
  kept = { dir, packs: packNames(repo), repo };
  return { repo, opened: true };
}

function releaseLater(): void {
  if (!kept) return;
  const k = kept;
  k.timer = setTimeout(() => { if (kept === k) { k.repo.close(); kept = undefined; } }, REUSE_MS);
  k.timer.unref();
}

if (!isMainThread && (workerData as { role?: string } | undefined)?.role === ROLE) {
  const port = parentPort!;
  let credit = WINDOW;
  let wake: (() => void) | undefined;
  let cancelled = -1;
  port.on('message', (m: ToThread) => {
    if ('job' in m) void run(m.job);
    else if ('credit' in m) { credit += m.credit; wake?.(); wake = undefined; }
    else { cancelled = m.cancel; wake?.(); wake = undefined; }
  });

  async function run(job: Job): Promise<void> {
    credit = WINDOW;
    const abort = new AbortController();
    try {
      const { repo, opened } = repositoryFor(job.repoDir);
      try {
        const archive = openArchive({ repoPath: job.repoDir, repository: repo, ref: job.commit, prefix: job.git.prefix });
        const h = job.kind === 'hash' ? createHash('sha256') : undefined;
        let bytes = 0;
        for await (const chunk of compressChunks(archive.chunks(), job.git.compression, job.git.level, abort.signal)) {
          if (cancelled === job.id) { abort.abort(); throw new SourcemeshError('E_INTERNAL', 'cancelled'); }
          bytes += chunk.length;
          if (h) { h.update(chunk); continue; }
          while (credit <= 0 && cancelled !== job.id) await new Promise<void>((resolve) => { wake = resolve; });
          if (cancelled === job.id) { abort.abort(); throw new SourcemeshError('E_INTERNAL', 'cancelled'); }
          credit--;
          // A copy of its own, so the transfer never detaches a buffer the archiver reuses.
          const own = new Uint8Array(chunk);
          port.postMessage({ id: job.id, chunk: own } satisfies FromThread, [own.buffer]);
        }
        port.postMessage({ id: job.id, done: true, threadId, opened, ...(h ? { sha256: h.digest('hex'), bytes } : {}) } satisfies FromThread);
      } finally {
        releaseLater();
      }
    } catch (err) {
      const e = err instanceof SourcemeshError ? err : new SourcemeshError('E_INTERNAL', (err as Error).message);
      port.postMessage({ id: job.id, error: { code: e.code, message: e.message } } satisfies FromThread);
    }
  }
}
