// Inflating many small zlib streams fast (every packed object and loose object is one).
//
// zlib.inflateSync builds a whole stream object (a Transform with its states and a native handle) per call;
// with tens of thousands of small objects that setup and the garbage it leaves cost as much as inflating.
// Here one native handle is reset and reused, driven the way Node's own inflateSync drives it (lib/zlib.js,
// processChunkSync): writeSync(Z_FINISH, input, output), then the handle's write state holds the bytes of
// output and input left. These are Node internals (`_handle`, `_writeState`), so their presence is checked
// and zlib.inflateSync is used when they are missing; test/archive checks both paths give the same results.

import zlib from 'node:zlib';
import { corrupt, type What } from './object-id.ts';

interface NativeHandle {
  writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void;
  reset(): void;
  onerror: (message: string, errno: number) => void;
}

type InternalInflate = zlib.Inflate & { _handle?: NativeHandle | null; _writeState?: Uint32Array };

let reusable: boolean | null = null;
let current: InternalInflate | null = null;
/** For tests and profiles: zlib streams inflated on the reused handle. */
export const reusedHandleStats = { streams: 0 };
/** Set by the handle's error callback, which the native side calls synchronously during writeSync. */
let failure: string | null = null;

function fresh(): InternalInflate | null {
  const s = zlib.createInflate() as InternalInflate;
  // A stream that failed would be destroyed by Node's own error callback; ours only records the message, so
  // that the handle can be reset and reused. The stream's 'error' event is never emitted then.
  s.on('error', () => {});
  const h = s._handle;
  if (!h || typeof h.writeSync !== 'function' || typeof h.reset !== 'function' || !(s._writeState instanceof Uint32Array)) {
    s.destroy();
    return null;
  }
  h.onerror = (message: string) => {
    failure = message;
  };
  return s;
}

/** For tests: force the public-API path (false) or the reused handle (true), or restore detection (null). */
export function useReusedHandle(on: boolean | null): void {
  reusable = on;
  current?.destroy();
  current = null;
}

/** zlib-inflate `input` (trailing bytes ignored) to exactly `size` bytes; E_ARCHIVE otherwise. */
export function inflateExact(input: Buffer, size: number, what: What): Buffer {
  // One spare byte: a stream longer than declared fills it instead of stopping exactly at the end.
  const out = Buffer.allocUnsafe(size + 1);
  if (!inflateWithHandle(input, size, out, 0, what)) return viaPublicApi(input, size, what);
  return out.subarray(0, size);
}

/** Inflate into out[at, at + size + 1): the content, then one byte of scratch. */
export function inflateInto(input: Buffer, size: number, out: Buffer, at: number, what: What): void {
  if (!inflateWithHandle(input, size, out, at, what)) viaPublicApi(input, size, what).copy(out, at);
}

/** False when the reusable handle is not available (then nothing was written). */
function inflateWithHandle(input: Buffer, size: number, out: Buffer, at: number, what: What): boolean {
  if (reusable === false) return false;
  if (!current) current = fresh();
  if (reusable === null) reusable = current !== null;
  if (!current) return false;
  const handle = current._handle!;
  handle.reset();
  failure = null;
  reusedHandleStats.streams++;
  handle.writeSync(zlib.constants.Z_FINISH, input, 0, input.length, out, at, size + 1);
  if (failure !== null) {
    const message = failure;
    failure = null;
    // Start over with a new handle rather than trust one that failed.
    current.destroy();
    current = null;
    throw corrupt(what, `zlib data is corrupt (${message})`);
  }
  const produced = size + 1 - current._writeState![0]!;
  if (produced > size) throw corrupt(what, `inflates to more than its declared ${size} bytes`);
  if (produced !== size) throw corrupt(what, `inflates to ${produced} bytes, ${size} declared`);
  return true;
}
/** Longest header a headed stream may have ("commit " and 16 digits and the NUL is 24). */
export const HEAD_PROBE_BYTES = 32;
/** The header of a headed stream, as `parse` read it: its length, and the size of the content after it. */
export interface StreamHead {
  headerLength: number;
  size: number;
}

/**
 * A loose object's zlib stream, "<header>\0<content>", on the reused handle (issue 14: zlib.inflateSync
 * made a stream and a native handle per loose object, where packed objects reuse one): up to
 * HEAD_PROBE_BYTES are inflated first and handed to `parse`, which returns the header or throws; then, when
 * `wantContent` accepts the declared size (the caller's bound, checked before anything is allocated for
 * it), the rest is inflated on the same handle into a buffer of exactly that size plus the spare byte.
 * Returns the header and the content (null when not wanted), or null when the handle is unavailable (then
 * nothing was decided and the caller uses Node's public API).
 */
