// The Roughtime exchange (RFC 10049 "Requests", "Responses", "The Merkle Tree", "Validity of Response",
// "Measurement Sequence"): requests, a batch of responses under one signature, and the client's checks.
// Pure: keys, nonces and the time are arguments. H(x) is SHA-512 truncated to 32 bytes throughout.
import { createHash } from 'node:crypto';
import { SourcemeshError } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import { signEd25519, verifyEd25519 } from '../trust/note.ts';
import { decodeMessage, decodePacket, decodeVersions, encodeMessage, encodePacket, encodeVersions, field, type RoughtimeLimits, TAG, u32, u64 } from './wire.ts';

/** Roughtime version 1 (the RFC's IANA registry). */
export const VERSION_1 = 1;
export const SUPPORTED_VERSIONS = [VERSION_1] as const;
export const NONCE_BYTES = 32;
export const HASH_BYTES = 32;
/** "The size of the request message SHOULD be at least 1024 bytes" (the message, without the packet header). */
export const REQUEST_MESSAGE_BYTES = 1024;
/** Context strings, each with its terminating zero byte ("SIG"). */
export const RESPONSE_CONTEXT = Buffer.from('RoughTime v1 response signature\0', 'latin1');
export const DELEGATION_CONTEXT = Buffer.from('RoughTime v1 delegation signature\0', 'latin1');
const TYPE_REQUEST = 0;
const TYPE_RESPONSE = 1;

export function H(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return h.digest().subarray(0, HASH_BYTES);
}

/** The SRV value naming a long-term key: H(0xff || public key). */
export function srvOf(publicKey: Uint8Array): Buffer {
  return H(Buffer.of(0xff), publicKey);
}

/** "Measurement Sequence": the next nonce is H(previous response packet || rand). */
export function chainedNonce(previousResponse: Uint8Array, rand: Uint8Array): Buffer {
  if (rand.length !== 32) throw new SourcemeshError('E_INTERNAL', 'rand is 32 bytes');
  return H(previousResponse, rand);
}

/** A request packet: VER, NONC, TYPE 0, SRV when the key is known, ZZZZ up to 1024 message bytes. */
export function buildRequest(nonce: Uint8Array, options: { publicKey?: Uint8Array; versions?: readonly number[] } = {}): Buffer {
  if (nonce.length !== NONCE_BYTES) throw new SourcemeshError('E_INTERNAL', `a nonce is ${NONCE_BYTES} bytes`);
  const pairs: [number, Uint8Array][] = [
    [TAG.VER, encodeVersions(options.versions ?? SUPPORTED_VERSIONS)],
    [TAG.NONC, nonce],
    [TAG.TYPE, u32(TYPE_REQUEST)],
  ];
  if (options.publicKey !== undefined) pairs.push([TAG.SRV, srvOf(options.publicKey)]);
  const n = pairs.length + 1;
  const used = 8 * n + pairs.reduce((s, [, v]) => s + v.length, 0);
  pairs.push([TAG.ZZZZ, Buffer.alloc(Math.max(0, REQUEST_MESSAGE_BYTES - used))]);
  return encodePacket(encodeMessage(pairs));
}

export interface ParsedRequest {
  readonly nonce: Buffer;
  readonly versions: readonly number[];
  readonly srv?: Buffer;
}

/** A request as a server reads it; E_FORMAT for anything the RFC says to ignore (the server drops it). */
export function parseRequest(packet: Uint8Array, limits: RoughtimeLimits = LIMITS): ParsedRequest {
  const m = decodeMessage(decodePacket(packet, 'request', limits), 'request', limits);
  const type = field(m, TAG.TYPE, 4, 'request').readUInt32LE(0);
  if (type !== TYPE_REQUEST) throw new SourcemeshError('E_FORMAT', `request: TYPE ${type}, not 0`);
  const nonce = field(m, TAG.NONC, NONCE_BYTES, 'request');
  const versions = decodeVersions(field(m, TAG.VER, undefined, 'request'), 'request VER');
  const srv = m.get(TAG.SRV);
  if (srv !== undefined && srv.length !== HASH_BYTES) throw new SourcemeshError('E_FORMAT', `request: SRV is ${srv.length} bytes, not ${HASH_BYTES}`);
  return { nonce, versions, ...(srv === undefined ? {} : { srv }) };
}

// ---------------------------------------------------------------------------------------------------
// The server side

