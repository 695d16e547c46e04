// An uploading leecher announces a piece from the leaves the piece hasher took of the bytes it checked
// (src/fetch/piece-hasher.ts -> src/fetch/segmented.ts -> src/torrent/leech-upload.ts): no read back,
// no second hash. Seen from outside: the thread's leaves are the blocks' BEP 52 leaf hashes for any piece
// (fast-check, the real worker); a piece is announced (BEP 3 `have`) to a real peer while the partial on
// disk still holds zeros where it goes (a read back would find zeros and announce nothing); leaves that
// do not make the piece layer's hash announce nothing; the leaves kept are the ones the seeder checks each
// block against, at the block's place in the file, so the true bytes are sent and wrong ones never are.
import assert from 'node:assert/strict';
import { writeFile, open } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { PieceHasher } from '../../src/fetch/piece-hasher.ts';
import { BLOCK, blockHashes, pieceHash, pieceMapFromLeaves } from '../../src/fetch/piece-map.ts';
import type { Distfile } from '../../src/manifest/index.ts';
import { LeechUpload } from '../../src/torrent/leech-upload.ts';
import { makeTorrent, readTorrent } from '../../src/torrent/metainfo.ts';
import { bytes } from '../helpers/distfiles.ts';
import { tempDir, waitFor } from '../helpers/run.ts';
import { RawPeer } from './raw-peer.ts';

const PIECE = 4 * BLOCK;
const SIZE = 6 * PIECE + 10_000;
const DATA = bytes(SIZE, 83);
const NAME = 'pkg-3.1.tar.gz';
const piece = (i: number) => DATA.subarray(i * PIECE, Math.min(SIZE, (i + 1) * PIECE));
const leavesOf = (i: number) => Buffer.concat(blockHashes(piece(i)));

test('the piece hasher returns each piece\'s leaves: the BEP 52 hashes of its 16 KiB blocks, with the piece hash made of them', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'partial');
  await writeFile(file, '');
  const hasher = new PieceHasher(file);
  t.after(() => hasher.close());
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 0, max: 3 }), // log2 of blocks per piece
    fc.integer({ min: 1, max: 8 * BLOCK }),
    fc.integer({ min: 0, max: 1000 }), // where in a larger buffer the piece sits
    fc.integer({ min: 1, max: 1 << 30 }),
    async (shift, want, at, seed) => {
      const pieceLength = BLOCK << shift;
      const length = Math.min(want, pieceLength);
      const body = bytes(length, seed);
      // Pieces come from the network in buffers of their own or inside larger ones: both are hashed.
      const within = Buffer.alloc(at + length + 7);
      body.copy(within, at);
      for (const given of [Buffer.from(body), within.subarray(at, at + length)]) {
        const r = await hasher.pieceHash(given, pieceLength);
        assert.deepEqual(r.leaves, Buffer.concat(blockHashes(body)), `${length} bytes, piece length ${pieceLength}`);
        assert.deepEqual(r.hash, pieceHash(body, pieceLength));
      }
    },
  ), { numRuns: 40 });
});

test('an uploading leecher announces a piece from the checked leaves, without reading it back, and sends only blocks that match them', async (t) => {
  const dir = await tempDir(t);
  const leaves = blockHashes(DATA);
  const map = pieceMapFromLeaves(leaves, PIECE);
  const torrent = readTorrent(makeTorrent({
    name: NAME, files: [{ name: NAME, size: SIZE, root: map.root, layer: map.layer }], multiFile: false, pieceLength: PIECE, version: 'v2', webSeeds: [], trackers: [],
  }).bytes, 'torrent');
  const up = await LeechUpload.start({ host: '127.0.0.1', port: 0, maxPeers: 10, uploadRate: 0 });
  t.after(() => up.close());
  up.register(torrent, [NAME]);
  // The partial as a segmented download opens it: its size, zeros where no piece was written yet.
  const partial = path.join(dir, `${NAME}.part`);
  await writeFile(partial, Buffer.alloc(SIZE));
  const d = { name: NAME } as Distfile;

  const peer = new RawPeer('127.0.0.1', up.port);
  t.after(() => peer.socket.destroy());
  await peer.open(torrent.infoHashV2!.subarray(0, 20).toString('hex'));
  const haves = () => peer.messages.filter((m) => m[0] === 4).map((m) => m.readUInt32BE(1));

  // Piece 1 checked in memory by the download, not yet on disk: announced from its leaves.
  await up.pieceVerified(d, 1, partial, PIECE, leavesOf(1));
  await waitFor('have 1', () => haves().includes(1));
  // Leaves of another piece given for piece 2: they do not make piece 2's hash, nothing is announced.
  await up.pieceVerified(d, 2, partial, PIECE, leavesOf(3));
  // The short last piece (one leaf).
  const last = Math.ceil(SIZE / PIECE) - 1;
  await up.pieceVerified(d, last, partial, PIECE, leavesOf(last));
  await waitFor(`have ${last}`, () => haves().includes(last));
  assert.deepEqual(haves(), [1, last], 'piece 2 was not announced with the wrong leaves');

  // The download writes piece 1: each of its blocks is sent, checked against the leaves kept at its place.
  const fh = await open(partial, 'r+');
  await fh.write(piece(1), 0, PIECE, PIECE);
  await fh.close();
  for (let b = 0; b < 4; b++) assert.ok((await peer.block(1, b * BLOCK, BLOCK)).equals(piece(1).subarray(b * BLOCK, (b + 1) * BLOCK)), `block ${b} of piece 1`);
  // The last piece is announced but its bytes are not in the partial (zeros there): never sent.
  peer.send(Buffer.from([0, 0, 0, 13, 6, 0, 0, 0, last, 0, 0, 0, 0, 0, 0, 0x27, 0x10]));
  await peer.closedByPeer('the connection to end instead of bytes that fail their leaf');
  assert.ok(!peer.pieces().some((p) => p.index === last), 'no block of the last piece');
  assert.equal(up.uploaded, PIECE);
});
