// fetch --bittorrent uploads the pieces of a torrent of several files (`torrent create --multi-file`)
// while it downloads, as it does those of a single-file torrent: a libtorrent 2.0.8 leecher pointed at our
// leecher alone, and another of our leechers, take verified pieces from it. And, seen from a raw peer: a
// piece of the torrent is announced (BEP 3 `have`, at its place in the torrent's piece space) once the
// file piece it lies in is verified; a file accepted whole (too small to be taken in pieces, or already in
// the store) once its bytes in the store make its pieces root; bytes that do not, never.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { BLOCK, blockHashes } from '../../src/fetch/piece-map.ts';
import type { Distfile } from '../../src/manifest/index.ts';
import { LeechUpload } from '../../src/torrent/leech-upload.ts';
import { readTorrent } from '../../src/torrent/metainfo.ts';
import { fileOffsets } from '../../src/torrent/peer-source.ts';
import { rootWithFiles } from '../helpers/distfiles.ts';
import { ROOT, runCli, waitFor } from '../helpers/run.ts';
import { RawPeer, msg } from './raw-peer.ts';
import { libtorrentLeech } from './libtorrent-leech-process.ts';
import { startSeed } from './seed-process.ts';

const FILES = { 'a.tar.gz': 2_300_017, 'b.tar.xz': 20_000, 'c.patch': 131_072, 'd.tar.bz2': 3_000_003 };
const NAME = 'lb-up';

/**
 * A root, a manifest with every merkleRoot filled, the --multi-file torrent of `kind`, and a seed of it at
 * 1 MB/s. `v1-padded`: libtorrent's own v1 torrent of the root with BEP 47 pad files (each file from a
 * piece boundary, zeros after it; 256 KiB pieces), which `torrent create` does not make.
 */
async function setup(t: { after(fn: () => unknown): void }, kind = 'hybrid') {
  const { dir, root, manifest: bare, expected } = await rootWithFiles(t, FILES, NAME, 5);
  const manifest = path.join(dir, 'pinned.json');
  const r = await runCli(['torrent', 'create', bare, '--root', root, '-o', path.join(dir, 't'), `--${kind === 'v1-padded' ? 'hybrid' : kind}`, '--multi-file', '--manifest-out', manifest]);
  assert.equal(r.code, 0, r.stderr);
  let torrent = path.join(dir, 't', `${NAME}.torrent`);
  if (kind === 'v1-padded') {
    const made = spawn('/usr/bin/python3', [path.join(ROOT, 'test/torrent/libtorrent-create.py'), 'make', path.join(dir, 't'), String(256 * 1024), kind, root], { stdio: ['ignore', 'ignore', 'inherit'] });
    assert.equal((await once(made, 'close'))[0], 0, 'libtorrent-create.py make');
    torrent = path.join(dir, 't', 'root.torrent');
    const lt = readTorrent(await readFile(torrent), 'torrent');
    assert.ok(lt.version === 'v1' && lt.v1Size! > Object.values(FILES).reduce((a, b) => a + b, 0), 'a v1 torrent with pad files');
  }
  // The seed sends 1 MB/s, so our leecher holds partial files for a few seconds.
  const seed = await startSeed(t, ['--root', root, '--torrent', torrent, '--upload-rate', '1M']);
  t.after(() => seed.stop());
  return { dir, root, manifest, torrent, seed, expected };
}

/**
 * `setup`, then our LeechUpload with the torrent's files registered (none verified yet) and a raw peer
 * that greets it by the v1 or the truncated v2 info-hash; `idx` finds a file, `offsets` where each starts.
 */
async function uploadAndPeer(t: { after(fn: () => unknown): void }, kind: string, greet: 'v1' | 'v2') {
  const { dir, root, torrent: file } = await setup(t, kind);
  const torrent = readTorrent(await readFile(file), 'torrent');
  const offsets = fileOffsets(torrent);
  const idx = (name: string) => torrent.files.findIndex((f) => f.path[0] === name);
  const up = await LeechUpload.start({ host: '127.0.0.1', port: 0, maxPeers: 10, uploadRate: 0 });
  t.after(() => up.close());
  up.register(torrent, torrent.files.map((f) => f.path[0]!));
  const peer = new RawPeer('127.0.0.1', up.port);
  t.after(() => peer.socket.destroy());
  await peer.open(greet === 'v1' ? torrent.infoHashV1!.toString('hex') : torrent.infoHashV2!.subarray(0, 20).toString('hex'));
  return { dir, root, torrent, L: torrent.pieceLength, offsets, idx, up, peer };
}

