// Roughtime messages and packets (RFC 10049, published from draft-ietf-ntp-roughtime-19, "Message
// Format" and "Protocol Details"): a message is a map of 4-byte tags to values; its header is the number
// of pairs N, N-1 offsets and N tags, all little-endian uint32, tags strictly ascending, offsets multiples
// of four and ascending; a packet is "ROUGHTIM", the message length (uint32) and the message. Pure and
// bounded: every datagram is attacker-controlled, so counts are checked before anything is allocated.
import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';

/** A tag as a uint32: its ASCII bytes read little-endian ("NONC" is 0x434e4f4e), as the RFC's registry lists them. */
export const TAG = {
  SIG: 0x00474953,
  VER: 0x00524556,
  SRV: 0x00565253,
  NONC: 0x434e4f4e,
  DELE: 0x454c4544,
  TYPE: 0x45505954,
  PATH: 0x48544150,
  RADI: 0x49444152,
  PUBK: 0x4b425550,
  MIDP: 0x5044494d,
  SREP: 0x50455253,
  VERS: 0x53524556,
  MINT: 0x544e494d,
  ROOT: 0x544f4f52,
  CERT: 0x54524543,
  MAXT: 0x5458414d,
  INDX: 0x58444e49,
  ZZZZ: 0x5a5a5a5a,
} as const;

/** "ROUGHTIM", the first 8 bytes of every packet (the uint64 0x4d49544847554f52, little-endian). */
export const MAGIC = Buffer.from('ROUGHTIM', 'latin1');
export const PACKET_HEADER_BYTES = 12;

export type RoughtimeLimits = Pick<Limits, 'roughtimePacketBytes' | 'roughtimeTags'>;

/** A decoded message: values by tag, views into the input (no copies). */
export type Message = ReadonlyMap<number, Buffer>;

export function tagName(tag: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(tag >>> 0);
  const s = b.toString('latin1').replace(/\0+$/, '');
  return /^[A-Z]{1,4}$/.test(s) ? s : `0x${(tag >>> 0).toString(16).padStart(8, '0')}`;
}

function formatError(what: string, why: string): SourcemeshError {
  return new SourcemeshError('E_FORMAT', `${what}: ${why}`);
}

/** Encode a message; the pairs are sorted by tag (the RFC's order), each value a multiple of 4 bytes. */
export function encodeMessage(pairs: Iterable<readonly [number, Uint8Array]>): Buffer {
  const sorted = [...pairs].sort((a, b) => a[0] - b[0]);
  const n = sorted.length;
  if (n === 0) throw new SourcemeshError('E_INTERNAL', 'a Roughtime message has at least one tag');
  let body = 0;
  for (let i = 0; i < n; i++) {
    const [tag, value] = sorted[i]!;
    if (i > 0 && sorted[i - 1]![0] === tag) throw new SourcemeshError('E_INTERNAL', `tag ${tagName(tag)} twice in one message`);
    if (value.length % 4 !== 0) throw new SourcemeshError('E_INTERNAL', `value of ${tagName(tag)} is ${value.length} bytes, not a multiple of 4`);
    body += value.length;
  }
  const header = 8 * n;
  const out = Buffer.allocUnsafe(header + body);
  out.writeUInt32LE(n, 0);
  let offset = 0;
  for (let i = 0; i < n; i++) {
    if (i > 0) out.writeUInt32LE(offset, 4 * i);
    out.writeUInt32LE(sorted[i]![0] >>> 0, 4 * n + 4 * i);
    out.set(sorted[i]![1], header + offset);
    offset += sorted[i]![1].length;
  }
  return out;
}

