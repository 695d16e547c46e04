// fetch --bittorrent when no peer is there at the start (issue 15): the files wait for peers the DHT or
// a tracker names later, looked up and announced to again on their backoff, up to --bt-wait
// (limits.swarmPeerWaitMs), then fail with one line naming the file; mirrors are asked as ever meanwhile.
// A private DHT and a tracker of the test's own on loopback; the schedules lowered in-process (200 ms).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { DhtNode } from '../../src/discovery/dht.ts';
import { fetchManifest } from '../../src/fetch/fetcher.ts';
import { createAgent } from '../../src/fetch/http.ts';
import { limitsWith } from '../../src/limits.ts';
import { MANIFEST_FORMAT, type Manifest } from '../../src/manifest/distfile.ts';
import { formatManifest } from '../../src/manifest/write.ts';
import { Store } from '../../src/store/store.ts';
import { bdict, encode } from '../../src/torrent/bencode.ts';
import { createTorrents } from '../../src/torrent/create.ts';
import { readTorrent } from '../../src/torrent/metainfo.ts';
import { Seeder, prepareSeedFile } from '../../src/torrent/seeder.ts';
import { swarmFetch } from '../../src/torrent/swarm-fetch.ts';
import { bytes } from '../helpers/distfiles.ts';
import { runCli, tempDir } from '../helpers/run.ts';

// One file taken in pieces (over two of the scheduler's 1 MiB), one taken whole.
const FILES = [{ name: 'late-big.tar.xz', data: bytes(3 * 1024 * 1024 + 77, 61) }, { name: 'late-small.tar.gz', data: bytes(300_001, 62) }];
const hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The files on disk, a seeder of them that nobody knows of yet, their hybrid torrents and the pinned manifest. */
async function setUp(t: { after(fn: () => unknown): void }, trackers: string[] = []) {
  const dir = await tempDir(t);
  const root = path.join(dir, 'root');
  await mkdir(root);
  const seeded = [];
  for (const f of FILES) {
    await writeFile(path.join(root, f.name), f.data);
    seeded.push(await prepareSeedFile({ name: f.name, path: path.join(root, f.name), size: f.data.length, sha256: hex(f.data) }));
  }
  const seeder = await Seeder.start(seeded, { host: '127.0.0.1', port: 0, maxPeers: 8, uploadRate: 0 });
  t.after(() => seeder.close());
  const bare: Manifest = { format: MANIFEST_FORMAT, name: 'bt-wait', distfiles: FILES.map((f) => ({ name: f.name, sha256: hex(f.data), size: f.data.length, urls: ['http://127.0.0.1:9/' + f.name] })) };
  const made = await createTorrents(bare, { kind: 'root', root }, { version: 'hybrid', multiFile: false, webSeeds: [], trackers });
  const torrentFiles: string[] = [];
  for (const m of made.torrents) {
    torrentFiles.push(path.join(dir, `${m.files[0]!.name}.torrent`));
    await writeFile(torrentFiles.at(-1)!, m.bytes);
  }
  const manifest: Manifest = { ...bare, distfiles: bare.distfiles.map((d) => ({ ...d, merkleRoot: made.torrents.find((m) => m.files[0]!.name === d.name)!.files[0]!.merkleRoot })) };
  const infoHashes = made.torrents.map((m) => readTorrent(m.bytes, 'torrent').infoHashV1!);
  return { dir, root, seeder, manifest, torrentFiles, infoHashes };
}

async function fetchAll(t: { after(fn: () => unknown): void }, s: Awaited<ReturnType<typeof setUp>>, swarm: Awaited<ReturnType<typeof swarmFetch>>, limits: ReturnType<typeof limitsWith>) {
  const dispatcher = createAgent(limits);
  t.after(() => dispatcher.close());
  const store = await Store.open(path.join(s.dir, 'store'));
  try {
    return await fetchManifest(s.manifest, {
      store, mirrors: [], policy: 'mirrors-first', offline: false, jobs: 2, limits, dispatcher,
      segments: { segments: 4, pieceLength: 1 << 20, crossCheck: 0 }, ...swarm.options,
    });
  } finally {
    await swarm.close();
  }
}

test('with no peer at the start, fetch --bittorrent waits for one the DHT names later and gets every file from it', async (t) => {
  const s = await setUp(t);
  const router = await DhtNode.start({ bootstrap: [], host: '127.0.0.1', port: 0 });
  const via = [{ host: '127.0.0.1', port: router.address().port }];
  const seeds = await DhtNode.start({ bootstrap: via, host: '127.0.0.1', port: 0 });
  const leech = await DhtNode.start({ bootstrap: via, host: '127.0.0.1', port: 0 });
  t.after(() => Promise.all([router.close(), seeds.close(), leech.close()]));

  const limits = limitsWith({ swarmDhtLookupFloorMs: 200, swarmDhtLookupCeilingMs: 400, swarmPeerWaitMs: 60_000 });
  const lookup = async (h: Buffer) => (await leech.lookup(h)).map((a) => `${a.host}:${a.port}`);
  // Nobody in the DHT has the torrents yet: before, this threw E_NO_SOURCE here.
  const swarm = await swarmFetch(s.manifest, s.torrentFiles, [], limits, lookup);
  const t0 = Date.now();
  // The seeder joins the DHT a second later, while both files wait.
  const joined = new Promise<void>((resolve, reject) => setTimeout(() => Promise.all(s.infoHashes.map((h) => seeds.announce(h, s.seeder.port))).then(() => resolve(), reject), 1000));
  const report = await fetchAll(t, s, swarm, limits);
  await joined;
  assert.equal(report.fetched, 2, JSON.stringify(report.files));
  assert.ok(Date.now() - t0 >= 1000);
  for (const f of report.files) {
    assert.equal(f.via, 'peer', JSON.stringify(f));
    assert.equal(f.source, `peer 127.0.0.1:${s.seeder.port}`, JSON.stringify(f));
    // The empty places for peers learned later are no one's fault: nothing rejected.
    assert.deepEqual(f.rejected.filter((r) => r.role === 'peer'), [], JSON.stringify(f.rejected));
  }
  assert.ok(swarm.dht.relookups >= 1 && swarm.dht.learned === 2, JSON.stringify(swarm.dht));
});

