// A tar.gz made on two cores, as `git archive | gzip -n` is made by two processes: the thread that reads the
// objects and writes the tar hands its bytes, in batches, to a worker thread that runs our deflate (the same
// engine and gzip member as compress.ts's gzipChunks, so the bytes are the same) and sends the compressed
// bytes back. Batches are transferred, not copied, and come back with the output to be filled again: at
// most limits.archiveDeflateQueueBytes of tar are in flight, and the reader waits for a batch to come back
// when all are out (back-pressure). Time is then about max(reading, deflating) instead of their sum
// (docs/BENCHMARKS.md, bench:archive; docs/ARCHITECTURE.md, the archive reader).
//
// The same module is the worker: started with workerData.role === ROLE, it compresses what it is sent.
// It imports only the deflate engine, so the thread starts while the main thread opens the repository.
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { crc32 } from 'node:zlib';
import { SourcemeshError, type ErrorCode } from '../errors.ts';
import { gzipHeader, gzipTrailer } from './deflate/gzip-container.ts';
import { deflateParameters, type DeflateFlavour } from './deflate/levels.ts';
import { DeflateEngine } from './deflate/lz77.ts';

const ROLE = 'sourcemesh-gzip-thread';
/** Tar bytes per batch sent to the thread: few messages, and a short tail to deflate after the last one. */
export const GZIP_BATCH_BYTES = 256 * 1024;

type ToThread = { data: Uint8Array } | { end: true };
type Output = { out: Uint8Array[]; back?: Uint8Array; done?: true };
type FromThread = Output | { error: { code: string; message: string } };

export interface TarGzipOptions {
  flavour: DeflateFlavour;
  level: number;
  /** Tar bytes in flight to the thread at most (limits.archiveDeflateQueueBytes); at least one batch. */
  queueBytes: number;
  /** Deflate on a worker thread (default: when there is more than one core); false: on this thread. */
  thread?: boolean;
}

/** A tar.gz compressor, started before the tar exists: run() it once, or cancel() it. */
export interface TarGzip {
  /**
   * The gzip member of `tar`, byte-identical to compress.ts's gzipChunks(tar, flavour, level). Each chunk of
   * `tar` is handed to `used` once it has been copied (its producer may fill it again). Abandoning the
   * generator, or an error on either side, ends the thread.
   */
  run(tar: AsyncIterable<Uint8Array>, used?: (chunk: Uint8Array) => void): AsyncGenerator<Uint8Array>;
  /** End the thread without running (idempotent; also safe after run). */
  cancel(): Promise<void>;
  /** For tests: batches made, out at the thread, whether the reader waits for one, output not yet taken. */
  state(): { batches: number; atThread: number; feederWaiting: boolean; outputBytes: number };
}

