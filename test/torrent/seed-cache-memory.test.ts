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
import { LIMITS } from '../../src/limits.ts';
import { MerkleTree } from '../../src/torrent/merkle-tree.ts';
import { Seeder, type SeededFile } from '../../src/torrent/seeder.ts';

const PIECE = 4 * BLOCK;
const SIZE = 12 * PIECE + 5_000;
const DATA = bytes(SIZE, 91);
const V1 = 'b1'.repeat(20);
const PIECES = Math.ceil(SIZE / PIECE);

test('piece memory is reused, never under a reader: every block right, a handful of buffers for many reads', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'file.tar');
  await writeFile(file, DATA);
  const leaves = blockHashes(DATA);
  const f: SeededFile = {
    name: 'file.tar', path: file, size: SIZE, sha256: '', pieceLength: PIECE, pieces: PIECES, root: new MerkleTree(leaves).root, leaves,
    infoHashes: { hybrid: { v1: V1, v2: 'b2'.repeat(32) }, v1: 'b3'.repeat(20), v2: 'b4'.repeat(32) },
  };
  const seeder = await Seeder.start([f], { host: '127.0.0.1', port: 0, maxPeers: 10, uploadRate: 0, limits: { ...LIMITS, seedPieceCacheBytes: 2 * PIECE } });
  t.after(() => seeder.close());
  const requests: { index: number; begin: number; length: number }[] = [];
  for (let i = 0; i < PIECES; i++) for (let b = i * PIECE; b < Math.min(SIZE, (i + 1) * PIECE); b += BLOCK) requests.push({ index: i, begin: b - i * PIECE, length: Math.min(BLOCK, SIZE - b) });
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
  for (const p of peers) {
    for (const got of p.pieces()) {
      const at = got.index * PIECE + got.offset;
      assert.ok(got.data.equals(DATA.subarray(at, at + got.data.length)), `piece ${got.index} offset ${got.offset} is the verified bytes`);
    }
  }
  assert.ok(seeder.piecesRead >= 2 * PIECES, `the cache of two pieces was read through: ${seeder.piecesRead} reads`);
  // The seeder's bound (docs/OPERATIONS.md): piece memory, pinned pieces included, within
  // seedPieceCacheBytes whatever the timing, so at most two buffers of one piece each.
  assert.ok(seeder.pieceBuffers <= 2, `${seeder.pieceBuffers} piece buffers for ${seeder.piecesRead} pieces read`);
});

test('blocks leave as views of the cached piece, pinned until written: no copy per block, and every pin let go once sent or closed', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'file.tar');
  await writeFile(file, DATA);
  const leaves = blockHashes(DATA);
  const f: SeededFile = {
    name: 'file.tar', path: file, size: SIZE, sha256: '', pieceLength: PIECE, pieces: PIECES, root: new MerkleTree(leaves).root, leaves,
    infoHashes: { hybrid: { v1: V1, v2: 'b2'.repeat(32) }, v1: 'b3'.repeat(20), v2: 'b4'.repeat(32) },
  };
  const seeder = await Seeder.start([f], { host: '127.0.0.1', port: 0, maxPeers: 10, uploadRate: 0, limits: { ...LIMITS, seedPieceCacheBytes: 2 * PIECE } });
  t.after(() => seeder.close());
  const requests: { index: number; begin: number; length: number }[] = [];
  for (let i = 0; i < PIECES; i++) for (let b = i * PIECE; b < Math.min(SIZE, (i + 1) * PIECE); b += BLOCK) requests.push({ index: i, begin: b - i * PIECE, length: Math.min(BLOCK, SIZE - b) });
  // One peer at a time reads the whole file, then leaves (the last one mid-file, its blocks in flight).
  for (const [k, upTo] of [[0, requests.length], [1, requests.length], [2, requests.length / 2]] as const) {
    const p = new RawPeer('127.0.0.1', seeder.port);
    t.after(() => p.socket.destroy());
    await p.open(V1);
    p.send(Buffer.concat(requests.map((r) => msg(6, r.index, r.begin, r.length))));
    await waitFor(`peer ${k}: its blocks`, () => p.pieces().length >= upTo, { timeoutMs: 30_000 });
    p.socket.destroy();
    if (upTo < requests.length) continue;
    for (const got of p.pieces()) {
      const at = got.index * PIECE + got.offset;
      assert.ok(got.data.equals(DATA.subarray(at, at + got.data.length)), `peer ${k}: piece ${got.index} offset ${got.offset} is the verified bytes`);
    }
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
