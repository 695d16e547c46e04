// Snapshot derivations for the rebuilder on worker threads: our archiver and deflate are JavaScript on one
// thread, so several snapshots at once in one process take turns on it, while `git archive | gzip -n` runs
// as two processes per snapshot. A thread per job gives our derivation the same cores. A thread derives
// the tarball of (clone, commit, prefix, compression) exactly as the snapshot generator does
// (src/mirror/snapshot.ts, archiverGenerator: openArchive, then compressChunks) and answers its sha256
// and size; the bytes never cross threads.
//
// The same module is the worker: started with workerData.role === ROLE, it serves the messages below.
import { createHash } from 'node:crypto';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { compressChunks } from '../archive/compress.ts';
import { openArchive } from '../archive/index.ts';
import { SourcemeshError, type ErrorCode } from '../errors.ts';
import type { GitSource } from '../manifest/distfile.ts';

const ROLE = 'sourcemesh-derive';

interface Job { id: number; repoDir: string; commit: string; git: GitSource }
type Answer = { id: number; sha256: string; bytes: number } | { id: number; error: { code: string; message: string } };

/** A fixed number of threads, each deriving one snapshot at a time; end them with close(). */
export class DeriveThreads {
  readonly #idle: Worker[] = [];
  readonly #all: Worker[] = [];
  readonly #queue: { job: Job; resolve: (a: Answer) => void; reject: (e: Error) => void }[] = [];
  readonly #busy = new Map<Worker, { resolve: (a: Answer) => void; reject: (e: Error) => void }>();
  #seq = 0;

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const w = new Worker(new URL(import.meta.url), { workerData: { role: ROLE }, name: 'sm-derive' });
      w.on('message', (a: Answer) => {
        const waiting = this.#busy.get(w);
        this.#busy.delete(w);
        this.#idle.push(w);
        waiting?.resolve(a);
        this.#pump();
      });
      const fail = (err: Error) => {
        const waiting = this.#busy.get(w);
        this.#busy.delete(w);
        waiting?.reject(new SourcemeshError('E_INTERNAL', `a derivation thread failed: ${err.message}`, {}, { cause: err }));
      };
      w.on('error', fail);
      w.on('exit', (code) => { if (code !== 0) fail(new Error(`exit ${code}`)); });
      this.#all.push(w);
      this.#idle.push(w);
    }
  }

  /** The sha256 and size of the snapshot of `commit` in the clone `repoDir`, compressed as `git` says. */
  async hash(repoDir: string, commit: string, git: GitSource): Promise<{ sha256: string; bytes: number }> {
    const a = await new Promise<Answer>((resolve, reject) => {
      this.#queue.push({ job: { id: ++this.#seq, repoDir, commit, git }, resolve, reject });
      this.#pump();
    });
    if ('error' in a) throw new SourcemeshError(a.error.code as ErrorCode, a.error.message);
    return a;
  }

  #pump(): void {
    while (this.#idle.length && this.#queue.length) {
      const w = this.#idle.pop()!;
      const { job, resolve, reject } = this.#queue.shift()!;
      this.#busy.set(w, { resolve, reject });
      w.postMessage(job);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.#all.map((w) => w.terminate()));
  }
}

if (!isMainThread && (workerData as { role?: string } | undefined)?.role === ROLE) {
  parentPort!.on('message', async (job: Job) => {
    try {
      const archive = openArchive({ repoPath: job.repoDir, ref: job.commit, prefix: job.git.prefix });
      const h = createHash('sha256');
      let bytes = 0;
      try {
        for await (const chunk of compressChunks(archive.chunks(), job.git.compression, job.git.level)) {
          h.update(chunk);
          bytes += chunk.length;
        }
      } finally {
        archive.close();
      }
      parentPort!.postMessage({ id: job.id, sha256: h.digest('hex'), bytes } satisfies Answer);
    } catch (err) {
      const e = err instanceof SourcemeshError ? err : new SourcemeshError('E_INTERNAL', (err as Error).message);
      parentPort!.postMessage({ id: job.id, error: { code: e.code, message: e.message } } satisfies Answer);
    }
  });
}
