// bzip2 decompression (the format of bzip2 1.0: "BZh" and a level, then blocks of Huffman-coded
// move-to-front and zero-run symbols over a Burrows-Wheeler transform of run-length-encoded bytes, a CRC32
// per block and one per stream; streams may follow one another, as pbzip2 writes). Written for hostile
// input: every count, index and code is checked before use; a block is decoded from at most
// MAX_BLOCK_BYTES of input and into at most level x 100,000 symbols (the format's own bound); its output
// is handed on in 64 KiB chunks as the run-length stage expands it, so a block of long runs (45 MB from
// 40 bytes) is never held whole, and the caller's bounds (decompress.ts) can stop a bomb at any chunk.
// Blocks marked "randomised" (bzip2 0.9.0 and older wrote them for very repetitive data) are refused.

const CHUNK = 1 << 16;
/** Input kept ahead of a block before decoding it: a level-9 block of any real data fits. */
const BLOCK_AHEAD = 1 << 20;
/** The most input one block may take: 900,000 symbols of at most 20 bits, its tables, and a margin. */
const MAX_BLOCK_BYTES = 4 << 20;
const MAX_CODE_BITS = 20;
const GROUP_SIZE = 50;

/** Thrown by the bit reader past the input read so far: read more and decode the block again. */
const NEED_MORE: unique symbol = Symbol('need more input');

/** The CRC of bzip2: CRC-32 with polynomial 0x04c11db7, most significant bit first. */
const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    t[i] = c;
  }
  return t;
})();

class BitReader {
  private data: Uint8Array = new Uint8Array(0);
  /** Bit position in `data`. */
  pos = 0;
  private done = false;
  private readonly input: AsyncIterator<Uint8Array>;

  constructor(input: AsyncIterable<Uint8Array>) {
    this.input = input[Symbol.asyncIterator]();
  }

  /** Bytes from the current position to the end of what was read. */
  get buffered(): number {
    return this.data.length - (this.pos >>> 3);
  }

  get ended(): boolean {
    return this.done && this.pos >>> 3 >= this.data.length;
  }

  get inputDone(): boolean {
    return this.done;
  }

  /** Drop the bytes before the current one, then read until `bytes` are buffered or the input ends. */
  async fill(bytes: number): Promise<void> {
    const from = this.pos >>> 3;
    const parts: Uint8Array[] = [this.data.subarray(from)];
    let have = this.data.length - from;
    while (have < bytes && !this.done) {
      const r = await this.input.next();
      if (r.done) this.done = true;
      else if (r.value.length) {
        parts.push(r.value);
        have += r.value.length;
      }
    }
    if (parts.length > 1 || from > 0) {
      this.data = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      this.pos &= 7;
    }
  }

  async close(): Promise<void> {
    await this.input.return?.();
  }

  bit(): number {
    const p = this.pos;
    const byte = p >>> 3;
    if (byte >= this.data.length) throw NEED_MORE;
    this.pos = p + 1;
    return (this.data[byte]! >>> (7 - (p & 7))) & 1;
  }

  /** `n` bits (at most 24), most significant first. */
  bits(n: number): number {
    let v = 0;
    for (let i = 0; i < n; i++) v = (v << 1) | this.bit();
    return v;
  }

  bits32(): number {
    return ((this.bits(16) << 16) | this.bits(16)) >>> 0;
  }

  alignToByte(): void {
    this.pos = (this.pos + 7) & ~7;
  }
}

class Bzip2Error extends Error {}

function fail(why: string): never {
  throw new Bzip2Error(why);
}

/** A canonical Huffman table (codes assigned by length, then by symbol), decoded bit by bit. */
interface Table {
  count: Int32Array; // codes of each length
  first: Int32Array; // the first code of each length
  start: Int32Array; // where each length's symbols begin in `symbols`
  symbols: Uint16Array;
  maxLen: number;
}

function makeTable(lengths: Uint8Array, alphaSize: number): Table {
  const count = new Int32Array(MAX_CODE_BITS + 1);
  for (let s = 0; s < alphaSize; s++) count[lengths[s]!]!++;
  const first = new Int32Array(MAX_CODE_BITS + 2);
  const start = new Int32Array(MAX_CODE_BITS + 2);
  let code = 0;
  let index = 0;
  let maxLen = 0;
  for (let len = 1; len <= MAX_CODE_BITS; len++) {
    first[len] = code;
    start[len] = index;
    if (count[len]) maxLen = len;
    code += count[len]!;
    // More codes of this length than there is room for: no prefix code.
    if (code > 1 << len) fail('an impossible Huffman table');
    code <<= 1;
    index += count[len]!;
  }
  const symbols = new Uint16Array(alphaSize);
  const next = start.slice();
  for (let s = 0; s < alphaSize; s++) symbols[next[lengths[s]!]!++] = s;
  return { count, first, start, symbols, maxLen };
}

