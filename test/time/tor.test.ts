// Roughtime over Tor (--tor, --proxy): Tor carries no UDP, so `sourcemesh time` asks every witness over
// TCP through the SOCKS5 proxy (a real one, Debian's dante, as Tor's stand-in) and sends no datagram at
// all: the policy's UDP endpoints are sockets that count what reaches them, and stay at zero. A witness
// with only a UDP endpoint is refused under --tor with its reason; without --tor the same policy does
// send datagrams (the counting sockets can see a leak). Each witness goes through the proxy with
// credentials of its own (its own circuit). All on loopback.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { startRoughtimeServer } from '../../src/time/server.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { startSocks } from '../helpers/socks.ts';
import { writeKey } from '../trust/log/servers.ts';
import { makeNode } from '../node/node-process.ts';
import { startTimedNetwork } from './timed-network.ts';

const DAY = 86_400;

/** A UDP socket on loopback that answers nothing and counts the datagrams reaching it. */
async function udpWatch(t: { after(fn: () => unknown): void }): Promise<{ address: string; count: () => number }> {
  const s = dgram.createSocket('udp4');
  let n = 0;
  s.on('message', () => n++);
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
  t.after(() => s.close());
  return { address: `127.0.0.1:${s.address().port}`, count: () => n };
}

test('time --tor: witnesses asked over TCP through the SOCKS5 proxy, one circuit each, no datagram sent; a UDP-only witness refused', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t, 'sourcemesh-time-tor-');
  const socks = await startSocks(dir);
  t.after(() => socks.close());
  const keys = await Promise.all([1, 2, 3].map((i) => writeKey(dir, `w${i}.tor.time.test`, 'cosignature')));
  const log = await writeKey(dir, 'log.tor.time.test');
  const release = await writeKey(dir, 'release.tor.time.test');
  // w1: its UDP endpoint is a counting socket that never answers, its TCP endpoint a real server.
  // w2: TCP only. w3: UDP only, a real server that would answer.
  const w1 = await startRoughtimeServer({ key: keys[0]!.key, host: '127.0.0.1', port: 0, tcp: { host: '127.0.0.1', port: 0 } });
  const w2 = await startRoughtimeServer({ key: keys[1]!.key, host: '127.0.0.1', port: 0, tcp: { host: '127.0.0.1', port: 0 } });
  const w3 = await startRoughtimeServer({ key: keys[2]!.key, host: '127.0.0.1', port: 0 });
  t.after(() => Promise.all([w1.close(), w2.close(), w3.close()]));
  const w1Udp = await udpWatch(t);
  const [n1, n2, n3] = keys.map((k) => k.key.name);
  const writePolicy = async (file: string, roughtime: unknown[], quorum: number) => {
    await writeFile(file, JSON.stringify({
      format: 'sourcemesh.policy/v1', log: { vkey: log.vkey }, witnesses: { quorum: 2, vkeys: keys.map((k) => k.vkey) },
      release: { threshold: 1, vkeys: [release.vkey] }, maxCheckpointAgeSeconds: 3600, time: { roughtime, quorum },
    }));
    return file;
  };
  const policy = await writePolicy(path.join(dir, 'policy.json'), [
    { witness: n1, address: w1Udp.address, protocol: 'udp' },
    { witness: n1, address: w1.tcpAddress!, protocol: 'tcp' },
    { witness: n2, address: w2.tcpAddress!, protocol: 'tcp' },
    { witness: n3, address: w3.address, protocol: 'udp' },
  ], 2);
  const proxy = `socks5h://127.0.0.1:${socks.port}`;
  const state = path.join(dir, 'state');

  const r = await runCli(['time', '--trust-policy', policy, '--state', state, '--tor', '--proxy', proxy, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { agreed: string[]; failed: { server: string; reason: string }[] };
  assert.deepEqual(out.agreed, [n1, n2].sort());
  assert.equal(out.failed.length, 1, r.stdout);
  assert.equal(out.failed[0]!.server, n3);
  assert.match(out.failed[0]!.reason, /only a UDP endpoint .* TCP only: not asked/);
  assert.doesNotMatch(r.stderr, /experimental|Warning/, 'undici\'s SOCKS5 warning is not printed');
  assert.equal(w1Udp.count(), 0, 'no datagram to w1\'s UDP endpoint');
  assert.equal(w3.stats.received, 0, 'no datagram to the UDP-only witness');
  assert.equal(w1.stats.answered, 2);
  assert.equal(w2.stats.answered, 2);
  // Both TCP connections came through the proxy, each with credentials of its own (Tor: its own circuit).
  await socks.logged(2);
  const via = (await socks.connections()).filter((c) => [w1.tcpAddress, w2.tcpAddress].includes(`127.0.0.1:${c.port}`));
  assert.equal(via.length, 2, JSON.stringify(await socks.connections()));
  assert.equal(w1.stats.tcp.accepted + w2.stats.tcp.accepted, 2, 'no TCP connection that did not come through the proxy');
  assert.notEqual(via[0]!.user, via[1]!.user);

  // The counting sockets can see a leak: without --tor the same policy sends datagrams to both UDP endpoints.
  const direct = await runCli(['time', '--trust-policy', policy, '--state', state, '--json']);
  assert.equal(direct.code, 0, direct.stderr);
  assert.ok(w1Udp.count() > 0, 'w1\'s UDP endpoint was asked without --tor');
  assert.ok(w3.stats.received > 0, 'the UDP-only witness was asked without --tor');

  // Only UDP witnesses: under --tor no quorum can be asked, a one-line refusal naming why, exit 3, no datagram.
  const before = { w1: w1Udp.count(), w3: w3.stats.received };
  const udpOnly = await writePolicy(path.join(dir, 'udp-only.json'), [
    { witness: n1, address: w1Udp.address, protocol: 'udp' },
    { witness: n3, address: w3.address },
  ], 2);
  const refused = await runCli(['time', '--trust-policy', udpOnly, '--state', state, '--tor', '--proxy', proxy]);
  assert.equal(refused.code, 3, refused.stderr);
  assert.match(refused.stderr, /no signed time: .*only a UDP endpoint/);
  assert.equal(refused.stderr.split('\n').filter((l) => l.startsWith('sourcemesh: error:')).length, 1, refused.stderr);
  assert.deepEqual({ w1: w1Udp.count(), w3: w3.stats.received }, before);

  // The proxy gone: the witnesses fail with the proxy named, and still no datagram leaves.
  const closed = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const noProxy = await runCli(['time', '--trust-policy', policy, '--state', state, '--tor', '--proxy', `socks5h://127.0.0.1:${closed}`]);
  assert.equal(noProxy.code, 3, noProxy.stderr);
  assert.match(noProxy.stderr, new RegExp(`cannot connect through the SOCKS5 proxy 127\\.0\\.0\\.1:${closed}`));
  assert.deepEqual({ w1: w1Udp.count(), w3: w3.stats.received }, before);
});

