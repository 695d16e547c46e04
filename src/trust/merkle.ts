// Merkle tree hashing and proofs, RFC 9162 §2.1 (identical to RFC 6962 §2.1 for SHA-256).
//
// Leaves are hashed as SHA-256(0x00 || data), interior nodes as SHA-256(0x01 || left || right), and
// the empty tree's hash is SHA-256 of the empty string. A log keeps the hash of every *complete*
// subtree (a node whose 2^level leaves all exist) in "stored hash" order: the leaf hash of leaf m,
// then the hashes of the subtrees that leaf m completes, lowest first. Appending a leaf then writes
// 1 + (trailing one bits of m) hashes, and every root or proof reads at most a few per tree level.
//
// Tree sizes and leaf indexes are JavaScript numbers: safe integers, so trees of up to 2^53 - 1 leaves.
// Bit operations in JavaScript truncate to 32 bits, so this module halves and doubles arithmetically.

import { hash as sha256OneShot, timingSafeEqual } from 'node:crypto';
import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { decodeBase64, encodeBase64 } from './base64.ts';

export const HASH_SIZE = 32;
export type Hash = Uint8Array;

/** A source of stored hashes, by stored hash index (see storedHashIndex): memory, a database, tiles. */
export interface HashReader {
  /** The hashes at these indexes, in the same order. Any may be requested only if it is complete. */
  readHashes(indexes: readonly number[]): readonly Hash[] | Promise<readonly Hash[]>;
}

// ---------------------------------------------------------------------------------------------------
// Hashing

const LEAF_PREFIX = Buffer.from([0x00]);
// One scratch buffer for node hashing: verification hashes a few dozen nodes per proof, and building
// 0x01 || left || right in place avoids an allocation and a concat per node. Single-threaded, synchronous.
const nodeScratch = Buffer.alloc(1 + 2 * HASH_SIZE, 0x01);

/** RFC 9162 §2.1.1: MTH({d}) = SHA-256(0x00 || d). */
export function leafHash(data: Uint8Array): Hash {
  return sha256OneShot('sha256', Buffer.concat([LEAF_PREFIX, data]), 'buffer');
}

/** RFC 9162 §2.1.1: an interior node is SHA-256(0x01 || MTH(left) || MTH(right)). */
export function nodeHash(left: Hash, right: Hash): Hash {
  nodeScratch.set(left, 1);
  nodeScratch.set(right, 1 + HASH_SIZE);
  return sha256OneShot('sha256', nodeScratch, 'buffer');
}

/** RFC 9162 §2.1.1: the hash of the empty tree is the hash of the empty string. */
export const EMPTY_TREE_HASH: Hash = sha256OneShot('sha256', new Uint8Array(0), 'buffer');

/** Compare two digests in constant time (for equal lengths). */
export function hashesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

// ---------------------------------------------------------------------------------------------------
// Integer helpers for 53-bit sizes

const TWO_32 = 2 ** 32;

function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

function popcount(n: number): number {
  return popcount32(n % TWO_32) + popcount32(Math.floor(n / TWO_32));
}

function trailingOnes(n: number): number {
  let count = 0;
  while (n % 2 === 1) {
    count++;
    n = (n - 1) / 2;
  }
  return count;
}

/** The largest power of two strictly below n (n >= 2): RFC 9162 §2.1.1's split point k. */
function splitPoint(n: number): number {
  let k = 2 ** Math.floor(Math.log2(n - 1));
  // log2 of large integers is a float: correct by at most one step either way.
  while (k >= n) k /= 2;
  while (k * 2 < n) k *= 2;
  return k;
}

function checkSize(what: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new SourcemeshError('E_FORMAT', `${what} ${value} is not a tree size or leaf index we can represent (0 to 2^53-1)`, { [what]: value });
  }
}

// ---------------------------------------------------------------------------------------------------
// Stored hashes

/** Number of hashes stored for the first `m` leaves: each leaf adds itself plus the subtrees it completes. */
function storedBefore(m: number): number {
  return 2 * m - popcount(m);
}