for (const [kind, v2] of [['hybrid', false], ['hybrid', true], ['v1', false], ['v1-padded', false]] as const) test(`a libtorrent leecher gets verified pieces of a --multi-file ${kind} from our leecher while it downloads${v2 ? ', greeting it with the v2 info-hash' : ''}`, async (t) => {
  const { dir, manifest, torrent, seed } = await setup(t, kind);
  const save = path.join(dir, 'lt');
  await mkdir(save);
  const out = path.join(dir, 'out');
  let lt: ReturnType<typeof libtorrentLeech> | undefined;
  const r = await runCli(['fetch', manifest, '--store', path.join(out, 'store'), '-o', out, '--json', '--bittorrent', '--torrent', torrent, '--peer', seed.address, '--listen', '127.0.0.1:0'], {
    timeoutMs: 120_000,
    onStderr: (s) => {
      const m = /offering verified pieces to peers at (127\.0\.0\.1:\d+)/.exec(s);
      if (m && !lt) lt = libtorrentLeech(t, torrent, save, m[1]!, v2 ? ['--v2-handshake'] : []);
    },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(lt, `our leecher said where it offers pieces: ${r.stderr}`);
  const got = await lt.stop();
  const report = JSON.parse(r.stdout);
  assert.deepEqual(report.files.map((f: { status: string }) => f.status), ['fetched', 'fetched', 'fetched', 'fetched'], r.stdout);
  assert.ok(report.uploaded > 0, `our leecher uploaded: ${r.stdout.slice(0, 300)}`);
  assert.ok(got.peerBytes > 0, `libtorrent got pieces from our leecher: ${JSON.stringify(got)}`);
  assert.ok(got.peerBytes <= report.uploaded, `libtorrent got no more than we sent: ${got.peerBytes} of ${report.uploaded}`);
  assert.equal(got.failedBytes, 0, 'every piece we sent passed libtorrent\'s own check');
});

test('our leecher takes pieces of a --multi-file torrent from another of our leechers still downloading', async (t) => {
  const { dir, manifest, torrent, seed, expected } = await setup(t);
  const a = path.join(dir, 'a');
  const b = path.join(dir, 'b');
  let second: Promise<Awaited<ReturnType<typeof runCli>>> | undefined;
  let port = '';
  // A takes the files from the seed alone; B, started once A listens, from the seed and A.
  const first = await runCli(['fetch', manifest, '--store', path.join(a, 'store'), '-o', a, '--json', '--bittorrent', '--torrent', torrent, '--peer', seed.address, '--listen', '127.0.0.1:0'], {
    timeoutMs: 120_000,
    onStderr: (s) => {
      const m = /offering verified pieces to peers at 127\.0\.0\.1:(\d+)/.exec(s);
      if (m && !second) {
        port = m[1]!;
        second = runCli(['fetch', manifest, '--store', path.join(b, 'store'), '-o', b, '--json', '--bittorrent', '--torrent', torrent, '--peer', `127.0.0.1:${port}`, '--peer', seed.address, '--no-upload'], { timeoutMs: 120_000 });
      }
    },
  });
  assert.equal(first.code, 0, first.stderr);
  assert.ok(second, first.stderr);
  const r = await second;
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { files: { name: string; source?: string; size: number; contributors?: { source: string; bytes: number }[] }[] };
  for (const [name, digest] of Object.entries(expected)) {
    assert.equal(createHash('sha256').update(await readFile(path.join(b, name))).digest('hex'), digest, name);
  }
  const fromA = report.files.flatMap((f) => f.contributors ?? [{ source: f.source!, bytes: f.size }]).filter((c) => c.source === `peer 127.0.0.1:${port}`).reduce((n, c) => n + c.bytes, 0);
  assert.ok(fromA > 0, `B took bytes from A: ${JSON.stringify(report.files.map((f) => f.contributors ?? f.source))}`);
  assert.ok(JSON.parse(first.stdout).uploaded >= fromA, 'A sent at least what B says it took from A');
});

test('a piece of a --multi-file torrent is announced at its place once its file piece verifies; a file accepted whole, once the store\'s bytes make its root', async (t) => {
  const { dir, root, torrent, L, offsets, idx, up, peer } = await uploadAndPeer(t, 'v2', 'v2');
  const bitfield = await peer.message(5, 'the bitfield');
  assert.ok(bitfield.subarray(1).every((x) => x === 0), 'nothing had yet');
  const haves = () => peer.messages.filter((m) => m[0] === 4).map((m) => m.readUInt32BE(1));

  // Piece 1 of d.tar.bz2, as a segmented download verifies it (read back from its partial).
  const d = await readFile(path.join(root, 'd.tar.bz2'));
  const partial = path.join(dir, 'd.part');
  await writeFile(partial, d);
  await up.pieceVerified({ name: 'd.tar.bz2' } as Distfile, 1, partial, L);
  const at = offsets[idx('d.tar.bz2')]! / L + 1;
  await waitFor(`have ${at}`, () => haves().includes(at));
  // Its bytes, block by block, checked against the leaves taken.
  for (let o = 0; o < L; o += BLOCK) assert.ok((await peer.block(at, o, BLOCK)).equals(d.subarray(L + o, L + o + BLOCK)), `block at ${o}`);

  // c.patch accepted whole: offered from the store once its leaves make its pieces root.
  const stored = path.join(dir, 'c.stored');
  await copyFile(path.join(root, 'c.patch'), stored);
  await up.fileVerified('c.patch', stored);
  const c = offsets[idx('c.patch')]! / L;
  await waitFor(`have ${c}`, () => haves().includes(c));
  const cBytes = await readFile(stored);
  assert.ok((await peer.block(c, 0, BLOCK)).equals(cBytes.subarray(0, BLOCK)));

  // b.tar.xz "accepted" with other bytes (a torrent that disagrees with the store): never announced.
  const wrong = path.join(dir, 'b.wrong');
  await writeFile(wrong, Buffer.alloc(FILES['b.tar.xz'], 7));
  await up.fileVerified('b.tar.xz', wrong);
  // a.tar.gz whole: every piece of it not had yet, at its place.
  await up.fileVerified('a.tar.gz', path.join(root, 'a.tar.gz'));
  const aFirst = offsets[idx('a.tar.gz')]! / L;
  const aPieces = Math.ceil(FILES['a.tar.gz'] / L);
  await waitFor('have every piece of a.tar.gz', () => Array.from({ length: aPieces }, (_, i) => aFirst + i).every((p) => haves().includes(p)));
  const b = offsets[idx('b.tar.xz')]! / L;
  assert.ok(!haves().includes(b), `b.tar.xz's piece ${b} was not announced: ${haves().join(',')}`);

  // BEP 52 hash requests (two leaves from the start): answered for a.tar.gz, whole now; rejected for
  // d.tar.bz2, still partial.
  const ask = (root: Buffer) => peer.send(msg(21, root, 0, 0, 2, 0));
  ask(torrent.files[idx('a.tar.gz')]!.root!);
  const answer = await peer.waitMessage((m) => m[0] === 22 || m[0] === 23, 'the answer for a.tar.gz');
  assert.equal(answer[0], 22, 'hashes for the whole file');
  assert.ok(answer.subarray(49).equals(Buffer.concat(blockHashes((await readFile(path.join(root, 'a.tar.gz'))).subarray(0, 2 * BLOCK)))));
  ask(torrent.files[idx('d.tar.bz2')]!.root!);
  await peer.waitMessage((m) => m[0] === 23, 'a hash reject for the partial d.tar.bz2');
});

test('a v1 --multi-file torrent: a piece is announced once every file it overlaps is whole and its SHA-1 is the torrent\'s', async (t) => {
  const { dir, root, torrent, L, offsets, idx, up, peer } = await uploadAndPeer(t, 'v1', 'v1');
  const span = (name: string) => [Math.floor(offsets[idx(name)]! / L), Math.floor((offsets[idx(name)]! + FILES[name as keyof typeof FILES] - 1) / L)] as const;
  const haves = () => new Set(peer.messages.filter((m) => m[0] === 4).map((m) => m.readUInt32BE(1)));
  const range = (a: number, b: number) => Array.from({ length: Math.max(0, b - a + 1) }, (_, i) => a + i);

  // a.tar.gz whole: its pieces but the last, which b.tar.xz's bytes end.
  await up.fileVerified('a.tar.gz', path.join(root, 'a.tar.gz'));
  const [a0, a1] = span('a.tar.gz');
  await waitFor('a.tar.gz\'s pieces', () => range(a0, a1 - 1).every((p) => haves().has(p)));
  assert.ok(!haves().has(a1), 'the piece shared with b.tar.xz waits for it');
  // b.tar.xz "whole" with other bytes: the pieces it lies in fail their SHA-1, never announced.
  const wrong = path.join(dir, 'b.wrong');
  await writeFile(wrong, Buffer.alloc(FILES['b.tar.xz'], 7));
  await up.fileVerified('b.tar.xz', wrong);
  const [b0, b1] = span('b.tar.xz');
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(range(b0, b1).every((p) => !haves().has(p)), `no piece of the wrong b.tar.xz: ${[...haves()].filter((p) => p >= b0 && p <= b1)}`);
  // c.patch and d.tar.bz2 whole, right: every piece they alone make, but the one after c.patch's first
  // (a piece of c.patch's own, which is had only once both torrent pieces it overlaps proved, lies in it).
  await up.fileVerified('c.patch', path.join(root, 'c.patch'));
  await up.fileVerified('d.tar.bz2', path.join(root, 'd.tar.bz2'));
  const [c0] = span('c.patch');
  const [, d1] = span('d.tar.bz2');
  await waitFor('c and d\'s pieces', () => range(c0 + 2, d1).every((p) => haves().has(p)));
  assert.ok(!haves().has(c0) && !haves().has(c0 + 1), 'nothing that the wrong b.tar.xz touches');
  // The bytes of a piece across c.patch and d.tar.bz2, as the torrent lays them.
  const [d0] = span('d.tar.bz2');
  const all = Buffer.concat(await Promise.all(torrent.files.map((f) => readFile(path.join(root, f.path[0]!)))));
  const got = Buffer.concat(await Promise.all(range(0, L / BLOCK - 1).map((k) => peer.block(d0, k * BLOCK, BLOCK))));
  assert.ok(got.equals(all.subarray(d0 * L, d0 * L + L)), 'the piece across c.patch and d.tar.bz2');
});

test('a v1 torrent with BEP 47 pad files: a piece across a file\'s end and its pad is announced once the file is whole, the pad sent as zeros', async (t) => {
  const { root, torrent, L, offsets, idx, up, peer } = await uploadAndPeer(t, 'v1-padded', 'v1');
  const haves = () => new Set(peer.messages.filter((m) => m[0] === 4).map((m) => m.readUInt32BE(1)));

  // d.tar.bz2 whole: every piece of it, its last one ending in the pad file after it.
  const d = await readFile(path.join(root, 'd.tar.bz2'));
  const start = offsets[idx('d.tar.bz2')]!;
  assert.equal(start % L, 0, 'after a pad file, on a piece boundary');
  await up.fileVerified('d.tar.bz2', path.join(root, 'd.tar.bz2'));
  const first = start / L, last = Math.floor((start + d.length - 1) / L);
  await waitFor('d.tar.bz2\'s pieces', () => Array.from({ length: last - first + 1 }, (_, i) => first + i).every((p) => haves().has(p)));
  assert.ok(![...haves()].some((p) => p < first || p > last), `only d.tar.bz2's: ${[...haves()]}`);
  // The last piece byte for byte: the file's tail, then zeros (BEP 47), as its SHA-1 in the torrent says.
  const got = Buffer.concat(await Promise.all(Array.from({ length: L / BLOCK }, (_, k) => peer.block(last, k * BLOCK, BLOCK))));
  const tail = d.subarray((last - first) * L);
  assert.ok(got.subarray(0, tail.length).equals(tail) && got.subarray(tail.length).every((x) => x === 0), 'the file\'s tail, then zeros');
  assert.ok(createHash('sha1').update(got).digest().equals(torrent.v1Pieces!.subarray(20 * last, 20 * last + 20)));
});
