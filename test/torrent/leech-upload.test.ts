// fetch --bittorrent uploads while it downloads: a libtorrent 2.0.8 leecher pointed at our leecher alone
// gets verified pieces from it (our leecher itself takes them from a throttled seed), and none with
// --no-upload.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { bytes, rootWithFiles } from '../helpers/distfiles.ts';
import { runCli } from '../helpers/run.ts';
import { libtorrentLeech } from './libtorrent-leech-process.ts';
import { startSeed } from './seed-process.ts';
import { DhtNode } from '../../src/discovery/dht.ts';
import { readFile } from 'node:fs/promises';

const SIZE = 4_000_037;
const DATA = bytes(SIZE, 91);
const NAME = 'pkg-2.0.tar.xz';

async function setup(t: { after(fn: () => unknown): void }) {
  const { dir, root, manifest: bare } = await rootWithFiles(t, { [NAME]: { body: DATA, url: 'http://127.0.0.1:9/gone' } }, 'p2p');
  const manifest = path.join(dir, 'pinned.json');
  const r = await runCli(['torrent', 'create', bare, '--root', root, '-o', path.join(dir, 'ours'), '--manifest-out', manifest]);
  assert.equal(r.code, 0, r.stderr);
  // The seed sends 1 MB/s, so our leecher holds a partial file for a few seconds.
  const seed = await startSeed(t, ['--root', root, '--upload-rate', '1M']);
  t.after(() => seed.stop());
  return { dir, manifest, torrent: path.join(dir, 'ours', `${NAME}.torrent`), seed };
}

/**
 * Our leecher fetching `torrent` from the seed, with a libtorrent leecher pointed at it as soon as it says
 * where it offers pieces. Returns our report and what libtorrent got from it.
 */
