// fetch --bittorrent announces again during a long download (BEP 3): after the `started` announce, as the
// tracker's interval says, held between our floor and ceiling (limits.ts), each time with the current
// counters and no event, until the fetch ends with `stopped`. A tracker of our own on loopback counts the
// announces; the floor and ceiling are lowered for the test so it need not wait a minute.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { createAgent } from '../../src/fetch/http.ts';
import { limitsWith } from '../../src/limits.ts';
import type { Manifest } from '../../src/manifest/index.ts';
import { bdict, encode } from '../../src/torrent/bencode.ts';
import { createTorrents } from '../../src/torrent/create.ts';
import { swarmFetch } from '../../src/torrent/swarm-fetch.ts';
import { waitFor } from '../helpers/run.ts';

test('a leecher re-announces as the tracker interval says (bounded), then says stopped; none after the fetch ends', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sm-reannounce-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bytes = Buffer.alloc(64 * 1024, 7);
  await writeFile(path.join(dir, 'a.bin'), bytes);
  const events: string[] = [];
  let waiter: (() => void) | undefined;
  let want = Infinity;
  const server = http.createServer((req, res) => {
    const q = new URL(req.url!, 'http://x').searchParams;
    events.push(q.get('event') ?? 'none');
    if (events.length >= want) waiter?.();
    // Asks for an hour; our ceiling (lowered below) holds it to 300 ms.
    res.end(encode(bdict([['interval', 3600], ['peers', Buffer.from([127, 0, 0, 1, 0, 9])]])));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const announce = `http://127.0.0.1:${(server.address() as AddressInfo).port}/announce`;
  const manifest: Manifest = { format: 'sourcemesh.manifest/v1', name: 'm', distfiles: [{ name: 'a.bin', sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length, urls: [] }] } as Manifest;
  const made = await createTorrents(manifest, { kind: 'root', root: dir }, { version: 'hybrid', multiFile: false, webSeeds: [], trackers: [announce] });
  const torrent = path.join(dir, 'a.torrent');
  await writeFile(torrent, made.torrents[0]!.bytes);
  const limits = limitsWith({ trackerIntervalFloorMs: 100, trackerIntervalCeilingMs: 300 });
  const dispatcher = createAgent(limits);
  const started = Date.now();
  let closed = false;
  t.after(() => (closed ? undefined : swarm.close()));
  const swarm = await swarmFetch(manifest, [torrent], [], limits, undefined, { host: '127.0.0.1', port: 0, maxPeers: 4, uploadRate: 0 }, undefined, { extra: [], dispatcher });
  // Two info-hashes (v1 and truncated v2): two `started`, then at least two more rounds without an event.
  await new Promise<void>((r) => {
    want = 6;
    waiter = r;
    if (events.length >= want) r();
  });
  assert.deepEqual(events.slice(0, 2), ['started', 'started']);
  assert.ok(events.slice(2, 6).every((e) => e === 'none'), events.join(' '));
  // Counted once the answer is read: the two info-hashes' rounds run side by side, so when the sixth request
  // arrives the answers of the round before it may still be on their way; wait for them (bounded).
  await waitFor('three re-announce answers counted', () => swarm.trackers.reannounced >= 3, { timeoutMs: 10_000 });
  // Held to the ceiling, not the hour asked for.
  assert.ok(Date.now() - started < 30_000);
  closed = true;
  await swarm.close();
  const atClose = events.length;
  assert.deepEqual(events.slice(-2), ['stopped', 'stopped']);
  // Nothing is announced after the end: a re-announce that was due gets cancelled with the fetch.
  await new Promise<void>((r) => {
    want = atClose + 1;
    waiter = r;
    setTimeout(r, 1000).unref();
  });
  assert.equal(events.length, atClose, events.join(' '));
});
