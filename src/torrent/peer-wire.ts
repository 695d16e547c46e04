// What we add to the v1 peer wire of `bittorrent-protocol` (src/torrent/wire.ts): a guard that bounds
// every message a peer sends before the library buffers it, and the BEP 52 hash messages (21 hash
// request, 22 hashes, 23 hash reject), whose payload starts with the same 48 bytes: pieces root (32),
// base layer, index, length, proof layers (4 each, big-endian). Pure, apart from the Transform and the
// count of bytes read that paces collections of dead socket reads (src/net/socket-buffers.ts).
import { Transform, type TransformCallback } from 'node:stream';
import { socketBytesRead } from '../net/socket-buffers.ts';

export const HASH_REQUEST = 21;
export const HASHES = 22;
export const HASH_REJECT = 23;
const HANDSHAKE_BYTES = 68; // 1 + "BitTorrent protocol" + 8 reserved + 20 info-hash + 20 peer id

export interface HashRequest {
  root: Buffer;
  base: number;
  index: number;
  length: number;
  proofLayers: number;
}

/** A hash request payload (the message without its length and id); undefined when malformed. */
export function parseHashRequest(payload: Uint8Array): HashRequest | undefined {
  if (payload.length !== 48) return undefined;
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  return { root: Buffer.from(b.subarray(0, 32)), base: b.readUInt32BE(32), index: b.readUInt32BE(36), length: b.readUInt32BE(40), proofLayers: b.readUInt32BE(44) };
}

/** The 48-byte header of messages 21, 22 and 23, followed by `hashes` (for 22). */
export function hashMessagePayload(r: HashRequest, hashes: Buffer[] = []): Buffer {
  const head = Buffer.alloc(48);
  r.root.copy(head, 0);
  head.writeUInt32BE(r.base, 32);
  head.writeUInt32BE(r.index, 36);
  head.writeUInt32BE(r.length, 40);
  head.writeUInt32BE(r.proofLayers, 44);
  return Buffer.concat([head, ...hashes]);
}

/**
 * Cuts a peer's byte stream into the handshake and whole messages, each at most `maxMessage` bytes: a
 * larger length prefix (attacker-controlled, up to 4 GiB) ends the stream with `onViolation` before any
 * of it is buffered. Without this, the wire library would buffer whatever length a peer announces. An
 * empty reason: a connection to close without blame.
 *
 * `out` gets the handshake's bytes (`handshake` true), then whole messages: those that lie whole in a
 * chunk as one view of it, not copied; a message cut between chunks once it is complete, put together in
 * memory of its own size, taken once its length prefix is known (and checked). Copying each chunk onto
 * the rest of the last one cost an allocation and a copy of every byte a peer sent (docs/BENCHMARKS.md,
 * bench:swarm). With `reuse`, `out` consumes what it is given before it returns (the chunks are memory
 * read into again, see PeerReader), and the memory of a cut message up to REUSED_MESSAGE_BYTES is kept
 * for the next one.
 */
export class MessageFramer {
  /** A message cut between chunks: its bytes so far (length prefix included) and how many. */
  private partial?: Buffer;
  private filled = 0;
  /** Memory for the next cut message (`reuse`). */
  private spare?: Buffer;
  /** The first bytes of a length prefix cut between chunks. */
  private readonly head = Buffer.alloc(4);
  private headFilled = 0;
  private handshakeLeft = HANDSHAKE_BYTES;
  private stopped = false;
  private readonly maxMessage: number;
  private readonly onViolation: (why: string) => void;
  private readonly out: (bytes: Buffer, handshake: boolean) => void;
  private readonly reuse: boolean;

  constructor(maxMessage: number, onViolation: (why: string) => void, out: (bytes: Buffer, handshake: boolean) => void, reuse = false) {
    this.maxMessage = maxMessage;
    this.onViolation = onViolation;
    this.out = out;
    this.reuse = reuse;
  }

  feed(chunk: Buffer): void {
    let data = chunk;
    if (data.length === 0 || this.stopped) return;
    if (this.handshakeLeft > 0) {
      const take = Math.min(this.handshakeLeft, data.length);
      // Not the plaintext handshake: most often an encrypted one (MSE), which clients retry in plaintext;
      // the connection ends, without blame.
      if (this.handshakeLeft === HANDSHAKE_BYTES && data[0] !== 19) {
        this.stopped = true;
        this.onViolation('');
        return;
      }
      this.out(data.subarray(0, take), true);
      this.handshakeLeft -= take;
      data = data.subarray(take);
    }
    let at = 0;
    // The rest of a message cut at the end of the last chunk.
    if (this.partial) {
      const n = Math.min(this.partial.length - this.filled, data.length);
      data.copy(this.partial, this.filled, 0, n);
      this.filled += n;
      at = n;
      if (this.filled < this.partial.length) return;
      const whole = this.partial;
      this.partial = undefined;
      this.out(whole, false);
    } else if (this.headFilled > 0) {
      const n = Math.min(4 - this.headFilled, data.length);
      data.copy(this.head, this.headFilled, 0, n);
      this.headFilled += n;
      at = n;
      if (this.headFilled < 4) return;
      this.headFilled = 0;
      if (!this.begin(this.head, 0)) return;
      return this.feed(data.subarray(at));
    }
    if (this.stopped) return;
    // Whole messages: one view of the chunk.
    let end = at;
    while (data.length - end >= 4) {
      const len = data.readUInt32BE(end);
      if (len > this.maxMessage) {
        if (end > at) this.out(data.subarray(at, end), false);
        this.violate(len);
        return;
      }
      if (data.length - end < 4 + len) break;
      end += 4 + len;
    }
    if (end > at) this.out(data.subarray(at, end), false);
    if (this.stopped) return;
    const rest = data.length - end;
    if (rest >= 4) {
      this.begin(data, end);
      data.copy(this.partial!, 0, end);
      this.filled = rest;
    } else if (rest > 0) {
      data.copy(this.head, 0, end);
      this.headFilled = rest;
    }
  }

