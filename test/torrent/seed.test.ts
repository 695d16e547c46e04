// sourcemesh seed against libtorrent 2.0.8, the reference BitTorrent v2 implementation: it downloads our
// files from our seed alone (no web seed, no other peer) with the v1, v2 and hybrid torrents `torrent
// create` made, greeting us with a v1 info-hash or a truncated v2 one; without piece layers it asks us
// for the hashes (BEP 52 messages 21/22) and still verifies every piece.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { rootWithFiles } from '../helpers/distfiles.ts';
import { ROOT, runCli } from '../helpers/run.ts';
import { tool } from '../mirror/serve-process.ts';
import { startSeed } from './seed-process.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const FILES = { 'big.tar.xz': 3_000_017, 'small.tar.gz': 20_000 };

async function setup(t: { after(fn: () => unknown): void }) {
  const { dir, root, manifest, expected } = await rootWithFiles(t, FILES, 'swarm', 1);
  const torrents = async (kind: string) => {
    const out = path.join(dir, `t-${kind}`);
    const r = await runCli(['torrent', 'create', manifest, '--root', root, '-o', out, `--${kind}`]);
    assert.equal(r.code, 0, r.stderr);
    return out;
  };
  return { dir, root, expected, torrents };
}

async function libtorrentGet(torrent: string, save: string, peer: string, extra: string[] = []) {
  await mkdir(save, { recursive: true });
  const r = await tool('/usr/bin/python3', [path.join(ROOT, 'test/torrent/libtorrent-download.py'), torrent, save, '60', ...extra, peer], { timeoutMs: 90_000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.toString()) as { done: boolean; peerBytes: number; failedBytes: number };
}

test('libtorrent downloads from our seed alone with our hybrid, v2-only and v1-only torrents', async (t) => {
  const { dir, root, expected, torrents } = await setup(t);
  const seed = await startSeed(t, ['--root', root]);
  assert.deepEqual(seed.first.files.map((f) => f.name).sort(), Object.keys(FILES).sort());
  for (const kind of ['hybrid', 'v2', 'v1']) {
    const from = await torrents(kind);
    for (const name of Object.keys(FILES)) {
      const save = path.join(dir, `got-${kind}`);
      const r = await libtorrentGet(path.join(from, `${name}.torrent`), save, seed.address);
      assert.ok(r.done, `${kind} ${name}: ${JSON.stringify(r)}`);
      assert.equal(r.failedBytes, 0);
      assert.equal(sha(await readFile(path.join(save, name))), expected[name], `${kind} ${name}`);
    }
  }
  const records = await seed.stop();
  // libtorrent greets with the v1 info-hash for v1 and hybrid torrents, the truncated v2 one for v2 torrents.
  const greetings = records.filter((r) => r.msg === 'peer').map((r) => `${r.file} ${r.greeting}`);
  assert.ok(greetings.includes('big.tar.xz v2') && greetings.includes('big.tar.xz v1'), greetings.join(', '));
  const stopped = records.find((r) => r.msg === 'stopped')!;
  assert.ok((stopped.uploaded as number) >= 3 * (FILES['big.tar.xz'] + FILES['small.tar.gz']));
  assert.deepEqual(stopped.banned, {});
});

test('libtorrent without piece layers gets the hashes from our seed (BEP 52 hash request) and verifies every piece', async (t) => {
  const { dir, root, expected, torrents } = await setup(t);
  const seed = await startSeed(t, ['--root', root]);
  const from = await torrents('v2');
  const save = path.join(dir, 'got');
  const r = await libtorrentGet(path.join(from, 'big.tar.xz.torrent'), save, seed.address, ['--no-piece-layers']);
  assert.ok(r.done, JSON.stringify(r));
  assert.equal(sha(await readFile(path.join(save, 'big.tar.xz'))), expected['big.tar.xz']);
  const stopped = (await seed.stop()).find((x) => x.msg === 'stopped')!;
  assert.ok((stopped.hashesSent as number) > 0, JSON.stringify(stopped));
  assert.equal(stopped.hashesRejected, 0);
});
