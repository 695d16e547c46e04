import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { limitsWith } from '../../src/limits.ts';
import {
  CompactRange, EMPTY_TREE_HASH, formatProofLines, type Hash, type HashReader, leafHash, nodeHash, parseProofLines, proveConsistency, proveInclusion,
  rootFromInclusionProof, rootsFromConsistencyProof, splitStoredHashIndex, storedHashCount, storedHashesForLeaf, storedHashIndex, treeHash, treeHashIndexes, verifyConsistency, verifyInclusion,
} from '../../src/trust/merkle.ts';
import { MemoryHashStore, referenceConsistency, referencePath, referenceRoot } from './reference-tree.ts';

const vectors = JSON.parse(readFileSync(new URL('./vectors/trust-formats.json', import.meta.url), 'utf8'));
const hex = (h: Uint8Array) => Buffer.from(h).toString('hex');
const hexes = (list: readonly Uint8Array[]) => list.map(hex);
const data = (i: number) => Buffer.from(`leaf ${i}`);

function tree(size: number): { store: MemoryHashStore; leaves: Hash[] } {
  const store = new MemoryHashStore();
  const leaves: Hash[] = [];
  for (let i = 0; i < size; i++) {
    store.append(data(i));
    leaves.push(leafHash(data(i)));
  }
  return { store, leaves };
}

test('RFC 6962 test tree: leaf and node hashing, roots of every size, the empty tree', async () => {
  const ct = vectors.merkle.ctTestTree;
  assert.equal(hex(EMPTY_TREE_HASH), ct.emptyRootHex);
  const store = new MemoryHashStore();
  assert.equal(hex(store.range.root()), ct.emptyRootHex);
  assert.equal(hex(await treeHash(0, store)), ct.emptyRootHex);
  for (const [i, leafHex] of ct.leavesHex.entries()) {
    store.append(Buffer.from(leafHex, 'hex'));
    assert.equal(hex(store.range.root()), ct.rootsHex[i]);
    assert.equal(hex(await treeHash(i + 1, store)), ct.rootsHex[i]);
  }
  assert.equal(hex(leafHash(Buffer.alloc(0))), ct.rootsHex[0]);
  assert.equal(hex(nodeHash(leafHash(Buffer.alloc(0)), leafHash(Buffer.from([0])))), ct.rootsHex[1]);
});

test('roots and proofs equal RFC 9162 §2.1 computed literally, and verify, for every size up to 100', async () => {
  const { store, leaves } = tree(100);
  for (let size = 1; size <= 100; size++) {
    const prefix = leaves.slice(0, size);
    const root = referenceRoot(prefix);
    assert.equal(hex(await treeHash(size, store)), hex(root));
    for (let i = 0; i < size; i++) {
      const proof = await proveInclusion(i, size, store);
      assert.deepEqual(hexes(proof), hexes(referencePath(prefix, i)), `inclusion ${i} in ${size}`);
      verifyInclusion(i, size, prefix[i]!, proof, root);
    }
    for (let old = 1; old <= size; old++) {
      const proof = await proveConsistency(old, size, store);
      assert.deepEqual(hexes(proof), hexes(referenceConsistency(prefix, old)), `consistency ${old} to ${size}`);
      verifyConsistency(old, size, referenceRoot(prefix.slice(0, old)), root, proof);
    }
  }
});

