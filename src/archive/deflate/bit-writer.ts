// Bit-level output for deflate: RFC 1951 3.1.1 packs data elements starting with the least significant
// bit of each byte; Huffman codes are stored pre-reversed so that they go out with the same routine.

const INITIAL_CAPACITY = 1 << 17;

export class BitWriter {
  /** Pending output bytes; `pos` of them are valid. Grown on demand, drained by `take`. */
  buf: Uint8Array;
  pos = 0;
  /** Bits not yet written, in the low `bitCount` bits (bitCount < 16 between calls). */
  bitBuf = 0;
  bitCount = 0;

  constructor() {
    this.buf = new Uint8Array(INITIAL_CAPACITY);
  }

  /** Make room for `n` more bytes. Callers reserve before hot loops that write without checks. */
  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  /** Append the low `n` bits of `value` (n <= 16). */
  sendBits(value: number, n: number): void {
    let bitBuf = this.bitBuf | (value << this.bitCount);
    let bitCount = this.bitCount + n;
    if (bitCount >= 16) {
      this.reserve(2);
      this.buf[this.pos++] = bitBuf & 0xff;
      this.buf[this.pos++] = (bitBuf >>> 8) & 0xff;
      bitBuf >>>= 16;
      bitCount -= 16;
    }
    this.bitBuf = bitBuf;
    this.bitCount = bitCount;
  }

  /** Pad with zero bits to a byte boundary (RFC 1951 3.2.4: stored blocks and the stream end). */
  alignToByte(): void {
    this.reserve(2);
    if (this.bitCount > 8) {
      this.buf[this.pos++] = this.bitBuf & 0xff;
      this.buf[this.pos++] = (this.bitBuf >>> 8) & 0xff;
    } else if (this.bitCount > 0) {
      this.buf[this.pos++] = this.bitBuf & 0xff;
    }
    this.bitBuf = 0;
    this.bitCount = 0;
  }

  /** Append raw bytes; the writer must be byte-aligned. */
  writeBytes(src: Uint8Array, start: number, length: number): void {
    this.reserve(length);
    this.buf.set(src.subarray(start, start + length), this.pos);
    this.pos += length;
  }

  /** Append a 16-bit little-endian value; the writer must be byte-aligned. */
  writeUint16LE(value: number): void {
    this.reserve(2);
    this.buf[this.pos++] = value & 0xff;
    this.buf[this.pos++] = (value >>> 8) & 0xff;
  }

  /** Remove and return the complete bytes written so far (a copy the caller may keep). */
  take(): Uint8Array {
    const out = this.buf.slice(0, this.pos);
    this.pos = 0;
    return out;
  }
}
