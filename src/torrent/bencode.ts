// Bencoding (BEP 3, "The connectivity is as follows" / "Bencoding"), strict and canonical. Torrents and
// peers' extension messages are attacker-controlled, and info-hashes are hashes of bencoded bytes, so the
// decoder accepts exactly one spelling of each value: integers without leading zeros or "-0", string
// lengths without leading zeros, dictionary keys as byte strings in strictly ascending byte order (BEP 3:
// "Keys must be strings and appear in sorted order (sorted as raw strings, not alphanumerics)"). Then
// encode(decode(bytes)) gives back the same bytes, and a dictionary's hash can be taken on its re-encoding.
//
// Values: integers are numbers (only safe integers: sizes and counts; anything larger is refused), byte
// strings are Buffers (views of the input: no copy), lists are arrays, dictionaries are Maps keyed by
// the key's bytes read as latin1 (one character per byte, so string order is byte order).
import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';

export type BValue = number | Buffer | BValue[] | BDict;
export type BDict = Map<string, BValue>;

/** The latin1 form of a UTF-8 text, as dictionary keys are held. */
export function bkey(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** A dictionary from [key, value] pairs whose keys are UTF-8 texts (undefined values left out). */
export function bdict(entries: [string, BValue | undefined][]): BDict {
  const m: BDict = new Map();
  for (const [k, v] of entries) if (v !== undefined) m.set(bkey(k), v);
  return m;
}

export function encode(value: BValue): Buffer {
  const parts: Buffer[] = [];
  encodeInto(value, parts);
  return Buffer.concat(parts);
}

function encodeInto(v: BValue, out: Buffer[]): void {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new SourcemeshError('E_INTERNAL', `bencode: ${v} is not a safe integer`);
    out.push(Buffer.from(`i${v}e`, 'latin1'));
  } else if (Buffer.isBuffer(v)) {
    out.push(Buffer.from(`${v.length}:`, 'latin1'), v);
  } else if (Array.isArray(v)) {
    out.push(Buffer.from('l', 'latin1'));
    for (const x of v) encodeInto(x, out);
    out.push(Buffer.from('e', 'latin1'));
  } else {
    out.push(Buffer.from('d', 'latin1'));
    // latin1 strings compare code unit by code unit, which is byte by byte.
    for (const k of [...v.keys()].sort()) {
      const kb = Buffer.from(k, 'latin1');
      out.push(Buffer.from(`${kb.length}:`, 'latin1'), kb);
      encodeInto(v.get(k)!, out);
    }
    out.push(Buffer.from('e', 'latin1'));
  }
}

const D0 = 0x30, D9 = 0x39, COLON = 0x3a, MINUS = 0x2d, I = 0x69, L = 0x6c, D = 0x64, E = 0x65;
/** Longest integer spelling that can be a safe integer: "-" and 16 digits. */
const INT_DIGITS = 16;

type DecodeLimits = Pick<Limits, 'bencodeDepth' | 'bencodeItems'>;

/**
 * Decode one value that fills `buf` exactly. `what` names the input in errors (E_FORMAT), with the
 * byte offset of the fault.
 */
export function decode(buf: Buffer, what: string, limits: DecodeLimits = LIMITS): BValue {
  const r = decodePrefix(buf, what, limits);
  if (r.end !== buf.length) throw fault(what, r.end, `${buf.length - r.end} bytes after the value`);
  return r.value;
}

/** Decode the one value at the start of `buf`; `end` is the offset just past it. */
export function decodePrefix(buf: Buffer, what: string, limits: DecodeLimits = LIMITS): { value: BValue; end: number } {
  const d = new Decoder(buf, what, limits);
  const value = d.value(0);
  return { value, end: d.pos };
}

function fault(what: string, at: number, cause: string): SourcemeshError {
  return new SourcemeshError('E_FORMAT', `${what}: bad bencoding at byte ${at}: ${cause}`, { offset: at });
}

class Decoder {
  pos = 0;
  private items = 0;
  private readonly buf: Buffer;
  private readonly what: string;
  private readonly limits: DecodeLimits;
  constructor(buf: Buffer, what: string, limits: DecodeLimits) {
    this.buf = buf;
    this.what = what;
    this.limits = limits;
  }

  private fail(cause: string, at = this.pos): never {
    throw fault(this.what, at, cause);
  }

