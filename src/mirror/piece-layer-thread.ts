// A file's BEP 52 piece map computed on a worker thread: mirror sync makes the piece layer of every file
// it publishes, a SHA-256 of each 16 KiB block, a whole second pass over the bytes after their SHA-256.
// On the main thread the files went one after another on one core; on threads, as many at once as the
// machine has cores (bench:node, docs/BENCHMARKS.md). The same module is the worker.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import { pieceMapOfFile, type PieceMap } from '../fetch/piece-map.ts';

const ROLE = 'sourcemesh-piece-layer';

type Reply = { ok: true; root: Uint8Array; layer: Uint8Array[] } | { ok: false; message: string; code?: string };

/** pieceMapOfFile(file, pieceLength), on a thread of its own for this file. */
export function pieceMapInThread(file: string, pieceLength: number): Promise<PieceMap> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const worker = new Worker(new URL(import.meta.url), { workerData: { role: ROLE, file, pieceLength } });
    worker.once('message', (r: Reply) => {
      answered = true;
      if (r.ok) resolve({ root: Buffer.from(r.root), pieceLength, layer: r.layer.map((h) => Buffer.from(h)) });
      // Our own errors cross the thread as their message and code; a system error (ENOENT, EIO...) as
      // its errno code, named like any other read of this file.
      else if (r.code?.startsWith('E_')) reject(new SourcemeshError(r.code as 'E_INTERNAL', r.message));
      else reject(fromSystemError(Object.assign(new Error(r.message), { code: r.code }), file));
    });
    worker.once('error', (err) => reject(new SourcemeshError('E_INTERNAL', `${file}: the piece-layer thread failed: ${err.message}`, {}, { cause: err })));
    worker.once('exit', (code) => {
      if (!answered) reject(new SourcemeshError('E_INTERNAL', `${file}: the piece-layer thread exited with ${code} before answering`));
    });
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) {
  const { file, pieceLength } = workerData as { file: string; pieceLength: number };
  try {
    const map = await pieceMapOfFile(file, pieceLength);
    parentPort!.postMessage({ ok: true, root: map.root, layer: map.layer } satisfies Reply);
  } catch (err) {
    const e = err as Error & { code?: string };
    parentPort!.postMessage({ ok: false, message: e.message, code: typeof e.code === 'string' ? e.code : undefined } satisfies Reply);
  }
}
