// torrent create and torrent check against libtorrent 2.0.8 (Debian python3-libtorrent), the reference
// BitTorrent v2 implementation: our torrents are byte for byte the ones libtorrent makes for the same
// files, libtorrent reads ours to the same info-hashes, and torrents that disagree with the manifest are
// refused.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { isSourcemeshError } from '../../src/errors.ts';
import { parseManifestJson } from '../../src/manifest/index.ts';
import { decode, encode, type BDict } from '../../src/torrent/bencode.ts';
import { createTorrents } from '../../src/torrent/create.ts';
import { readTorrent, type TorrentVersion } from '../../src/torrent/metainfo.ts';
import { bytes, distfile, writeManifest } from '../helpers/distfiles.ts';
import { ROOT, runCli, tempDir } from '../helpers/run.ts';

const SCRIPT = path.join(ROOT, 'test/torrent/libtorrent-create.py');
const run = promisify(execFile);

async function libtorrent(args: string[]): Promise<string> {
  try {
    return (await run('/usr/bin/python3', [SCRIPT, ...args], { maxBuffer: 64 << 20 })).stdout;
  } catch (err) {
    throw new Error(`libtorrent is needed for this test: apt-get install python3-libtorrent (${(err as Error).message.split('\n')[0]})`);
  }
}

interface LtRead { v1: string | null; v2: string | null; name: string; pieceLength: number; files: { path: string; size: number; pad: boolean; root: string | null }[]; webSeeds: string[]; trackers: string[] }
const ltRead = async (files: string[]): Promise<LtRead[]> => JSON.parse(await libtorrent(['read', ...files]));

/** A root directory with files of the given sizes (an empty one too), and its manifest. */
async function fixture(dir: string, sizes: Record<string, number>, name = 'tree') {
  const root = path.join(dir, name);
  await mkdir(root, { recursive: true });
  const ds = [];
  for (const [file, size] of Object.entries(sizes)) {
    const body = bytes(size, size + 7);
    await writeFile(path.join(root, file), body);
    ds.push(distfile(file, body, [`http://127.0.0.1:9/${file}`], { size }));
  }
  const manifestFile = await writeManifest(dir, ds, name);
  return { root, manifestFile, manifest: parseManifestJson(await readFile(manifestFile, 'utf8'), manifestFile) };
}

const SIZES = { 'one-byte': 1, 'one-block': 16_384, 'block-and-a-byte': 16_385, 'odd.tar.gz': 100_003, 'big.tar.xz': 1_048_576 + 7, 'empty': 0 };

test('single-file and multi-file torrents are byte for byte the ones libtorrent makes, for v1, v2 and hybrid', async (t) => {
  const dir = await tempDir(t);
  const { root, manifest } = await fixture(dir, SIZES);
  for (const version of ['v1', 'v2', 'hybrid'] as TorrentVersion[]) {
    for (const pieceLength of [16_384, 65_536]) {
      const theirs = path.join(dir, `lt-${version}-${pieceLength}`);
      await mkdir(theirs);
      const singles = Object.keys(SIZES).filter((n) => n !== 'empty'); // libtorrent makes no torrent of an empty file
      await libtorrent(['make', theirs, String(pieceLength), version, ...singles.map((n) => path.join(root, n))]);
      const ours = await createTorrents(manifest, { kind: 'root', root }, { version, multiFile: false, webSeeds: [], trackers: [], pieceLength });
      for (const name of singles) {
        const mine = ours.torrents.find((x) => x.name === name)!;
        assert.ok(mine.bytes.equals(await readFile(path.join(theirs, `${name}.torrent`))), `${version} ${pieceLength} ${name}`);
      }
      const multi = await createTorrents(manifest, { kind: 'root', root }, { version, multiFile: true, webSeeds: [], trackers: [], pieceLength });
      assert.equal(multi.torrents.length, 1);
      if (version === 'v1') {
        // libtorrent orders a v1-only torrent's files its own way (smaller first); ours are in name order.
        // Both are valid BEP 3; libtorrent reads ours to our info-hash and files.
        const multiFile = path.join(dir, `ours-${pieceLength}.torrent`);
        await writeFile(multiFile, multi.torrents[0]!.bytes);
        const [seen] = await ltRead([multiFile]);
        assert.equal(seen!.v1, multi.torrents[0]!.infoHashV1);
        assert.deepEqual(seen!.files.map((f) => [f.path, f.size]), Object.keys(SIZES).sort().map((n) => [`tree/${n}`, SIZES[n as keyof typeof SIZES]]));
      } else {
        await libtorrent(['make', theirs, String(pieceLength), version, root]);
        assert.ok(multi.torrents[0]!.bytes.equals(await readFile(path.join(theirs, 'tree.torrent'))), `${version} ${pieceLength} multi-file`);
      }
    }
  }
});

