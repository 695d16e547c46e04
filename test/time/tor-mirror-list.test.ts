// fetch under --tor/--proxy and mirror lists. A list given by URL is fetched through the SOCKS5 proxy
// (dante), and the manifest's release check asks the witnesses' Roughtime over TCP through it too, and
// through nothing else. A list named by its pointer in the DHT (dht:HEXKEY) is refused before anything
// starts: the DHT is UDP, which the proxy cannot carry, so the lookup would show the user's address to
// the DHT; the same for --discover (mDNS), --bittorrent (the peer wire) and --dht-bootstrap
// (src/cli/network-refusals.ts). A private DHT, an HTTP origin serving the list and its bundle, a real log
// and three witnesses (test/time/timed-network.ts), all on loopback.
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

test('fetch --tor: a mirror list by URL and the release\'s signed time through the proxy; dht:, --discover, --bittorrent, --dht-bootstrap refused', { timeout: 240_000 }, async (t) => {
  const dir = await tempDir(t, 'sourcemesh-time-tor-list-');
  const socks = await startSocks(dir);
  t.after(() => socks.close());
  const first = await DhtNode.start({ bootstrap: [], host: '127.0.0.1', limits });
  const nodes = [first, ...await Promise.all(Array.from({ length: 5 }, () => DhtNode.start({ bootstrap: [first.address()], host: '127.0.0.1', limits })))];
  // A node no other knows: only a client given it as --dht-bootstrap would ever send it a datagram.
  const sentinel = await DhtNode.start({ bootstrap: [], host: '127.0.0.1', limits });
  t.after(() => Promise.all([...nodes, sentinel].map((n) => n.close())));
  const boot = `127.0.0.1:${nodes[3]!.address().port}`;
  const origin = await startOrigin({});
  t.after(() => origin.close());
  const timed = await startTimedNetwork(t, dir, 0);
  const [r1, r2] = timed.net.releaseKeys;

  // The list, released under the policy's threshold, served by the origin and pointed to from the DHT
  // (so that, without the refusal, `--mirror-list dht:` would find it and go ahead).
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
  const originBefore = origin.connections();

  // The witnesses' Roughtime over TCP only.
  const servers = await Promise.all(timed.net.witnessKeys.map((k) => startRoughtimeServer({ key: k.key, host: '127.0.0.1', port: 0, tcp: { host: '127.0.0.1', port: 0 } })));
  t.after(() => Promise.all(servers.map((s) => s.close())));
  const p = JSON.parse(await readFile(timed.plain, 'utf8'));
  p.time = { roughtime: timed.net.witnessKeys.map((k, i) => ({ witness: k.key.name, address: servers[i]!.tcpAddress, protocol: 'tcp' })) };
  const policy = path.join(dir, 'tcp-time.json');
  await writeFile(policy, JSON.stringify(p));
  const ports = new Set(servers.map((s) => Number(s.tcpAddress!.split(':')[1])));
  const proxy = `socks5h://127.0.0.1:${socks.port}`;
  const out = path.join(dir, 'out');
  await mkdir(out);
  const store = path.join(dir, 'store');

  // Refused, each with one line naming the option, before anything is contacted.
  const refusals: [string[], RegExp][] = [
    [['--mirror-list', `dht:${HEX}?salt=tor-list`, '--dht-bootstrap', `${boot},127.0.0.1:${sentinel.address().port}`, '--tor', '--proxy', proxy], /--mirror-list dht:[0-9a-f]{64}\?salt=tor-list: the DHT lookup is UDP, which --tor cannot carry/],
    [['--mirror-list', `dht:${HEX}?salt=tor-list`, '--dht-bootstrap', `${boot},127.0.0.1:${sentinel.address().port}`, '--proxy', proxy], /--mirror-list dht:.*which --proxy cannot carry/],
    [['--discover', '1', '--tor', '--proxy', proxy], /--discover: mDNS .* not through --tor/],
    [['--bittorrent', '--peer', boot, '--tor', '--proxy', proxy], /--bittorrent: the peer wire connects to peers directly, not through --tor/],
    [['--dht-bootstrap', `127.0.0.1:${sentinel.address().port}`, '--proxy', proxy], /--dht-bootstrap: the DHT is UDP, which --proxy cannot carry/],
  ];
  for (const [flags, message] of refusals) {
    const r = await runCli(['fetch', timed.manifest, '-o', out, '--store', store, '--trust-policy', policy, ...flags]);
    assert.equal(r.code, 2, `${flags.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /\[E_USAGE\]/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  assert.equal(sentinel.packets.received, 0, 'no DHT datagram sent');
  assert.equal(origin.connections(), originBefore, 'the list\'s origin not contacted');
  assert.equal(servers.reduce((n, s) => n + s.stats.tcp.accepted, 0), 0, 'no witness asked');
  assert.deepEqual(await socks.connections(), [], 'nothing started, not even through the proxy');

  // The same list by URL: fetched through dante, and the release's three witnesses asked through it.
  const r = await runCli(['fetch', timed.manifest, '-o', out, '--store', store, '--trust-policy', policy,
    '--mirror-list', `${origin.url}/lists/tor-list.json`, '--tor', '--proxy', proxy]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^release accepted: manifest release-test 1\.0/m);
  await socks.logged(4);
  const through = await socks.connections();
  assert.equal(through.filter((c) => ports.has(c.port)).length, 3, JSON.stringify(through));
  assert.equal(servers.reduce((n, s) => n + s.stats.tcp.accepted, 0), 3, 'no witness asked but through the proxy');
  assert.equal(through.filter((c) => c.port === origin.port).length, origin.connections() - originBefore, 'the list fetched through the proxy only');
  assert.ok(origin.connections() > originBefore, 'the list was fetched');
  assert.ok(origin.log.some((l) => l.path === '/lists/tor-list.json'));
});
