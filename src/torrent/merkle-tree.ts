// A file's whole BEP 52 Merkle tree (16 KiB leaves, padded with zero hashes to a power of two), kept by a
// seeder to answer hash requests: a range of one layer and the uncle hashes that tie it to the pieces
// root. The same tree as src/fetch/piece-map.ts (its root is the manifest's merkleRoot), all layers kept.
import { hash } from 'node:crypto';

const ZERO = Buffer.alloc(32);

export class MerkleTree {
  /** layers[0] are the leaves (padded), the last layer is [root]. */
  readonly layers: Buffer[][];

  constructor(leaves: readonly Buffer[]) {
    let width = 1;
    while (width < leaves.length) width *= 2;
    let row: Buffer[] = [...leaves];
    let pad = ZERO;
    const layers: Buffer[][] = [];
    for (;;) {
      layers.push(row);
      if (width === 1) break;
      const next: Buffer[] = [];
      for (let i = 0; i < width; i += 2) {
        if (i >= row.length) break;
        next.push(hash('sha256', Buffer.concat([row[i]!, row[i + 1] ?? pad]), 'buffer'));
      }
      pad = hash('sha256', Buffer.concat([pad, pad]), 'buffer');
      row = next;
      width /= 2;
    }
    this.layers = layers;
    this.pads = [];
    let p = ZERO;
    for (let i = 0; i < layers.length; i++) {
      this.pads.push(p);
      p = hash('sha256', Buffer.concat([p, p]), 'buffer');
    }
  }

  /** The zero-padding hash of each layer. */
  private readonly pads: Buffer[];

  get root(): Buffer {
    return this.layers.at(-1)![0] ?? ZERO;
  }

  /** Layer count (leaves to root). */
  get height(): number {
    return this.layers.length;
  }

  /** Width of layer `l` once padded: 2^(height - 1 - l). */
  width(l: number): number {
    return 2 ** (this.layers.length - 1 - l);
  }

  node(l: number, i: number): Buffer {
    return this.layers[l]![i] ?? this.pads[l]!;
  }

  /**
   * BEP 52 `hashes` for a `hash request`: `length` hashes of layer `base` from `index`, then one uncle
   * per layer for `proofLayers` layers above the subtree those hashes span, never the root itself.
   * Undefined when the request does not fit this tree (the peer gets a `hash reject`).
   */
  hashes(base: number, index: number, length: number, proofLayers: number, maxHashes: number): Buffer[] | undefined {
    if (base >= this.height || length < 1 || length > maxHashes || (length & (length - 1)) !== 0) return undefined;
    if (index % length !== 0 || index + length > this.width(base)) return undefined;
    const out: Buffer[] = [];
    for (let i = index; i < index + length; i++) out.push(this.node(base, i));
    let layer = base + Math.log2(length);
    let at = index / length;
    for (let k = 0; k < proofLayers && layer < this.height - 1; k++, layer++, at = Math.floor(at / 2)) out.push(this.node(layer, at ^ 1));
    return out;
  }
}
