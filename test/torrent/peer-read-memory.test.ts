// A leecher's connections read into memory of their own (src/torrent/peer-wire.ts PeerReader, net.Socket's
// `onread`) and each block is copied from there straight into the memory of its piece (OpenOptions.into),
// so a download allocates nothing per socket read (docs/BENCHMARKS.md, bench:swarm: dead socket reads were
// most of a leecher's peak RSS). A real Seeder on loopback serves the file; PeerSwarm reads ranges of it
// into memory given, and every chunk of the body is a view of that memory at its place. A raw peer that
// answers every request, even cancelled ones, cannot write into the memory of a read once it is cancelled.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { bytes } from '../helpers/distfiles.ts';
import { tempDir, waitFor } from '../helpers/run.ts';
import { msg } from './raw-peer.ts';
import { BLOCK, blockHashes } from '../../src/fetch/piece-map.ts';
import type { Source } from '../../src/fetch/plan.ts';
import type { OpenOptions, Opened } from '../../src/fetch/transport.ts';
import { LIMITS } from '../../src/limits.ts';
import { MerkleTree } from '../../src/torrent/merkle-tree.ts';
import type { Torrent } from '../../src/torrent/metainfo.ts';
import { PeerSwarm } from '../../src/torrent/peer-source.ts';
import { Seeder, type SeededFile } from '../../src/torrent/seeder.ts';

const PIECE = 4 * BLOCK;
const SIZE = 10 * PIECE + 777;
const DATA = bytes(SIZE, 57);
const V1 = 'c1'.repeat(20);

/** Just what PeerSwarm reads of a torrent: a v1 single file. */
const torrent = { name: 'f.tar', version: 'v1', multiFile: false, pieceLength: PIECE, files: [{ path: ['f.tar'], size: SIZE, layer: [] }], infoHashV1: Buffer.from(V1, 'hex') } as unknown as Torrent;

function open(src: Source, o: OpenOptions): Promise<Opened> {
  assert.equal(src.location.type, 'opener');
  return (src.location as { open(o: OpenOptions): Promise<Opened> }).open(o);
}

test('a peer\'s blocks land in the memory given for the range: every chunk a view of it, at its place', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'f.tar');
  await writeFile(file, DATA);
  const leaves = blockHashes(DATA);
  const f: SeededFile = {
    name: 'f.tar', path: file, size: SIZE, sha256: '', pieceLength: PIECE, pieces: Math.ceil(SIZE / PIECE), root: new MerkleTree(leaves).root, leaves,
    infoHashes: { hybrid: { v1: V1, v2: 'c2'.repeat(32) }, v1: 'c3'.repeat(20), v2: 'c4'.repeat(32) },
  };
  const seeder = await Seeder.start([f], { host: '127.0.0.1', port: 0, maxPeers: 10, uploadRate: 0 });
  t.after(() => seeder.close());
  const swarm = new PeerSwarm({ limits: LIMITS });
  t.after(() => swarm.close());
  const [src] = swarm.sources(torrent, 0, [seeder.url]);
  // A whole piece, a range across pieces starting mid-block, the short last piece.
  for (const [start, end] of [[PIECE, 2 * PIECE - 1], [3 * PIECE + 1000, 5 * PIECE + 5], [10 * PIECE, SIZE - 1]] as const) {
    const into = Buffer.alloc(end - start + 1 + 10, 0xee); // longer than the range: its tail untouched
    const opened = await open(src!, { offset: start, end, into });
    let got = 0;
    for await (const chunk of opened.body) {
      assert.equal(chunk.buffer, into.buffer, `bytes ${start + got}-: a view of the memory given, not a copy of a socket read`);
      assert.equal(chunk.byteOffset, into.byteOffset + got, 'at its place');
      got += chunk.length;
    }
    assert.equal(got, end - start + 1);
    assert.ok(into.subarray(0, got).equals(DATA.subarray(start, end + 1)), `bytes ${start}-${end} are the file's`);
    assert.ok(into.subarray(got).equals(Buffer.alloc(10, 0xee)), 'nothing past the range');
  }
  // Without memory given, the body's chunks are the right bytes, each of its own.
  const opened = await open(src!, { offset: 0, end: PIECE - 1 });
  const chunks: Uint8Array[] = [];
  for await (const chunk of opened.body) chunks.push(chunk);
  assert.ok(Buffer.concat(chunks).equals(DATA.subarray(0, PIECE)));
});

test('blocks a peer sends for a cancelled read never reach its memory', async (t) => {
  // A peer that has every piece, unchokes at once and answers every request after a pause, cancel or not.
  let answered = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    let greeted = false;
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!greeted && buf.length >= 68) {
        greeted = true;
        s.write(Buffer.concat([buf.subarray(0, 48), Buffer.from('-XX0001-answersall!!')]));
        s.write(Buffer.concat([msg(5, Buffer.from([0xff, 0xff])), msg(1)]));
        buf = buf.subarray(68);
      }
      while (greeted && buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const m = buf.subarray(4, 4 + buf.readUInt32BE(0));
        buf = buf.subarray(4 + m.length);
        if (m[0] !== 6) continue;
        const [index, begin, length] = [m.readUInt32BE(1), m.readUInt32BE(5), m.readUInt32BE(9)];
        setTimeout(() => {
          answered++;
          if (!s.destroyed) s.write(msg(7, index, begin, DATA.subarray(index * PIECE + begin, index * PIECE + begin + length)));
        }, 300);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const swarm = new PeerSwarm({ limits: LIMITS });
  t.after(() => swarm.close());
  const [src] = swarm.sources(torrent, 0, [`127.0.0.1:${(server.address() as net.AddressInfo).port}`]);
  const into = Buffer.alloc(2 * PIECE, 0);
  const abort = new AbortController();
  const opened = await open(src!, { offset: 0, end: 2 * PIECE - 1, into, signal: abort.signal });
  const it = opened.body[Symbol.asyncIterator]();
  const pending = it.next();
  pending.catch(() => {});
  await waitFor('the requests to reach the peer', () => sockets.size > 0, { timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 50));
  abort.abort();
  await assert.rejects(pending, /cancelled/);
  // The memory is someone else's now: whatever the peer still sends must not land in it.
  into.fill(0x5a);
  await waitFor('the peer to answer every request it got', () => answered >= 8, { timeoutMs: 10_000 });
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(into.equals(Buffer.alloc(2 * PIECE, 0x5a)), 'the cancelled read\'s memory is untouched');
});