async function leechWithLibtorrentBehind(t: { after(fn: () => unknown): void }, dir: string, manifest: string, torrent: string, seedAddress: string) {
  const save = path.join(dir, 'lt');
  await mkdir(save);
  const out = path.join(dir, 'out');
  let lt: ReturnType<typeof libtorrentLeech> | undefined;
  const r = await runCli(['fetch', manifest, '--store', path.join(out, 'store'), '-o', out, '--json', '--bittorrent', '--torrent', torrent, '--peer', seedAddress, '--listen', '127.0.0.1:0'], {
    timeoutMs: 120_000,
    onStderr: (s) => {
      const m = /offering verified pieces to peers at (127\.0\.0\.1:\d+)/.exec(s);
      if (m && !lt) lt = libtorrentLeech(t, torrent, save, m[1]!);
    },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(lt, `our leecher said where it offers pieces: ${r.stderr}`);
  return { report: JSON.parse(r.stdout), stdout: r.stdout, got: await lt.stop() };
}

/** A loopback port nothing listens on now (for the --no-upload case, where nothing must listen). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

test('a libtorrent leecher gets verified pieces from our leecher while it downloads', async (t) => {
  const { dir, manifest, torrent, seed } = await setup(t);
  const { report, stdout, got } = await leechWithLibtorrentBehind(t, dir, manifest, torrent, seed.address);
  assert.equal(report.files[0].status, 'fetched', stdout);
  assert.ok(report.uploaded > 0, `our leecher uploaded: ${stdout.slice(0, 300)}`);
  assert.ok(got.peerBytes > 0, `libtorrent got pieces from our leecher: ${JSON.stringify(got)}`);
  assert.ok(got.peerBytes <= report.uploaded, `libtorrent got no more than we sent: ${got.peerBytes} of ${report.uploaded}`);
  assert.equal(got.failedBytes, 0, 'every piece we sent passed libtorrent\'s own check');
  assert.ok(report.uploaded < SIZE + 16384, 'only what we had');
});

test('with a v1 torrent too: a libtorrent leecher gets pieces from our leecher, each passing its SHA-1 check', async (t) => {
  const { dir, manifest, seed } = await setup(t);
  const made = await runCli(['torrent', 'create', manifest, '--root', path.join(dir, 'root'), '-o', path.join(dir, 'v1'), '--v1']);
  assert.equal(made.code, 0, made.stderr);
  const torrent = path.join(dir, 'v1', `${NAME}.torrent`);
  const { report, stdout, got } = await leechWithLibtorrentBehind(t, dir, manifest, torrent, seed.address);
  assert.ok(report.uploaded > 0, `our leecher uploaded: ${stdout.slice(0, 300)}`);
  assert.ok(got.peerBytes > 0 && got.peerBytes <= report.uploaded, JSON.stringify(got));
  assert.equal(got.failedBytes, 0, 'every piece we sent passed libtorrent\'s SHA-1 check');
});

test('with --no-upload our leecher offers nothing: libtorrent gets no byte from it', async (t) => {
  const { dir, manifest, torrent, seed } = await setup(t);
  const save = path.join(dir, 'lt');
  await mkdir(save);
  const out = path.join(dir, 'out');
  const port = await freePort();
  const lt = libtorrentLeech(t, torrent, save, `127.0.0.1:${port}`);
  const r = await runCli(['fetch', manifest, '--store', path.join(out, 'store'), '-o', out, '--json', '--bittorrent', '--torrent', torrent, '--peer', seed.address, '--listen', `127.0.0.1:${port}`, '--no-upload'], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  const got = await lt.stop();
  const report = JSON.parse(r.stdout);
  assert.equal(report.files[0].status, 'fetched', r.stdout);
  assert.equal(report.uploaded, undefined);
  assert.doesNotMatch(r.stderr, /offering verified pieces/);
  assert.equal(got.peerBytes, 0, JSON.stringify(got));
});

test('our leecher takes pieces from another of our leechers still downloading, waiting for the pieces it lacks yet', async (t) => {
  const { dir, manifest, torrent, seed } = await setup(t);
  const port = await freePort();
  const a = path.join(dir, 'a');
  const b = path.join(dir, 'b');
  let second: Promise<Awaited<ReturnType<typeof runCli>>> | undefined;
  // A takes the file from the seed alone; B, started once A listens, from the seed and A (seed throttled for both together).
  const first = await runCli(['fetch', manifest, '--store', path.join(a, 'store'), '-o', a, '--json', '--bittorrent', '--torrent', torrent, '--peer', seed.address, '--listen', `127.0.0.1:${port}`], {
    timeoutMs: 120_000,
    onStderr: (s) => {
      if (!second && s.includes('offering verified pieces')) {
        second = runCli(['fetch', manifest, '--store', path.join(b, 'store'), '-o', b, '--json', '--bittorrent', '--torrent', torrent, '--peer', `127.0.0.1:${port}`, '--peer', seed.address, '--no-upload'], { timeoutMs: 120_000 });
      }
    },
  });
  assert.equal(first.code, 0, first.stderr);
  assert.ok(second, first.stderr);
  const r = await second;
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  const fromA = report.files[0].contributors.find((c: { source: string }) => c.source === `peer 127.0.0.1:${port}`);
  const lacked = report.files[0].rejected.filter((x: { message: string }) => /does not have piece/.test(x.message));
  assert.deepEqual(lacked, [], 'B waited for the pieces A lacked yet instead of dropping A');
  assert.ok(fromA?.bytes > 0, JSON.stringify(report.files[0].contributors));
  assert.equal(JSON.parse(first.stdout).uploaded >= fromA.bytes, true);
});

test('with --dht-bootstrap our leecher announces itself in the DHT (BEP 5) while it downloads', async (t) => {
  const { dir, manifest, torrent, seed } = await setup(t);
  const router = await DhtNode.start({ bootstrap: [], host: '127.0.0.1', port: 0 });
  t.after(() => router.close());
  const via = `127.0.0.1:${router.address().port}`;
  const { readTorrent } = await import('../../src/torrent/metainfo.ts');
  const info = readTorrent(await readFile(torrent), 'torrent');
  let found: Promise<string[]> | undefined;
  const out = path.join(dir, 'out');
  const r = await runCli(['fetch', manifest, '--store', path.join(out, 'store'), '-o', out, '--json', '--bittorrent', '--torrent', torrent, '--peer', seed.address,
    '--listen', '127.0.0.1:0', '--dht-bootstrap', via, '--dht-state', path.join(dir, 'leech-dht.json')], {
    timeoutMs: 120_000,
    onStderr: (s) => {
      const m = /offering verified pieces to peers at 127\.0\.0\.1:(\d+)/.exec(s);
      if (m && !found) {
        // Another node of the same DHT looks the torrent up while our leecher downloads.
        found = (async () => {
          const other = await DhtNode.start({ bootstrap: [{ host: '127.0.0.1', port: router.address().port }], host: '127.0.0.1', port: 0 });
          try {
            return (await other.lookup(info.infoHashV1!)).map((a) => `${a.host}:${a.port}:${m[1]}`);
          } finally {
            await other.close();
          }
        })();
      }
    },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(found, r.stderr);
  const peers = await found;
  assert.ok(peers.some((p) => { const [h, port, ours] = p.split(':'); return h === '127.0.0.1' && port === ours; }), `the DHT names our leecher: ${peers.join(', ')}`);
});