test('tampered proofs, wrong indexes, sizes and roots are refused with E_PROOF', async () => {
  const { store, leaves } = tree(77);
  const root = referenceRoot(leaves);
  for (const index of [0, 1, 31, 64, 75, 76]) {
    const proof = await proveInclusion(index, 77, store);
    for (let j = 0; j < proof.length; j++) {
      const bad = proof.map((h) => Buffer.from(h));
      bad[j]![j % 32] ^= 0x80;
      assert.throws(() => verifyInclusion(index, 77, leaves[index]!, bad, root), { code: 'E_PROOF' });
    }
    assert.throws(() => verifyInclusion(index, 77, leaves[(index + 1) % 77]!, proof, root), { code: 'E_PROOF' });
    assert.throws(() => verifyInclusion(index ^ 1, 77, leaves[index]!, proof, root), { code: 'E_PROOF' });
    // (The size is bound to the root by the signed checkpoint, not by the proof: a proof for 77 leaves
    // also recomputes the 77-leaf root under some other sizes of the same shape, as RFC 9162 allows.)
    assert.throws(() => verifyInclusion(index, 1000, leaves[index]!, proof, root), { code: 'E_PROOF' });
    assert.throws(() => verifyInclusion(index, 77, leaves[index]!, proof.slice(1), root), { code: 'E_PROOF' });
    assert.throws(() => verifyInclusion(index, 77, leaves[index]!, [...proof, root], root), { code: 'E_PROOF' });
    assert.throws(() => verifyInclusion(index, 77, leaves[index]!, proof, leaves[0]!), { code: 'E_PROOF' });
    assert.throws(() => verifyInclusion(77, 77, leaves[index]!, proof, root), { code: 'E_PROOF' });
  }
  for (const old of [1, 2, 3, 8, 13, 64, 76]) {
    const proof = await proveConsistency(old, 77, store);
    const oldRoot = referenceRoot(leaves.slice(0, old));
    for (let j = 0; j < proof.length; j++) {
      const bad = proof.map((h) => Buffer.from(h));
      bad[j]![0] ^= 1;
      assert.throws(() => verifyConsistency(old, 77, oldRoot, root, bad), { code: 'E_PROOF' });
    }
    assert.throws(() => verifyConsistency(old, 77, root, root, proof), { code: 'E_PROOF' });
    assert.throws(() => verifyConsistency(old, 77, oldRoot, oldRoot, proof), { code: 'E_PROOF' });
    assert.throws(() => verifyConsistency(old + 1, 77, oldRoot, root, proof), { code: 'E_PROOF' });
    assert.throws(() => verifyConsistency(old, 1000, oldRoot, root, proof), { code: 'E_PROOF' });
    assert.throws(() => verifyConsistency(old, 77, oldRoot, root, proof.slice(0, -1)), { code: 'E_PROOF' });
    assert.throws(() => verifyConsistency(old, 77, oldRoot, root, [...proof, root]), { code: 'E_PROOF' });
  }
  // Edge cases: from the empty tree (C2SP tlog-witness: empty proof, root SHA-256("")), to the same size.
  verifyConsistency(0, 77, EMPTY_TREE_HASH, root, []);
  assert.throws(() => verifyConsistency(0, 77, root, root, []), { code: 'E_PROOF' });
  assert.throws(() => verifyConsistency(0, 77, EMPTY_TREE_HASH, root, [root]), { code: 'E_PROOF' });
  verifyConsistency(77, 77, root, root, []);
  assert.throws(() => verifyConsistency(77, 77, root, leaves[0]!, []), { code: 'E_PROOF' });
  assert.throws(() => verifyConsistency(77, 77, root, root, [root]), { code: 'E_PROOF' });
  assert.throws(() => verifyConsistency(78, 77, root, root, []), { code: 'E_PROOF' });
  assert.deepEqual(await proveConsistency(0, 77, store), []);
  assert.deepEqual(await proveConsistency(77, 77, store), []);
});

test('malformed proof input is refused with E_FORMAT', () => {
  const h = EMPTY_TREE_HASH;
  assert.throws(() => verifyInclusion(0, 2, h, [Buffer.alloc(31)], h), { code: 'E_FORMAT' });
  assert.throws(() => verifyInclusion(0, 2, Buffer.alloc(33), [h], h), { code: 'E_FORMAT' });
  assert.throws(() => verifyInclusion(-1, 2, h, [h], h), { code: 'E_FORMAT' });
  assert.throws(() => verifyInclusion(0.5, 2, h, [h], h), { code: 'E_FORMAT' });
  assert.throws(() => verifyInclusion(0, 2 ** 53, h, [h], h), { code: 'E_FORMAT' });
  assert.throws(() => verifyInclusion(0, 2, h, 'nope' as unknown as Hash[], h), { code: 'E_FORMAT' });
  assert.throws(() => verifyInclusion(0, 2, h, Array(65).fill(h), h), { code: 'E_FORMAT' });
  assert.throws(() => verifyConsistency(1, 2, h, h, Array(65).fill(h)), { code: 'E_FORMAT' });
  assert.throws(() => verifyConsistency(1, 2, h, h, [h], limitsWith({ proofHashes: 0 })), { code: 'E_FORMAT' });
  assert.throws(() => verifyConsistency(1, 2, h, Buffer.alloc(0), [h]), { code: 'E_FORMAT' });
});

