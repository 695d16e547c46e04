// Piece maps as in BitTorrent v2 (BEP 52): a SHA-256 Merkle tree over 16 KiB blocks of a file, whose
// root (`merkleRoot` in a manifest) pins every piece. Leaves are SHA-256 of each block (the last one
// may be short); the leaf count is padded to a power of two with zero hashes (32 zero bytes), and each
// node is SHA-256(left || right). The piece layer is the row of subtree roots one per piece (piece
// length a power of two of at least 16 KiB); it is what mirrors publish at /sha256/HEX.pieces.
import { hash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { SourcemeshError } from '../errors.ts';

export const BLOCK = 16 * 1024;
const ZERO = Buffer.alloc(32);

// One-shot hashing (crypto.hash): a GiB has 65,536 blocks and as many inner nodes, and a Hash object
// per node costs more than the node's hashing.
const pair = Buffer.allocUnsafe(64);
const h2 = (a: Buffer, b: Buffer) => {
  a.copy(pair, 0);
  b.copy(pair, 32);
  return hash('sha256', pair, 'buffer');
};

/** Root of `leaves` padded with `pad` up to `width` leaves (a power of two). */
function subtreeRoot(leaves: Buffer[], width: number, pad: Buffer = ZERO): Buffer {
  let row = leaves.slice();
  let padding = pad;
  for (let w = width; w > 1; w /= 2) {
    const next: Buffer[] = [];
    for (let i = 0; i < w; i += 2) {
      if (i >= row.length) break;
      next.push(h2(row[i]!, row[i + 1] ?? padding));
    }
    padding = h2(padding, padding);
    row = next;
  }
  return row[0] ?? padding;
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

export function isPieceLength(n: number): boolean {
  return Number.isInteger(n) && n >= BLOCK && (n & (n - 1)) === 0;
}

/** Leaf hashes of a buffer (one per 16 KiB block). */
export function blockHashes(data: Uint8Array): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += BLOCK) out.push(hash('sha256', data.subarray(i, i + BLOCK), 'buffer'));
  return out;
}

/** The hash a piece must have in the piece layer: its blocks' subtree, padded to the piece length. */
export function pieceHash(piece: Uint8Array, pieceLength: number): Buffer {
  return pieceHashOfLeaves(blockHashes(piece), pieceLength);
}

/** pieceHash from a piece's block hashes already taken (a caller that keeps the leaves hashes once). */
export function pieceHashOfLeaves(leaves: Buffer[], pieceLength: number): Buffer {
  return subtreeRoot(leaves, pieceLength / BLOCK);
}

export interface PieceMap {
  root: Buffer;
  pieceLength: number;
  /** One hash per piece; empty when the file fits in one piece (the root then pins it). */
  layer: Buffer[];
}

/**
 * The piece map of a file, read in order into one reused buffer (leaf hashes only are kept: 2 MiB per
 * GiB). A stream's fresh chunk per read and the carry of partial blocks cost some 15% more CPU per byte.
 */
export async function pieceMapOfFile(file: string, pieceLength: number): Promise<PieceMap> {
  if (!isPieceLength(pieceLength)) throw new SourcemeshError('E_USAGE', `piece length ${pieceLength}: must be a power of two of at least 16 KiB`);
  const leaves: Buffer[] = [];
  const buf = Buffer.allocUnsafe(READ_BYTES);
  const fh = await open(file, 'r');
  try {
    for (let pos = 0; ;) {
      // Whole blocks only, except at the end: fill the buffer unless the file ends first.
      let n = 0;
      for (let got = -1; n < buf.length && got !== 0; n += got) got = (await fh.read(buf, n, buf.length - n, pos + n)).bytesRead;
      leaves.push(...blockHashes(buf.subarray(0, n)));
      pos += n;
      if (n < buf.length) break;
    }
  } finally {
    await fh.close();
  }
  return pieceMapFromLeaves(leaves, pieceLength);
}

/** A multiple of BLOCK. */
const READ_BYTES = 1 << 20;

export function pieceMapFromLeaves(leaves: Buffer[], pieceLength: number): PieceMap {
  const perPiece = pieceLength / BLOCK;
  const root = subtreeRoot(leaves, nextPow2(Math.max(leaves.length, 1)));
  if (leaves.length <= perPiece) return { root: leaves.length ? root : ZERO, pieceLength, layer: [] };
  const layer: Buffer[] = [];
  for (let i = 0; i < leaves.length; i += perPiece) layer.push(subtreeRoot(leaves.slice(i, i + perPiece), perPiece));
  return { root, pieceLength, layer };
}

