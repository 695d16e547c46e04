// Length-limited Huffman codes for one deflate block, built the way GNU gzip and zlib both build them
// (they share this part): a binary heap ordered by frequency, ties broken by subtree depth; overlong codes
// are fixed by moving leaves down, then lengths are reassigned in frequency order; codes are canonical
// (RFC 1951 3.2.2). Any other valid construction would decode the same but change the bytes.

import { HEAP_SIZE, MAX_BITS, canonicalCodes } from './tables.ts';

/** One alphabet's tree: frequencies in, code lengths and codes out. Indices >= elems are inner nodes. */
export class HuffmanTree {
  readonly elems: number;
  readonly maxLength: number;
  /** Extra bits per symbol from `extraBase` on, counted in the encoded-size estimates. */
  readonly extraBits: Uint8Array;
  readonly extraBase: number;
  /** Lengths of the fixed code for this alphabet, or null (the code-length alphabet has none). */
  readonly staticLen: Uint8Array | null;
  readonly freq: Int32Array;
  readonly len: Uint8Array;
  readonly code: Uint16Array;
  readonly parent: Int32Array;
  /** Largest symbol with a non-zero frequency after `build`. */
  maxCode = 0;

  constructor(elems: number, maxLength: number, extraBits: Uint8Array, extraBase: number, staticLen: Uint8Array | null) {
    this.elems = elems;
    this.maxLength = maxLength;
    this.extraBits = extraBits;
    this.extraBase = extraBase;
    this.staticLen = staticLen;
    const size = 2 * elems + 1;
    this.freq = new Int32Array(size);
    this.len = new Uint8Array(size);
    this.code = new Uint16Array(size);
    this.parent = new Int32Array(size);
  }
}

/** Scratch shared by every tree of a compressor, and the block size estimates the builds add up. */
export class HuffmanBuilder {
  private readonly heap = new Int32Array(HEAP_SIZE);
  private readonly depth = new Uint8Array(HEAP_SIZE);
  private readonly blCount = new Uint16Array(MAX_BITS + 1);
  private heapLen = 0;
  private heapMax = 0;
  /** Bits the block takes with the dynamic trees built so far (trees' own description added later). */
  optLen = 0;
  /** Bits the block takes with the fixed trees. */
  staticLen = 0;

  resetEstimates(): void {
    this.optLen = 0;
    this.staticLen = 0;
  }

  /** Whether node n sorts before node m: lower frequency, then shallower subtree. */
  private smaller(freq: Int32Array, n: number, m: number): boolean {
    const fn = freq[n]!;
    const fm = freq[m]!;
    return fn < fm || (fn === fm && this.depth[n]! <= this.depth[m]!);
  }

  /** Sift the node at heap index k down to its place. */
  private siftDown(freq: Int32Array, k: number): void {
    const heap = this.heap;
    const v = heap[k]!;
    let j = k << 1;
    while (j <= this.heapLen) {
      if (j < this.heapLen && this.smaller(freq, heap[j + 1]!, heap[j]!)) j++;
      if (this.smaller(freq, v, heap[j]!)) break;
      heap[k] = heap[j]!;
      k = j;
      j <<= 1;
    }
    heap[k] = v;
  }

  /** Build code lengths and codes for `tree` from its frequencies, adding to the size estimates. */
  build(tree: HuffmanTree): void {
    const { freq, len, parent, elems, staticLen } = tree;
    const heap = this.heap;
    const depth = this.depth;
    let maxCode = -1;
    this.heapLen = 0;
    this.heapMax = HEAP_SIZE;

    for (let n = 0; n < elems; n++) {
      if (freq[n] !== 0) {
        heap[++this.heapLen] = maxCode = n;
        depth[n] = 0;
      } else {
        len[n] = 0;
      }
    }
    // Deflate decoders need at least one distance code and a tree of at least two codes, so both
    // compressors give frequency 1 to symbols 0 and 1 (or the first free one) until two are present,
    // and take those phantom symbols back out of the size estimates.
    while (this.heapLen < 2) {
      const node = maxCode < 2 ? ++maxCode : 0;
      heap[++this.heapLen] = node;
      freq[node] = 1;
      depth[node] = 0;
      this.optLen--;
      if (staticLen !== null) this.staticLen -= staticLen[node]!;
    }
    tree.maxCode = maxCode;

    for (let n = this.heapLen >> 1; n >= 1; n--) this.siftDown(freq, n);

    let node = elems;
    do {
      const n = heap[1]!;
      heap[1] = heap[this.heapLen--]!;
      this.siftDown(freq, 1);
      const m = heap[1]!;
      // Keep the removed nodes in frequency order at the top of the heap array, for the length pass.
      heap[--this.heapMax] = n;
      heap[--this.heapMax] = m;
      freq[node] = freq[n]! + freq[m]!;
      depth[node] = Math.max(depth[n]!, depth[m]!) + 1;
      parent[n] = parent[m] = node;
      heap[1] = node++;
      this.siftDown(freq, 1);
    } while (this.heapLen >= 2);
    heap[--this.heapMax] = heap[1]!;

    this.assignLengths(tree);
    canonicalCodes(len, maxCode + 1, this.blCount, tree.code);
  }

  /** Code lengths from the tree shape, limited to maxLength; also sums the block size estimates. */
  private assignLengths(tree: HuffmanTree): void {
    const { freq, len, parent, extraBits, extraBase, maxLength, staticLen, maxCode } = tree;
    const heap = this.heap;
    const blCount = this.blCount;
    blCount.fill(0);
    let overflow = 0;

    len[heap[this.heapMax]!] = 0; // the root
    let h = this.heapMax + 1;
    for (; h < HEAP_SIZE; h++) {
      const n = heap[h]!;
      let bits = len[parent[n]!]! + 1;
      if (bits > maxLength) {
        bits = maxLength;
        overflow++;
      }
      len[n] = bits;
      if (n > maxCode) continue; // inner node
      blCount[bits]!++;
      const xbits = n >= extraBase ? extraBits[n - extraBase]! : 0;
      const f = freq[n]!;
      this.optLen += f * (bits + xbits);
      if (staticLen !== null) this.staticLen += f * (staticLen[n]! + xbits);
    }
    if (overflow === 0) return;

    // Too-long codes: take a leaf from the deepest level that can grow and hang two overflowing leaves
    // under it, two at a time, until the Kraft sum fits again.
    do {
      let bits = maxLength - 1;
      while (blCount[bits] === 0) bits--;
      blCount[bits]!--;
      blCount[bits + 1]! += 2;
      blCount[maxLength]!--;
      overflow -= 2;
    } while (overflow > 0);

    // Hand the corrected lengths out again, longest to the least frequent (h walks the removal order).
    for (let bits = maxLength; bits !== 0; bits--) {
      let n = blCount[bits]!;
      while (n !== 0) {
        const m = heap[--h]!;
        if (m > maxCode) continue;
        if (len[m] !== bits) {
          this.optLen += (bits - len[m]!) * freq[m]!;
          len[m] = bits;
        }
        n--;
      }
    }
  }
}