test('fetch and mirror sync --tor with a time policy: signed time asked over TCP through the proxy; UDP-only witnesses refused, none asked', { timeout: 180_000 }, async (t) => {
  const dir = await tempDir(t, 'sourcemesh-time-tor-policy-');
  const socks = await startSocks(dir);
  t.after(() => socks.close());
  const timed = await startTimedNetwork(t, dir, DAY);
  const proxy = `socks5h://127.0.0.1:${socks.port}`;
  // The witnesses' Roughtime over TCP: honest ones, and ones a day ahead (this machine's clock set back a day).
  const overTcp = async (name: string, offsetSeconds: number) => {
    const servers = await Promise.all(timed.net.witnessKeys.map((k) => startRoughtimeServer({ key: k.key, host: '127.0.0.1', port: 0, tcp: { host: '127.0.0.1', port: 0 }, clock: () => Date.now() + offsetSeconds * 1000 })));
    t.after(() => Promise.all(servers.map((s) => s.close())));
    const p = JSON.parse(await readFile(timed.plain, 'utf8'));
    p.time = { roughtime: timed.net.witnessKeys.map((k, i) => ({ witness: k.key.name, address: servers[i]!.tcpAddress, protocol: 'tcp' })) };
    await writeFile(path.join(dir, name), JSON.stringify(p));
    return { policy: path.join(dir, name), servers };
  };
  const honest = await overTcp('honest-tcp.json', 0);
  const skewed = await overTcp('skewed-tcp.json', DAY);
  const throughProxy = async (servers: readonly { tcpAddress?: string }[]) => {
    const ports = new Set(servers.map((s) => Number(s.tcpAddress!.split(':')[1])));
    return (await socks.connections()).filter((c) => ports.has(c.port)).length;
  };

  const fetched = await runCli(['fetch', timed.manifest, '--trust-policy', honest.policy, '--store', path.join(dir, 'store'), '-o', path.join(dir, 'out'), '--offline', '--tor', '--proxy', proxy]);
  assert.equal(fetched.code, 0, fetched.stderr);
  assert.match(fetched.stderr, /release accepted: manifest release-test 1\.0/);
  await socks.logged(3);
  assert.equal(await throughProxy(honest.servers), 3, 'each witness asked through the proxy');
  assert.equal(honest.servers.reduce((n, s) => n + s.stats.tcp.accepted, 0), 3, 'and only through it');

  // The witnesses a day ahead, asked through the proxy: mirror sync refuses in one line, nothing synced.
  const root = path.join(dir, 'mirror');
  const sync = await runCli(['mirror', 'sync', timed.manifest, '--root', root, '--trust-policy', skewed.policy, '--tor', '--proxy', proxy]);
  assert.equal(sync.code, 3, sync.stderr);
  assert.match(sync.stderr, /the local clock is 86[34]\d\d s behind the time the witnesses signed/);
  await socks.logged(6);
  assert.equal(await throughProxy(skewed.servers), 3);
  assert.doesNotMatch(sync.stderr, /release accepted/);

  // The network's UDP-only time policy under --tor: refused, and not one datagram to its servers.
  const udpPolicy = await timed.timedPolicy('udp.json');
  const udp = await runCli(['fetch', timed.manifest, '--trust-policy', udpPolicy, '--store', path.join(dir, 'store-udp'), '-o', path.join(dir, 'out-udp'), '--offline', '--tor', '--proxy', proxy]);
  assert.equal(udp.code, 3, udp.stderr);
  assert.match(udp.stderr, /no signed time: .*only a UDP endpoint/);
  assert.equal(timed.servers.reduce((n, s) => n + s.stats.received, 0), 0, 'no datagram under --tor');
});

