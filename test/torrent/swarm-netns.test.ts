// A swarm across network namespaces the test makes (one Ethernet segment, test/helpers/netns.ts): a
// private DHT's first node, our seed (throttled, announced in that DHT), our mirror (`serve`) and three
// of our leechers (`fetch --bittorrent`), each in its own namespace with its own address. Each leecher
// finds the seed through the DHT, knows the mirror and the other leechers, uploads what it verified, and
// must end with the verified file.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bytes, rootWithFiles } from '../helpers/distfiles.ts';
import { canMakeNamespaces, makeNetwork } from '../helpers/netns.ts';
import { ROOT, runCli, waitFor } from '../helpers/run.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const SIZE = 6_000_011;
const DATA = bytes(SIZE, 15);
const NAME = 'swarm-3.1.tar.gz';

test('a seed, a mirror and three leechers across namespaces with a private DHT: every leecher ends with the verified file', { skip: canMakeNamespaces() }, async (t) => {
  const { dir, root, manifest: bare } = await rootWithFiles(t, { [NAME]: { body: DATA, url: 'http://127.0.0.1:9/gone' } }, 'swarm');
  const manifest = path.join(dir, 'pinned.json');
  const made = await runCli(['torrent', 'create', bare, '--root', root, '-o', path.join(dir, 't'), '--manifest-out', manifest]);
  assert.equal(made.code, 0, made.stderr);
  const torrent = path.join(dir, 't', `${NAME}.torrent`);

  const hub = makeNetwork(t, ['router', 'seed', 'mirror', 'leech1', 'leech2', 'leech3']);
  const { router: routerNode, seed: seedNode, mirror: mirrorNode } = hub.nodes;
  const leechNodes = [hub.nodes.leech1, hub.nodes.leech2, hub.nodes.leech3];
  const router = hub.spawn(routerNode, process.execPath, [path.join(ROOT, 'test/torrent/dht-router.ts'), routerNode.address, '6881']);
  await waitFor('the DHT router', () => router.stdout().includes('listening'), { timeoutMs: 30_000 });
  const via = `${routerNode.address}:6881`;

  const seed = hub.cli(seedNode, ['seed', '--root', root, '--listen', `${seedNode.address}:6881`, '--upload-rate', '2M', '--dht-bootstrap', via, '--dht-state', path.join(dir, 'seed-dht.json')]);
  await waitFor('the seed to announce in the DHT', () => seed.stdout().includes('announced in the dht'), { timeoutMs: 60_000 });
  const mirror = hub.cli(mirrorNode, ['serve', '--root', root, '--listen', `${mirrorNode.address}:8080`, '--no-access-log']);
  await waitFor('the mirror to serve', () => /serving .* at http/.test(mirror.stderr()), { timeoutMs: 60_000 });

  const leechers = leechNodes.map((n, i) => hub.cli(n, [
    'fetch', manifest, '--store', path.join(dir, `store${i}`), '-o', path.join(dir, `out${i}`), '--json',
    '--mirror', `http://${mirrorNode.address}:8080`, '--bittorrent', '--torrent', torrent,
    '--dht-bootstrap', via, '--dht-state', path.join(dir, `leech${i}-dht.json`), '--listen', `${n.address}:6881`,
    ...leechNodes.filter((o) => o !== n).flatMap((o) => ['--peer', `${o.address}:6881`]),
  ]));
  const codes = await Promise.all(leechers.map((l) => l.exited));
  const reports = leechers.map((l) => (l.stdout() ? JSON.parse(l.stdout()) : undefined));
  for (const [i, code] of codes.entries()) {
    assert.equal(code, 0, `leecher ${i}: ${leechers[i]!.stderr()}`);
    assert.equal(sha(await readFile(path.join(dir, `out${i}`, NAME))), sha(DATA), `leecher ${i} has the verified file`);
  }
  const from = reports.map((r) => r.files[0].contributors.map((c: { source: string; bytes: number }) => `${c.source}=${c.bytes}`).join(' '));
  t.diagnostic(`contributors: ${from.join(' | ')}; uploaded by leechers: ${reports.map((r) => r.uploaded).join(', ')}`);
  // The seed was found through the DHT (no leecher was given its address) and served pieces to some leecher.
  assert.ok(reports.some((r) => r.files[0].contributors.some((c: { source: string }) => c.source === `peer ${seedNode.address}:6881`)), from.join(' | '));
});
