// C2SP signed-note: text signed by one or more keys, with Ed25519 (type 0x01) signatures, and C2SP
// tlog-cosignature `cosignature/v1` timestamped Ed25519 cosignatures (type 0x04); plus the `vkey`
// verifier key text and the signer key text Go's golang.org/x/mod/sumdb/note reads.
//
// Everything parsed here is attacker-controlled (notes come from logs, witnesses, mirrors, bundles).
// Sizes are checked before decoding, and a note is accepted only when a known key's signature verifies.

import { createHash, createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { decodeBase64, encodeBase64 } from './base64.ts';

/** C2SP signed-note signature types this module implements. */
export const KEY_TYPE_ED25519 = 0x01;
export const KEY_TYPE_COSIGNATURE_V1 = 0x04;
export type KeyType = typeof KEY_TYPE_ED25519 | typeof KEY_TYPE_COSIGNATURE_V1;

const ED25519_KEY_BYTES = 32;
const ED25519_SIGNATURE_BYTES = 64;
/** C2SP tlog-cosignature: timestamped_signature is a u64 timestamp then the Ed25519 signature. */
const COSIGNATURE_BYTES = 8 + ED25519_SIGNATURE_BYTES;
const EM_DASH_PREFIX = '\u2014 ';

export type NoteLimits = Pick<Limits, 'noteBytes' | 'noteSignatures' | 'noteKeyNameBytes'>;

// ---------------------------------------------------------------------------------------------------
// Names and key IDs

const utf8 = new TextEncoder();

/**
 * C2SP signed-note: key names are non-empty and contain no Unicode spaces and no `+`. White_Space is the
 * Unicode property Go's unicode.IsSpace follows, so both sides refuse the same names.
 */
export function isValidKeyName(name: string, limits: Pick<Limits, 'noteKeyNameBytes'> = LIMITS): boolean {
  return typeof name === 'string' && name.length > 0 && name.isWellFormed() && !/[\p{White_Space}+]/u.test(name)
    && !/[\u0000-\u001f]/.test(name) && Buffer.byteLength(name, 'utf8') <= limits.noteKeyNameBytes;
}

/** C2SP signed-note: key ID = SHA-256(name || 0x0A || type || public key)[:4], as a big-endian uint32. */
export function computeKeyId(name: string, type: number, publicKey: Uint8Array): number {
  const digest = createHash('sha256').update(name, 'utf8').update(Uint8Array.of(0x0a, type)).update(publicKey).digest();
  return digest.readUInt32BE(0);
}

function hex8(id: number): string {
  return id.toString(16).padStart(8, '0');
}

// ---------------------------------------------------------------------------------------------------
// Ed25519 keys through node:crypto (RFC 8032 seeds and public keys, wrapped in their fixed DER headers)

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function privateKeyFromSeed(seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/**
 * A raw Ed25519 signature (RFC 8032) of `message` by the key with this seed, for formats that sign bytes
 * other than notes (BEP 44 mutable DHT items).
 */
export function signEd25519(seed: Uint8Array, message: Uint8Array): Uint8Array {
  return cryptoSign(null, message, privateKeyFromSeed(seed));
}

/** Whether `signature` is a valid raw Ed25519 signature of `message` by the 32-byte `publicKey`. */
export function verifyEd25519(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== ED25519_KEY_BYTES || signature.length !== ED25519_SIGNATURE_BYTES) return false;
  try {
    return cryptoVerify(null, message, publicKeyObject(publicKey), signature);
  } catch {
    return false; // a public key that is not a curve point
  }
}

function publicKeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

function publicKeyFromPrivate(key: KeyObject): Uint8Array {
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return Buffer.from(spki.subarray(SPKI_ED25519_PREFIX.length));
}

// ---------------------------------------------------------------------------------------------------
// Verifier keys (vkeys) and signer keys

/** A public key as a vkey names it. */
export interface VerifierKey {
  readonly name: string;
  readonly keyId: number;
  readonly type: KeyType;
  readonly publicKey: Uint8Array;
}

/** A private key: its seed, and the public half derived from it. Keep it secret. */
export interface SignerKey extends VerifierKey {
  readonly seed: Uint8Array;
}

function keyTypeOf(type: number, what: string): KeyType {
  if (type === KEY_TYPE_ED25519 || type === KEY_TYPE_COSIGNATURE_V1) return type;
  throw new SourcemeshError('E_UNSUPPORTED', `${what} has key type 0x${type.toString(16).padStart(2, '0')}; only Ed25519 (0x01) and cosignature/v1 (0x04) are supported`, { type });
}

/** Split on the first `+`, like the vkey grammar: the name can't contain one, the base64 can. */
function splitPlus(text: string, count: number): string[] | undefined {
  const parts: string[] = [];
  let rest = text;
  for (let i = 0; i < count - 1; i++) {
    const at = rest.indexOf('+');
    if (at < 0) return undefined;
    parts.push(rest.slice(0, at));
    rest = rest.slice(at + 1);
  }
  parts.push(rest);
  return parts;
}

const HEX8 = /^[0-9a-f]{8}$/;
/** A vkey or signer key is a name, 8 hex digits and a short base64 key: far below this. */
const KEY_TEXT_MAX = 1024;

/** Parse C2SP signed-note vkey text: `<name>+<hex key ID>+<base64(type || public key)>`. */
export function parseVerifierKey(vkey: string, limits: Pick<Limits, 'noteKeyNameBytes'> = LIMITS): VerifierKey {
  const bad = (why: string): never => {
    throw new SourcemeshError('E_FORMAT', `malformed verifier key: ${why}`, { vkey: typeof vkey === 'string' ? vkey.slice(0, 120) : undefined });
  };
  if (typeof vkey !== 'string') bad('not text');
  if (vkey.length > KEY_TEXT_MAX) bad(`longer than ${KEY_TEXT_MAX} characters`);
  const parts = splitPlus(vkey, 3) ?? bad('not <name>+<key ID>+<key>');
  const [name, idHex, keyText] = parts as [string, string, string];
  if (!isValidKeyName(name, limits)) bad('the key name is empty, too long, or contains a space, a control character or +');
  if (!HEX8.test(idHex)) bad('the key ID is not 8 lowercase hex digits');
  const key = decodeBase64(keyText) ?? bad('the key is not canonical base64');
  if (key.length < 1) bad('the key is empty');
  const type = keyTypeOf(key[0]!, 'the verifier key');
  const publicKey = Buffer.from(key.subarray(1));
  if (publicKey.length !== ED25519_KEY_BYTES) bad(`an Ed25519 public key is ${ED25519_KEY_BYTES} bytes, not ${publicKey.length}`);
  const keyId = Number.parseInt(idHex, 16);
  if (keyId !== computeKeyId(name, type, publicKey)) bad('the key ID does not match the name and key');
  return { name, keyId, type, publicKey };
}

export function formatVerifierKey(key: Pick<VerifierKey, 'name' | 'type' | 'publicKey'>): string {
  if (!isValidKeyName(key.name)) throw new SourcemeshError('E_FORMAT', `invalid key name ${JSON.stringify(key.name)}`);
  keyTypeOf(key.type, 'the key');
  return `${key.name}+${hex8(computeKeyId(key.name, key.type, key.publicKey))}+${encodeBase64(Uint8Array.of(key.type, ...key.publicKey))}`;
}

/**
 * Parse signer key text as Go's sumdb/note writes it: `PRIVATE+KEY+<name>+<hex key ID>+<base64(type || seed)>`.
 * The key ID is of the public key, so it is checked after deriving that.
 */
export function parseSignerKey(skey: string, limits: Pick<Limits, 'noteKeyNameBytes'> = LIMITS): SignerKey {
  // Never echo a private key into an error.
  const bad = (why: string): never => {
    throw new SourcemeshError('E_FORMAT', `malformed signer key: ${why}`);
  };
  if (typeof skey !== 'string') bad('not text');
  if (skey.length > KEY_TEXT_MAX) bad(`longer than ${KEY_TEXT_MAX} characters`);
  const parts = splitPlus(skey, 5) ?? bad('not PRIVATE+KEY+<name>+<key ID>+<key>');
  const [p1, p2, name, idHex, keyText] = parts as [string, string, string, string, string];
  if (p1 !== 'PRIVATE' || p2 !== 'KEY') bad('it does not start with PRIVATE+KEY+');
  if (!isValidKeyName(name, limits)) bad('the key name is empty, too long, or contains a space, a control character or +');
  if (!HEX8.test(idHex)) bad('the key ID is not 8 lowercase hex digits');
  const key = decodeBase64(keyText) ?? bad('the key is not canonical base64');
  if (key.length < 1) bad('the key is empty');
  const type = keyTypeOf(key[0]!, 'the signer key');
  if (key.length - 1 !== ED25519_KEY_BYTES) bad(`an Ed25519 seed is ${ED25519_KEY_BYTES} bytes, not ${key.length - 1}`);
  const signer = signerKeyFromSeed(name, type, key.subarray(1));
  if (signer.keyId !== Number.parseInt(idHex, 16)) bad('the key ID does not match the name and key');
  return signer;
}

export function formatSignerKey(key: SignerKey): string {
  return `PRIVATE+KEY+${key.name}+${hex8(key.keyId)}+${encodeBase64(Uint8Array.of(key.type, ...key.seed))}`;
}

/**
 * A signer key from a 32-byte seed. Key generation is this with a fresh random seed: the caller passes
 * the randomness (crypto.randomBytes(32) in the CLI, a fixed seed in tests).
 */
export function signerKeyFromSeed(name: string, type: number, seed: Uint8Array): SignerKey {
  if (!isValidKeyName(name)) throw new SourcemeshError('E_FORMAT', `invalid key name ${JSON.stringify(name)}: it must be non-empty, with no spaces and no +`);
  const keyType = keyTypeOf(type, 'the key');
  if (!(seed instanceof Uint8Array) || seed.length !== ED25519_KEY_BYTES) throw new SourcemeshError('E_FORMAT', `an Ed25519 seed is ${ED25519_KEY_BYTES} bytes`);
  const publicKey = publicKeyFromPrivate(privateKeyFromSeed(seed));
  return { name, type: keyType, keyId: computeKeyId(name, keyType, publicKey), publicKey, seed: Buffer.from(seed) };
}

// ---------------------------------------------------------------------------------------------------
// Signers and verifiers

/** What a verified signature says beyond "valid": a cosignature's timestamp (POSIX seconds). */
export interface SignatureCheck {
  readonly timestamp?: number;
}

export interface NoteVerifier extends VerifierKey {
  /** Check `signature` (the bytes after the key ID) over the note text; undefined when invalid. */
  verify(text: Uint8Array, signature: Uint8Array): SignatureCheck | undefined;
}

export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  readonly type: KeyType;
  /** The public key, so that a submitter can name its vkey to a log (`log serve --admit-any-signed`). */
  readonly publicKey: Uint8Array;
  /** The signature bytes (without the key ID) over the note text. */
  sign(text: Uint8Array): Uint8Array;
}