  private byte(): number {
    if (this.pos >= this.buf.length) this.fail('the input ends inside a value');
    return this.buf[this.pos]!;
  }

  value(depth: number): BValue {
    if (++this.items > this.limits.bencodeItems) this.fail(`more than ${this.limits.bencodeItems} values`);
    const c = this.byte();
    if (c === I) return this.integer();
    if (c >= D0 && c <= D9) return this.string();
    if (c !== L && c !== D) this.fail(`unexpected byte 0x${c.toString(16).padStart(2, '0')}`);
    if (depth >= this.limits.bencodeDepth) this.fail(`nested deeper than ${this.limits.bencodeDepth}`);
    this.pos++;
    if (c === L) {
      const list: BValue[] = [];
      while (this.byte() !== E) list.push(this.value(depth + 1));
      this.pos++;
      return list;
    }
    const dict: BDict = new Map();
    let last: Buffer | undefined;
    while (this.byte() !== E) {
      const at = this.pos;
      if (!(this.byte() >= D0 && this.byte() <= D9)) this.fail('a dictionary key that is not a byte string');
      const key = this.string();
      if (last !== undefined && Buffer.compare(last, key) >= 0) this.fail(last.equals(key) ? 'a repeated dictionary key' : 'dictionary keys out of order', at);
      last = key;
      dict.set(key.toString('latin1'), this.value(depth + 1));
    }
    this.pos++;
    return dict;
  }

  private integer(): number {
    const start = ++this.pos;
    const neg = this.byte() === MINUS;
    if (neg) this.pos++;
    const digits = this.pos;
    while (this.byte() !== E) {
      const c = this.byte();
      if (c < D0 || c > D9) this.fail('a non-digit in an integer');
      if (this.pos - digits >= INT_DIGITS) this.fail('an integer too large');
      this.pos++;
    }
    const n = this.pos - digits;
    if (n === 0) this.fail('an integer without digits');
    if (this.buf[digits] === D0 && (n > 1 || neg)) this.fail(neg ? 'the integer -0' : 'an integer with a leading zero', start);
    const v = Number(this.buf.toString('latin1', start, this.pos));
    if (!Number.isSafeInteger(v)) this.fail('an integer too large', start);
    this.pos++;
    return v;
  }

  private string(): Buffer {
    const start = this.pos;
    let len = 0;
    while (this.byte() !== COLON) {
      const c = this.byte();
      if (c < D0 || c > D9) this.fail('a non-digit in a string length');
      if (this.pos > start && this.buf[start] === D0) this.fail('a string length with a leading zero', start);
      len = len * 10 + (c - D0);
      // Checked before anything is taken: the length can never pass the bytes that are there.
      if (len > this.buf.length) this.fail('a string longer than the input', start);
      this.pos++;
    }
    this.pos++;
    if (len > this.buf.length - this.pos) this.fail('a string longer than the input', start);
    const s = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return s;
  }
}

/** Typed access to decoded dictionaries, each miss an E_FORMAT naming the input and the key. */
export class BReader {
  readonly what: string;
  constructor(what: string) {
    this.what = what;
  }

  fail(cause: string): never {
    throw new SourcemeshError('E_FORMAT', `${this.what}: ${cause}`);
  }

  dict(v: BValue | undefined, name: string): BDict {
    if (!(v instanceof Map)) this.fail(`${name} is not a dictionary`);
    return v;
  }

  list(v: BValue | undefined, name: string): BValue[] {
    if (!Array.isArray(v)) this.fail(`${name} is not a list`);
    return v;
  }

  int(v: BValue | undefined, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    if (typeof v !== 'number') this.fail(`${name} is not an integer`);
    if (v < min || v > max) this.fail(`${name} ${v} is out of range (${min} to ${max})`);
    return v;
  }

  bytes(v: BValue | undefined, name: string): Buffer {
    if (!Buffer.isBuffer(v)) this.fail(`${name} is not a byte string`);
    return v;
  }

  /** A byte string that must be well-formed UTF-8 (names and paths, BEP 3). */
  text(v: BValue | undefined, name: string): string {
    const b = this.bytes(v, name);
    const s = b.toString('utf8');
    if (!Buffer.from(s, 'utf8').equals(b)) this.fail(`${name} is not UTF-8`);
    return s;
  }
}