export function inflateHeaded<H extends StreamHead>(input: Buffer, parse: (head: Buffer) => H, wantContent: (h: H) => boolean, what: What): { head: H; content: Buffer | null } | null {
  if (reusable === false) return null;
  if (!current) current = fresh();
  if (reusable === null) reusable = current !== null;
  if (!current) return null;
  const handle = current._handle!;
  const state = current._writeState!;
  const fail = (): never => {
    const message = failure;
    failure = null;
    current?.destroy();
    current = null;
    throw corrupt(what, `zlib data is corrupt (${message})`);
  };
  handle.reset();
  failure = null;
  reusedHandleStats.streams++;
  const probe = Buffer.allocUnsafe(HEAD_PROBE_BYTES);
  // Z_SYNC_FLUSH: as much output as fits, without the end-of-stream check a short output would fail.
  handle.writeSync(zlib.constants.Z_SYNC_FLUSH, input, 0, input.length, probe, 0, HEAD_PROBE_BYTES);
  if (failure !== null) fail();
  const got = HEAD_PROBE_BYTES - state[0]!;
  const consumed = input.length - state[1]!;
  const head = parse(probe.subarray(0, got));
  if (!wantContent(head)) return { head, content: null };
  const size = head.size;
  const early = got - head.headerLength;
  if (early > size) throw corrupt(what, `inflates to more than its declared ${size} bytes`);
  const out = Buffer.allocUnsafe(size + 1);
  probe.copy(out, 0, head.headerLength, got);
  handle.writeSync(zlib.constants.Z_FINISH, input, consumed, input.length - consumed, out, early, size + 1 - early);
  if (failure !== null) fail();
  const produced = early + (size + 1 - early - state[0]!);
  if (produced > size) throw corrupt(what, `inflates to more than its declared ${size} bytes`);
  if (produced !== size) throw corrupt(what, `inflates to ${produced} bytes, ${size} declared`);
  return { head, content: out.subarray(0, size) };
}

function viaPublicApi(input: Buffer, size: number, name: What): Buffer {
  let out: Buffer;
  try {
    // One output buffer with a spare byte: Node's default 16 KiB chunks would be concatenated (a copy).
    out = zlib.inflateSync(input, { maxOutputLength: Math.max(size, 1), chunkSize: Math.max(64, size + 1) });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e?.code === 'ERR_BUFFER_TOO_LARGE') throw corrupt(name, `inflates to more than its declared ${size} bytes`, {}, err);
    throw corrupt(name, `zlib data is corrupt (${e?.message ?? String(err)})`, {}, err);
  }
  if (out.length !== size) throw corrupt(name, `inflates to ${out.length} bytes, ${size} declared`);
  return out;
}

/** Output chunks of a streamed inflate (a large blob): each is handed on to the tar as it is. */
const STREAM_OUTPUT_BYTES = 1 << 20;

/**
 * zlib-inflate the input `read` gives (a block at a time, null at its end) as a synchronous stream of
 * output chunks of up to 1 MiB, skipping the first `skip` bytes of output; the output after them must be
 * exactly `size` bytes, and more is refused as soon as it appears. For blobs too large to hold (issue 14:
 * before, every large blob went through a file stream and an async zlib stream on the thread pool). It
 * uses a handle of its own, since the consumer may read other objects between two chunks. Null when the
 * handle's internals are missing (then the caller uses Node's async stream).
 */
export function inflateChunks(read: () => Buffer | null, skip: number, size: number, what: What): Generator<Buffer> | null {
  if (reusable === false) return null;
  const own = fresh();
  if (!own) return null;
  return (function* () {
    const handle = own._handle!;
    const state = own._writeState!;
    let toSkip = skip;
    let seen = 0;
    let out = Buffer.allocUnsafe(Math.min(STREAM_OUTPUT_BYTES, skip + size + 1));
    let outPos = 0;
    try {
      let ended = false;
      for (let input = read(); input && !ended; input = read()) {
        let inOff = 0;
        let inLen = input.length;
        for (;;) {
          failure = null;
          handle.writeSync(zlib.constants.Z_NO_FLUSH, input, inOff, inLen, out, outPos, out.length - outPos);
          if (failure !== null) throw corrupt(what, `zlib data is corrupt (${failure})`);
          const produced = out.length - outPos - state[0]!;
          const consumed = inLen - state[1]!;
          outPos += produced;
          inOff += consumed;
          inLen -= consumed;
          // Output counted as it appears: a stream that inflates to more than declared stops here.
          if (outPos === out.length || (produced === 0 && consumed === 0)) {
            let chunk = out.subarray(0, outPos);
            if (toSkip > 0) {
              const n = Math.min(toSkip, chunk.length);
              toSkip -= n;
              chunk = chunk.subarray(n);
            }
            seen += chunk.length;
            if (seen > size) throw corrupt(what, `inflates to more than its declared ${size} bytes`);
            if (chunk.length > 0) yield chunk;
            out = Buffer.allocUnsafe(Math.min(STREAM_OUTPUT_BYTES, Math.max(1, skip + size + 1 - seen)));
            outPos = 0;
          }
          // No progress with input left: the zlib stream has ended (what follows it is not ours).
          if (produced === 0 && consumed === 0) {
            ended = inLen > 0;
            break;
          }
          if (inLen === 0 && outPos < out.length) break;
        }
      }
      let chunk = out.subarray(0, outPos);
      if (toSkip > 0) chunk = chunk.subarray(Math.min(toSkip, chunk.length));
      seen += chunk.length;
      if (seen > size) throw corrupt(what, `inflates to more than its declared ${size} bytes`);
      if (chunk.length > 0) yield chunk;
      if (seen !== size) throw corrupt(what, `inflates to ${seen} bytes, ${size} declared`);
    } finally {
      failure = null;
      own.destroy();
    }
  })();
}