/**
 * The stored hash index of the complete subtree at `level` (2^level leaves) number `n` from the left.
 * That subtree is completed by leaf m = (n+1)·2^level − 1, and is stored right after that leaf's own hash
 * and the level − 1 smaller subtrees it completes first.
 */
export function storedHashIndex(level: number, n: number): number {
  const m = (n + 1) * 2 ** level - 1;
  const index = storedBefore(m) + level;
  if (!Number.isSafeInteger(index) || level < 0 || level > 63 || n < 0 || !Number.isSafeInteger(n)) {
    throw new SourcemeshError('E_FORMAT', `no stored hash for level ${level}, node ${n}`, { level, n });
  }
  return index;
}

/** The inverse of storedHashIndex. */
export function splitStoredHashIndex(index: number): { level: number; n: number } {
  checkSize('index', index);
  // storedBefore(m) is strictly increasing and within 53 of 2m, so m is found in a few steps down.
  let m = Math.floor((index + 54) / 2);
  while (storedBefore(m) > index) m--;
  const level = index - storedBefore(m);
  // Leaf m completes exactly trailingOnes(m) subtrees above itself.
  if (level > trailingOnes(m)) throw new SourcemeshError('E_INTERNAL', `stored hash index ${index} did not split`);
  return { level, n: (m + 1) / 2 ** level - 1 };
}

/** How many hashes a log of `size` leaves stores. */
export function storedHashCount(size: number): number {
  checkSize('size', size);
  return storedBefore(size);
}

/**
 * The hashes to store when appending leaf `n` (with hash `leaf`): the leaf hash, then the hash of each
 * subtree it completes, lowest level first. They belong at storedHashIndex(0, n) onwards.
 * Reads the left siblings (one per completed level) from `reader`.
 */
export async function storedHashesForLeaf(n: number, leaf: Hash, reader: HashReader): Promise<Hash[]> {
  checkSize('index', n);
  checkHash(leaf, 'leaf hash');
  const levels = trailingOnes(n);
  const indexes: number[] = [];
  for (let level = 0, m = n; level < levels; level++, m = (m - 1) / 2) indexes.push(storedHashIndex(level, m - 1));
  const siblings = await readChecked(reader, indexes);
  const out: Hash[] = [leaf];
  let h = leaf;
  for (const sibling of siblings) {
    h = nodeHash(sibling, h);
    out.push(h);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Subtree hashes over stored hashes

/**
 * The stored hashes whose right fold is MTH(D[lo:hi)), appended to `out`. Every subtree a root or
 * proof needs (RFC 9162 §2.1.3.1 and §2.1.4.1) starts at a multiple of a power of two above its
 * size, so it splits greedily, largest first, into complete aligned subtrees.
 */
function rangeIndexes(lo: number, hi: number, out: number[]): void {
  while (lo < hi) {
    let k = 1;
    let level = 0;
    while (k * 2 <= hi - lo && lo % (k * 2) === 0) {
      k *= 2;
      level++;
    }
    out.push(storedHashIndex(level, lo / k));
    lo += k;
  }
}

/** RFC 9162 §2.1.1: fold complete subtree hashes, the last two first (the tree leans left). */
function foldRight(hashes: readonly Hash[], from: number, to: number): Hash {
  let h = hashes[to - 1]!;
  for (let i = to - 2; i >= from; i--) h = nodeHash(hashes[i]!, h);
  return h;
}

type Range = readonly [lo: number, hi: number];

/** RFC 9162 §2.1.3.1 PATH(m, D[0:n]): the subtrees whose hashes make the path, leaf end first. */
function inclusionRanges(index: number, size: number): Range[] {
  const ranges: Range[] = [];
  let lo = 0;
  let hi = size;
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo);
    if (index < lo + k) {
      ranges.push([lo + k, hi]);
      hi = lo + k;
    } else {
      ranges.push([lo, lo + k]);
      lo += k;
    }
  }
  return ranges.reverse();
}