/** A delegation: the online key (its signing function) and the CERT value the long-term key signed for it. */
export interface Delegation {
  readonly sign: (message: Uint8Array) => Uint8Array;
  readonly publicKey: Uint8Array;
  readonly mint: bigint;
  readonly maxt: bigint;
  /** The encoded CERT message (SIG and DELE). */
  readonly cert: Buffer;
}

/** CERT: DELE {PUBK, MINT, MAXT} signed by the long-term key with the delegation context. */
export function delegate(longTermSeed: Uint8Array, online: { sign: (message: Uint8Array) => Uint8Array; publicKey: Uint8Array }, mint: bigint, maxt: bigint): Delegation {
  const dele = encodeMessage([[TAG.PUBK, online.publicKey], [TAG.MINT, u64(mint)], [TAG.MAXT, u64(maxt)]]);
  const sig = signEd25519(longTermSeed, Buffer.concat([DELEGATION_CONTEXT, dele]));
  const cert = encodeMessage([[TAG.SIG, sig], [TAG.DELE, dele]]);
  return { sign: online.sign, publicKey: online.publicKey, mint, maxt, cert };
}

/**
 * The Merkle tree over a batch (RFC "The Merkle Tree"): leaves H(0x00 || request packet), nodes
 * H(0x01 || left || right). A batch that is not a power of two is completed with all-zero leaves, so every
 * PATH has the same length. Returns the root and each leaf's PATH (siblings from the leaf upwards).
 */
