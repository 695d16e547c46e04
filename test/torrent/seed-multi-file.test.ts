// `seed --torrent` with the one torrent `torrent create --multi-file` makes for a whole manifest, against
// libtorrent 2.0.8: it downloads every file from our seed alone with the hybrid torrent, greeting us once
// with the v1 info-hash (a v1 peer: pieces checked by SHA-1 over the files and their BEP 47 pads) and once
// with the truncated v2 one (pieces checked against each file's piece layer), and with the v1-only (pieces
// crossing file boundaries) and v2-only torrents; without piece layers it asks us for each file's hashes.
// A torrent that does not match the verified files is refused before anything is seeded.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { hashTorrentFiles } from '../../src/torrent/file-hashes.ts';
import { makeTorrent, readTorrent } from '../../src/torrent/metainfo.ts';
import { bytes, distfile, rootWithFiles, writeManifest } from '../helpers/distfiles.ts';
import { ROOT, runCli } from '../helpers/run.ts';
import { tool } from '../mirror/serve-process.ts';
import { startSeed } from './seed-process.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
// With 16 KiB pieces (the default for these sizes): files that end inside a piece (so hybrids pad them and
// v1 pieces cross into the next file), one of whole pieces, one smaller than a piece.
const FILES = { 'a.tar.gz': 300_017, 'b.tar.xz': 20_000, 'c.patch': 131_072, 'd.tar.bz2': 1_000_003 };
const NAME = 'lb-set';

async function setup(t: { after(fn: () => unknown): void }) {
  const { dir, root, manifest, expected } = await rootWithFiles(t, FILES, NAME, 7);
  const torrent = async (kind: string, fromRoot = root) => {
    const out = path.join(dir, `t-${kind}-${path.basename(fromRoot)}`);
    const r = await runCli(['torrent', 'create', manifest, '--root', fromRoot, '-o', out, `--${kind}`, '--multi-file']);
    assert.equal(r.code, 0, r.stderr);
    return path.join(out, `${NAME}.torrent`);
  };
  return { dir, root, manifest, expected, torrent };
}

