// The seeder's piece cache (src/torrent/seeder.ts, LIMITS.seedPieceCacheBytes): a piece is read from
// disk and checked block by block once, then its blocks leave from memory; the cache holds at most its
// bound, least recently used out first; and no block that fails its leaf hash is ever sent. A real
// Seeder on loopback and a peer written to the byte (test/torrent/raw-peer.ts); what the cache holds is
// seen from outside by changing the file on disk under it: a piece still in memory is sent as verified,
// one that was evicted is read again, found changed, and the file is no longer seeded.
import assert from 'node:assert/strict';
import { open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bytes } from '../helpers/distfiles.ts';
import { tempDir } from '../helpers/run.ts';
import { RawPeer } from './raw-peer.ts';
import { BLOCK, blockHashes, pieceHash } from '../../src/fetch/piece-map.ts';
import { LIMITS } from '../../src/limits.ts';
import { MerkleTree } from '../../src/torrent/merkle-tree.ts';
import { Seeder, type SeededFile } from '../../src/torrent/seeder.ts';

// Pieces of four blocks (the cache only matters when a piece has more than one): 6 whole pieces and a short one.
const PIECE = 4 * BLOCK;
const SIZE = 6 * PIECE + 10_000;
const DATA = bytes(SIZE, 77);
const V1 = 'a1'.repeat(20);

async function start(t: { after(fn: () => unknown): void }, cachePieces: number) {
  const dir = await tempDir(t);
  const file = path.join(dir, 'file.tar');
  await writeFile(file, DATA);
  const leaves = blockHashes(DATA);
  const f: SeededFile = {
    name: 'file.tar', path: file, size: SIZE, sha256: '', pieceLength: PIECE, pieces: Math.ceil(SIZE / PIECE), root: new MerkleTree(leaves).root, leaves,
    infoHashes: { hybrid: { v1: V1, v2: 'a2'.repeat(32) }, v1: 'a3'.repeat(20), v2: 'a4'.repeat(32) },
  };
  const seeder = await Seeder.start([f], { host: '127.0.0.1', port: 0, maxPeers: 10, uploadRate: 0, limits: { ...LIMITS, seedPieceCacheBytes: cachePieces * PIECE } });
  t.after(() => seeder.close());
  const peer = new RawPeer('127.0.0.1', seeder.port);
  t.after(() => peer.socket.destroy());
  await peer.open(V1);
  /** Overwrite block `b` of piece `index` on disk in place (the inode the seeder holds open). */
  const spoil = async (index: number, b: number) => {
    const fh = await open(file, 'r+');
    await fh.write(Buffer.alloc(BLOCK, 0xee), 0, BLOCK, index * PIECE + b * BLOCK);
    await fh.close();
  };
  return { seeder, peer, spoil };
}

const truth = (index: number, b: number) => DATA.subarray(index * PIECE + b * BLOCK, Math.min(index * PIECE + (b + 1) * BLOCK, SIZE));

/** Every block the peer received is the verified file's. */
function allVerified(peer: RawPeer): void {
  for (const p of peer.pieces()) assert.ok(p.data.equals(DATA.subarray(p.index * PIECE + p.offset, p.index * PIECE + p.offset + p.data.length)), `piece ${p.index} offset ${p.offset} is the verified bytes`);
}

test('a piece is read and checked once: its other blocks leave from memory, as verified, after the file changed on disk', async (t) => {
  const { peer, spoil } = await start(t, 4);
  assert.ok((await peer.block(2, 0, BLOCK)).equals(truth(2, 0)));
  // The rest of piece 2 changes on disk after its first block was sent.
  for (const b of [1, 2, 3]) await spoil(2, b);
  const got = [truth(2, 0)];
  for (const b of [1, 2, 3]) got.push(await peer.block(2, b * BLOCK, BLOCK));
  assert.ok(pieceHash(Buffer.concat(got), PIECE).equals(pieceHash(DATA.subarray(2 * PIECE, 3 * PIECE), PIECE)), 'the blocks sent make the piece of the piece layer');
  // The short last piece too: its blocks end with the file.
  const last = Math.ceil(SIZE / PIECE) - 1;
  assert.ok((await peer.block(last, 0, SIZE - last * PIECE)).equals(DATA.subarray(last * PIECE)));
  allVerified(peer);
});

test('a block of a piece changed on disk before the cache took it is never sent; the file is no longer seeded', async (t) => {
  const { seeder, peer, spoil } = await start(t, 4);
  await spoil(4, 3);
  // Block 0 of piece 4 is intact, block 3 is not: whatever is sent, it is never block 3 as it is now.
  peer.send(Buffer.concat([0, 1, 2, 3].map((b) => msgRequest(4, b))));
  await peer.closedByPeer('the connection to end instead of a changed block');
  assert.ok(!peer.pieces().some((p) => p.index === 4 && p.offset === 3 * BLOCK), 'no block 3 of piece 4');
  allVerified(peer);
  const later = new RawPeer('127.0.0.1', seeder.port);
  await later.connected();
  later.greet(V1);
  await later.closedByPeer('a retired file to be refused');
  assert.equal(later.handshake, undefined);
});

test('the cache holds at most LIMITS.seedPieceCacheBytes, least recently used out first', async (t) => {
  const { peer, spoil } = await start(t, 2); // room for two pieces
  assert.ok((await peer.block(0, 0, BLOCK)).equals(truth(0, 0)));
  assert.ok((await peer.block(1, 0, BLOCK)).equals(truth(1, 0)));
  assert.ok((await peer.block(0, BLOCK, BLOCK)).equals(truth(0, 1))); // piece 0 used again: piece 1 is now the oldest
  assert.ok((await peer.block(3, 0, BLOCK)).equals(truth(3, 0))); // a third piece: piece 1 goes out
  await spoil(0, 2);
  await spoil(1, 2);
  // Piece 0 is still in memory: sent as it was verified.
  assert.ok((await peer.block(0, 2 * BLOCK, BLOCK)).equals(truth(0, 2)), 'piece 0 kept (used more recently than piece 1)');
  // Piece 1 was evicted: read again, found changed, not sent.
  peer.send(msgRequest(1, 2));
  await peer.closedByPeer('the evicted, changed piece to be refused');
  assert.ok(!peer.pieces().some((p) => p.index === 1 && p.offset === 2 * BLOCK), 'no block of the changed piece 1');
  allVerified(peer);
});

function msgRequest(index: number, b: number): Buffer {
  const m = Buffer.alloc(17);
  m.writeUInt32BE(13, 0);
  m[4] = 6;
  m.writeUInt32BE(index, 5);
  m.writeUInt32BE(b * BLOCK, 9);
  m.writeUInt32BE(BLOCK, 13);
  return m;
}