/** C2SP tlog-cosignature: the signed message is `cosignature/v1\ntime <T>\n` then the checkpoint text. */
export function cosignatureMessage(text: Uint8Array | string, timestamp: number | bigint): Uint8Array {
  const body = typeof text === 'string' ? utf8.encode(text) : text;
  return Buffer.concat([utf8.encode(`cosignature/v1\ntime ${BigInt(timestamp).toString()}\n`), body]);
}

const MAX_TIMESTAMP = 2n ** 63n - 1n;

export function createVerifier(key: VerifierKey): NoteVerifier {
  const keyType = keyTypeOf(key.type, 'the verifier key');
  if (key.publicKey.length !== ED25519_KEY_BYTES) throw new SourcemeshError('E_FORMAT', `an Ed25519 public key is ${ED25519_KEY_BYTES} bytes`);
  // Parsed once: building a KeyObject costs more than an Ed25519 verification.
  let object: KeyObject;
  try {
    object = publicKeyObject(key.publicKey);
  } catch (err) {
    throw new SourcemeshError('E_FORMAT', `the public key of ${key.name} is not an Ed25519 key`, {}, { cause: err });
  }
  const base = { name: key.name, keyId: key.keyId, type: keyType, publicKey: Buffer.from(key.publicKey) };
  if (keyType === KEY_TYPE_ED25519) {
    return {
      ...base,
      verify(text, signature) {
        if (signature.length !== ED25519_SIGNATURE_BYTES) return undefined;
        return cryptoVerify(null, text, object, signature) ? {} : undefined;
      },
    };
  }
  return {
    ...base,
    verify(text, signature) {
      if (signature.length !== COSIGNATURE_BYTES) return undefined;
      const view = Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength);
      const timestamp = view.readBigUInt64BE(0);
      // C2SP tlog-cosignature: the timestamp MUST NOT exceed 2^63 - 1. Beyond 2^53 seconds it is
      // hundreds of millions of years ahead: refused rather than rounded.
      if (timestamp > MAX_TIMESTAMP || timestamp > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
      const ok = cryptoVerify(null, cosignatureMessage(text, timestamp), object, view.subarray(8));
      return ok ? { timestamp: Number(timestamp) } : undefined;
    },
  };
}