test('stored hash numbering: index and split are inverse, counts match appends', async () => {
  // Small cases by hand: leaves and subtrees in the order an append-only log completes them.
  assert.deepEqual([[0, 0], [0, 1], [1, 0], [0, 2], [0, 3], [1, 1], [2, 0], [0, 4]].map(([l, n]) => storedHashIndex(l!, n!)), [0, 1, 2, 3, 4, 5, 6, 7]);
  for (let index = 0; index < 5000; index++) {
    const { level, n } = splitStoredHashIndex(index);
    assert.equal(storedHashIndex(level, n), index);
  }
  for (const [level, n] of [[0, 2 ** 51], [30, 12345], [52, 0], [10, 2 ** 40 + 3]] as const) {
    assert.deepEqual(splitStoredHashIndex(storedHashIndex(level, n)), { level, n });
  }
  assert.throws(() => storedHashIndex(0, 2 ** 53), { code: 'E_FORMAT' });
  assert.throws(() => storedHashIndex(64, 0), { code: 'E_FORMAT' });
  assert.throws(() => splitStoredHashIndex(-1), { code: 'E_FORMAT' });
  const { store } = tree(1000);
  assert.equal(store.hashes.length, storedHashCount(1000));
  // Appending through the reader (storedHashesForLeaf) and through the compact range agree.
  const replay = new MemoryHashStore();
  for (let i = 0; i < 1000; i++) {
    const stored = await storedHashesForLeaf(i, leafHash(data(i)), replay);
    assert.equal(replay.hashes.length, storedHashIndex(0, i));
    replay.hashes.push(...stored);
  }
  assert.deepEqual(hexes(replay.hashes), hexes(store.hashes));
});

test('compact range: loads from stored hashes, validates its peaks, appends like a fresh one', async () => {
  const { store } = tree(300);
  const loaded = await CompactRange.fromStoredHashes(300, store);
  assert.equal(loaded.size, 300);
  assert.equal(loaded.peaks.length, 4); // 300 = 256 + 32 + 8 + 4
  assert.equal(hex(loaded.root()), hex(store.range.root()));
  assert.equal(treeHashIndexes(300).length, 4);
  const fresh = new CompactRange();
  for (let i = 0; i < 300; i++) fresh.append(leafHash(data(i)));
  loaded.append(leafHash(data(300)));
  fresh.append(leafHash(data(300)));
  assert.equal(hex(loaded.root()), hex(fresh.root()));
  assert.throws(() => new CompactRange(3, [EMPTY_TREE_HASH]), { code: 'E_FORMAT' });
  assert.throws(() => new CompactRange(1, [Buffer.alloc(3)]), { code: 'E_FORMAT' });
  assert.throws(() => fresh.append(Buffer.alloc(31)), { code: 'E_FORMAT' });
  // A hash source that answers wrong is caught.
  const liar: HashReader = { readHashes: (indexes) => indexes.slice(1).map(() => EMPTY_TREE_HASH) };
  await assert.rejects(treeHash(3, liar), { code: 'E_FORMAT' });
  await assert.rejects(proveInclusion(3, 3, store), { code: 'E_FORMAT' });
  await assert.rejects(proveConsistency(4, 3, store), { code: 'E_FORMAT' });
});

test('proof lines: base64 hashes one per line, strictly', () => {
  const proof = [EMPTY_TREE_HASH, leafHash(Buffer.from('x'))];
  const text = formatProofLines(proof);
  assert.deepEqual(hexes(parseProofLines(text.slice(0, -1).split('\n'))), hexes(proof));
  for (const line of ['', 'AAAA', `${Buffer.from(EMPTY_TREE_HASH).toString('base64').slice(0, -1)}`, Buffer.from(EMPTY_TREE_HASH).toString('base64url'), `${Buffer.from(EMPTY_TREE_HASH).toString('base64')} `]) {
    assert.throws(() => parseProofLines([line]), { code: 'E_FORMAT' }, line);
  }
  assert.throws(() => parseProofLines(Array(65).fill(Buffer.from(EMPTY_TREE_HASH).toString('base64'))), { code: 'E_FORMAT' });
});