function decodeSymbol(bits: BitReader, t: Table): number {
  let code = 0;
  for (let len = 1; len <= t.maxLen; len++) {
    code = (code << 1) | bits.bit();
    const d = code - t.first[len]!;
    if (d >= 0 && d < t.count[len]!) return t.symbols[t.start[len]! + d]!;
  }
  return fail('a code that is in no Huffman table');
}

interface Block {
  crc: number;
  origPtr: number;
  /** Symbols in `tt` (bytes in the low 8 bits), at most the level's block size. */
  length: number;
}

/**
 * One block, from just after its magic number: its header, tables and symbols, into `tt` (bytes), and
 * then the links of the inverse Burrows-Wheeler transform (in the upper 24 bits). Synchronous: the caller
 * has buffered the input, and decodes again with more when NEED_MORE is thrown.
 */
function readBlock(bits: BitReader, tt: Int32Array, maxLength: number): Block {
  const crc = bits.bits32();
  if (bits.bit()) fail('a randomised block (written by bzip2 0.9.0 or older) is not supported');
  const origPtr = bits.bits(24);
  // The bytes in use: 16 bits say which groups of 16 have any, then 16 bits per such group.
  const used = new Uint8Array(256);
  let inUse = 0;
  const groups = bits.bits(16);
  for (let i = 0; i < 16; i++) {
    if (!(groups & (0x8000 >>> i))) continue;
    const bitsOf = bits.bits(16);
    for (let j = 0; j < 16; j++) if (bitsOf & (0x8000 >>> j)) used[inUse++] = i * 16 + j;
  }
  if (inUse === 0) fail('a block that uses no byte');
  const alphaSize = inUse + 2;
  const nGroups = bits.bits(3);
  if (nGroups < 2 || nGroups > 6) fail(`${nGroups} Huffman tables`);
  const nSelectors = bits.bits(15);
  if (nSelectors === 0) fail('no selectors');
  // Selectors, move-to-front coded in unary.
  const selectorMtf = Uint8Array.from({ length: nGroups }, (_, i) => i);
  const selectors = new Uint8Array(nSelectors);
  for (let i = 0; i < nSelectors; i++) {
    let j = 0;
    while (bits.bit()) if (++j >= nGroups) fail('a selector past the last table');
    const v = selectorMtf[j]!;
    selectorMtf.copyWithin(1, 0, j);
    selectorMtf[0] = v;
    selectors[i] = v;
  }
  // Code lengths, each table's as deltas from a 5-bit start.
  const tables: Table[] = [];
  const lengths = new Uint8Array(alphaSize);
  for (let t = 0; t < nGroups; t++) {
    let len = bits.bits(5);
    for (let s = 0; s < alphaSize; s++) {
      for (;;) {
        if (len < 1 || len > MAX_CODE_BITS) fail(`a code length of ${len}`);
        if (!bits.bit()) break;
        len += bits.bit() ? -1 : 1;
      }
      lengths[s] = len;
    }
    tables.push(makeTable(lengths, alphaSize));
  }
  // Symbols: RUNA (0) and RUNB (1) spell a run of the front byte in bijective base 2; 2..inUse are
  // move-to-front positions 1..inUse-1; inUse+1 ends the block. A new table every 50 symbols.
  const mtf = Uint8Array.from({ length: 256 }, (_, i) => i);
  const byteCount = new Int32Array(256);
  const endOfBlock = inUse + 1;
  let length = 0;
  let selector = 0;
  let left = 0;
  let table = tables[0]!;
  let run = 0;
  let runWeight = 1;
  for (;;) {
    if (left === 0) {
      if (selector >= nSelectors) fail('more symbols than selectors');
      table = tables[selectors[selector++]!]!;
      left = GROUP_SIZE;
    }
    left--;
    const sym = decodeSymbol(bits, table);
    if (sym <= 1) {
      run += runWeight << sym; // RUNA adds the weight, RUNB twice it
      runWeight <<= 1;
      if (run > maxLength) fail('a run longer than the block');
      continue;
    }
    if (run) {
      if (length + run > maxLength) fail('more bytes than the block size');
      const b = used[mtf[0]!]!;
      byteCount[b]! += run;
      tt.fill(b, length, length + run);
      length += run;
      run = 0;
      runWeight = 1;
    }
    if (sym === endOfBlock) break;
    if (length >= maxLength) fail('more bytes than the block size');
    const i = sym - 1;
    const v = mtf[i]!;
    mtf.copyWithin(1, 0, i);
    mtf[0] = v;
    const b = used[v]!;
    byteCount[b]!++;
    tt[length++] = b;
  }
  if (origPtr >= length) fail(`origin pointer ${origPtr} past the block's ${length} bytes`);
  // Inverse Burrows-Wheeler: for each row of the sorted block, where its byte stands in the last column.
  let sum = 0;
  for (let b = 0; b < 256; b++) {
    const c = byteCount[b]!;
    byteCount[b] = sum;
    sum += c;
  }
  for (let i = 0; i < length; i++) {
    const b = tt[i]! & 0xff;
    tt[byteCount[b]!++]! |= i << 8;
  }
  return { crc, origPtr, length };
}