test('libtorrent reads our torrents with web seeds and trackers to the same info-hashes, roots and URLs', async (t) => {
  const dir = await tempDir(t);
  const { root, manifestFile, manifest } = await fixture(dir, { 'a.tar.gz': 300_000, 'b.tar.gz': 5_000_000 });
  const out = path.join(dir, 'torrents');
  // Web seeds from --web-seed and from a mirror list (a mirror named twice is kept once).
  const list = path.join(dir, 'mirrors.json');
  await writeFile(list, JSON.stringify({ format: 'sourcemesh.mirrors/v1', mirrors: [{ url: 'https://mirror.example' }, { url: 'http://127.0.0.1:8080/lb' }] }));
  const r = await runCli(['torrent', 'create', manifestFile, '--root', root, '-o', out, '--web-seed', 'http://127.0.0.1:8080/lb', '--mirror-list', list, '--tracker', 'http://127.0.0.1:6969/announce', '--tracker', 'udp://127.0.0.1:6969', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  const files = report.torrents.map((x: { file: string }) => x.file);
  const seen = await ltRead(files);
  for (const [i, x] of report.torrents.entries()) {
    assert.equal(seen[i]!.v1, x.infoHashV1);
    assert.equal(seen[i]!.v2, x.infoHashV2);
    assert.deepEqual(seen[i]!.webSeeds, ['http://127.0.0.1:8080/lb/', 'https://mirror.example/']);
    assert.deepEqual(seen[i]!.trackers, ['http://127.0.0.1:6969/announce', 'udp://127.0.0.1:6969']);
    assert.equal(seen[i]!.files[0]!.root, x.files[0].merkleRoot);
    assert.match(x.magnet, new RegExp(`^magnet:\\?xt=urn:btih:${x.infoHashV1}&xt=urn:btmh:1220${x.infoHashV2}&dn=${x.name}&tr=`));
    assert.equal(report.filledMerkleRoots[x.name], x.files[0].merkleRoot);
  }
  // The rule's piece length: the smallest giving at most 1,024 pieces (5 MB in 16 KiB pieces is 306).
  assert.deepEqual(report.torrents.map((x: { pieceLength: number }) => x.pieceLength), [16_384, 16_384]);
  assert.equal(manifest.distfiles.length, 2);
});

test('torrent create is deterministic, fills merkleRoot, and its torrents pass torrent check', async (t) => {
  const dir = await tempDir(t);
  const { root, manifestFile } = await fixture(dir, { 'x.tar': 70_000, 'y.tar': 2_000_000 });
  const args = (out: string) => ['torrent', 'create', manifestFile, '--root', root, '-o', out, '--web-seed', 'http://127.0.0.1:1/', '--multi-file'];
  const a = await runCli([...args(path.join(dir, 'a')), '--manifest-out', path.join(dir, 'filled.json')]);
  const b = await runCli(args(path.join(dir, 'b')));
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.ok((await readFile(path.join(dir, 'a/tree.torrent'))).equals(await readFile(path.join(dir, 'b/tree.torrent'))));
  assert.match(a.stdout, /magnet:\?xt=urn:btih:[0-9a-f]{40}&xt=urn:btmh:1220[0-9a-f]{64}&dn=tree&ws=/);
  const filled = parseManifestJson(await readFile(path.join(dir, 'filled.json'), 'utf8'), 'filled');
  assert.ok(filled.distfiles.every((d) => /^[0-9a-f]{64}$/.test(d.merkleRoot ?? '')));
  // With the roots pinned, the same run makes the same bytes (roots reused, not refused).
  const c = await runCli(['torrent', 'create', path.join(dir, 'filled.json'), '--root', root, '-o', path.join(dir, 'c'), '--web-seed', 'http://127.0.0.1:1/', '--multi-file']);
  assert.equal(c.code, 0, c.stderr);
  assert.ok((await readFile(path.join(dir, 'c/tree.torrent'))).equals(await readFile(path.join(dir, 'a/tree.torrent'))));
  const check = await runCli(['torrent', 'check', path.join(dir, 'a/tree.torrent'), '-m', path.join(dir, 'filled.json'), '--json']);
  assert.equal(check.code, 0, check.stderr);
  assert.deepEqual(JSON.parse(check.stdout).files.map((f: { checked: string[] }) => f.checked), [['size', 'merkleRoot'], ['size', 'merkleRoot']]);

  // libtorrent's own torrent of the same files agrees with the manifest too.
  const lt = path.join(dir, 'lt');
  await mkdir(lt);
  await libtorrent(['make', lt, '65536', 'v2', path.join(root, 'y.tar')]);
  const ltCheck = await runCli(['torrent', 'check', path.join(lt, 'y.tar.torrent'), '-m', path.join(dir, 'filled.json')]);
  assert.equal(ltCheck.code, 0, ltCheck.stderr);
});

test('bytes that are not the manifest\'s make no torrent; a torrent that disagrees with the manifest is refused', async (t) => {
  const dir = await tempDir(t);
  const { root, manifestFile, manifest } = await fixture(dir, { 'good.tar': 40_000, 'bad.tar': 40_000 });
  await writeFile(path.join(root, 'bad.tar'), bytes(40_000, 99)); // same size, other bytes
  const out = path.join(dir, 'out');
  const r = await runCli(['torrent', 'create', manifestFile, '--root', root, '-o', out]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /bad\.tar: sha256 [0-9a-f]{64}, the manifest pins [0-9a-f]{64} \[E_CHECKSUM\]/);
  assert.deepEqual(await readdir(out), ['good.tar.torrent']);

  // A merkleRoot the verified bytes do not have: the manifest is wrong, nothing is made.
  const wrongRoot = { ...manifest, distfiles: manifest.distfiles.map((d) => ({ ...d, merkleRoot: 'ab'.repeat(32) })) };
  const res = await createTorrents(wrongRoot, { kind: 'root', root }, { version: 'hybrid', multiFile: false, webSeeds: [], trackers: [] });
  assert.deepEqual(res.failed.map((f) => [f.name, f.code]), [['bad.tar', 'E_CHECKSUM'], ['good.tar', 'E_MANIFEST']]);

  // torrent check: the good torrent against a manifest pinning another size, another root, or not naming it.
  const good = path.join(out, 'good.tar.torrent');
  const goodD = manifest.distfiles.find((d) => d.name === 'good.tar')!;
  for (const [label, d] of [['size', { ...goodD, size: 40_001 }], ['root', { ...goodD, merkleRoot: 'cd'.repeat(32) }], ['name', { ...goodD, name: 'other.tar' }]] as const) {
    const m = path.join(dir, `m-${label}.json`);
    await writeFile(m, JSON.stringify({ format: 'sourcemesh.manifest/v1', name: 'tree', distfiles: [d] }));
    const c = await runCli(['torrent', 'check', good, '-m', m]);
    assert.equal(c.code, 3, `${label}: ${c.stderr}`);
    assert.match(c.stderr, /\[E_VERIFY\]/);
  }

  // Malformed torrents: E_FORMAT (exit 2), or E_PROOF for a piece layer that does not hash to its root.
  const bytesOf = await readFile(good);
  await writeFile(path.join(dir, 'cut.torrent'), bytesOf.subarray(0, bytesOf.length - 1));
  const cut = await runCli(['torrent', 'check', path.join(dir, 'cut.torrent'), '-m', manifestFile]);
  assert.equal(cut.code, 2);
  assert.match(cut.stderr, /cut\.torrent: bad bencoding at byte \d+: .*\[E_FORMAT\]/);
  const top = decode(bytesOf, 't') as BDict;
  const layers = top.get('piece layers') as BDict;
  const [rootKey, layer] = [...layers][0]!;
  const bad = Buffer.from(layer as Buffer);
  bad[0]! ^= 1;
  layers.set(rootKey, bad);
  assert.throws(() => readTorrent(encode(top), 'tampered'), (e: unknown) => isSourcemeshError(e, 'E_PROOF'));
  // A hybrid whose v1 length disagrees with its v2 file tree.
  const top2 = decode(bytesOf, 't') as BDict;
  (top2.get('info') as BDict).set('length', 40_001);
  assert.throws(() => readTorrent(encode(top2), 'hybrid'), (e: unknown) => isSourcemeshError(e, 'E_FORMAT'));
});
