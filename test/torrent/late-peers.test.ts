// fetch --bittorrent takes on the peers a tracker names after the download started (BEP 3 re-announce): a
// second seeder that joins the swarm mid-fetch serves the same fetch. A tracker of our own on loopback
// names only a slow seeder at first, then both; the re-announce interval is lowered for the test. And the
// bookkeeping of those peers (src/torrent/late-peers.ts): bounded, each peer once, none known already.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { fetchManifest } from '../../src/fetch/fetcher.ts';
import { createAgent } from '../../src/fetch/http.ts';
import { limitsWith } from '../../src/limits.ts';
import { MANIFEST_FORMAT, type Manifest } from '../../src/manifest/distfile.ts';
import { Store } from '../../src/store/store.ts';
import { bdict, encode } from '../../src/torrent/bencode.ts';
import { createTorrents } from '../../src/torrent/create.ts';
import { LatePeers } from '../../src/torrent/late-peers.ts';
import { Seeder, prepareSeedFile } from '../../src/torrent/seeder.ts';
import { swarmFetch } from '../../src/torrent/swarm-fetch.ts';
import { bytes } from '../helpers/distfiles.ts';
import { tempDir } from '../helpers/run.ts';

const SIZE = 3 * 1024 * 1024 + 4_321;
const DATA = bytes(SIZE, 31);
const NAME = 'late.tar.xz';

const compact = (port: number) => Buffer.from([127, 0, 0, 1, port >> 8, port & 0xff]);

test('a seeder named by a re-announce mid-fetch serves that same fetch', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, NAME);
  await writeFile(file, DATA);
  const sha256 = createHash('sha256').update(DATA).digest('hex');
  const seeded = await prepareSeedFile({ name: NAME, path: file, size: SIZE, sha256 });
  // The first seeder alone would take some 12 s (256 KiB/s); the second one has no limit.
  const slow = await Seeder.start([seeded], { host: '127.0.0.1', port: 0, maxPeers: 8, uploadRate: 256 * 1024 });
  const fast = await Seeder.start([seeded], { host: '127.0.0.1', port: 0, maxPeers: 8, uploadRate: 0 });
  t.after(() => Promise.all([slow.close(), fast.close()]));

  // Our tracker: the first announces (`started`, under the v1 and the truncated v2 info-hash) hear of
  // the slow seeder only; every later one of both.
  const events: string[] = [];
  const server = http.createServer((req, res) => {
    events.push(new URL(req.url!, 'http://x').searchParams.get('event') ?? 'none');
    const peers = events.filter((e) => e === 'started').length >= 2 && events.length > 2 ? [compact(slow.port), compact(fast.port)] : [compact(slow.port)];
    res.end(encode(bdict([['interval', 3600], ['peers', Buffer.concat(peers)]])));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const announce = `http://127.0.0.1:${(server.address() as AddressInfo).port}/announce`;

  const bare: Manifest = { format: MANIFEST_FORMAT, name: 'late', distfiles: [{ name: NAME, sha256, size: SIZE, urls: [] }] };
  const made = await createTorrents(bare, { kind: 'root', root: dir }, { version: 'hybrid', multiFile: false, webSeeds: [], trackers: [announce] });
  const torrent = path.join(dir, `${NAME}.torrent`);
  await writeFile(torrent, made.torrents[0]!.bytes);
  const manifest: Manifest = { ...bare, distfiles: [{ ...bare.distfiles[0]!, merkleRoot: made.torrents[0]!.files[0]!.merkleRoot }] };

  // Re-announces every 200-400 ms instead of the tracker's hour.
  const limits = limitsWith({ trackerIntervalFloorMs: 200, trackerIntervalCeilingMs: 400 });
  const dispatcher = createAgent(limits);
  t.after(() => dispatcher.close());
  const swarm = await swarmFetch(manifest, [torrent], [], limits, undefined, undefined, undefined, { extra: [], dispatcher });
  let closed = false;
  t.after(() => (closed ? undefined : swarm.close()));
  assert.deepEqual(swarm.trackers.answered.map((a) => a.peers), [1, 1], 'at the start, the tracker names the slow seeder only');

  const store = await Store.open(path.join(dir, 'store'));
  const report = await fetchManifest(manifest, {
    store, mirrors: [], policy: 'mirrors-first', offline: false, jobs: 1, limits, dispatcher,
    segments: { segments: 4, pieceLength: 1 << 20, crossCheck: 0 }, ...swarm.options,
  });
  closed = true;
  await swarm.close();
  assert.equal(report.fetched, 1, JSON.stringify(report.files));
  const by = Object.fromEntries((report.files[0]!.contributors ?? []).map((c) => [c.source, c.bytes]));
  assert.equal(Object.values(by).reduce((a, b) => a + b, 0), SIZE, JSON.stringify(by));
  assert.ok((by[`peer 127.0.0.1:${fast.port}`] ?? 0) > 0, `the seeder learned mid-fetch served it: ${JSON.stringify(by)}`);
  assert.ok(fast.uploaded > 0);
  assert.equal(swarm.trackers.learned, 1, 'one peer learned, once (named again by every later answer)');
});

test('peers learned later: at most the places given, each once, none known already, in the order learned', () => {
  const peer = fc.integer({ min: 1, max: 30 }).map((n) => `127.0.0.1:${n}`);
  fc.assert(fc.property(fc.integer({ min: 0, max: 8 }), fc.array(peer, { maxLength: 10 }), fc.array(fc.array(peer, { maxLength: 12 }), { maxLength: 6 }), (places, known, answers) => {
    const late = new LatePeers(places);
    late.known('t', known);
    let added = 0;
    for (const a of answers) added += late.learn('t', a);
    const learned = late.learnedOf('t');
    const expected: string[] = [];
    for (const p of answers.flat()) if (expected.length < places && !known.includes(p) && !expected.includes(p)) expected.push(p);
    assert.deepEqual(learned, expected);
    assert.equal(added, learned.length);
    // Another torrent's peers are its own.
    assert.deepEqual(late.learnedOf('other'), []);
  }));
});

test('an empty place claims nothing and refuses reads without blame; once a peer is learned it is that peer', async () => {
  const late = new LatePeers(2);
  late.known('t', ['127.0.0.1:1']);
  const made: string[] = [];
  const [first, second] = late.sourcesFor('t', (p) => {
    made.push(p);
    return { role: 'peer', label: `peer ${p}`, location: { type: 'opener', open: () => Promise.reject(new Error(`open ${p}`)), has: () => true, hasVersion: () => 7 } };
  });
  for (const s of [first!, second!]) {
    assert.equal(s.location.type === 'opener' && s.location.has?.(0, 10), false);
    await assert.rejects(s.location.type === 'opener' ? s.location.open({ offset: 0 }) : Promise.resolve(), (e: { details?: { notYet?: boolean } }) => e.details?.notYet === true);
  }
  assert.equal(late.learn('t', ['127.0.0.1:1', '127.0.0.1:2']), 1);
  assert.equal(first!.label, 'peer 127.0.0.1:2');
  assert.equal(first!.location.type === 'opener' && first!.location.has?.(0, 10), true);
  assert.equal(first!.location.type === 'opener' && first!.location.hasVersion?.(), 7);
  await assert.rejects(first!.location.type === 'opener' ? first!.location.open({ offset: 0 }) : Promise.resolve(), /open 127.0.0.1:2/);
  assert.equal(second!.label, 'a peer learned later (place 2)');
  assert.deepEqual(made, ['127.0.0.1:2'], 'a source made once per place, when its peer is learned');
});