export function merkleBatch(requests: readonly Uint8Array[]): { root: Buffer; paths: Buffer[] } {
  const n = requests.length;
  if (n === 0) throw new SourcemeshError('E_INTERNAL', 'an empty batch');
  let width = 1;
  while (width < n) width *= 2;
  let level: Buffer[] = [];
  for (let i = 0; i < width; i++) level.push(i < n ? H(Buffer.of(0x00), requests[i]!) : Buffer.alloc(HASH_BYTES));
  const siblings: Buffer[][] = requests.map(() => []);
  const index = requests.map((_, i) => i);
  while (level.length > 1) {
    for (let i = 0; i < n; i++) siblings[i]!.push(level[index[i]! ^ 1]!);
    const next: Buffer[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(H(Buffer.of(0x01), level[i]!, level[i + 1]!));
    level = next;
    for (let i = 0; i < n; i++) index[i] = index[i]! >> 1;
  }
  return { root: level[0]!, paths: siblings.map((s) => Buffer.concat(s)) };
}

export interface SignedTime {
  /** MIDP: POSIX seconds at the moment of processing. */
  readonly midpoint: bigint;
  /** RADI: seconds, at least 1. */
  readonly radius: number;
}

/**
 * Answer a batch of request packets (each already accepted by parseRequest) with one SREP signature:
 * the response packets in order.
 */
export function respondBatch(requests: readonly { packet: Uint8Array; nonce: Uint8Array }[], delegation: Delegation, time: SignedTime): Buffer[] {
  if (time.radius < 1) throw new SourcemeshError('E_INTERNAL', 'RADI must not be zero');
  const { root, paths } = merkleBatch(requests.map((r) => r.packet));
  const srep = encodeMessage([
    [TAG.VER, u32(VERSION_1)],
    [TAG.RADI, u32(time.radius)],
    [TAG.MIDP, u64(time.midpoint)],
    [TAG.VERS, encodeVersions(SUPPORTED_VERSIONS)],
    [TAG.ROOT, root],
  ]);
  const sig = delegation.sign(Buffer.concat([RESPONSE_CONTEXT, srep]));
  const type = u32(TYPE_RESPONSE);
  return requests.map((r, i) => encodePacket(encodeMessage([
    [TAG.SIG, sig], [TAG.NONC, r.nonce], [TAG.TYPE, type], [TAG.PATH, paths[i]!], [TAG.SREP, srep], [TAG.CERT, delegation.cert], [TAG.INDX, u32(i)],
  ])));
}

// ---------------------------------------------------------------------------------------------------
// The client side

export interface VerifiedResponse {
  readonly midpoint: bigint;
  readonly radius: number;
  readonly version: number;
  /** The delegated key's validity. */
  readonly mint: bigint;
  readonly maxt: bigint;
}

function invalid(code: 'E_FORMAT' | 'E_SIGNATURE' | 'E_PROOF', why: string): SourcemeshError {
  return new SourcemeshError(code, `Roughtime response: ${why}`);
}

/**
 * Every check of "Validity of Response" for `response` to `request` under the long-term `publicKey`:
 * CERT signed by the long-term key, MIDP within MINT..MAXT, the request in the tree of ROOT through INDX
 * and PATH, SREP signed by the delegated key; also TYPE 1, the request's nonce, and a version the request
 * offered. E_FORMAT, E_SIGNATURE or E_PROOF naming the failed check.
 */
export function verifyResponse(request: Uint8Array, response: Uint8Array, publicKey: Uint8Array, limits: RoughtimeLimits = LIMITS): VerifiedResponse {
  const req = parseRequest(request, limits);
  const m = decodeMessage(decodePacket(response, 'Roughtime response', limits), 'Roughtime response', limits);
  const type = field(m, TAG.TYPE, 4, 'Roughtime response').readUInt32LE(0);
  if (type !== TYPE_RESPONSE) throw invalid('E_FORMAT', `TYPE ${type}, not 1`);
  if (!field(m, TAG.NONC, NONCE_BYTES, 'Roughtime response').equals(req.nonce)) throw invalid('E_PROOF', 'NONC is not the nonce of the request');

  const cert = decodeMessage(field(m, TAG.CERT, undefined, 'Roughtime response'), 'CERT', limits);
  const deleBytes = field(cert, TAG.DELE, undefined, 'CERT');
  if (!verifyEd25519(publicKey, Buffer.concat([DELEGATION_CONTEXT, deleBytes]), field(cert, TAG.SIG, 64, 'CERT'))) {
    throw invalid('E_SIGNATURE', 'the delegation (CERT) is not signed by the server\'s long-term key');
  }
  const dele = decodeMessage(deleBytes, 'DELE', limits);
  const pubk = field(dele, TAG.PUBK, 32, 'DELE');
  const mint = field(dele, TAG.MINT, 8, 'DELE').readBigUInt64LE(0);
  const maxt = field(dele, TAG.MAXT, 8, 'DELE').readBigUInt64LE(0);

  const srepBytes = field(m, TAG.SREP, undefined, 'Roughtime response');
  if (!verifyEd25519(pubk, Buffer.concat([RESPONSE_CONTEXT, srepBytes]), field(m, TAG.SIG, 64, 'Roughtime response'))) {
    throw invalid('E_SIGNATURE', 'SREP is not signed by the delegated key');
  }
  const srep = decodeMessage(srepBytes, 'SREP', limits);
  const version = field(srep, TAG.VER, 4, 'SREP').readUInt32LE(0);
  if (!req.versions.includes(version)) throw invalid('E_FORMAT', `version ${version} was not offered in the request`);
  const vers = srep.get(TAG.VERS);
  if (vers !== undefined && !decodeVersions(vers, 'SREP VERS').includes(version)) throw invalid('E_FORMAT', `VERS does not list the version ${version} of VER`);
  const radius = field(srep, TAG.RADI, 4, 'SREP').readUInt32LE(0);
  if (radius === 0) throw invalid('E_FORMAT', 'RADI is zero');
  const midpoint = field(srep, TAG.MIDP, 8, 'SREP').readBigUInt64LE(0);
  if (midpoint < mint || midpoint > maxt) throw invalid('E_SIGNATURE', `MIDP ${midpoint} is outside the delegation's MINT ${mint} .. MAXT ${maxt}`);

  // "Root Value Validity Check Algorithm": bits of INDX from the least significant pick the side.
  const path = field(m, TAG.PATH, undefined, 'Roughtime response');
  if (path.length % HASH_BYTES !== 0 || path.length / HASH_BYTES > 32) throw invalid('E_FORMAT', `PATH of ${path.length} bytes (at most 32 hashes of 32 bytes)`);
  let index = field(m, TAG.INDX, 4, 'Roughtime response').readUInt32LE(0);
  let h = H(Buffer.of(0x00), request);
  for (let at = 0; at < path.length; at += HASH_BYTES) {
    const node = path.subarray(at, at + HASH_BYTES);
    h = (index & 1) === 0 ? H(Buffer.of(0x01), h, node) : H(Buffer.of(0x01), node, h);
    index >>>= 1;
  }
  if (index !== 0 || !h.equals(field(srep, TAG.ROOT, HASH_BYTES, 'SREP'))) throw invalid('E_PROOF', 'the request is not in the signed Merkle tree (INDX and PATH do not lead to ROOT)');
  return { midpoint, radius, version, mint, maxt };
}
