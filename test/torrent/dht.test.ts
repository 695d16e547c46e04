// Peers found through a private BitTorrent DHT (BEP 5) on loopback: `seed --dht-bootstrap` announces the
// info-hashes of what it seeds, `fetch --bittorrent --dht-bootstrap` looks a torrent's up and takes the
// file from the peer it finds, with no --peer, no mirror and no reachable upstream.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { DhtNode } from '../../src/discovery/dht.ts';
import { bytes, distfile, writeManifest } from '../helpers/distfiles.ts';
import { runCli, tempDir, waitFor } from '../helpers/run.ts';
import { startSeed } from './seed-process.ts';

test('fetch --bittorrent finds our seed through a private DHT and downloads from it', async (t) => {
  const dir = await tempDir(t);
  const root = path.join(dir, 'root');
  await mkdir(root);
  const data = bytes(1_500_001, 3);
  await writeFile(path.join(root, 'dht.tar.gz'), data);
  const bare = await writeManifest(dir, [distfile('dht.tar.gz', data, ['http://127.0.0.1:9/dht.tar.gz'], { size: data.length })], 'dht');
  const manifest = path.join(dir, 'pinned.json');
  const made = await runCli(['torrent', 'create', bare, '--root', root, '-o', path.join(dir, 't'), '--manifest-out', manifest]);
  assert.equal(made.code, 0, made.stderr);

  // The closed network's first node: everyone bootstraps through it.
  const router = await DhtNode.start({ bootstrap: [], host: '127.0.0.1', port: 0 });
  t.after(() => router.close());
  const via = `127.0.0.1:${router.address().port}`;

  const seed = await startSeed(t, ['--root', root, '--dht-bootstrap', via, '--dht-state', path.join(dir, 'seed-dht.json')]);
  await waitFor('the seed to announce', () => seed.records().some((r) => r.msg === 'announced in the dht'), { timeoutMs: 60_000 });

  const out = path.join(dir, 'out');
  const r = await runCli(['fetch', manifest, '--store', path.join(dir, 'store'), '-o', out, '--json', '--bittorrent', '--torrent', path.join(dir, 't', 'dht.tar.gz.torrent'),
    '--dht-bootstrap', via, '--dht-state', path.join(dir, 'fetch-dht.json')], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(createHash('sha256').update(await readFile(path.join(out, 'dht.tar.gz'))).digest('hex'), createHash('sha256').update(data).digest('hex'));
  const report = JSON.parse(r.stdout);
  // Under two pieces of the scheduler (1 MiB), a file is taken whole from one source: here the peer the DHT named.
  assert.equal(report.files[0].source, `peer 127.0.0.1:${seed.first.port}`);
  assert.equal(report.files[0].via, 'peer');
  await seed.stop();
});