/** RFC 9162 §2.1.4.1 PROOF(m, D[0:n]) via SUBPROOF: the subtrees whose hashes make the proof, in order. */
function consistencyRanges(oldSize: number, newSize: number): Range[] {
  const ranges: Range[] = [];
  let lo = 0;
  let hi = newSize;
  let m = oldSize;
  let complete = true; // SUBPROOF's b: the old tree is exactly this subtree so far
  for (;;) {
    if (m === hi - lo) {
      if (!complete) ranges.push([lo, hi]);
      break;
    }
    const k = splitPoint(hi - lo);
    if (m <= k) {
      ranges.push([lo + k, hi]);
      hi = lo + k;
    } else {
      ranges.push([lo, lo + k]);
      lo += k;
      m -= k;
      complete = false;
    }
  }
  return ranges.reverse();
}

async function hashRanges(ranges: readonly Range[], reader: HashReader): Promise<Hash[]> {
  const indexes: number[] = [];
  const counts: number[] = [];
  for (const [lo, hi] of ranges) {
    const before = indexes.length;
    rangeIndexes(lo, hi, indexes);
    counts.push(indexes.length - before);
  }
  const hashes = await readChecked(reader, indexes);
  const out: Hash[] = [];
  let at = 0;
  for (const count of counts) {
    out.push(foldRight(hashes, at, at + count));
    at += count;
  }
  return out;
}

async function readChecked(reader: HashReader, indexes: readonly number[]): Promise<readonly Hash[]> {
  if (indexes.length === 0) return [];
  const hashes = await reader.readHashes(indexes);
  if (hashes.length !== indexes.length) {
    throw new SourcemeshError('E_FORMAT', `hash source returned ${hashes.length} hashes for ${indexes.length} requested`);
  }
  for (const h of hashes) checkHash(h, 'stored hash');
  return hashes;
}

function checkHash(h: unknown, what: string): asserts h is Hash {
  if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) {
    throw new SourcemeshError('E_FORMAT', `${what} is not a ${HASH_SIZE}-byte SHA-256 hash`);
  }
}

/** The stored hash indexes that treeHash(size) reads: the peaks of the tree, largest first. */
export function treeHashIndexes(size: number): number[] {
  checkSize('size', size);
  const out: number[] = [];
  rangeIndexes(0, size, out);
  return out;
}

/** RFC 9162 §2.1.1 MTH(D[0:size]) from stored hashes. */
export async function treeHash(size: number, reader: HashReader): Promise<Hash> {
  checkSize('size', size);
  if (size === 0) return Buffer.from(EMPTY_TREE_HASH);
  const hashes = await readChecked(reader, treeHashIndexes(size));
  return foldRight(hashes, 0, hashes.length);
}

/** RFC 9162 §2.1.3.1: the inclusion proof (audit path) of leaf `index` in the tree of `size` leaves. */
export async function proveInclusion(index: number, size: number, reader: HashReader): Promise<Hash[]> {
  checkSize('index', index);
  checkSize('size', size);
  if (index >= size) throw new SourcemeshError('E_FORMAT', `leaf ${index} is not in a tree of ${size} leaves`, { index, size });
  return hashRanges(inclusionRanges(index, size), reader);
}

/** RFC 9162 §2.1.4.1: the consistency proof from the tree of `oldSize` leaves to the tree of `newSize`. */
export async function proveConsistency(oldSize: number, newSize: number, reader: HashReader): Promise<Hash[]> {
  checkSize('oldSize', oldSize);
  checkSize('newSize', newSize);
  if (oldSize > newSize) throw new SourcemeshError('E_FORMAT', `no consistency proof from ${oldSize} leaves back to ${newSize}`, { oldSize, newSize });
  // An empty old tree is consistent with every tree, and a tree with itself: both proofs are empty.
  if (oldSize === 0 || oldSize === newSize) return [];
  return hashRanges(consistencyRanges(oldSize, newSize), reader);
}

// ---------------------------------------------------------------------------------------------------
// Verification (RFC 9162 §2.1.3.2 and §2.1.4.2). Everything here is attacker-controlled: the proof,
// the sizes and the hashes come from a log, a bundle or a witness request.