// Proof verification's speed (goal < 100 µs) is measured by bench:log, not timed here.
test('proofs verify in a tree of 2^18+ leaves and in one of 2^40+ leaves, and a changed hash is refused', async () => {
  // A real tree of 2^18 + 12345 leaves, and for large trees proofs whose root is computed from the proof.
  const SIZE = 2 ** 18 + 12_345;
  const range = new CompactRange();
  const store = new MemoryHashStore();
  for (let i = 0; i < SIZE; i++) store.hashes.push(...range.append(createHash('sha256').update(String(i)).digest()));
  const root = range.root();
  const inclusions: Array<[number, Hash, Hash[]]> = [];
  const consistencies: Array<[number, Hash, Hash[]]> = [];
  for (let k = 0; k < 500; k++) {
    const index = (k * 7919 * 31) % SIZE;
    inclusions.push([index, store.hashes[storedHashIndex(0, index)]!, await proveInclusion(index, SIZE, store)]);
    const old = 1 + ((k * 104_729) % (SIZE - 1));
    consistencies.push([old, await treeHash(old, store), await proveConsistency(old, SIZE, store)]);
  }
  // Every proof verifies; each with one hash changed (or the wrong leaf) is refused.
  const check = <T>(items: readonly T[], verify: (item: NoInfer<T>) => void, tamper: (item: NoInfer<T>) => NoInfer<T>) => {
    for (const item of items) {
      verify(item);
      assert.throws(() => verify(tamper(item)));
    }
  };
  const flip = (h: Hash): Hash => { const c = Buffer.from(h); c[0]! ^= 1; return c; };
  check(inclusions, ([index, leaf, proof]) => verifyInclusion(index, SIZE, leaf, proof, root), ([i, leaf, proof]): [number, Hash, Hash[]] => [i, flip(leaf), proof]);
  check(consistencies, ([old, oldRoot, proof]) => verifyConsistency(old, SIZE, oldRoot, root, proof), ([old, oldRoot, proof]): [number, Hash, Hash[]] => [old, flip(oldRoot), proof]);
  // A 2^40-leaf tree: 40-hash inclusion proofs built over a synthetic hash source.
  const BIG = 2 ** 40 + 987_654_321;
  const synthetic: HashReader = { readHashes: (indexes) => indexes.map((i) => createHash('sha256').update(`node ${i}`).digest()) };
  const big: Array<[number, Hash, Hash[], Hash]> = [];
  for (let k = 0; k < 500; k++) {
    const index = Math.floor((k / 500) * BIG) + k;
    const leaf = createHash('sha256').update(`leaf ${k}`).digest();
    const proof = await proveInclusion(index, BIG, synthetic);
    big.push([index, leaf, proof, rootFromInclusionProof(index, BIG, leaf, proof)!]);
  }
  check(big, ([index, leaf, proof, r]) => verifyInclusion(index, BIG, leaf, proof, r), ([i, leaf, proof, r]): [number, Hash, Hash[], Hash] => [i, leaf, proof.map((h, j) => (j === proof.length - 1 ? flip(h) : h)), r]);
  // Consistency into the 2^40-leaf tree, from old sizes spread over it (roots implied by the proofs).
  const bigConsistency: Array<[number, Hash, Hash, Hash[]]> = [];
  for (let k = 0; k < 500; k++) {
    const old = 1 + Math.floor((k / 500) * (BIG - 1)) + k;
    const proof = await proveConsistency(old, BIG, synthetic);
    const oldRoot = createHash('sha256').update(`old ${k}`).digest();
    const roots = rootsFromConsistencyProof(old, BIG, oldRoot, proof);
    assert.ok(typeof roots !== 'string');
    bigConsistency.push([old, roots.oldRoot, roots.newRoot, proof]);
  }
  check(bigConsistency, ([old, oldRoot, newRoot, proof]) => verifyConsistency(old, BIG, oldRoot, newRoot, proof), ([old, oldRoot, newRoot, proof]): [number, Hash, Hash, Hash[]] => [old, oldRoot, flip(newRoot), proof]);
});
