// Test support: a stored-hash store in memory, and RFC 9162 §2.1 written as literally as the RFC states
// it (recursive MTH, PATH and SUBPROOF over the leaf list), to check the optimized code against.

import { SourcemeshError } from '../../src/errors.ts';
import { CompactRange, type Hash, type HashReader, leafHash, nodeHash, EMPTY_TREE_HASH } from '../../src/trust/merkle.ts';

export class MemoryHashStore implements HashReader {
  readonly hashes: Hash[] = [];
  readonly range = new CompactRange();
  reads = 0;

  append(data: Uint8Array): void {
    this.hashes.push(...this.range.append(leafHash(data)));
  }

  readHashes(indexes: readonly number[]): Hash[] {
    this.reads += indexes.length;
    return indexes.map((i) => {
      const h = this.hashes[i];
      if (h === undefined) throw new SourcemeshError('E_INTERNAL', `stored hash ${i} not written`);
      return h;
    });
  }
}

function k(n: number): number {
  let p = 1;
  while (p * 2 < n) p *= 2;
  return p;
}

/** RFC 9162 §2.1.1 MTH(D[lo:hi]) over leaf hashes. */
export function referenceRoot(leaves: readonly Hash[], lo = 0, hi = leaves.length): Hash {
  const n = hi - lo;
  if (n === 0) return EMPTY_TREE_HASH;
  if (n === 1) return leaves[lo]!;
  const split = k(n);
  return nodeHash(referenceRoot(leaves, lo, lo + split), referenceRoot(leaves, lo + split, hi));
}

/** RFC 9162 §2.1.3.1 PATH(m, D[lo:hi]). */
export function referencePath(leaves: readonly Hash[], m: number, lo = 0, hi = leaves.length): Hash[] {
  const n = hi - lo;
  if (n <= 1) return [];
  const split = k(n);
  if (m < split) return [...referencePath(leaves, m, lo, lo + split), referenceRoot(leaves, lo + split, hi)];
  return [...referencePath(leaves, m - split, lo + split, hi), referenceRoot(leaves, lo, lo + split)];
}

/** RFC 9162 §2.1.4.1 PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true). */
export function referenceConsistency(leaves: readonly Hash[], m: number, lo = 0, hi = leaves.length, b = true): Hash[] {
  const n = hi - lo;
  if (m === n) return b ? [] : [referenceRoot(leaves, lo, hi)];
  const split = k(n);
  if (m <= split) return [...referenceConsistency(leaves, m, lo, lo + split, b), referenceRoot(leaves, lo + split, hi)];
  return [...referenceConsistency(leaves, m - split, lo + split, hi, false), referenceRoot(leaves, lo, lo + split)];
}
