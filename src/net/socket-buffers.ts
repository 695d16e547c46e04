// Dead socket buffers are collected every few MiB received instead of when V8 gets round to them.
//
// Each read from a socket is a fresh buffer of up to 64 KiB (Node's stream reads, which undici's parser
// takes with socket.read()); a download hashes and writes it, or copies it into its piece, and then it is
// garbage. Its JavaScript object is a few dozen bytes, so young-generation collections, which free it, come
// only every 25-40 MB of socket data at 250 MB/s, and V8's external-memory trigger waits for 64 MB more. In
// between, the dead buffers are what a download's peak RSS is made of (docs/BENCHMARKS.md, issue 21: 33-42 MB
// of ArrayBuffers on a 1 GiB fetch, the JS heap itself 16-21 MB). A young-generation collection with
// nothing much alive in it costs some 0.2-0.4 ms; one every SOCKET_BYTES_PER_COLLECTION keeps the dead
// buffers to 5-13 MB (twice that many bytes at most: undici's socket.read() may join buffered reads into a
// new buffer), for some 0.1 s of CPU per GiB (measured: every 2 MiB, 522 collections took 0.22 s per GiB).
//
// A read still held at two young collections (queued in a write batch while the disk is busy, waiting in
// a piece's queue while the main thread hashes) is promoted to the old generation, and when it dies there
// only a full collection frees it: V8 starts one when external memory has grown by 64 MB, so with four
// downloads or four mirrors at once, 10-25 MB of dead promoted reads made the rest of the peak
// (docs/BENCHMARKS.md, issue 21: ArrayBuffers 16-20 MB at the peak of 20 x 50 MiB --jobs 4, 34-38 MB in a
// segmented fetch from four mirrors). So a full collection runs every SOCKET_BYTES_PER_FULL_COLLECTION:
// with a JS heap of some 20 MB it costs a few ms, ten or so per GiB; every 32 MiB measured slower.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Socket bytes received (all connections of the process together) between two young collections. */
export const SOCKET_BYTES_PER_COLLECTION = 4 << 20;
/** Socket bytes received between two full collections (dead reads that were promoted). */
export const SOCKET_BYTES_PER_FULL_COLLECTION = 96 << 20;

type Collect = (options: { type: 'minor' | 'major' }) => void;

let collect: Collect | null | undefined;
let received = 0;
let sinceFull = 0;

/**
 * V8's gc() taken once from a fresh context, with --expose-gc on only while that context is made (no
 * global gc() appears here or in threads started later). null where this V8 does not allow it: then
 * V8's own schedule stays, as before.
 */
function collector(): Collect | null {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
    return typeof gc === 'function' ? (gc as Collect) : null;
  } catch {
    return null;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

/**
 * Count `bytes` just read from a socket (and now handed on); collect the young generation every `every`
 * bytes, and the whole heap every `fullEvery`.
 */
export function socketBytesRead(bytes: number, every = SOCKET_BYTES_PER_COLLECTION, fullEvery = SOCKET_BYTES_PER_FULL_COLLECTION): void {
  received += bytes;
  if (received < every) return;
  sinceFull += received;
  received = 0;
  collect ??= collector();
  const full = sinceFull >= fullEvery;
  if (full) sinceFull = 0;
  collect?.({ type: full ? 'major' : 'minor' });
}

// Reads into memory of our own. A download agent's plain-HTTP connections read with net.Socket's `onread`
// into 64 KiB buffers of this module's (src/fetch/http.ts createAgent), each read handed to undici's parser
// as a view of its buffer, as a fresh read would be. undici keeps views of what it is given: the body is
// handed on as views (lib/dispatcher/client-h1.js wasm_on_body), header fields are held as views until the
// headers are complete, and a read the parser stopped in the middle of is put back into the socket
// (unshift) for later. So a buffer is read into again only when a consumer has said that it has copied
// every byte of the read (readDone: a piece read, src/fetch/range.ts); a read that held headers, or went
// to a consumer that keeps its chunks (a whole download's write batches), is never taken back and is
// garbage like any other read. Every chunk is still counted by socketBytesRead (src/fetch/http-body.ts):
// the collections it starts also free the other short-lived memory of a download. The swarm's peer wire
// reads into its own memory too (src/torrent/peer-wire.ts PeerReader), one buffer per connection, as
// every message is handled before its callback returns. Measured in docs/BENCHMARKS.md, bench:mirrors.
/** The size of one read, Node's own for a stream socket. */
export const OWNED_READ_BYTES = 64 << 10;
/** Read buffers kept for reuse while no connection reads into them. */
const OWNED_READS_KEPT = 16;

interface OwnedRead {
  /** Bytes of the latest read into it; -1 while it waits in `free`. */
  read: number;
  /** Of those, bytes a consumer has copied. */
  done: number;
}

const free: Buffer[] = [];
const owned = new WeakMap<ArrayBufferLike, OwnedRead>();

/**
 * net.Socket's `onread` option for a connection whose reads land in this module's memory: `buffer` gives
 * each read its memory (a buffer every byte of whose last read was copied, else a new one), `callback`
 * hands the read on to the socket's readers (undici's parser) as a view; its result is the socket's
 * backpressure (false: stop reading until undici reads, which starts it again).
 */
export const ownedReads = {
  buffer(): Buffer {
    const b = free.pop();
    if (b) return b;
    const fresh = Buffer.allocUnsafeSlow(OWNED_READ_BYTES);
    owned.set(fresh.buffer, { read: -1, done: 0 });
    return fresh;
  },
  callback(this: { push(chunk: Buffer): boolean }, n: number, buf: Uint8Array): boolean {
    const r = owned.get(buf.buffer)!;
    r.read = n;
    r.done = 0;
    return this.push(Buffer.from(buf.buffer, buf.byteOffset, n));
  },
};

/**
 * The consumer has copied `chunk` (a view handed on from a read) and keeps no reference to it. Once every
 * byte of a read is done, its memory is read into again. Each chunk is told once.
 */
export function readDone(chunk: Uint8Array): void {
  const r = owned.get(chunk.buffer);
  if (!r || r.read < 0) return;
  r.done += chunk.length;
  if (r.done === r.read) {
    r.read = -1;
    if (free.length < OWNED_READS_KEPT) free.push(Buffer.from(chunk.buffer, 0, OWNED_READ_BYTES));
  }
}
