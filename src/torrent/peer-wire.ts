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
 */
export class MessageGuard extends Transform {
  private pending: Buffer = Buffer.alloc(0);
  private handshakeLeft = HANDSHAKE_BYTES;
  private readonly maxMessage: number;
  private readonly onViolation: (why: string) => void;

  constructor(maxMessage: number, onViolation: (why: string) => void) {
    super();
    this.maxMessage = maxMessage;
    this.onViolation = onViolation;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let data = chunk;
    if (data.length === 0) return done();
    if (this.handshakeLeft > 0) {
      const take = Math.min(this.handshakeLeft, data.length);
      // Not the plaintext handshake: most often an encrypted one (MSE), which clients retry in plaintext;
      // the connection ends, without blame.
      if (this.handshakeLeft === HANDSHAKE_BYTES && data[0] !== 19) {
        this.onViolation('');
        return done();
      }
      this.push(data.subarray(0, take));
      this.handshakeLeft -= take;
      data = data.subarray(take);
    }
    this.pending = this.pending.length ? Buffer.concat([this.pending, data]) : data;
    let at = 0;
    while (this.pending.length - at >= 4) {
      const len = this.pending.readUInt32BE(at);
      if (len > this.maxMessage) return this.violate(`a message of ${len} bytes (at most ${this.maxMessage})`, done);
      if (this.pending.length - at < 4 + len) break;
      at += 4 + len;
    }
    if (at > 0) this.push(this.pending.subarray(0, at));
    this.pending = Buffer.from(this.pending.subarray(at));
    done();
  }

  private violate(why: string, done: TransformCallback): void {
    this.onViolation(why);
    done();
  }
}

/** A bitfield with the first `pieces` bits set (BEP 3: spare bits at the end are zero). */
export function fullBitfield(pieces: number): Uint8Array {
  const b = new Uint8Array(Math.ceil(pieces / 8)).fill(0xff);
  if (pieces % 8) b[b.length - 1] = (0xff << (8 - (pieces % 8))) & 0xff;
  return b;
}