function checkProof(proof: readonly Hash[], limits: Pick<Limits, 'proofHashes'>): void {
  if (!Array.isArray(proof)) throw new SourcemeshError('E_FORMAT', 'a proof is a list of hashes');
  if (proof.length > limits.proofHashes) {
    throw new SourcemeshError('E_FORMAT', `a proof of ${proof.length} hashes is longer than the limit of ${limits.proofHashes}`, { length: proof.length });
  }
  for (const h of proof) checkHash(h, 'a proof element');
}

/** RFC 9162 §2.1.3.2: the root implied by an inclusion proof, or undefined if the proof has the wrong shape. */
export function rootFromInclusionProof(index: number, size: number, leaf: Hash, proof: readonly Hash[], limits: Pick<Limits, 'proofHashes'> = LIMITS): Hash | undefined {
  checkSize('index', index);
  checkSize('size', size);
  checkHash(leaf, 'leaf hash');
  checkProof(proof, limits);
  if (index >= size) return undefined;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return undefined;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      // Skip the levels where this node is a left child with no right sibling in the tree.
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : undefined;
}

/** RFC 9162 §2.1.3.2. Throws E_PROOF unless `proof` shows leaf `index` (hash `leaf`) in the tree with root `root`. */
export function verifyInclusion(index: number, size: number, leaf: Hash, proof: readonly Hash[], root: Hash, limits: Pick<Limits, 'proofHashes'> = LIMITS): void {
  checkHash(root, 'root hash');
  const computed = rootFromInclusionProof(index, size, leaf, proof, limits);
  if (computed === undefined || !hashesEqual(computed, root)) {
    throw new SourcemeshError('E_PROOF', `the inclusion proof of leaf ${index} in the tree of ${size} leaves does not verify`, { index, size });
  }
}

/**
 * RFC 9162 §2.1.4.2: the old and new roots that a consistency proof between two non-empty trees of
 * different sizes implies. When `oldSize` is a power of two the old tree is a single node of the new one
 * and the proof leaves it out, so it is taken from `oldRoot`. Returns a reason string if the proof has the
 * wrong shape for the sizes.
 */
export function rootsFromConsistencyProof(oldSize: number, newSize: number, oldRoot: Hash, proof: readonly Hash[], limits: Pick<Limits, 'proofHashes'> = LIMITS): { oldRoot: Hash; newRoot: Hash } | string {
  checkSize('oldSize', oldSize);
  checkSize('newSize', newSize);
  checkHash(oldRoot, 'old root hash');
  checkProof(proof, limits);
  if (oldSize === 0 || oldSize >= newSize) return 'the sizes are not 0 < old < new';
  if (proof.length === 0) return 'the proof is empty';
  const path = isPowerOfTwo(oldSize) ? [oldRoot, ...proof] : proof;
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (fn % 2 === 1) {
    fn = (fn - 1) / 2;
    sn = Math.floor(sn / 2);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) return 'the proof is too long';
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      // Skip the levels where the old tree's edge node is a left child with no sibling yet.
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) return 'the proof is too short';
  return { oldRoot: fr, newRoot: sr };
}

/**
 * RFC 9162 §2.1.4.2. Throws E_PROOF unless `proof` shows the tree of `oldSize` leaves with root `oldRoot`
 * is a prefix of the tree of `newSize` leaves with root `newRoot`.
 */
