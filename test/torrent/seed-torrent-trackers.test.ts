// `seed --torrent FILE` announces that torrent to the trackers it names itself (BEP 3 `announce`, BEP 12
// `announce-list` tiers, tried in order until one answers), as it does to --tracker: `started`, again as
// the tracker's interval says, `stopped` at the end. A tracker of our own on loopback (it keeps the peers
// announced per info-hash and names them back) is the second tier of a --multi-file torrent whose first
// tier is a port nothing listens on: a fetch given only that torrent (no --peer, no DHT, no mirror) finds
// the seed through it. --no-torrent-trackers announces nothing there.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { bdict, encode } from '../../src/torrent/bencode.ts';
import { readTorrent } from '../../src/torrent/metainfo.ts';
import { rootWithFiles } from '../helpers/distfiles.ts';
import { runCli, waitFor } from '../helpers/run.ts';
import { readFile } from 'node:fs/promises';
import { startSeed } from './seed-process.ts';

const FILES = { 'x.tar.gz': 1_200_007, 'y.patch': 40_000 };
const NAME = 'tracked-set';

/** BEP 3 query values are bytes, %-encoded: the raw value of `name` in `url`. */
function rawParam(url: string, name: string): Buffer | undefined {
  const m = new RegExp(`[?&]${name}=([^&]*)`).exec(url);
  if (!m) return undefined;
  const out: number[] = [];
  for (let i = 0; i < m[1]!.length; i++) {
    if (m[1]![i] === '%') {
      out.push(parseInt(m[1]!.slice(i + 1, i + 3), 16));
      i += 2;
    } else out.push(m[1]!.charCodeAt(i));
  }
  return Buffer.from(out);
}

/** A tracker that keeps who announced each info-hash (address and port) and names them to others. */
async function startTracker(t: { after(fn: () => unknown): void }) {
  const requests: { infoHash: string; peerId: string; event: string; port: number }[] = [];
  const peers = new Map<string, Map<string, Buffer>>();
  const server = http.createServer((req, res) => {
    const infoHash = rawParam(req.url!, 'info_hash')!.toString('hex');
    const peerId = rawParam(req.url!, 'peer_id')!.toString('hex');
    const q = new URL(req.url!, 'http://x').searchParams;
    const port = Number(q.get('port'));
    const event = q.get('event') ?? 'none';
    requests.push({ infoHash, peerId, event, port });
    const known = peers.get(infoHash) ?? new Map<string, Buffer>();
    peers.set(infoHash, known);
    const others = [...known].filter(([id]) => id !== peerId).map(([, c]) => c);
    if (event === 'stopped') known.delete(peerId);
    else if (port > 0) known.set(peerId, Buffer.from([127, 0, 0, 1, port >> 8, port & 0xff]));
    res.end(encode(bdict([['interval', 1800], ['peers', Buffer.concat(others)]])));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/announce`, requests };
}

async function setup(t: { after(fn: () => unknown): void }) {
  const tracker = await startTracker(t);
  const { dir, root, manifest: bare } = await rootWithFiles(t, FILES, NAME, 9);
  const manifest = path.join(dir, 'pinned.json');
  // Two --tracker: two tiers of the announce-list (BEP 12), the first one dead.
  const r = await runCli(['torrent', 'create', bare, '--root', root, '-o', path.join(dir, 't'), '--multi-file', '--manifest-out', manifest, '--tracker', 'http://127.0.0.1:9/announce', '--tracker', tracker.url]);
  assert.equal(r.code, 0, r.stderr);
  const torrent = path.join(dir, 't', `${NAME}.torrent`);
  const info = readTorrent(await readFile(torrent), 'torrent');
  const hashes = [info.infoHashV1!.toString('hex'), info.infoHashV2!.subarray(0, 20).toString('hex')];
  return { dir, root, manifest, torrent, tracker, hashes };
}

test('seed --torrent announces the torrent to its own trackers (BEP 12 tiers); a fetch given only the torrent finds the seed there', async (t) => {
  const { dir, root, manifest, torrent, tracker, hashes } = await setup(t);
  const seed = await startSeed(t, ['--root', root, '--torrent', torrent]);
  await waitFor('the seed\'s started announces', () => hashes.every((h) => tracker.requests.some((r) => r.infoHash === h && r.event === 'started' && r.port === seed.first.port)), { timeoutMs: 30_000 });
  const out = path.join(dir, 'out');
  const f = await runCli(['fetch', manifest, '--store', path.join(out, 'store'), '-o', out, '--json', '--bittorrent', '--torrent', torrent, '--no-upload'], { timeoutMs: 120_000 });
  assert.equal(f.code, 0, f.stderr);
  const report = JSON.parse(f.stdout);
  assert.deepEqual(report.files.map((x: { status: string }) => x.status), ['fetched', 'fetched']);
  for (const x of report.files as { source?: string; contributors?: { source: string }[] }[]) {
    assert.deepEqual([...new Set((x.contributors ?? [{ source: x.source! }]).map((c) => c.source))], [`peer ${seed.address}`]);
  }
  const records = await seed.stop();
  assert.ok(hashes.every((h) => tracker.requests.some((r) => r.infoHash === h && r.event === 'stopped' && r.port === seed.first.port)), JSON.stringify(tracker.requests));
  assert.ok(records.some((r) => r.msg === 'tracker announce failed' && String(r.tracker).includes('127.0.0.1:9')), 'the dead first tier was tried first');
});

test('seed --torrent --no-torrent-trackers announces nothing to the torrent\'s trackers', async (t) => {
  const { root, torrent, tracker } = await setup(t);
  const seed = await startSeed(t, ['--root', root, '--torrent', torrent, '--no-torrent-trackers']);
  await new Promise((r) => setTimeout(r, 1500));
  await seed.stop();
  assert.deepEqual(tracker.requests, []);
});

test('seed --tracker URL naming a tracker the torrent names too: every seeded info-hash announced there once, then stopped', async (t) => {
  const { root, torrent, tracker, hashes } = await setup(t);
  const seed = await startSeed(t, ['--root', root, '--torrent', torrent, '--tracker', tracker.url]);
  // Each file on its own is seeded under 4 info-hashes (v1, v2, hybrid's two), the torrent under 2.
  const all = [...seed.first.files.flatMap((f) => [f.infoHashes.hybrid.v1, f.infoHashes.hybrid.v2.slice(0, 40), f.infoHashes.v1, f.infoHashes.v2.slice(0, 40)]), ...hashes];
  await waitFor('every started announce', () => all.every((h) => tracker.requests.some((r) => r.infoHash === h && r.event === 'started')), { timeoutMs: 30_000 });
  await seed.stop();
  for (const h of all) {
    assert.deepEqual(tracker.requests.filter((r) => r.infoHash === h).map((r) => r.event), ['started', 'stopped'], h);
  }
});
