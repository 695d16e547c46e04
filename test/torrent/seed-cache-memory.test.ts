// The seeder's piece cache reuses the memory of the pieces it drops (src/torrent/seeder.ts): a piece read
// goes into the buffer of one evicted, never into one a reader still uses, and each block leaves as a copy
// of its own. Before, every piece read took a fresh buffer that lived long enough to reach V8's old
// generation and stayed there, garbage, until a full collection (docs/BENCHMARKS.md, bench:swarm: peak
// RSS). Three raw peers (test/torrent/raw-peer.ts) ask a real Seeder on loopback for every block of
// every piece at once, in different orders, through a cache of two pieces: every block is the verified
// file's, and the piece buffers allocated are two (the cache's bound, pinned pieces included, whatever
// the timing: when both are pinned a block is read on its own) while the pieces read are many.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bytes } from '../helpers/distfiles.ts';
import { tempDir, waitFor } from '../helpers/run.ts';
import { RawPeer, msg } from './raw-peer.ts';
import { BLOCK, blockHashes } from '../../src/fetch/piece-map.ts';
import { LIMITS, type Limits } from '../../src/limits.ts';
import { MerkleTree } from '../../src/torrent/merkle-tree.ts';
import { Seeder, type SeededFile } from '../../src/torrent/seeder.ts';

const PIECE = 4 * BLOCK;
const SIZE = 12 * PIECE + 5_000;
const DATA = bytes(SIZE, 91);
const V1 = 'b1'.repeat(20);
const PIECES = Math.ceil(SIZE / PIECE);

type Request = { index: number; begin: number; length: number };

/** A real Seeder of `data` in pieces of PIECE through a cache of two pieces, and every block's request in file order. */
async function seed(t: { after(fn: () => unknown): void }, data: Buffer, limits: Partial<Limits> = {}): Promise<{ seeder: Seeder; requests: Request[] }> {
  const dir = await tempDir(t);
  const file = path.join(dir, 'file.tar');
  await writeFile(file, data);
  const leaves = blockHashes(data);
  const pieces = Math.ceil(data.length / PIECE);
  const f: SeededFile = {
    name: 'file.tar', path: file, size: data.length, sha256: '', pieceLength: PIECE, pieces, root: new MerkleTree(leaves).root, leaves,
    infoHashes: { hybrid: { v1: V1, v2: 'b2'.repeat(32) }, v1: 'b3'.repeat(20), v2: 'b4'.repeat(32) },
  };
  const seeder = await Seeder.start([f], { host: '127.0.0.1', port: 0, maxPeers: 10, uploadRate: 0, limits: { ...LIMITS, seedPieceCacheBytes: 2 * PIECE, ...limits } });
  t.after(() => seeder.close());
  const requests: Request[] = [];
  for (let i = 0; i < pieces; i++) for (let b = i * PIECE; b < Math.min(data.length, (i + 1) * PIECE); b += BLOCK) requests.push({ index: i, begin: b - i * PIECE, length: Math.min(BLOCK, data.length - b) });
  return { seeder, requests };
}

/** Every block `p` received is `data`'s at its place. */
function assertVerified(p: RawPeer, data: Buffer, who: string): void {
  for (const got of p.pieces()) {
    const at = got.index * PIECE + got.offset;
    assert.ok(got.data.equals(data.subarray(at, at + got.data.length)), `${who}: piece ${got.index} offset ${got.offset} is the verified bytes`);
  }
}

test('piece memory is reused, never under a reader: every block right, a handful of buffers for many reads', async (t) => {
  const { seeder, requests } = await seed(t, DATA);
  const orders = [requests, [...requests].reverse(), requests.filter((_, k) => k % 2).concat(requests.filter((_, k) => k % 2 === 0))];
  const peers = await Promise.all(orders.map(async () => {
    const p = new RawPeer('127.0.0.1', seeder.port);
    t.after(() => p.socket.destroy());
    await p.open(V1);
    return p;
  }));
  for (let round = 0; round < 2; round++) {
    peers.forEach((p, k) => p.send(Buffer.concat(orders[k]!.map((r) => msg(6, r.index, r.begin, r.length)))));
    await waitFor('every block to every peer', () => {
      if (peers.some((p) => p.closed)) throw new Error('the seeder closed a connection');
      return peers.every((p) => p.pieces().length === (round + 1) * requests.length);
    }, { timeoutMs: 30_000 });
  }
  peers.forEach((p, k) => assertVerified(p, DATA, `peer ${k}`));
  assert.ok(seeder.piecesRead >= 2 * PIECES, `the cache of two pieces was read through: ${seeder.piecesRead} reads`);
  // The seeder's bound (docs/OPERATIONS.md): piece memory, pinned pieces included, within
  // seedPieceCacheBytes whatever the timing, so at most two buffers of one piece each.
  assert.ok(seeder.pieceBuffers <= 2, `${seeder.pieceBuffers} piece buffers for ${seeder.piecesRead} pieces read`);
});