/**
 * A signer for `key`. Cosignature keys (type 0x04) stamp each signature with `clock()`, POSIX seconds:
 * the clock is passed in so tests and replays pin it.
 */
export function createSigner(key: SignerKey, options: { clock?: () => number } = {}): NoteSigner {
  const keyType = keyTypeOf(key.type, 'the signer key');
  const privateKey = privateKeyFromSeed(key.seed);
  const base = { name: key.name, keyId: key.keyId, type: keyType, publicKey: Buffer.from(key.publicKey) };
  if (keyType === KEY_TYPE_ED25519) {
    return { ...base, sign: (text) => cryptoSign(null, text, privateKey) };
  }
  const clock = options.clock;
  if (clock === undefined) throw new SourcemeshError('E_INTERNAL', 'a cosignature signer needs a clock');
  return {
    ...base,
    sign(text) {
      const now = clock();
      if (!Number.isSafeInteger(now) || now < 0) throw new SourcemeshError('E_INTERNAL', `the clock gave ${now}, not POSIX seconds`);
      const out = Buffer.alloc(COSIGNATURE_BYTES);
      out.writeBigUInt64BE(BigInt(now), 0);
      cryptoSign(null, cosignatureMessage(text, now), privateKey).copy(out, 8);
      return out;
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Notes

export interface NoteSignature {
  readonly name: string;
  readonly keyId: number;
  /** The signature bytes after the 4-byte key ID. */
  readonly signature: Uint8Array;
}

export interface ParsedNote {
  /** The note text: everything before the blank line, including its final newline. */
  readonly text: string;
  readonly textBytes: Uint8Array;
  readonly signatures: readonly NoteSignature[];
}

export interface VerifiedSignature extends NoteSignature {
  readonly verifier: NoteVerifier;
  /** For cosignatures (type 0x04): the time the cosigner signed, POSIX seconds. */
  readonly timestamp?: number;
}

export interface OpenedNote extends ParsedNote {
  /** One per known key that signed (a repeated signature from one key counts once). */
  readonly verified: readonly VerifiedSignature[];
  /** Signatures from keys not in the verifier set: ignored, as C2SP signed-note requires. */
  readonly unknown: readonly NoteSignature[];
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// C2SP signed-note: no ASCII control characters but newline.
const CONTROL = /[\u0000-\u0009\u000b-\u001f]/;

function decodeNoteBytes(bytes: Uint8Array, what: string): string {
  let text: string;
  try {
    text = fatalUtf8.decode(bytes);
  } catch {
    throw new SourcemeshError('E_FORMAT', `${what} is not valid UTF-8`);
  }
  if (CONTROL.test(text)) throw new SourcemeshError('E_FORMAT', `${what} contains a control character other than newline`);
  return text;
}

/** Check note text before signing it, so that we never sign what a verifier would refuse. */
export function checkNoteText(text: string): void {
  if (typeof text !== 'string' || !text.isWellFormed()) throw new SourcemeshError('E_FORMAT', 'note text is not valid Unicode');
  if (!text.endsWith('\n')) throw new SourcemeshError('E_FORMAT', 'note text must end with a newline');
  if (CONTROL.test(text)) throw new SourcemeshError('E_FORMAT', 'note text contains a control character other than newline');
}

/** The signature line `— <name> <base64(key ID || signature)>\n`. */
export function formatSignatureLine(sig: NoteSignature): string {
  if (!isValidKeyName(sig.name, { noteKeyNameBytes: LIMITS.noteBytes })) throw new SourcemeshError('E_FORMAT', `invalid key name ${JSON.stringify(sig.name)}`);
  const raw = Buffer.alloc(4 + sig.signature.length);
  raw.writeUInt32BE(sig.keyId >>> 0, 0);
  raw.set(sig.signature, 4);
  return `${EM_DASH_PREFIX}${sig.name} ${raw.toString('base64')}\n`;
}

/** Parse one signature line without its newline. */
function parseSignatureLine(line: string, number: number, limits: NoteLimits): NoteSignature {
  const bad = (why: string): never => {
    throw new SourcemeshError('E_FORMAT', `signature line ${number} of the note is malformed: ${why}`, { line: number });
  };
  if (!line.startsWith(EM_DASH_PREFIX)) bad('it does not start with an em dash and a space');
  const rest = line.slice(EM_DASH_PREFIX.length);
  const space = rest.indexOf(' ');
  if (space < 0) bad('no space between the key name and the signature');
  const name = rest.slice(0, space);
  // Names on signature lines are bounded by the note's size only: a long name on a signature we don't
  // know must be ignored like any unknown signature, not refuse the note.
  if (!isValidKeyName(name, { noteKeyNameBytes: limits.noteBytes })) bad('the key name is empty or contains a space or +');
  const raw = decodeBase64(rest.slice(space + 1)) ?? bad('the signature is not canonical base64');
  // C2SP signed-note: 4 bytes of key ID and a non-empty signature.
  if (raw.length < 5) bad('the signature is shorter than a key ID and one byte');
  return { name, keyId: raw.readUInt32BE(0), signature: Buffer.from(raw.subarray(4)) };
}

/** Where the last "\n\n" of `bytes` starts (-1 if none). */
function lastBlankLine(bytes: Uint8Array): number {
  for (let i = bytes.length - 2; i >= 0; i--) if (bytes[i] === 0x0a && bytes[i + 1] === 0x0a) return i;
  return -1;
}

/**
 * Split a signed note into its text and signature lines, checking the C2SP signed-note format but no
 * signature. The text is everything up to the last blank line. Attacker-controlled.
 */
export function parseNote(note: Uint8Array | string, limits: NoteLimits = LIMITS): ParsedNote {
  // Each UTF-16 code unit encodes to at least one byte: a string this long is over the limit already.
  if (typeof note === 'string' && note.length > limits.noteBytes) {
    throw new SourcemeshError('E_FORMAT', `the note is over the limit of ${limits.noteBytes} bytes`, { length: note.length });
  }
  const bytes = typeof note === 'string' ? utf8.encode(note) : note;
  if (!(bytes instanceof Uint8Array)) throw new SourcemeshError('E_FORMAT', 'a note is bytes or text');
  if (bytes.length > limits.noteBytes) {
    throw new SourcemeshError('E_FORMAT', `the note is ${bytes.length} bytes, over the limit of ${limits.noteBytes}`, { length: bytes.length });
  }
  const text = typeof note === 'string' ? note : decodeNoteBytes(bytes, 'the note');
  if (typeof note === 'string') {
    if (!note.isWellFormed()) throw new SourcemeshError('E_FORMAT', 'the note is not valid Unicode');
    if (CONTROL.test(note)) throw new SourcemeshError('E_FORMAT', 'the note contains a control character other than newline');
  }
  const split = text.lastIndexOf('\n\n');
  if (split < 0) throw new SourcemeshError('E_FORMAT', 'the note has no blank line before its signatures');
  const body = text.slice(0, split + 1);
  const block = text.slice(split + 2);
  if (block.length === 0 || !block.endsWith('\n')) throw new SourcemeshError('E_FORMAT', 'the note has no signature lines, or they do not end with a newline');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > limits.noteSignatures) {
    throw new SourcemeshError('E_FORMAT', `the note has ${lines.length} signatures, over the limit of ${limits.noteSignatures}`, { count: lines.length });
  }
  const signatures = lines.map((line, i) => parseSignatureLine(line, i + 1, limits));
  // Bytes given: the text's bytes are theirs up to the same blank line (valid UTF-8, and no byte of a
  // multi-byte character is a newline), not encoded again.
  const textBytes = typeof note === 'string' ? utf8.encode(body) : bytes.subarray(0, lastBlankLine(bytes) + 1);
  return { text: body, textBytes, signatures };
}

/**
 * Open a signed note: parse it, verify every signature from a key in `verifiers`, ignore the others.
 * Throws E_SIGNATURE if a known key's signature is invalid (C2SP signed-note: clients SHOULD reject the
 * whole note) or if no known key signed it (MUST reject).
 */
export function openNote(note: Uint8Array | string, verifiers: readonly NoteVerifier[], limits: NoteLimits = LIMITS): OpenedNote {
  const parsed = parseNote(note, limits);
  const known = new Map<string, NoteVerifier>();
  for (const v of verifiers) {
    const id = `${v.keyId}:${v.name}`;
    if (known.has(id)) throw new SourcemeshError('E_INPUT', `two verifier keys share the name ${v.name} and key ID ${hex8(v.keyId)}`, { name: v.name });
    known.set(id, v);
  }
  const verified = new Map<NoteVerifier, VerifiedSignature>();
  const unknown: NoteSignature[] = [];
  for (const sig of parsed.signatures) {
    // C2SP signed-note: a signature is from a known key only if both its name and its key ID match.
    const verifier = known.get(`${sig.keyId}:${sig.name}`);
    if (verifier === undefined) {
      unknown.push(sig);
      continue;
    }
    const check = verifier.verify(parsed.textBytes, sig.signature);
    if (check === undefined) {
      throw new SourcemeshError('E_SIGNATURE', `the note's signature by ${sig.name} (key ${hex8(sig.keyId)}) is invalid`, { name: sig.name, keyId: hex8(sig.keyId) });
    }
    if (!verified.has(verifier)) verified.set(verifier, { ...sig, verifier, ...(check.timestamp === undefined ? {} : { timestamp: check.timestamp }) });
  }
  if (verified.size === 0) {
    throw new SourcemeshError('E_SIGNATURE', 'the note carries no valid signature from a known key', { signers: parsed.signatures.map((s) => s.name) });
  }
  return { ...parsed, verified: [...verified.values()], unknown };
}

/**
 * Sign `text` with each signer. Signatures already on the note (`existing`) come first, except those
 * from a key that signs again now; new ones follow in the order given.
 */
export function signNote(text: string, signers: readonly NoteSigner[], existing: readonly NoteSignature[] = [], limits: NoteLimits = LIMITS): string {
  checkNoteText(text);
  const textBytes = utf8.encode(text);
  const fresh = signers.map((s) => ({ name: s.name, keyId: s.keyId, signature: s.sign(textBytes) }));
  const replaced = new Set(fresh.map((s) => `${s.keyId}:${s.name}`));
  const kept = existing.filter((s) => !replaced.has(`${s.keyId}:${s.name}`));
  const all = [...kept, ...fresh];
  if (all.length === 0) throw new SourcemeshError('E_FORMAT', 'a signed note needs at least one signature');
  const note = `${text}\n${all.map(formatSignatureLine).join('')}`;
  // Never produce a note a verifier with the same limits would refuse.
  parseNote(note, limits);
  return note;
}

/** Reassemble a note from its text and signatures (for example after adding witness cosignatures). */
export function formatNote(text: string, signatures: readonly NoteSignature[], limits: NoteLimits = LIMITS): string {
  checkNoteText(text);
  if (signatures.length === 0) throw new SourcemeshError('E_FORMAT', 'a signed note needs at least one signature');
  const note = `${text}\n${signatures.map(formatSignatureLine).join('')}`;
  parseNote(note, limits);
  return note;
}