/** Start the compressor now, so a thread's start-up overlaps whatever the caller does before the tar comes. */
export function startTarGzip(opts: TarGzipOptions): TarGzip {
  deflateParameters(opts.flavour, opts.level); // a bad level is a usage error here, not in the thread
  if (!(opts.thread ?? availableParallelism() > 1)) {
    return {
      async *run(tar) {
        const { gzipChunks } = await import('./compress.ts');
        yield* gzipChunks(tar, opts.flavour, opts.level);
      },
      cancel: async () => {},
      state: () => ({ batches: 0, atThread: 0, feederWaiting: false, outputBytes: 0 }),
    };
  }
  const worker = new Worker(new URL(import.meta.url), { workerData: { role: ROLE, flavour: opts.flavour, level: opts.level }, name: 'sm-gzip' });
  const batches = Math.max(1, Math.floor(opts.queueBytes / GZIP_BATCH_BYTES));
  // A batch is filled here, compressed there, and comes back with its output; it is filled again only once
  // that output has been taken by the consumer, so a slow consumer holds the reader back too.
  const free: Uint8Array[] = [];
  let made = 0;
  let atThread = 0;
  let feederWaiting = false;
  const outputs: { out: Uint8Array[]; back?: Uint8Array }[] = [];
  let outputBytes = 0;
  let finished = false;
  let failure: Error | undefined;
  // Wakes whichever side waits: the feeder for a free batch, the generator for output.
  let wakeFeeder: (() => void) | undefined;
  let wakeReader: (() => void) | undefined;
  const poke = () => {
    wakeFeeder?.(); wakeFeeder = undefined;
    wakeReader?.(); wakeReader = undefined;
  };
  const fail = (err: Error) => { failure ??= err; poke(); };
  worker.on('message', (m: FromThread) => {
    if ('error' in m) return fail(new SourcemeshError(m.error.code as ErrorCode, m.error.message));
    outputs.push({ out: m.out, back: m.back });
    for (const o of m.out) outputBytes += o.length;
    if (m.back) atThread--;
    if (m.done) finished = true;
    poke();
  });
  worker.on('error', (err) => fail(new SourcemeshError('E_INTERNAL', `the gzip thread failed: ${err.message}`, {}, { cause: err })));
  // Node delivers a thread's messages before its 'exit': an exit without `done` is a failure.
  worker.on('exit', (code) => { if (!finished) fail(new SourcemeshError('E_INTERNAL', `the gzip thread exited (${code}) before the end of the stream`)); });

  let stopped = false;
  let ran = false;
  const cancel = async () => {
    stopped = true;
    poke();
    await worker.terminate();
  };
  /** A batch to fill: a returned one, a new one while fewer than `batches` exist, else wait for one. */
  const takeBatch = async (): Promise<Uint8Array | undefined> => {
    for (;;) {
      if (failure || stopped) return undefined;
      const b = free.pop();
      if (b) return b;
      if (made < batches) { made++; return new Uint8Array(GZIP_BATCH_BYTES); }
      feederWaiting = true;
      await new Promise<void>((resolve) => { wakeFeeder = resolve; });
      feederWaiting = false;
    }
  };
  const send = (batch: Uint8Array, n: number) => {
    const data = n === batch.length ? batch : batch.subarray(0, n);
    worker.postMessage({ data } satisfies ToThread, [batch.buffer as ArrayBuffer]);
    atThread++;
  };
  const feed = async (tar: AsyncIterable<Uint8Array>, used?: (chunk: Uint8Array) => void) => {
    let batch: Uint8Array | undefined;
    let pos = 0;
    try {
      for await (const chunk of tar) {
        let from = 0;
        while (from < chunk.length) {
          batch ??= await takeBatch();
          if (!batch) return;
          const n = Math.min(chunk.length - from, batch.length - pos);
          batch.set(n === chunk.length ? chunk : chunk.subarray(from, from + n), pos);
          pos += n;
          from += n;
          if (pos === batch.length) { send(batch, pos); batch = undefined; pos = 0; }
        }
        used?.(chunk);
        if (failure || stopped) return;
      }
      if (batch && pos > 0) send(batch, pos);
      worker.postMessage({ end: true } satisfies ToThread);
    } catch (err) {
      fail(err instanceof Error ? err : new SourcemeshError('E_INTERNAL', String(err)));
    }
  };
  return {
    cancel,
    state: () => ({ batches: made, atThread, feederWaiting, outputBytes }),
    async *run(tar, used) {
      if (ran) throw new SourcemeshError('E_INTERNAL', 'a tar.gz compressor runs once');
      ran = true;
      const feeding = feed(tar, used);
      try {
        for (;;) {
          const next = outputs.shift();
          if (next) {
            for (const o of next.out) {
              yield o;
              outputBytes -= o.length;
            }
            if (next.back) { free.push(next.back); poke(); }
            continue;
          }
          if (failure) throw failure;
          if (finished) return;
          await new Promise<void>((resolve) => { wakeReader = resolve; });
        }
      } finally {
        stopped = true;
        poke();
        await feeding;
        await cancel();
      }
    },
  };
}

// ---- the thread's side ----

/** Transferred when it owns its whole ArrayBuffer; anything else (a view of a pool) is copied by postMessage. */
function transferable(chunks: Uint8Array[]): ArrayBuffer[] {
  const list: ArrayBuffer[] = [];
  for (const c of chunks) {
    if (c.byteOffset === 0 && c.byteLength === c.buffer.byteLength && c.buffer instanceof ArrayBuffer && !list.includes(c.buffer)) list.push(c.buffer);
  }
  return list;
}

if (!isMainThread && (workerData as { role?: string } | undefined)?.role === ROLE) {
  const port = parentPort!;
  const { flavour, level } = workerData as { flavour: DeflateFlavour; level: number };
  let pending: Uint8Array[] = [gzipHeader(level)];
  const engine = new DeflateEngine(deflateParameters(flavour, level), (bytes) => pending.push(bytes));
  let crc = 0;
  let size = 0;
  const post = (m: Output) => {
    const list = transferable(m.out);
    if (m.back) list.push(m.back.buffer as ArrayBuffer);
    port.postMessage(m, list);
  };
  port.on('message', (m: ToThread) => {
    try {
      if ('data' in m) {
        crc = crc32(m.data, crc);
        size += m.data.length;
        engine.write(m.data);
        const out = pending;
        pending = [];
        // The whole batch goes back to be filled again, whatever part of it was data.
        post({ out, back: new Uint8Array(m.data.buffer) });
      } else {
        engine.end();
        pending.push(gzipTrailer(crc, size));
        post({ out: pending, done: true });
        pending = [];
        port.close();
      }
    } catch (err) {
      const e = err instanceof SourcemeshError ? err : new SourcemeshError('E_INTERNAL', (err as Error).message);
      port.postMessage({ error: { code: e.code, message: e.message } } satisfies FromThread);
    }
  });
}
