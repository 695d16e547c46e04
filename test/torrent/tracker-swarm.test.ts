// Peers found through a real tracker: Debian's opentracker on loopback (its whitelist holds the torrent's
// info-hashes). `seed --tracker` announces what it seeds; `fetch --bittorrent` with only the torrent (its
// announce URL), no --peer, no DHT, no mirror and no reachable upstream, finds the seed through the
// tracker alone and gets the verified file. opentracker's own refusal (a hash not on its whitelist) comes
// back as a failure reason. Then a fetch whose trackers are all hostile fails with one line, once it
// waited --bt-wait for them.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { bdict, encode } from '../../src/torrent/bencode.ts';
import { bytes, distfile, writeManifest } from '../helpers/distfiles.ts';
import { runCli, tempDir, waitFor } from '../helpers/run.ts';
import { startSeed } from './seed-process.ts';

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** opentracker on 127.0.0.1:port (TCP only), admitting the info-hashes of `whitelist`; stopped after the test. */
async function startOpentracker(t: { after(fn: () => unknown): void }, dir: string, port: number, whitelist: string[]): Promise<void> {
  // It drops root for `nobody` and then reads the whitelist: the file and its directory must be readable.
  await mkdir(dir, { recursive: true });
  await chmod(path.dirname(dir), 0o755);
  await chmod(dir, 0o755);
  await writeFile(path.join(dir, 'whitelist'), whitelist.map((h) => `${h}\n`).join(''), { mode: 0o644 });
  await writeFile(path.join(dir, 'opentracker.conf'), `access.whitelist ${path.join(dir, 'whitelist')}\n`, { mode: 0o644 });
  const child = spawn('opentracker', ['-i', '127.0.0.1', '-p', String(port), '-P', String(port), '-u', 'nobody', '-f', path.join(dir, 'opentracker.conf')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  t.after(() => child.kill('SIGKILL'));
  await waitFor('opentracker to listen', async () => {
    if (child.exitCode !== null) throw new Error(`opentracker exited with ${child.exitCode}: ${err}`);
    return new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
  }, { timeoutMs: 20_000, everyMs: 50 });
}

test('fetch --bittorrent finds our seed through opentracker alone and gets the verified file', async (t) => {
  const dir = await tempDir(t);
  const root = path.join(dir, 'root');
  await mkdir(root);
  const data = bytes(1_500_001, 11);
  await writeFile(path.join(root, 'tracked.tar.gz'), data);
  const bare = await writeManifest(dir, [distfile('tracked.tar.gz', data, ['http://127.0.0.1:9/tracked.tar.gz'], { size: data.length })], 'tracked');
  const manifest = path.join(dir, 'pinned.json');
  const port = await freePort();
  const announceUrl = `http://127.0.0.1:${port}/announce`;
  const made = await runCli(['torrent', 'create', bare, '--root', root, '-o', path.join(dir, 't'), '--manifest-out', manifest, '--tracker', announceUrl, '--json']);
  assert.equal(made.code, 0, made.stderr);
  const torrent = JSON.parse(made.stdout).torrents[0] as { file: string; infoHashV1: string; infoHashV2: string };
  // The hybrid's two swarm keys only (BEP 52: v1, and v2 cut to 20 bytes); the seed also announces the
  // v1-only and v2-only torrents' hashes, which this tracker refuses.
  await startOpentracker(t, path.join(dir, 'ot'), port, [torrent.infoHashV1, torrent.infoHashV2.slice(0, 40)]);

  const seed = await startSeed(t, ['--root', root, '--tracker', announceUrl]);
  await waitFor('the seed to announce', () => seed.records().some((r) => r.msg === 'announced to the tracker'), { timeoutMs: 60_000 });
  const round = seed.records().find((r) => r.msg === 'announced to the tracker')!;
  assert.equal(round.announced, 2, JSON.stringify(round));
  assert.equal(round.failed, 2);
  // opentracker's failure reason, on one line, for each hash it does not admit.
  const refused = seed.records().filter((r) => r.msg === 'tracker announce failed');
  assert.equal(refused.length, 2);
  for (const r of refused) {
    assert.equal(r.code, 'E_HTTP');
    assert.match(String(r.error), /^tracker http:\/\/127\.0\.0\.1:\d+\/announce: the tracker refused: Requested download is not authorized/);
  }

  const out = path.join(dir, 'out');
  const r = await runCli(['fetch', manifest, '--store', path.join(dir, 'store'), '-o', out, '--json', '--bittorrent', '--torrent', torrent.file, '--listen', '127.0.0.1:0'], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(createHash('sha256').update(await readFile(path.join(out, 'tracked.tar.gz'))).digest('hex'), createHash('sha256').update(data).digest('hex'));
  const report = JSON.parse(r.stdout);
  assert.equal(report.files[0].source, `peer 127.0.0.1:${seed.first.port}`);
  assert.equal(report.files[0].via, 'peer');
  // Both swarm keys answered by the tracker, each naming the seed (and perhaps ourselves, filtered out).
  assert.equal(report.trackers.answered.length, 2, JSON.stringify(report.trackers));
  assert.ok(report.trackers.answered.every((a: { url: string; peers: number }) => a.url === announceUrl && a.peers >= 1));
  assert.deepEqual(report.trackers.failed, []);

  const end = await seed.stop();
  assert.ok(Number(end.find((x) => x.msg === 'stopped')?.uploaded) >= data.length);
});

test('fetch --bittorrent whose only trackers are hostile fails with one line naming each', async (t) => {
  const dir = await tempDir(t);
  const root = path.join(dir, 'root');
  await mkdir(root);
  const data = bytes(40_000, 12);
  await writeFile(path.join(root, 'h.tar.gz'), data);
  const bare = await writeManifest(dir, [distfile('h.tar.gz', data, ['http://127.0.0.1:9/h.tar.gz'], { size: data.length })], 'h');
  const manifest = path.join(dir, 'pinned.json');
  const made = await runCli(['torrent', 'create', bare, '--root', root, '-o', path.join(dir, 't'), '--manifest-out', manifest, '--tracker', 'udp://127.0.0.1:9/announce']);
  assert.equal(made.code, 0, made.stderr);
  const peers = Buffer.alloc(6 * 10_000, 7);
  const server = http.createServer((req, res) => res.end(req.url?.startsWith('/many') ? encode(bdict([['interval', 60], ['peers', peers]])) : 'd8:intervali6'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => server.close(r)));
  const base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const r = await runCli(['fetch', manifest, '--store', path.join(dir, 'store'), '-o', path.join(dir, 'out'), '--bittorrent', '--torrent', path.join(dir, 't', 'h.tar.gz.torrent'),
    '--tracker', `${base}/many`, '--tracker', `${base}/broken`, '--no-upload', '--bt-wait', '1'], { timeoutMs: 60_000 });
  assert.equal(r.code, 1, r.stderr);
  // The http trackers are asked again while the file waits for peers (--bt-wait 1), then it fails.
  const last = r.stderr.split('\n').find((l) => l.includes('h.tar.gz: no source served it verified'))!;
  // The time said is the real wait since the swarm was set up: at least --bt-wait, more on a busy machine.
  const waited = /no peer found in (\d+) s \(--bt-wait 1; tracker announces answered: 0\)/.exec(last);
  assert.ok(waited && Number(waited[1]) >= 1, last);
  assert.match(last, /udp:\/\/127\.0\.0\.1:9\/announce: not an http\(s\) tracker/);
  assert.match(last, /\/many: 10000 peers, more than 200/);
  assert.match(last, /\/broken: bad bencoding/);
});