/**
 * A piece map built as the bytes go by, in any chunking: the download's own pass over the bytes (BEP 52
 * leaves hashed as they arrive, no read-back). Only the current piece's leaves and the piece layer are
 * kept (32 bytes per piece). finish() equals pieceMapFromLeaves(blockHashes(all bytes), pieceLength).
 */
export class PieceMapBuilder {
  readonly pieceLength: number;
  private readonly perPiece: number;
  /** A block not yet whole, across chunks. */
  private readonly carry = Buffer.allocUnsafe(BLOCK);
  private carried = 0;
  private leaves: Buffer[] = [];
  private readonly layer: Buffer[] = [];

  constructor(pieceLength: number) {
    if (!isPieceLength(pieceLength)) throw new SourcemeshError('E_USAGE', `piece length ${pieceLength}: must be a power of two of at least 16 KiB`);
    this.pieceLength = pieceLength;
    this.perPiece = pieceLength / BLOCK;
  }

  update(data: Uint8Array): void {
    let i = 0;
    if (this.carried > 0) {
      const n = Math.min(BLOCK - this.carried, data.length);
      this.carry.set(data.subarray(0, n), this.carried);
      this.carried += n;
      i = n;
      if (this.carried < BLOCK) return;
      this.leaf(hash('sha256', this.carry, 'buffer'));
      this.carried = 0;
    }
    for (; i + BLOCK <= data.length; i += BLOCK) this.leaf(hash('sha256', data.subarray(i, i + BLOCK), 'buffer'));
    if (i < data.length) {
      this.carry.set(data.subarray(i), 0);
      this.carried = data.length - i;
    }
  }

  finish(): PieceMap {
    if (this.carried > 0) this.leaf(hash('sha256', this.carry.subarray(0, this.carried), 'buffer'));
    this.carried = 0;
    // One piece or less: the root is the tree of the leaves themselves, padded to a power of two.
    if (this.layer.length === 0) return pieceMapFromLeaves(this.leaves, this.pieceLength);
    if (this.leaves.length) this.layer.push(subtreeRoot(this.leaves, this.perPiece));
    this.leaves = [];
    // Above the piece layer, padding is the root of an all-zero-leaf piece (as verifyPieceLayer does).
    const root = subtreeRoot(this.layer, nextPow2(this.layer.length), subtreeRoot([], this.perPiece));
    return { root, pieceLength: this.pieceLength, layer: this.layer.slice() };
  }

  private leaf(h: Buffer): void {
    this.leaves.push(h);
    // A whole piece is folded into its layer hash once a leaf beyond it shows it is not the only one
    // (a file of one piece has no layer and another root: see finish).
    if (this.leaves.length > this.perPiece) {
      this.layer.push(subtreeRoot(this.leaves.slice(0, this.perPiece), this.perPiece));
      this.leaves = this.leaves.slice(this.perPiece);
    }
  }
}

/**
 * Check a published piece layer against a trusted root (attacker-controlled input: a mirror sent it).
 * The piece length is the one that gives the right number of pieces for `size`.
 */
export function verifyPieceLayer(bytes: Uint8Array, size: number, root: Buffer): { pieceLength: number; layer: Buffer[] } {
  if (bytes.length === 0 || bytes.length % 32 !== 0) throw new SourcemeshError('E_FORMAT', `piece layer of ${bytes.length} bytes: not a whole number of SHA-256 hashes`);
  const count = bytes.length / 32;
  let pieceLength = BLOCK;
  while (Math.ceil(size / pieceLength) > count) pieceLength *= 2;
  if (Math.ceil(size / pieceLength) !== count || count < 2) throw new SourcemeshError('E_FORMAT', `piece layer of ${count} hashes fits no piece length for ${size} bytes`);
  const layer = Array.from({ length: count }, (_, i) => Buffer.from(bytes.subarray(i * 32, i * 32 + 32)));
  // Pad with the root of an all-zero-leaf piece, as the tree above the piece layer does.
  const zeroPiece = subtreeRoot([], pieceLength / BLOCK);
  const computed = subtreeRoot(layer, nextPow2(count), zeroPiece);
  if (!computed.equals(root)) throw new SourcemeshError('E_PROOF', `piece layer does not hash to the pinned merkle root ${root.toString('hex')}`);
  return { pieceLength, layer };
}