test('doctor --node with torProxy: the clock check asks the witnesses through the proxy, no datagram sent', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t, 'sourcemesh-time-tor-doctor-');
  const socks = await startSocks(dir);
  t.after(() => socks.close());
  const keys = await Promise.all([1, 2].map((i) => writeKey(dir, `w${i}.doctor-tor.time.test`, 'cosignature')));
  const log = await writeKey(dir, 'log.doctor-tor.time.test');
  const release = await writeKey(dir, 'release.doctor-tor.time.test');
  const servers = await Promise.all(keys.map((k) => startRoughtimeServer({ key: k.key, host: '127.0.0.1', port: 0, tcp: { host: '127.0.0.1', port: 0 } })));
  t.after(() => Promise.all(servers.map((s) => s.close())));
  // Each witness listed over UDP (a counting socket) with its TCP endpoint after it.
  const watches = await Promise.all(servers.map(() => udpWatch(t)));
  const policy = path.join(dir, 'policy.json');
  await writeFile(policy, JSON.stringify({
    format: 'sourcemesh.policy/v1', log: { vkey: log.vkey }, witnesses: { quorum: 2, vkeys: keys.map((k) => k.vkey) },
    release: { threshold: 1, vkeys: [release.vkey] }, maxCheckpointAgeSeconds: 3600,
    time: { roughtime: keys.flatMap((k, i) => [{ witness: k.key.name, address: watches[i]!.address, protocol: 'udp' }, { witness: k.key.name, address: servers[i]!.tcpAddress, protocol: 'tcp' }]), quorum: 2 },
  }));
  const node = await makeNode(path.join(dir, 'node'), (c) => {
    c.torProxy = `socks5h://127.0.0.1:${socks.port}`;
  });
  const doctor = (withNode: boolean) => runCli(['doctor', '--json', '--trust-policy', policy, '--store', path.join(dir, 'store'), '--sample', '1', ...(withNode ? ['--node', node.dir] : [])]);
  const clockOf = (stdout: string) => (JSON.parse(stdout) as { checks: { check: string; status: string; detail: string }[] }).checks.find((c) => c.check === 'clock');

  const r = await doctor(true);
  assert.equal(clockOf(r.stdout)?.status, 'pass', r.stdout + r.stderr);
  assert.deepEqual(watches.map((w) => w.count()), [0, 0], 'no datagram from doctor of a node behind Tor');
  await socks.logged(2);
  const ports = new Set(servers.map((s) => Number(s.tcpAddress!.split(':')[1])));
  assert.equal((await socks.connections()).filter((c) => ports.has(c.port)).length, 2, 'both witnesses asked through the proxy');

  // Without the node (no torProxy), doctor asks over UDP first: the counting sockets see it.
  const direct = await doctor(false);
  assert.equal(clockOf(direct.stdout)?.status, 'pass', direct.stdout + direct.stderr);
  assert.ok(watches.every((w) => w.count() > 0));
});