test('blocks leave as views of the cached piece, pinned until written: no copy per block, and every pin let go once sent or closed', async (t) => {
  const { seeder, requests } = await seed(t, DATA);
  // One peer at a time reads the whole file, then leaves (the last one mid-file, its blocks in flight).
  for (const [k, upTo] of [[0, requests.length], [1, requests.length], [2, requests.length / 2]] as const) {
    const p = new RawPeer('127.0.0.1', seeder.port);
    t.after(() => p.socket.destroy());
    await p.open(V1);
    p.send(Buffer.concat(requests.map((r) => msg(6, r.index, r.begin, r.length))));
    await waitFor(`peer ${k}: its blocks`, () => p.pieces().length >= upTo, { timeoutMs: 30_000 });
    p.socket.destroy();
    if (upTo < requests.length) continue;
    assertVerified(p, DATA, `peer ${k}`);
  }
  assert.equal(seeder.blocksCopied, 0, 'every block left as a view of its piece');
  // Pins let go: one more reader goes through the cache of two pieces, every block from it. A pin kept
  // would hold its piece in the cache for good, and once both were held every block would be read on its own.
  await new Promise((r) => setTimeout(r, 100));
  const p = new RawPeer('127.0.0.1', seeder.port);
  t.after(() => p.socket.destroy());
  await p.open(V1);
  p.send(Buffer.concat(requests.map((r) => msg(6, r.index, r.begin, r.length))));
  await waitFor('the last peer\'s blocks', () => p.pieces().length === requests.length, { timeoutMs: 30_000 });
  assert.equal(seeder.blocksReadAlone, 0, `blocks read on their own, not from the cache (${seeder.piecesRead} pieces read)`);
  assert.ok(seeder.pieceBuffers <= 2, `${seeder.pieceBuffers} piece buffers after ${seeder.piecesRead} pieces read`);
});

test('peers that stop reading hold the pieces of their unwritten blocks, never more memory: the others\' blocks are read on their own, every block right', async (t) => {
  // Two peers ask for some 6 MiB each and read none of it (more than loopback's socket buffers take),
  // from either end of the file: their blocks not yet written pin the pieces they are views of, for as
  // long as the peers do not read. A third peer reads the whole file meanwhile.
  const big = bytes(200 * PIECE, 93);
  const { seeder, requests } = await seed(t, big, { peerRequestQueue: 1000 });
  const ask = (p: RawPeer, rs: Request[]) => p.send(Buffer.concat(rs.map((r) => msg(6, r.index, r.begin, r.length))));
  const stalled = await Promise.all([requests.slice(0, 400), requests.slice(-400).reverse()].map(async (rs) => {
    const p = new RawPeer('127.0.0.1', seeder.port);
    t.after(() => p.socket.destroy());
    await p.open(V1);
    p.socket.pause();
    ask(p, rs);
    return p;
  }));
  // Stalled: nothing more sent for a while.
  let last = -1;
  await waitFor('the seeder to stall on the peers that do not read', () => {
    const now = seeder.uploaded;
    const still = now === last;
    last = now;
    return still;
  }, { everyMs: 300 });
  assert.ok(seeder.uploaded < 2 * 400 * BLOCK, `the peers that read nothing were sent ${seeder.uploaded} bytes, not all`);
  const reader = new RawPeer('127.0.0.1', seeder.port);
  t.after(() => reader.socket.destroy());
  await reader.open(V1);
  ask(reader, requests);
  await waitFor('the reader\'s blocks', () => reader.pieces().length === requests.length, { timeoutMs: 30_000 });
  assertVerified(reader, big, 'the reader');
  assert.ok(seeder.blocksReadAlone > 0, 'the peers that read nothing held every cached piece');
  // Then they read: the pieces their blocks were views of were never read into meanwhile.
  for (const p of stalled) p.socket.resume();
  await waitFor('the stalled peers\' blocks', () => stalled.every((p) => p.pieces().length === 400), { timeoutMs: 30_000 });
  stalled.forEach((p, k) => assertVerified(p, big, `stalled peer ${k}`));
  assert.ok(seeder.pieceBuffers <= 2, `${seeder.pieceBuffers} piece buffers for ${seeder.piecesRead} pieces read, ${seeder.blocksReadAlone} blocks read on their own`);
});
