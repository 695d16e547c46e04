// fetch --bittorrent with the one torrent `torrent create --multi-file` makes for a whole manifest: every
// distfile of the manifest is taken from that torrent's swarm (each file at its place in the torrent's
// piece space), from our seed (`seed --torrent`) and from libtorrent 2.0.8 seeding the same torrent, with
// no mirror and no reachable upstream; a v1-only one too, whose pieces cross file boundaries.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bytes, distfile, rootWithFiles } from '../helpers/distfiles.ts';
import { runCli } from '../helpers/run.ts';
import { libtorrentSeed } from './libtorrent-seed-process.ts';
import { startSeed } from './seed-process.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const FILES = { 'a.tar.gz': 2_300_017, 'b.tar.xz': 20_000, 'c.patch': 131_072, 'd.tar.bz2': 3_000_003 };
const NAME = 'lb-set';

/** A root with the files, a manifest pinning sha256, size and (filled) merkleRoot, and the --multi-file torrents. */
async function setup(t: { after(fn: () => unknown): void }) {
  const { dir, root, manifest: bare, expected } = await rootWithFiles(t, FILES, NAME, 3);
  const manifest = path.join(dir, 'pinned.json');
  const torrent = async (kind: string) => {
    const out = path.join(dir, `t-${kind}`);
    const r = await runCli(['torrent', 'create', bare, '--root', root, '-o', out, `--${kind}`, '--multi-file', '--manifest-out', manifest]);
    assert.equal(r.code, 0, r.stderr);
    return path.join(out, `${NAME}.torrent`);
  };
  return { dir, root, manifest, expected, torrent };
}

async function fetchAll(dir: string, manifest: string, args: string[]) {
  const out = path.join(dir, `out-${Math.random().toString(36).slice(2)}`);
  const r = await runCli(['fetch', manifest, '--store', path.join(out, 'store'), '-o', out, '--json', ...args], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  return { out, report: JSON.parse(r.stdout) as { files: { name: string; source: string; size: number; contributors?: { source: string; bytes: number }[] }[] } };
}

async function assertFetched(out: string, expected: Record<string, string>, report: Awaited<ReturnType<typeof fetchAll>>['report'], peer: string, what: string) {
  for (const [name, digest] of Object.entries(expected)) {
    assert.equal(sha(await readFile(path.join(out, name))), digest, `${what}: ${name}`);
    const f = report.files.find((x) => x.name === name)!;
    // Nothing else could serve it: upstream is unreachable and there is no mirror. (A file too small to
    // split comes whole from one source: `source`, no `contributors`.)
    assert.deepEqual(f.contributors ?? [{ source: f.source, bytes: f.size }], [{ source: `peer ${peer}`, bytes: FILES[name as keyof typeof FILES] }], `${what}: ${name}`);
  }
}

test('fetch --bittorrent takes every distfile of the manifest from a --multi-file hybrid, from our seed and from libtorrent', async (t) => {
  const { dir, root, manifest, expected, torrent } = await setup(t);
  const hybrid = await torrent('hybrid');
  const seed = await startSeed(t, ['--root', root, '--torrent', hybrid]);
  const ours = await fetchAll(dir, manifest, ['--bittorrent', '--torrent', hybrid, '--peer', seed.address, '--no-upload']);
  await assertFetched(ours.out, expected, ours.report, seed.address, 'from our seed');
  const total = Object.values(FILES).reduce((a, b) => a + b, 0);
  const stopped = (await seed.stop()).find((x) => x.msg === 'stopped')!;
  assert.ok((stopped.uploaded as number) >= total, JSON.stringify(stopped));

  // libtorrent seeds a multi-file torrent from SAVE_DIR/NAME/.
  const lt = path.join(dir, 'lt');
  await mkdir(path.join(lt, NAME), { recursive: true });
  for (const name of Object.keys(FILES)) await copyFile(path.join(root, name), path.join(lt, NAME, name));
  const seeder = await libtorrentSeed(t, hybrid, lt);
  const theirs = await fetchAll(dir, manifest, ['--bittorrent', '--torrent', hybrid, '--peer', `127.0.0.1:${seeder.port}`, '--no-upload']);
  await assertFetched(theirs.out, expected, theirs.report, `127.0.0.1:${seeder.port}`, 'from libtorrent');
  assert.equal(await seeder.stop(), total, 'libtorrent uploaded every file once');
});

test('fetch --bittorrent through a --multi-file v1-only torrent, whose pieces cross file boundaries', async (t) => {
  const { dir, root, manifest, expected, torrent } = await setup(t);
  const v1 = await torrent('v1');
  const seed = await startSeed(t, ['--root', root, '--torrent', v1]);
  const { out, report } = await fetchAll(dir, manifest, ['--bittorrent', '--torrent', v1, '--peer', seed.address, '--no-upload']);
  await assertFetched(out, expected, report, seed.address, 'v1');
});