test('release verify --online --tor: the log\'s tiles and the witnesses\' Roughtime both through the proxy, no datagram sent', { timeout: 180_000 }, async (t) => {
  const dir = await tempDir(t, 'sourcemesh-time-tor-verify-');
  const socks = await startSocks(dir);
  t.after(() => socks.close());
  const timed = await startTimedNetwork(t, dir, 0);
  const proxy = `socks5h://127.0.0.1:${socks.port}`;
  // Each witness: its UDP server (timed.servers, which count datagrams) first, then a TCP endpoint.
  const tcp = await Promise.all(timed.net.witnessKeys.map((k) => startRoughtimeServer({ key: k.key, host: '127.0.0.1', port: 0, tcp: { host: '127.0.0.1', port: 0 } })));
  t.after(() => Promise.all(tcp.map((s) => s.close())));
  const p = JSON.parse(await readFile(await timed.net.policy('online.json'), 'utf8'));
  p.time = { roughtime: timed.net.witnessKeys.flatMap((k, i) => [{ witness: k.key.name, address: timed.servers[i]!.address, protocol: 'udp' }, { witness: k.key.name, address: tcp[i]!.tcpAddress, protocol: 'tcp' }]) };
  const policy = path.join(dir, 'online-timed.json');
  await writeFile(policy, JSON.stringify(p));
  const logPort = Number(new URL(timed.net.log.url).port);
  const seen = async () => {
    const c = await socks.connections();
    const tcpPorts = new Set(tcp.map((s) => Number(s.tcpAddress!.split(':')[1])));
    return { log: c.filter((x) => x.port === logPort).length, time: c.filter((x) => tcpPorts.has(x.port)).length };
  };
  const datagrams = () => timed.servers.reduce((n, s) => n + s.stats.received, 0);
  const verify = (...extra: string[]) => runCli(['release', 'verify', timed.manifest, '--trust-policy', policy, '--state', path.join(dir, 'state'), '--online', '--json', ...extra]);

  const r = await verify('--tor', '--proxy', proxy);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { mode: string }).mode, 'online');
  await socks.logged(4);
  const through = await seen();
  assert.ok(through.log >= 1, `the log read went through the proxy: ${JSON.stringify(await socks.connections())}`);
  assert.equal(through.time, 3, 'each witness asked through the proxy');
  assert.equal(tcp.reduce((n, s) => n + s.stats.tcp.accepted, 0), 3, 'and only through it');
  assert.equal(datagrams(), 0, 'no datagram under --tor');

  // The counters can see a leak: without --tor the same verification asks over UDP, and dante sees nothing new.
  const direct = await verify();
  assert.equal(direct.code, 0, direct.stderr);
  assert.ok(datagrams() > 0, 'asked over UDP without --tor');
  assert.deepEqual(await seen(), through);

  // The proxy named but not there: refused, nothing read directly, no datagram.
  const before = datagrams();
  const closed = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
  const gone = await verify('--tor', '--proxy', `socks5h://127.0.0.1:${closed}`);
  assert.notEqual(gone.code, 0, gone.stdout);
  assert.equal(datagrams(), before);
});
