// fetch --bittorrent looks a torrent's peers up in the DHT again during the fetch (BEP 5), so a seeder
// that announces itself mid-fetch serves that same fetch: a private DHT on loopback names only a slow
// seeder at first; a fast one announces once the download has started. The re-lookup schedule is lowered
// for the test (200 ms, doubling to 400 ms).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { DhtNode } from '../../src/discovery/dht.ts';
import { fetchManifest } from '../../src/fetch/fetcher.ts';
import { createAgent } from '../../src/fetch/http.ts';
import { limitsWith } from '../../src/limits.ts';
import { MANIFEST_FORMAT, type Manifest } from '../../src/manifest/distfile.ts';
import { Store } from '../../src/store/store.ts';
import { createTorrents } from '../../src/torrent/create.ts';
import { readTorrent } from '../../src/torrent/metainfo.ts';
import { Seeder, prepareSeedFile } from '../../src/torrent/seeder.ts';
import { swarmFetch } from '../../src/torrent/swarm-fetch.ts';
import { bytes } from '../helpers/distfiles.ts';
import { tempDir } from '../helpers/run.ts';

const SIZE = 3 * 1024 * 1024 + 4_321;
const DATA = bytes(SIZE, 47);
const NAME = 'dht-late.tar.xz';

test('a seeder that announces itself in the DHT mid-fetch serves that same fetch', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, NAME);
  await writeFile(file, DATA);
  const sha256 = createHash('sha256').update(DATA).digest('hex');
  const seeded = await prepareSeedFile({ name: NAME, path: file, size: SIZE, sha256 });
  // The first seeder alone would take some 12 s (256 KiB/s); the second one has no limit.
  const slow = await Seeder.start([seeded], { host: '127.0.0.1', port: 0, maxPeers: 8, uploadRate: 256 * 1024 });
  const fast = await Seeder.start([seeded], { host: '127.0.0.1', port: 0, maxPeers: 8, uploadRate: 0 });
  t.after(() => Promise.all([slow.close(), fast.close()]));

  const bare: Manifest = { format: MANIFEST_FORMAT, name: 'dht-late', distfiles: [{ name: NAME, sha256, size: SIZE, urls: [] }] };
  const made = await createTorrents(bare, { kind: 'root', root: dir }, { version: 'hybrid', multiFile: false, webSeeds: [], trackers: [] });
  const torrentFile = path.join(dir, `${NAME}.torrent`);
  await writeFile(torrentFile, made.torrents[0]!.bytes);
  const manifest: Manifest = { ...bare, distfiles: [{ ...bare.distfiles[0]!, merkleRoot: made.torrents[0]!.files[0]!.merkleRoot }] };
  const infoHash = readTorrent(made.torrents[0]!.bytes, 'torrent').infoHashV1!;

  // A private DHT: a router, the seeders' node and the leecher's node, all on loopback.
  const router = await DhtNode.start({ bootstrap: [], host: '127.0.0.1', port: 0 });
  const via = [{ host: '127.0.0.1', port: router.address().port }];
  const seeds = await DhtNode.start({ bootstrap: via, host: '127.0.0.1', port: 0 });
  const leech = await DhtNode.start({ bootstrap: via, host: '127.0.0.1', port: 0 });
  t.after(() => Promise.all([router.close(), seeds.close(), leech.close()]));
  await seeds.announce(infoHash, slow.port);

  const limits = limitsWith({ swarmDhtLookupFloorMs: 200, swarmDhtLookupCeilingMs: 400 });
  let lookups = 0;
  const lookup = async (h: Buffer) => {
    lookups++;
    return (await leech.lookup(h)).map((a) => `${a.host}:${a.port}`);
  };
  const swarm = await swarmFetch(manifest, [torrentFile], [], limits, lookup);
  let closed = false;
  t.after(() => (closed ? undefined : swarm.close()));
  assert.equal(lookups, 1);

  const dispatcher = createAgent(limits);
  t.after(() => dispatcher.close());
  const store = await Store.open(path.join(dir, 'store'));
  // The fast seeder joins the DHT once the download is under way.
  let joined: Promise<unknown> | undefined;
  const report = await fetchManifest(manifest, {
    store, mirrors: [], policy: 'mirrors-first', offline: false, jobs: 1, limits, dispatcher,
    segments: { segments: 4, pieceLength: 1 << 20, crossCheck: 0 }, ...swarm.options,
    onEvent: (e) => {
      if (e.type === 'bytes' && !joined) joined = seeds.announce(infoHash, fast.port);
    },
  });
  closed = true;
  await swarm.close();
  await joined;
  assert.equal(report.fetched, 1, JSON.stringify(report.files));
  const by = Object.fromEntries((report.files[0]!.contributors ?? []).map((c) => [c.source, c.bytes]));
  assert.equal(Object.values(by).reduce((a, b) => a + b, 0), SIZE, JSON.stringify(by));
  assert.ok((by[`peer 127.0.0.1:${fast.port}`] ?? 0) > 0, `the seeder that joined the DHT mid-fetch served it: ${JSON.stringify(by)}`);
  assert.ok(swarm.dht.relookups >= 1 && swarm.dht.learned === 1, JSON.stringify(swarm.dht));
});