/** Decode a message, checking the header as the RFC requires; `what` names it in errors. */
export function decodeMessage(buf: Uint8Array, what: string, limits: Pick<Limits, 'roughtimeTags'> = LIMITS): Message {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 4 || b.length % 4 !== 0) throw formatError(what, `a message is a multiple of 4 bytes and at least 4, not ${b.length}`);
  const n = b.readUInt32LE(0);
  if (n === 0) throw formatError(what, 'a message with no tags');
  if (n > limits.roughtimeTags) throw formatError(what, `${n} tags; at most ${limits.roughtimeTags} are accepted`);
  const header = 8 * n;
  if (header > b.length) throw formatError(what, `the header of ${n} tags needs ${header} bytes, the message has ${b.length}`);
  const bodyBytes = b.length - header;
  const out = new Map<number, Buffer>();
  let prevTag = -1;
  let prevOffset = 0;
  for (let i = 0; i < n; i++) {
    const tag = b.readUInt32LE(4 * n + 4 * i);
    if (tag <= prevTag) throw formatError(what, `tag ${tagName(tag)} after ${tagName(prevTag)}: tags must be strictly ascending`);
    const start = i === 0 ? 0 : b.readUInt32LE(4 * i);
    const end = i === n - 1 ? bodyBytes : b.readUInt32LE(4 * (i + 1));
    if (start % 4 !== 0 || end % 4 !== 0) throw formatError(what, `offset of ${tagName(tag)} is not a multiple of 4`);
    if (start < prevOffset || end < start || end > bodyBytes) throw formatError(what, `value of ${tagName(tag)} at ${start}..${end} is outside the ${bodyBytes}-byte body or out of order`);
    out.set(tag, b.subarray(header + start, header + end));
    prevTag = tag;
    prevOffset = start;
  }
  return out;
}

/** Frame a message as a packet. */
export function encodePacket(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(PACKET_HEADER_BYTES + message.length);
  MAGIC.copy(out, 0);
  out.writeUInt32LE(message.length, 8);
  out.set(message, PACKET_HEADER_BYTES);
  return out;
}

/** The message of a packet (a UDP datagram holds exactly one: no trailing bytes). */
export function decodePacket(buf: Uint8Array, what: string, limits: RoughtimeLimits = LIMITS): Buffer {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length > limits.roughtimePacketBytes) throw formatError(what, `${b.length} bytes; a packet is at most ${limits.roughtimePacketBytes}`);
  if (b.length < PACKET_HEADER_BYTES) throw formatError(what, `${b.length} bytes is shorter than a packet header`);
  if (!b.subarray(0, 8).equals(MAGIC)) throw formatError(what, 'does not start with ROUGHTIM');
  const length = b.readUInt32LE(8);
  if (length !== b.length - PACKET_HEADER_BYTES) throw formatError(what, `the header gives a ${length}-byte message, the packet holds ${b.length - PACKET_HEADER_BYTES}`);
  return b.subarray(PACKET_HEADER_BYTES);
}

/** A value that must be present with an exact length. */
export function field(m: Message, tag: number, bytes: number | undefined, what: string): Buffer {
  const v = m.get(tag);
  if (v === undefined) throw formatError(what, `no ${tagName(tag)} tag`);
  if (bytes !== undefined && v.length !== bytes) throw formatError(what, `${tagName(tag)} is ${v.length} bytes, not ${bytes}`);
  return v;
}

export function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

export function u64(n: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64LE(n);
  return b;
}

/** A list of uint32 version numbers (VER in a request, VERS): 1 to 32 of them, strictly ascending. */
export function decodeVersions(v: Buffer, what: string): number[] {
  if (v.length === 0 || v.length % 4 !== 0 || v.length > 32 * 4) throw formatError(what, `a version list of ${v.length} bytes (1 to 32 uint32s)`);
  const out: number[] = [];
  for (let i = 0; i < v.length; i += 4) {
    const x = v.readUInt32LE(i);
    if (out.length > 0 && x <= out[out.length - 1]!) throw formatError(what, 'version numbers must be strictly ascending');
    out.push(x);
  }
  return out;
}

export function encodeVersions(versions: readonly number[]): Buffer {
  return Buffer.concat(versions.map(u32));
}