  /** Stop: nothing more is passed on (the connection is closing). */
  stop(): void {
    this.stopped = true;
  }

  /** A message whose length prefix is at `b[at..at+4]` starts: memory for all of it, once its length passed. */
  private begin(b: Buffer, at: number): boolean {
    const len = b.readUInt32BE(at);
    if (len > this.maxMessage) {
      this.violate(len);
      return false;
    }
    if (this.reuse && this.spare && this.spare.length >= 4 + len) this.partial = this.spare.subarray(0, 4 + len);
    else {
      this.partial = Buffer.allocUnsafe(4 + len);
      if (this.reuse && 4 + len <= REUSED_MESSAGE_BYTES) this.spare = this.partial;
    }
    b.copy(this.partial, 0, at, at + 4);
    this.filled = 4;
    if (len === 0) {
      // A keep-alive cut after its prefix: whole already.
      const whole = this.partial;
      this.partial = undefined;
      this.out(whole, false);
    }
    return true;
  }

  private violate(len: number): void {
    this.stopped = true;
    this.onViolation(`a message of ${len} bytes (at most ${this.maxMessage})`);
  }
}

/** Cut messages up to this size (a 16 KiB block and its header, with room) are put together in memory kept for the next (PeerReader). */
const REUSED_MESSAGE_BYTES = 64 * 1024;

/**
 * The framer as a stream, for connections whose reads are fresh memory (a seeder's: net.Server cannot
 * read into memory of ours): passes the handshake and whole messages on, as MessageFramer cuts them.
 */
export class MessageGuard extends Transform {
  private readonly framer: MessageFramer;

  constructor(maxMessage: number, onViolation: (why: string) => void) {
    super();
    this.framer = new MessageFramer(maxMessage, onViolation, (bytes) => this.push(bytes));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    // Each chunk is a fresh socket read, garbage once its messages are handled: counted like an HTTP body's.
    socketBytesRead(chunk.length);
    this.framer.feed(chunk);
    done();
  }
}

/** BEP 3 `piece`: <len><id 7><index><begin><block>. */
const PIECE = 7;

/**
 * The receiving side of a connection we open, read into memory of our own (net.Socket's `onread`: every
 * read lands in `buffer`, read into again by the next one), so that nothing is allocated per read and no
 * dead socket read waits for a collection (docs/BENCHMARKS.md, bench:swarm, leecher peak RSS). Messages
 * are cut and bounded by MessageFramer; each `piece` message is handed to `piece` as a view of its block,
 * good only during the call (the caller copies it where it belongs); the handshake and every other
 * message are copied, a run of them at a time, and handed to `other` (the wire library parses them).
 */
export class PeerReader {
  readonly buffer: Buffer;
  private readonly framer: MessageFramer;
  private readonly piece: (index: number, begin: number, block: Buffer) => void;
  private readonly other: (bytes: Buffer) => void;

  constructor(maxMessage: number, readBytes: number, onViolation: (why: string) => void, piece: (index: number, begin: number, block: Buffer) => void, other: (bytes: Buffer) => void) {
    this.buffer = Buffer.allocUnsafeSlow(readBytes);
    this.piece = piece;
    this.other = other;
    this.framer = new MessageFramer(maxMessage, onViolation, (bytes, handshake) => this.messages(bytes, handshake), true);
  }

  /** net.Socket's `onread` callback: `n` bytes were read into `buffer`. */
  read(n: number): void {
    this.framer.feed(this.buffer.subarray(0, n));
  }

  stop(): void {
    this.framer.stop();
  }

  /** Whole messages (or handshake bytes) as the framer passes them: pieces apart, the rest copied in runs. */
  private messages(bytes: Buffer, handshake: boolean): void {
    if (handshake) return this.other(Buffer.from(bytes));
    let run = 0;
    for (let at = 0; at < bytes.length;) {
      const len = bytes.readUInt32BE(at);
      if (len >= 9 && bytes[at + 4] === PIECE) {
        if (at > run) this.other(Buffer.from(bytes.subarray(run, at)));
        this.piece(bytes.readUInt32BE(at + 5), bytes.readUInt32BE(at + 9), bytes.subarray(at + 13, at + 4 + len));
        run = at + 4 + len;
      }
      at += 4 + len;
    }
    if (bytes.length > run) this.other(Buffer.from(bytes.subarray(run)));
  }
}

/** Bit `i` of a BEP 3 bitfield (the high bit of the first byte is piece 0). */
export function bitSet(bits: Uint8Array, i: number): boolean {
  return ((bits[i >> 3] ?? 0) & (0x80 >> (i & 7))) !== 0;
}

/** Set bit `i` of a BEP 3 bitfield. */
export function setBit(bits: Uint8Array, i: number): void {
  bits[i >> 3]! |= 0x80 >> (i & 7);
}

/** A bitfield with the first `pieces` bits set (BEP 3: spare bits at the end are zero). */
export function fullBitfield(pieces: number): Uint8Array {
  const b = new Uint8Array(Math.ceil(pieces / 8)).fill(0xff);
  if (pieces % 8) b[b.length - 1] = (0xff << (8 - (pieces % 8))) & 0xff;
  return b;
}