export function verifyConsistency(oldSize: number, newSize: number, oldRoot: Hash, newRoot: Hash, proof: readonly Hash[], limits: Pick<Limits, 'proofHashes'> = LIMITS): void {
  checkSize('oldSize', oldSize);
  checkSize('newSize', newSize);
  checkHash(oldRoot, 'old root hash');
  checkHash(newRoot, 'new root hash');
  checkProof(proof, limits);
  const fail = (why: string): never => {
    throw new SourcemeshError('E_PROOF', `the consistency proof from ${oldSize} to ${newSize} leaves does not verify: ${why}`, { oldSize, newSize });
  };
  if (oldSize > newSize) fail('the old tree is larger');
  if (oldSize === 0) {
    // C2SP tlog-witness: from size zero the proof is empty, and the empty tree's root is SHA-256("").
    if (proof.length !== 0) fail('a proof from the empty tree must be empty');
    if (!hashesEqual(oldRoot, EMPTY_TREE_HASH)) fail('the empty tree has another root');
    return;
  }
  if (oldSize === newSize) {
    if (proof.length !== 0) fail('a proof between equal sizes must be empty');
    if (!hashesEqual(oldRoot, newRoot)) fail('two different roots for one size');
    return;
  }
  const roots = rootsFromConsistencyProof(oldSize, newSize, oldRoot, proof, limits);
  if (typeof roots === 'string') fail(roots);
  const { oldRoot: fr, newRoot: sr } = roots as { oldRoot: Hash; newRoot: Hash };
  if (!hashesEqual(fr, oldRoot)) fail('it does not lead to the old root');
  if (!hashesEqual(sr, newRoot)) fail('it does not lead to the new root');
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

// ---------------------------------------------------------------------------------------------------
// Compact range: the peaks of a tree, enough to append and to compute the root without reading.

/**
 * The hashes of the complete subtrees that make up a tree of `size` leaves (one per one bit of the size,
 * largest first). A log keeps this in memory: appending is O(log n) hashing and returns the hashes to
 * store, and the root is a fold of at most 53 hashes.
 */
export class CompactRange {
  #size: number;
  #peaks: Hash[];

  constructor(size = 0, peaks: readonly Hash[] = []) {
    checkSize('size', size);
    if (peaks.length !== popcount(size)) {
      throw new SourcemeshError('E_FORMAT', `a tree of ${size} leaves has ${popcount(size)} peaks, not ${peaks.length}`);
    }
    for (const p of peaks) checkHash(p, 'peak hash');
    this.#size = size;
    this.#peaks = peaks.map((p) => Buffer.from(p));
  }

  /** Load the peaks of a stored tree. */
  static async fromStoredHashes(size: number, reader: HashReader): Promise<CompactRange> {
    const peaks = await readChecked(reader, treeHashIndexes(size));
    return new CompactRange(size, peaks);
  }

  get size(): number {
    return this.#size;
  }

  get peaks(): Hash[] {
    return this.#peaks.map((p) => Buffer.from(p));
  }

  /** Append a leaf hash; returns the hashes to store from storedHashIndex(0, oldSize) on. */
  append(leaf: Hash): Hash[] {
    checkHash(leaf, 'leaf hash');
    if (this.#size >= Number.MAX_SAFE_INTEGER) throw new SourcemeshError('E_FORMAT', 'the tree is full');
    const stored: Hash[] = [Buffer.from(leaf)];
    let h: Hash = stored[0]!;
    for (let i = trailingOnes(this.#size); i > 0; i--) {
      h = nodeHash(this.#peaks.pop()!, h);
      stored.push(h);
    }
    this.#peaks.push(h);
    this.#size++;
    return stored;
  }

  root(): Hash {
    if (this.#size === 0) return Buffer.from(EMPTY_TREE_HASH);
    return foldRight(this.#peaks, 0, this.#peaks.length);
  }
}

// ---------------------------------------------------------------------------------------------------
// Proof text: one base64 hash per line, as C2SP tlog-witness add-checkpoint bodies and our release
// bundles carry them.

/** Parse proof lines (each the base64 of one 32-byte hash). Attacker-controlled. */
export function parseProofLines(lines: readonly string[], limits: Pick<Limits, 'proofHashes'> = LIMITS): Hash[] {
  if (lines.length > limits.proofHashes) {
    throw new SourcemeshError('E_FORMAT', `a proof of ${lines.length} lines is longer than the limit of ${limits.proofHashes}`, { length: lines.length });
  }
  return lines.map((line, i) => {
    // 44 characters: the base64 of 32 bytes; checked before decoding so a huge line costs nothing.
    const bytes = line.length === 44 ? decodeBase64(line) : undefined;
    if (bytes === undefined || bytes.length !== HASH_SIZE) {
      throw new SourcemeshError('E_FORMAT', `proof line ${i + 1} is not the base64 of a 32-byte hash`, { line: i + 1 });
    }
    return bytes;
  });
}

export function formatProofLines(proof: readonly Hash[]): string {
  return proof.map((h) => `${encodeBase64(h)}\n`).join('');
}