test('with no tracker answering at the start, fetch --bittorrent announces again and gets the file from the peer it names', async (t) => {
  let up = false;
  let asked = 0;
  const server = http.createServer((req, res) => {
    asked++;
    if (!up) return res.writeHead(503).end('down for now');
    // BEP 23 compact peers: the seeder on 127.0.0.1.
    const peer = Buffer.from([127, 0, 0, 1, s.seeder.port >> 8, s.seeder.port & 0xff]);
    res.end(encode(bdict([['interval', 60], ['peers', peer]])));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => server.close(r)));
  const announceUrl = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/announce`;
  const s = await setUp(t, [announceUrl]);
  const limits = limitsWith({ trackerIntervalFloorMs: 200, trackerIntervalCeilingMs: 400, swarmPeerWaitMs: 60_000 });
  const dispatcher = createAgent(limits);
  t.after(() => dispatcher.close());
  const swarm = await swarmFetch(s.manifest, s.torrentFiles, [], limits, undefined, undefined, undefined, { extra: [], dispatcher });
  assert.ok(swarm.trackers.failed.some((f) => f.url === announceUrl), JSON.stringify(swarm.trackers));
  setTimeout(() => (up = true), 1000);
  const report = await fetchAll(t, s, swarm, limits);
  assert.equal(report.fetched, 2, JSON.stringify(report.files));
  for (const f of report.files) assert.equal(f.source, `peer 127.0.0.1:${s.seeder.port}`, JSON.stringify(f));
  assert.ok(swarm.trackers.reannounced >= 1 && swarm.trackers.learned >= 1, JSON.stringify(swarm.trackers));
  assert.ok(asked > 4, `the tracker was asked again while down: ${asked} announces`);
});

test('fetch --bittorrent --bt-wait: no peer in that time fails with one line naming the file; a mirror still serves it meanwhile', async (t) => {
  const s = await setUp(t);
  await s.seeder.close();
  const manifest = path.join(s.dir, 'pinned.json');
  await writeFile(manifest, formatManifest(s.manifest));
  // A router per fetch: one that knew the DHT node of an earlier fetch, gone once it exited, would have
  // the next lookup wait for it.
  const args = async (n: string) => {
    const router = await DhtNode.start({ bootstrap: [], host: '127.0.0.1', port: 0 });
    t.after(() => router.close());
    return ['fetch', manifest, '--store', path.join(s.dir, `store-${n}`), '-o', path.join(s.dir, `out-${n}`), '--bittorrent', '--no-upload',
      ...s.torrentFiles.flatMap((f) => ['--torrent', f]), '--dht-bootstrap', `127.0.0.1:${router.address().port}`, '--dht-state', path.join(s.dir, `dht-${n}.json`)];
  };

  // With a mirror that has the files, no waiting: they come from it (before, E_NO_SOURCE at once).
  const t1 = Date.now();
  const m = await runCli([...(await args('mirror')), '--bt-wait', '60', '--mirror', s.root, '--json'], { timeoutMs: 60_000 });
  assert.equal(m.code, 0, m.stderr);
  assert.ok(Date.now() - t1 < 30_000);
  const report = JSON.parse(m.stdout);
  for (const f of FILES) {
    assert.equal(hex(await readFile(path.join(s.dir, 'out-mirror', f.name))), hex(f.data));
    assert.equal(report.files.find((x: { name: string }) => x.name === f.name).via, 'mirror', JSON.stringify(report.files));
  }

  const t0 = Date.now();
  const r = await runCli([...(await args('none')), '--bt-wait', '2'], { timeoutMs: 60_000 });
  const took = Date.now() - t0;
  assert.equal(r.code, 1, r.stderr);
  assert.ok(took >= 2000, `waited ${took} ms`);
  for (const f of FILES) {
    const line = r.stderr.split('\n').find((l) => l.includes(`${f.name}: no source served it verified`));
    assert.ok(line, r.stderr);
    // The time said is the real wait since the swarm was set up: at least --bt-wait, more on a busy machine.
    const said = /^failed +late-\S+: no source served it verified \(.*connection refused.*\); no peer found in (\d+) s \(--bt-wait 2; DHT lookups: \d+\)$/.exec(line);
    assert.ok(said && Number(said[1]) >= 2 && Number(said[1]) * 1000 <= took + 500, line);
  }
});