/**
 * A block's bytes: the transform undone from the origin row, then the first run-length stage (four equal
 * bytes and a count of more), in chunks of CHUNK bytes; its CRC checked at the end.
 */
function* blockBytes(tt: Int32Array, block: Block): Generator<Buffer> {
  let out = Buffer.allocUnsafe(CHUNK);
  let used = 0;
  let crc = -1;
  let pos = tt[block.origPtr]! >>> 8;
  let last = -1;
  let same = 0;
  for (let k = 0; k < block.length; k++) {
    const e = tt[pos]!;
    pos = e >>> 8;
    const b = e & 0xff;
    if (same !== 4) {
      if (b === last) same++;
      else {
        last = b;
        same = 1;
      }
      out[used++] = b;
      crc = (crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ b) & 0xff]!;
      if (used === CHUNK) {
        yield out;
        out = Buffer.allocUnsafe(CHUNK);
        used = 0;
      }
      continue;
    }
    // The fifth byte of a run counts the further copies of the fourth.
    let copies = b;
    const byte = last;
    same = 0;
    last = -1;
    while (copies > 0) {
      const n = Math.min(copies, CHUNK - used);
      out.fill(byte, used, used + n);
      for (let i = 0; i < n; i++) crc = (crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ byte) & 0xff]!;
      used += n;
      copies -= n;
      if (used === CHUNK) {
        yield out;
        out = Buffer.allocUnsafe(CHUNK);
        used = 0;
      }
    }
  }
  if (used) yield out.subarray(0, used);
  if ((~crc >>> 0) !== block.crc) fail(`block CRC ${(~crc >>> 0).toString(16)}, expected ${block.crc.toString(16)}`);
}

/**
 * Decompress one or more concatenated bzip2 streams. Errors are thrown as they are found. `readAhead`:
 * input buffered before a block is decoded (tests make it small to decode every block several times).
 */
export async function* bunzip2(input: AsyncIterable<Uint8Array>, readAhead = BLOCK_AHEAD): AsyncGenerator<Uint8Array> {
  const bits = new BitReader(input);
  let tt = new Int32Array(0);
  let streams = 0;
  try {
    for (;;) {
      await bits.fill(4);
      if (bits.ended && streams > 0) return;
      if (bits.buffered < 4) fail(streams ? 'data after the end of the stream' : 'not a bzip2 stream (too short)');
      if (bits.bits(8) !== 0x42 || bits.bits(8) !== 0x5a || bits.bits(8) !== 0x68) fail(streams ? 'data after the end of the stream' : 'not a bzip2 stream');
      const level = bits.bits(8) - 0x30;
      if (level < 1 || level > 9) fail(`block size level ${level}`);
      const maxLength = level * 100_000;
      if (tt.length < maxLength) tt = new Int32Array(maxLength);
      let combined = 0;
      for (;;) {
        await bits.fill(readAhead);
        let start = bits.pos;
        let block: Block | undefined;
        let end = false;
        for (let want = readAhead; ; ) {
          try {
            const hi = bits.bits(24);
            const lo = bits.bits(24);
            if (hi === 0x177245 && lo === 0x385090) {
              // sqrt(pi): the end of the stream, with the combined CRC of its blocks.
              if (bits.bits32() !== combined) fail('stream CRC mismatch');
              end = true;
            } else if (hi === 0x314159 && lo === 0x265359) {
              block = readBlock(bits, tt, maxLength); // pi: a block
            } else fail('no block header where one should be');
            break;
          } catch (err) {
            if (err !== NEED_MORE) throw err;
            // A block larger than the input read ahead: read more and decode it again from its start.
            if (bits.inputDone) fail('the input ends in the middle of a block');
            want *= 2;
            if (want > MAX_BLOCK_BYTES) fail(`a block of more than ${MAX_BLOCK_BYTES} bytes`);
            bits.pos = start;
            await bits.fill(want);
            start = bits.pos; // the bytes before it were dropped
          }
        }
        if (end) break;
        yield* blockBytes(tt, block!);
        combined = (((combined << 1) | (combined >>> 31)) ^ block!.crc) >>> 0;
      }
      bits.alignToByte();
      streams++;
    }
  } catch (err) {
    if (err === NEED_MORE) fail('the input ends in the middle of a block');
    throw err;
  } finally {
    await bits.close();
  }
}