async function libtorrentGet(torrent: string, save: string, peer: string, extra: string[] = []) {
  await mkdir(save, { recursive: true });
  const r = await tool('/usr/bin/python3', [path.join(ROOT, 'test/torrent/libtorrent-download.py'), torrent, save, '60', ...extra, peer], { timeoutMs: 90_000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString()) as { done: boolean; peerBytes: number; failedBytes: number; errors: string[] };
}

async function assertFiles(dir: string, expected: Record<string, string>, what: string) {
  for (const [name, digest] of Object.entries(expected)) assert.equal(sha(await readFile(path.join(dir, NAME, name))), digest, `${what}: ${name}`);
}

test('libtorrent downloads a --multi-file hybrid from our seed alone, as a v1 peer and over v2', async (t) => {
  const { dir, root, expected, torrent } = await setup(t);
  const hybrid = await torrent('hybrid');
  const seed = await startSeed(t, ['--root', root, '--torrent', hybrid]);
  const listed = (seed.first as unknown as { torrents: { name: string; files: number; infoHashV1: string; infoHashV2: string }[] }).torrents;
  assert.equal(listed.length, 1);
  assert.equal(listed[0]!.name, NAME);
  assert.equal(listed[0]!.files, 4);

  const v1 = await libtorrentGet(hybrid, path.join(dir, 'got-v1'), seed.address);
  assert.ok(v1.done, JSON.stringify(v1));
  assert.equal(v1.failedBytes, 0);
  await assertFiles(path.join(dir, 'got-v1'), expected, 'v1 greeting');
  const v2 = await libtorrentGet(hybrid, path.join(dir, 'got-v2'), seed.address, ['--v2-handshake']);
  assert.ok(v2.done, JSON.stringify(v2));
  assert.equal(v2.failedBytes, 0);
  await assertFiles(path.join(dir, 'got-v2'), expected, 'v2 greeting');

  const records = await seed.stop();
  const greetings = records.filter((r) => r.msg === 'peer' && r.file === NAME).map((r) => r.greeting);
  assert.ok(greetings.includes('v1') && greetings.includes('v2'), greetings.join(', '));
  const stopped = records.find((r) => r.msg === 'stopped')!;
  const total = Object.values(FILES).reduce((a, b) => a + b, 0);
  assert.ok((stopped.uploaded as number) >= 2 * total, JSON.stringify(stopped));
  assert.deepEqual(stopped.banned, {});
});

test('libtorrent downloads --multi-file v1-only (pieces across files) and v2-only torrents, and asks for the hashes of each file without piece layers', async (t) => {
  const { dir, root, expected, torrent } = await setup(t);
  const v1 = await torrent('v1');
  const v2 = await torrent('v2');
  const seed = await startSeed(t, ['--root', root, '--torrent', v1, '--torrent', v2]);
  for (const [kind, file, extra] of [['v1', v1, []], ['v2', v2, []], ['v2 without layers', v2, ['--no-piece-layers']]] as const) {
    const save = path.join(dir, `got-${kind.replaceAll(' ', '-')}`);
    const r = await libtorrentGet(file, save, seed.address, [...extra]);
    assert.ok(r.done, `${kind}: ${JSON.stringify(r)}`);
    assert.equal(r.failedBytes, 0, kind);
    await assertFiles(save, expected, kind);
  }
  const stopped = (await seed.stop()).find((x) => x.msg === 'stopped')!;
  // Every file larger than a piece has its own pieces root to ask by.
  assert.ok((stopped.hashesSent as number) >= 3, JSON.stringify(stopped));
  assert.equal(stopped.hashesRejected, 0);
  assert.deepEqual(stopped.banned, {});
});

test('a torrent that does not match the verified files is refused, naming it, before anything is seeded', async (t) => {
  const { dir, root, torrent } = await setup(t);
  // Other bytes under one of the names: a torrent made from them has another pieces root.
  const other = path.join(dir, 'other');
  await mkdir(other);
  for (const name of Object.keys(FILES)) await writeFile(path.join(other, name), await readFile(path.join(root, name)));
  const changed = bytes(FILES['d.tar.bz2'], 99);
  await writeFile(path.join(other, 'd.tar.bz2'), changed);
  const m2 = await writeManifest(other, Object.keys(FILES).map((n) => distfile(n, n === 'd.tar.bz2' ? changed : bytes(FILES[n as keyof typeof FILES], FILES[n as keyof typeof FILES] + 7), [], { size: FILES[n as keyof typeof FILES] })), NAME);
  const r2 = await runCli(['torrent', 'create', m2, '--root', other, '-o', path.join(dir, 't-other'), '--multi-file']);
  assert.equal(r2.code, 0, r2.stderr);
  const wrongRoot = path.join(dir, 't-other', `${NAME}.torrent`);

  // A hybrid whose v2 half is right and whose v1 pieces are not: v1 peers would fail every piece.
  const good = readTorrent(await readFile(await torrent('hybrid')), 'good');
  const names = Object.keys(FILES).sort();
  const hashed = await hashTorrentFiles(names.map((n) => ({ path: path.join(root, n), pad: 0 })), good.pieceLength, true);
  const badV1 = makeTorrent({
    name: NAME, multiFile: true, pieceLength: good.pieceLength, version: 'hybrid', webSeeds: [], trackers: [],
    files: names.map((n, i) => ({ name: n, size: hashed.files[i]!.size, root: hashed.files[i]!.root, layer: hashed.files[i]!.layer })),
    // Pieces of the files laid end to end, without the pads a hybrid's layout has.
    v1Pieces: Buffer.concat([hashed.v1Pieces!, Buffer.alloc(20 * (good.v1Pieces!.length / 20 - hashed.v1Pieces!.length / 20))]),
  });
  const badV1File = path.join(dir, 'bad-v1.torrent');
  await writeFile(badV1File, badV1.bytes);

  // A torrent naming a file this root does not have.
  const partRoot = path.join(dir, 'part');
  await mkdir(partRoot);
  for (const name of ['a.tar.gz', 'b.tar.xz', 'c.patch']) await writeFile(path.join(partRoot, name), await readFile(path.join(root, name)));

  for (const [what, args, code, exit] of [
    ['another pieces root', ['--root', root, '--torrent', wrongRoot], 'E_VERIFY', 3],
    ['wrong v1 pieces', ['--root', root, '--torrent', badV1File], 'E_VERIFY', 3],
    ['a file not here', ['--root', partRoot, '--torrent', await torrent('hybrid')], 'E_VERIFY', 3],
    ['not a torrent', ['--root', root, '--torrent', path.join(root, 'a.tar.gz')], 'E_FORMAT', 2],
  ] as const) {
    const r = await runCli(['seed', '--listen', '127.0.0.1:0', ...args], { timeoutMs: 60_000 });
    assert.equal(r.code, exit, `${what}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('sourcemesh'));
    assert.equal(lines.length, 1, `${what}: ${r.stderr}`);
    assert.match(lines[0]!, new RegExp(`torrent ${args[3]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*\\[${code}\\]`), what);
    assert.equal(r.stdout.includes('"listening"'), false, `${what}: nothing is seeded`);
  }
});
