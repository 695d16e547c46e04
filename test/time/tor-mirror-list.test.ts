// fetch --mirror-list dht: --tor with a time policy: the list's own release check (src/discovery/pointer.ts)
// asks the witnesses' Roughtime over TCP through the same SOCKS5 proxy (dante) as the manifest's check, and
// through nothing else. A private DHT, an HTTP origin serving the list and its bundle, a real log and three
// witnesses (test/time/timed-network.ts), all on loopback.
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { DhtNode } from '../../src/discovery/dht.ts';
import { limitsWith } from '../../src/limits.ts';
import { startRoughtimeServer } from '../../src/time/server.ts';
import { formatSignerKey, KEY_TYPE_ED25519, signerKeyFromSeed } from '../../src/trust/note.ts';
import { startOrigin } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { startSocks } from '../helpers/socks.ts';
import { startTimedNetwork } from './timed-network.ts';

const limits = limitsWith({ dhtQueryTimeoutMs: 15_000 });
const publisher = signerKeyFromSeed('lists.tor.example', KEY_TYPE_ED25519, Buffer.alloc(32, 47));
const HEX = Buffer.from(publisher.publicKey).toString('hex');

test('fetch --mirror-list dht: --tor: the list release\'s signed time asked through the proxy too', { timeout: 240_000 }, async (t) => {
  const dir = await tempDir(t, 'sourcemesh-time-tor-list-');
  const socks = await startSocks(dir);
  t.after(() => socks.close());
  const first = await DhtNode.start({ bootstrap: [], host: '127.0.0.1', limits });
  const nodes = [first, ...await Promise.all(Array.from({ length: 5 }, () => DhtNode.start({ bootstrap: [first.address()], host: '127.0.0.1', limits })))];
  t.after(() => Promise.all(nodes.map((n) => n.close())));
  const boot = `127.0.0.1:${nodes[3]!.address().port}`;
  const origin = await startOrigin({});
  t.after(() => origin.close());
  const timed = await startTimedNetwork(t, dir, 0);
  const [r1, r2] = timed.net.releaseKeys;

  // The list, released under the policy's threshold and pointed to from the DHT.
  const listFile = path.join(dir, 'tor-list.json');
  const text = `${JSON.stringify({ format: 'sourcemesh.mirrors/v1', mirrors: [{ url: `${origin.url}/mirror` }] }, null, 2)}\n`;
  await writeFile(listFile, text);
  const released = await runCli(['release', listFile, '--kind', 'mirror-list', '--name', 'tor-list', '--release-version', '1', '--key', r1!.file, '--key', r2!.file, '--log', timed.net.log.url]);
  assert.equal(released.code, 0, released.stderr);
  origin.routes.set('/lists/tor-list.json', { body: Buffer.from(text) });
  origin.routes.set('/lists/tor-list.json.release', { body: await readFile(`${listFile}.release`) });
  const keyFile = path.join(dir, 'publisher.key');
  await writeFile(keyFile, `${formatSignerKey(publisher)}\n`, { mode: 0o600 });
  const published = await runCli(['mirrors', 'publish', listFile, '--key', keyFile, '--dht', '--url', `${origin.url}/lists/tor-list.json`, '--dht-bootstrap', boot, '--store', path.join(dir, 'pub')]);
  assert.equal(published.code, 0, published.stderr);

  // The witnesses' Roughtime over TCP only.
  const servers = await Promise.all(timed.net.witnessKeys.map((k) => startRoughtimeServer({ key: k.key, host: '127.0.0.1', port: 0, tcp: { host: '127.0.0.1', port: 0 } })));
  t.after(() => Promise.all(servers.map((s) => s.close())));
  const p = JSON.parse(await readFile(timed.plain, 'utf8'));
  p.time = { roughtime: timed.net.witnessKeys.map((k, i) => ({ witness: k.key.name, address: servers[i]!.tcpAddress, protocol: 'tcp' })) };
  const policy = path.join(dir, 'tcp-time.json');
  await writeFile(policy, JSON.stringify(p));
  const ports = new Set(servers.map((s) => Number(s.tcpAddress!.split(':')[1])));

  const out = path.join(dir, 'out');
  await mkdir(out);
  const r = await runCli(['fetch', timed.manifest, '-o', out, '--store', path.join(dir, 'store'), '--trust-policy', policy, '--offline',
    '--mirror-list', `dht:${HEX}?salt=tor-list`, '--dht-bootstrap', boot, '--tor', '--proxy', `socks5h://127.0.0.1:${socks.port}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^release accepted: manifest release-test 1\.0/m);
  assert.match(r.stderr, /^mirror list release accepted: .*tor-list/m);
  // Two release checks (the manifest's, the list's), each asking the three witnesses: six queries, all
  // through dante, none straight to the witnesses.
  await socks.logged(6);
  assert.equal((await socks.connections()).filter((c) => ports.has(c.port)).length, 6, JSON.stringify(await socks.connections()));
  assert.equal(servers.reduce((n, s) => n + s.stats.tcp.accepted, 0), 6, 'no witness asked but through the proxy');
});
