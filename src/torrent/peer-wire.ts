// What we add to the v1 peer wire of `bittorrent-protocol` (src/torrent/wire.ts): a guard that bounds
// every message a peer sends before the library buffers it, and the BEP 52 hash messages (21 hash
// request, 22 hashes, 23 hash reject), whose payload starts with the same 48 bytes: pieces root (32),
// base layer, index, length, proof layers (4 each, big-endian). Pure, apart from the Transform.
import { Transform, type TransformCallback } from 'node:stream';

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
 * Passes the handshake, then whole messages only, each at most `maxMessage` bytes: a larger length
 * prefix (attacker-controlled, up to 4 GiB) ends the connection with `onViolation` before any of it is
 * buffered. Without this, the wire library would buffer whatever length a peer announces. An empty
 * reason: a connection to close without blame.
 *
 * The messages that lie whole in a chunk are passed on as one view of it, not copied; only a message cut
 * between chunks is put together, in memory of its own size, taken once its length prefix is known (and
 * checked). Copying each chunk onto the rest of the last one cost an allocation and a copy of every byte
 * a peer sent (docs/BENCHMARKS.md, bench:swarm).
 */
export class MessageGuard extends Transform {
  /** A message cut between chunks: its bytes so far (length prefix included) and how many. */
  private partial?: Buffer;
  private filled = 0;
  /** The first bytes of a length prefix cut between chunks. */
  private readonly head = Buffer.alloc(4);
  private headFilled = 0;
  private handshakeLeft = HANDSHAKE_BYTES;
  private stopped = false;
  private readonly maxMessage: number;
  private readonly onViolation: (why: string) => void;

  constructor(maxMessage: number, onViolation: (why: string) => void) {
    super();
    this.maxMessage = maxMessage;
    this.onViolation = onViolation;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let data = chunk;
    if (data.length === 0 || this.stopped) return done();
    if (this.handshakeLeft > 0) {
      const take = Math.min(this.handshakeLeft, data.length);
      // Not the plaintext handshake: most often an encrypted one (MSE), which clients retry in plaintext;
      // the connection ends, without blame.
      if (this.handshakeLeft === HANDSHAKE_BYTES && data[0] !== 19) {
        this.stopped = true;
        this.onViolation('');
        return done();
      }
      this.push(data.subarray(0, take));
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
      if (this.filled < this.partial.length) return done();
      this.push(this.partial);
      this.partial = undefined;
    } else if (this.headFilled > 0) {
      const n = Math.min(4 - this.headFilled, data.length);
      data.copy(this.head, this.headFilled, 0, n);
      this.headFilled += n;
      at = n;
      if (this.headFilled < 4) return done();
      this.headFilled = 0;
      if (!this.begin(this.head, 0)) return done();
      return this._transform(data.subarray(at), _enc, done);
    }
    // Whole messages: one view of the chunk.
    let end = at;
    while (data.length - end >= 4) {
      const len = data.readUInt32BE(end);
      if (len > this.maxMessage) {
        if (end > at) this.push(data.subarray(at, end));
        this.violate(len);
        return done();
      }
      if (data.length - end < 4 + len) break;
      end += 4 + len;
    }
    if (end > at) this.push(data.subarray(at, end));
    const rest = data.length - end;
    if (rest >= 4) {
      this.begin(data, end);
      data.copy(this.partial!, 0, end);
      this.filled = rest;
    } else if (rest > 0) {
      data.copy(this.head, 0, end);
      this.headFilled = rest;
    }
    done();
  }

  /** A message whose length prefix is at `b[at..at+4]` starts: memory for all of it, once its length passed. */
  private begin(b: Buffer, at: number): boolean {
    const len = b.readUInt32BE(at);
    if (len > this.maxMessage) {
      this.violate(len);
      return false;
    }
    this.partial = Buffer.allocUnsafe(4 + len);
    b.copy(this.partial, 0, at, at + 4);
    this.filled = 4;
    if (len === 0) {
      // A keep-alive cut after its prefix: whole already.
      this.push(this.partial);
      this.partial = undefined;
    }
    return true;
  }

  private violate(len: number): void {
    this.stopped = true;
    this.onViolation(`a message of ${len} bytes (at most ${this.maxMessage})`);
  }
}

/** A bitfield with the first `pieces` bits set (BEP 3: spare bits at the end are zero). */
export function fullBitfield(pieces: number): Uint8Array {
  const b = new Uint8Array(Math.ceil(pieces / 8)).fill(0xff);
  if (pieces % 8) b[b.length - 1] = (0xff << (8 - (pieces % 8))) & 0xff;
  return b;
}
