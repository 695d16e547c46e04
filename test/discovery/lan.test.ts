// LAN discovery across two network namespaces on one segment (test/helpers/netns.ts, as root): the real CLI
// announces (`serve --announce`) in one and discovers in the other; avahi-daemon with its own D-Bus system
// bus, avahi-browse and avahi-publish are the third-party peers; a hand-made announcer plays the hostile
// ones (spoofed keys, non-UTF-8 names and TXT, ten thousand announcements in a burst), and test/discovery/
// relay.ts the nodes that replay another node's signed inventory.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { DiscoverResult } from '../../src/discovery/discover.ts';
import { formatSignerKey, formatVerifierKey, KEY_TYPE_ED25519, signerKeyFromSeed, type SignerKey } from '../../src/trust/note.ts';
import { addressOf, canMakeNamespaces, makeNetwork, type NetNode, type TestNetwork } from '../helpers/netns.ts';
import { distfile, writeManifest } from '../helpers/distfiles.ts';
import { ROOT, tempDir } from '../helpers/run.ts';

const skip = canMakeNamespaces();
type Net = TestNetwork<'a' | 'b'>;
const SENDER = path.join(ROOT, 'test/discovery/mdns-sender.ts');
const RELAY = path.join(ROOT, 'test/discovery/relay.ts');
const WATCH = path.join(ROOT, 'test/discovery/watch.ts');

/** The first line of `p`'s standard output that matches (test/discovery/watch.ts prints one per check). */
function waitStdout(p: { child: import('node:child_process').ChildProcess; stdout(): string }, re: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const line = p.stdout().split('\n').find((l) => re.test(l));
      if (line === undefined) return;
      p.child.stdout!.off('data', check);
      resolve(line);
    };
    p.child.stdout!.on('data', check);
    p.child.once('close', () => reject(new Error(`ended before a line matched ${re}: ${p.stdout()}`)));
    check();
  });
}

function key(name: string, seed: number): SignerKey {
  return signerKeyFromSeed(name, KEY_TYPE_ED25519, Buffer.alloc(32, seed));
}

async function mirrorRoot(dir: string, k: SignerKey): Promise<{ root: string; keyFile: string }> {
  const root = path.join(dir, `root-${k.name}`);
  await mkdir(root, { recursive: true });
  await writeFile(path.join(root, 'hello-1.0.tar.gz'), 'hello\n');
  const keyFile = path.join(dir, `${k.name}.key`);
  await writeFile(keyFile, formatSignerKey(k) + '\n', { mode: 0o600 });
  return { root, keyFile };
}

/** `serve` in `side` on PORT; with --announce when asked. Resolves once it listens (and announces). */
async function serve(link: Net, side: NetNode, dir: string, k: SignerKey, port: number, announce: boolean) {
  const { root, keyFile } = await mirrorRoot(dir, k);
  const s = link.spawn(side, process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'serve', '--root', root, '--key', keyFile, '--listen', `${side.address}:${port}`, '--no-access-log', ...(announce ? ['--announce'] : [])]);
  await s.waitStderr(announce ? /announcing "[^"]+" on / : /serving /);
  return s;
}

async function discover(link: Net, side: NetNode, timeout = '2'): Promise<DiscoverResult & { ms: number; stderr: string }> {
  const r = await link.run(side, ['discover', '--timeout', timeout, '--json'], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  return { ...(JSON.parse(r.stdout) as DiscoverResult), ms: r.ms, stderr: r.stderr };
}

describe('discovery across two network namespaces', { skip }, () => {
  test('a mirror announced in one namespace is found and checked from the other in under 2 s, also by a browser started long after', async (t) => {
    const dir = await tempDir(t);
    const link = makeNetwork(t, ['a', 'b']);
    const k = key('lan-mirror', 1);
    await serve(link, link.nodes.a, dir, k, 8080, true);
    for (const run of [1, 2]) {
      // The second run starts after the node's own announcements are over: it is found only by asking.
      const r = await discover(link, link.nodes.b);
      assert.equal(r.nodes.length, 1, `run ${run}: ${JSON.stringify(r)}`);
      const node = r.nodes[0]!;
      assert.equal(node.key, formatVerifierKey(k));
      assert.equal(node.url, `http://${link.nodes.a.address}:8080`);
      assert.deepEqual(node.roles, ['mirror']);
      assert.deepEqual('inventory' in node.checked && node.checked.inventory.files, 1);
      assert.ok(node.ms < 2000, `run ${run}: found and checked after ${node.ms} ms`);
      assert.deepEqual(r.refused, []);
    }
  });

  test('serve --announce claims its names while it starts, announces only once it serves (a slow index: checked, not refused), and a node that fails to start is never announced', async (t) => {
    const dir = await tempDir(t);
    const link = makeNetwork(t, ['a', 'b']);
    const k = key('early-claim', 21);
    const { root, keyFile } = await mirrorRoot(dir, k);
    // 1 GiB to hash before the server listens: far longer than the 750 ms of probing.
    await writeFile(path.join(root, 'big-1.0.tar'), '');
    assert.equal(spawnSync('truncate', ['-s', '1G', path.join(root, 'big-1.0.tar')]).status, 0);
    const watch = link.spawn(link.nodes.b, process.execPath, [WATCH, '120']);
    await watch.waitStderr(/watching/);
    const args = ['serve', '--root', root, '--key', keyFile, '--listen', `${link.nodes.a.address}:8090`, '--no-access-log', '--announce'];
    // First a node that cannot start (its TLS certificate missing): it ends with its error, having
    // claimed nothing it announces.
    const failed = await link.run(link.nodes.a, [...args, '--tls-cert', path.join(dir, 'missing.pem'), '--tls-key', path.join(dir, 'missing.pem')], { timeoutMs: 60_000 });
    assert.equal(failed.code, 2, failed.stderr);
    assert.match(failed.stderr, /TLS certificate \(--tls-cert\)/);
    const node = link.spawn(link.nodes.a, process.execPath, [path.join(ROOT, 'src/cli/main.ts'), ...args]);
    const outcome = JSON.parse(await waitStdout(watch, /"(found|refused)"/)) as { found?: string; refused?: unknown };
    assert.deepEqual(outcome.found, `http://${link.nodes.a.address}:8090`, JSON.stringify(outcome));
    // The names were claimed before the index was done, the announcement came after it.
    const err = await node.waitStderr(/announcing "early-claim [0-9a-f]{8}" on /);
    assert.ok(err.index! > node.stderr().indexOf('indexed 2 files'), node.stderr());
    assert.ok(!watch.stdout().includes('refused'), watch.stdout());
  });

  test('IPv6 (AAAA, FF02::FB): with IPv4 gone from the link, serve --listen [::]:PORT --announce is found and checked over IPv6 at its unique-local address; a node with only a link-local IPv6 address is refused, saying why', async (t) => {
    const dir = await tempDir(t);
    const link = makeNetwork(t, ['a', 'b']);
    const ip = (n: NetNode, args: string[]) => assert.equal(spawnSync('ip', ['-n', n.ns, ...args]).status, 0, args.join(' '));
    // IPv4 off both ends; their link-local IPv6 addresses usable at once (no duplicate detection).
    for (const n of [link.nodes.a, link.nodes.b]) {
      assert.equal(spawnSync('ip', ['netns', 'exec', n.ns, 'sysctl', '-qw', `net.ipv6.conf.${n.dev}.accept_dad=0`]).status, 0);
      ip(n, ['-4', 'addr', 'flush', 'dev', n.dev]);
    }
    const linkLocal = (n: NetNode) => {
      for (;;) { // the kernel adds it as the link comes up: wait until it is there and no longer tentative
        const out = spawnSync('ip', ['-n', n.ns, '-6', 'addr', 'show', 'dev', n.dev, 'scope', 'link'], { encoding: 'utf8' }).stdout;
        const m = /inet6 (fe80::[0-9a-f:]+)\/64/.exec(out);
        if (m && !out.includes('tentative')) return m[1]!;
        spawnSync('ip', ['-n', n.ns, 'monitor', 'address'], { timeout: 200 }); // blocks until an address event (or 200 ms)
      }
    };
    linkLocal(link.nodes.a);
    linkLocal(link.nodes.b);
    const k = key('v6-mirror', 22);
    const { root, keyFile } = await mirrorRoot(dir, k);
    // Link-local only: announced (AAAA fe80::...), refused by the browser with the reason.
    const onlyLocal = link.spawn(link.nodes.a, process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'serve', '--root', root, '--key', keyFile, '--listen', '[::]:8092', '--no-access-log', '--announce']);
    await onlyLocal.waitStderr(/announcing "v6-mirror [0-9a-f]{8}" on eth0 \(fe80::/);
    const refused = await discover(link, link.nodes.b);
    assert.deepEqual(refused.nodes, [], JSON.stringify(refused));
    assert.match(JSON.stringify(refused.refused), /v6-mirror [0-9a-f]{8}.*only an IPv6 link-local address/);
    onlyLocal.child.kill('SIGTERM');
    await onlyLocal.exited;
    // A unique-local address on each end: found and checked there, over IPv6 alone.
    ip(link.nodes.a, ['-6', 'addr', 'add', 'fd16::a/64', 'dev', link.nodes.a.dev, 'nodad']);
    ip(link.nodes.b, ['-6', 'addr', 'add', 'fd16::b/64', 'dev', link.nodes.b.dev, 'nodad']);
    const s = link.spawn(link.nodes.a, process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'serve', '--root', root, '--key', keyFile, '--listen', '[::]:8093', '--no-access-log', '--announce']);
    await s.waitStderr(/announcing "v6-mirror [0-9a-f]{8}" on eth0 \(fd16::a\)/);
    const r = await discover(link, link.nodes.b);
    assert.deepEqual(r.nodes.map((n) => [n.url, n.key, 'inventory' in n.checked]), [['http://[fd16::a]:8093', formatVerifierKey(k), true]], JSON.stringify(r));
    assert.deepEqual(r.refused, []);
  });

  test('a node heard over IPv4 and IPv6 is listed once; one that restarts on another port is found again by a browser that kept running', async (t) => {
    const dir = await tempDir(t);
    const link = makeNetwork(t, ['a', 'b']);
    for (const n of [link.nodes.a, link.nodes.b]) {
      assert.equal(spawnSync('ip', ['-n', n.ns, '-6', 'addr', 'add', `fd16::${n === link.nodes.a ? 'a' : 'b'}/64`, 'dev', n.dev, 'nodad']).status, 0);
    }
    const k = key('both-ways', 23);
    const { root, keyFile } = await mirrorRoot(dir, k);
    const watch = link.spawn(link.nodes.b, process.execPath, [WATCH, '120']);
    await watch.waitStderr(/watching/);
    const start = (port: number) => link.spawn(link.nodes.a, process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'serve', '--root', root, '--key', keyFile, '--listen', `[::]:${port}`, '--no-access-log', '--announce']);
    const first = start(8094);
    await first.waitStderr(/announcing "both-ways [0-9a-f]{8}" on eth0 \(10\.[0-9.]+\), eth0 \(fd16::a\)/);
    const one = JSON.parse(await waitStdout(watch, /"found":.*:8094"/)) as { found: string };
    assert.ok([`http://${link.nodes.a.address}:8094`, 'http://[fd16::a]:8094'].includes(one.found), one.found);
    // The discover command, over both families: one node.
    const r = await discover(link, link.nodes.b);
    assert.equal(r.nodes.length, 1, JSON.stringify(r));
    first.child.kill('SIGTERM');
    await first.exited;
    start(8095);
    await waitStdout(watch, /"found":.*:8095"/);
    assert.equal(watch.stdout().split('\n').filter((l) => l.includes(':8094"')).length, 1, watch.stdout());
  });

  test('serve --workers 2 --announce: the pool announces once, and its workers answer the check', async (t) => {
    const dir = await tempDir(t);
    const link = makeNetwork(t, ['a', 'b']);
    const k = key('pooled-mirror', 17);
    const { root, keyFile } = await mirrorRoot(dir, k);
    const s = link.spawn(link.nodes.a, process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'serve', '--root', root, '--key', keyFile, '--listen', `${link.nodes.a.address}:8087`, '--no-access-log', '--workers', '2', '--announce']);
    await s.waitStderr(/announcing "pooled-mirror [0-9a-f]{8}" on /);
    const r = await discover(link, link.nodes.b);
    assert.deepEqual(r.nodes.map((n) => [n.instance.replace(/ [0-9a-f]{8}$/, ''), n.url]), [['pooled-mirror', `http://${link.nodes.a.address}:8087`]], JSON.stringify(r));
    assert.ok('inventory' in r.nodes[0]!.checked);
    assert.deepEqual(r.refused, []);
  });

  test('log serve --announce: found with role log and checked by its checkpoint against the log key', async (t) => {
    const dir = await tempDir(t);
    const link = makeNetwork(t, ['a', 'b']);
    const k = key('log.example/lan', 12);
    const keyFile = path.join(dir, 'log.key');
    await writeFile(keyFile, formatSignerKey(k) + '\n', { mode: 0o600 });
    const log = link.spawn(link.nodes.a, process.execPath, [path.join(ROOT, 'src/cli/main.ts'), 'log', 'serve', '--root', path.join(dir, 'log'), '--key', keyFile, '--listen', `${link.nodes.a.address}:8070`, '--admit-unsigned', '--log-level', 'info', '--announce']);
    await log.waitStderr(/log serving/);
    const r = await discover(link, link.nodes.b);
    assert.equal(r.nodes.length, 1, JSON.stringify(r));
    assert.deepEqual(r.nodes[0]!.roles, ['log']);
    assert.equal(r.nodes[0]!.key, formatVerifierKey(k));
    assert.deepEqual('checkpoint' in r.nodes[0]!.checked && r.nodes[0]!.checked.checkpoint.origin, 'log.example/lan');
  });

  test('fetch --discover takes a distfile from the mirror found on the link and records it by key, not address', async (t) => {
    const dir = await tempDir(t);
    const link = makeNetwork(t, ['a', 'b']);
    const k = key('fetch-discover', 13);
    await serve(link, link.nodes.a, dir, k, 8086, true);
    const body = Buffer.from('hello\n');
    // Upstream is nowhere to be reached from the namespace: only the discovered mirror can serve it.
    const manifest = await writeManifest(dir, [distfile('hello-1.0.tar.gz', body, ['http://192.0.2.1:9/hello-1.0.tar.gz'])]);
    const store = path.join(dir, 'store');
    const f = await link.run(link.nodes.b, ['fetch', manifest, '-o', path.join(dir, 'out'), '--store', store, '--discover', '2', '--policy', 'mirrors-only', '--json']);
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stderr, /discovered 1 mirrors/);
    assert.deepEqual(await readFile(path.join(dir, 'out', 'hello-1.0.tar.gz')), body);
    const status = await link.run(link.nodes.b, ['mirrors', 'status', '--store', store, '--json']);
    assert.equal(status.code, 0, status.stderr);
    assert.deepEqual(JSON.parse(status.stdout).mirrors.map((m: { mirror: string }) => m.mirror), [`key:${formatVerifierKey(k)}`]);
  });

  test('spoofed announcements are refused: a key the server does not sign with, another node\'s key at our address', async (t) => {
    const dir = await tempDir(t);
    const link = makeNetwork(t, ['a', 'b']);
    const real = key('real-node', 2);
    const liar = key('liar', 3);
    const honest = key('honest', 4);
    await serve(link, link.nodes.a, dir, liar, 8081, false); // signs its inventory with the liar's key
    await serve(link, link.nodes.a, dir, honest, 8082, true); // a genuine node beside them: found
    const inst = (n: string) => `${n}._sourcemesh._tcp.local`;
    const announce = (name: string, vkey: string, port: number) => [
      { name: '_sourcemesh._tcp.local', type: 'PTR', data: inst(name) },
      { name: inst(name), type: 'SRV', data: { port, target: `${name}.local` } },
      { name: inst(name), type: 'TXT', data: ['txtvers=1', `key=${vkey}`, 'roles=mirror'] },
      { name: `${name}.local`, type: 'A', data: link.nodes.a.address },
    ];
    // The real node's key announced at the liar's server; a made-up key at the same server.
    const burst = [...announce('borrowed', formatVerifierKey(real), 8081), ...announce('madeup', formatVerifierKey(key('made-up', 5)), 8081)];
    const sender = link.spawn(link.nodes.a, process.execPath, [SENDER, JSON.stringify({ source: link.nodes.a.address, burst })]);
    await sender.waitStderr(/sent 1/);
    const r = await discover(link, link.nodes.b);
    assert.deepEqual(r.nodes.map((n) => n.key), [formatVerifierKey(honest)]);
    const reasons = new Map(r.refused.map((x) => [x.instance, x.reason]));
    assert.match(reasons.get('borrowed') ?? '', /signature/i);
    assert.match(reasons.get('madeup') ?? '', /signature/i);
  });

  test('a node replaying another node\'s signed inventory is refused by the challenge, also when it relays the challenge to the genuine node', async (t) => {
    const dir = await tempDir(t);
    const link = makeNetwork(t, ['a', 'b']);
    const genuine = key('genuine', 6);
    await serve(link, link.nodes.a, dir, genuine, 8084, true);
    const relays = [{ name: 'copier', port: 8085, challenge: false }, { name: 'relayer', port: 8086, challenge: true }];
    for (const r of relays) {
      const relay = link.spawn(link.nodes.a, process.execPath, [RELAY, JSON.stringify({ host: link.nodes.a.address, port: r.port, target: `http://${link.nodes.a.address}:8084`, challenge: r.challenge })]);
      await relay.waitStderr(/relaying/);
    }
    const inst = (n: string) => `${n}._sourcemesh._tcp.local`;
    const burst = relays.flatMap((r) => [
      { name: '_sourcemesh._tcp.local', type: 'PTR', data: inst(r.name) },
      { name: inst(r.name), type: 'SRV', data: { port: r.port, target: `${r.name}.local` } },
      { name: inst(r.name), type: 'TXT', data: ['txtvers=1', `key=${formatVerifierKey(genuine)}`, 'roles=mirror', 'path=/.well-known/sourcemesh/inventory'] },
      { name: `${r.name}.local`, type: 'A', data: link.nodes.a.address },
    ]);
    const sender = link.spawn(link.nodes.a, process.execPath, [SENDER, JSON.stringify({ source: link.nodes.a.address, burst })]);
    await sender.waitStderr(/sent 1/);
    const r = await discover(link, link.nodes.b);
    // Only the genuine node, at its own address; both replayers refused for the challenge.
    assert.deepEqual(r.nodes.map((n) => n.url), [`http://${link.nodes.a.address}:8084`]);
    const reasons = new Map(r.refused.map((x) => [x.instance, x.reason]));
    assert.match(reasons.get('copier') ?? '', /did not answer the challenge/);
    assert.match(reasons.get('relayer') ?? '', new RegExp(`challenge answer signs "${link.nodes.a.address.replaceAll('.', '\\.')}:8084"`));
  });

  test('names and TXT strings that are not UTF-8 are refused or shown escaped, never a crash', async (t) => {
    const dir = await tempDir(t);
    const link = makeNetwork(t, ['a', 'b']);
    const k = key('utf8-test', 6);
    const k2 = key('utf8-other', 11);
    await serve(link, link.nodes.a, dir, k, 8083, false);
    await serve(link, link.nodes.a, dir, k2, 8085, false);
    const vkey = formatVerifierKey(k);
    const burst = [
      // A name of bytes that are not UTF-8, announcing the real server and key: found, its name escaped.
      { name: '_sourcemesh._tcp.local', type: 'PTR', data: { hex: 'fffe41' } },
      { name: { hex: 'fffe41' }, type: 'SRV', data: { port: 8083, target: 'bytes.local' } },
      { name: { hex: 'fffe41' }, type: 'TXT', data: ['txtvers=1', `key=${vkey}`, 'roles=mirror'] },
      { name: 'bytes.local', type: 'A', data: link.nodes.a.address },
      // TXT strings that are not UTF-8: refused for that.
      { name: 'badtxt._sourcemesh._tcp.local', type: 'SRV', data: { port: 8083, target: 'bytes.local' } },
      { name: 'badtxt._sourcemesh._tcp.local', type: 'TXT', data: ['txtvers=1', { hex: Buffer.from(`key=${vkey}`).toString('hex') + 'c328' }, 'roles=mirror'] },
      // Control characters in a name.
      { name: '_sourcemesh._tcp.local', type: 'PTR', data: 'bell\u0007\u001b[31m._sourcemesh._tcp.local' },
      { name: 'bell\u0007\u001b[31m._sourcemesh._tcp.local', type: 'SRV', data: { port: 8085, target: 'bytes.local' } },
      { name: 'bell\u0007\u001b[31m._sourcemesh._tcp.local', type: 'TXT', data: ['txtvers=1', `key=${formatVerifierKey(k2)}`, 'roles=mirror'] },
    ];
    const sender = link.spawn(link.nodes.a, process.execPath, [SENDER, JSON.stringify({ source: link.nodes.a.address, burst })]);
    await sender.waitStderr(/sent 1/);
    const r = await discover(link, link.nodes.b);
    assert.ok(r.refused.some((x) => x.instance === 'badtxt' && /UTF-8/.test(x.reason)), JSON.stringify(r.refused));
    const names = r.nodes.map((n) => n.instance).sort();
    assert.deepEqual(names, ['bell\\u0007\\u001b[31m', '\ufffd\ufffdA']);
    // Human output escapes them too: no control character reaches the terminal.
    const human = await link.run(link.nodes.b, ['discover', '--timeout', '1']);
    assert.equal(human.code, 0, human.stderr);
    assert.doesNotMatch(human.stdout + human.stderr, /[\u0007\u001b]/);
  });

  test('one key announced by three nodes: the first keeps the name, the others probe, find it taken and become "NAME (2)" and "NAME (3)" (two of them probing at once)', async (t) => {
    const dir = await tempDir(t);
    const link = makeNetwork(t, ['a', 'b', 'c', 'd']);
    const k = key('shared-key', 14);
    const first = await serve(link, link.nodes.a, dir, k, 8080, true);
    const name = JSON.parse((await first.waitStderr(/announcing ("[^"]+") on /))[1]!) as string;
    // Two more at once: both find the name taken, both probe for "NAME (2)" at the same moment, and the
    // tiebreak (RFC 6762 §8.2) sends the loser on to "NAME (3)".
    const [c, d] = await Promise.all([serve(link, link.nodes.c, path.join(dir, 'c'), k, 8081, true), serve(link, link.nodes.d, path.join(dir, 'd'), k, 8082, true)]);
    const names = await Promise.all([c, d].map(async (p) => JSON.parse((await p.waitStderr(/announcing ("[^"]+") on /))[1]!) as string));
    assert.deepEqual(names.sort(), [`${name} (2)`, `${name} (3)`]);
    const r = await discover(link, link.nodes.b);
    assert.deepEqual(r.nodes.map((n) => n.instance).sort(), [name, `${name} (2)`, `${name} (3)`], JSON.stringify(r));
    assert.deepEqual(r.nodes.map((n) => n.url).sort(), [`http://${link.nodes.a.address}:8080`, `http://${link.nodes.c.address}:8081`, `http://${link.nodes.d.address}:8082`]);
  });

  test('two announcers probing for one name at the same instant: the tiebreak (RFC 6762 §8.2) lets one keep it and the other become "NAME (2)"', async (t) => {
    const link = makeNetwork(t, ['a']);
    const p = link.spawn(link.nodes.a, process.execPath, [path.join(ROOT, 'test/discovery/two-announcers.ts'), JSON.stringify({ ports: [8080, 8081] })]);
    const names = JSON.parse((await p.waitStderr(/^(\[.*\])$/m))[1]!) as string[];
    const base = names.find((n) => !n.endsWith(' (2)'));
    assert.ok(base, JSON.stringify(names));
    assert.deepEqual(names.sort(), [base, `${base} (2)`]);
  });

  test('ten thousand announcements in a burst, over and over: the genuine node is still found and checked, memory and candidates bounded, and browsing ends at once when stopped', async (t) => {
    const dir = await tempDir(t);
    const link = makeNetwork(t, ['a', 'b']);
    const k = key('under-flood', 7);
    const flooder = addressOf(200); // a second address of a's, on the same segment
    assert.equal(spawnSync('ip', ['-n', link.nodes.a.ns, 'addr', 'add', `${flooder}/16`, 'dev', link.nodes.a.dev]).status, 0);
    await serve(link, link.nodes.a, dir, k, 8084, true);
    const sender = link.spawn(link.nodes.a, process.execPath, [SENDER, JSON.stringify({ source: flooder, flood: { count: 10_000, vkey: formatVerifierKey(key('flood', 8)) } })]);
    await sender.waitStderr(/sent 10000/, 60_000);
    // Events, not a browsing window: the genuine node found (checks get 30 s, not 2: the flood and a
    // loaded machine slow the check's two requests, and a refusal by timeout would fail the test too),
    // then two more bursts sent while browsing, then a stop and the browser's own account.
    const watch = link.spawn(link.nodes.b, process.execPath, [WATCH, '600', JSON.stringify({ checkTimeoutMs: 30_000 })]);
    await watch.waitStderr(/watching/);
    await waitStdout(watch, new RegExp(`"found":"http://${link.nodes.a.address.replace(/\./g, '\\.')}:8084"`));
    const bursts = () => sender.stderr().match(/sent \d+/g)?.length ?? 0;
    const after = bursts() + 2;
    await new Promise<void>((resolve) => {
      const check = () => {
        if (bursts() < after) return;
        sender.child.stderr!.off('data', check);
        resolve();
      };
      sender.child.stderr!.on('data', check);
      check();
    });
    watch.child.kill('SIGTERM');
    const { done } = JSON.parse(await waitStdout(watch, /"done"/)) as { done: { nodes: string[]; refused: number; dropped: number; stopMs: number; peakKiB: number } };
    assert.deepEqual(done.nodes, [formatVerifierKey(k)], watch.stdout());
    assert.ok(done.dropped > 1000, `dropped ${done.dropped}`);
    assert.ok(done.refused <= 16, `refused ${done.refused}: one sender gets 16 candidates`);
    assert.ok(done.stopMs < 2000, `ended ${done.stopMs} ms after being stopped`);
    assert.ok(done.peakKiB > 0 && done.peakKiB < 400 * 1024, `peak RSS ${done.peakKiB} KiB`);
    t.diagnostic(`under the flood: ${done.dropped} dropped, ${done.refused} refused, peak RSS ${Math.round(done.peakKiB / 1024)} MiB, ended ${done.stopMs} ms after the stop`);
  });
});

// ---------------------------------------------------------------------------------------------------
// avahi: a D-Bus system bus and avahi-daemon in namespace b

const avahiMissing = spawnSync('sh', ['-c', 'command -v avahi-daemon && command -v avahi-browse && command -v dbus-daemon']).status !== 0;

async function startAvahi(t: { after(fn: () => Promise<void> | void): void }, link: Net, dir: string): Promise<NodeJS.ProcessEnv> {
  const bus = path.join(dir, 'system_bus_socket');
  await writeFile(path.join(dir, 'bus.conf'), `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${bus}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/>
    <allow send_type="method_call"/><allow send_type="signal"/><allow send_type="method_return"/><allow send_type="error"/>
    <allow receive_type="method_call"/><allow receive_type="signal"/><allow receive_type="method_return"/><allow receive_type="error"/>
  </policy>
</busconfig>
`);
  await writeFile(path.join(dir, 'avahi.conf'), `[server]\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=${link.nodes.b.dev}\nenable-dbus=yes\n[publish]\npublish-hinfo=no\npublish-workstation=no\n`);
  const dbus = link.spawn(link.nodes.b, 'dbus-daemon', [`--config-file=${path.join(dir, 'bus.conf')}`, '--nofork', '--nopidfile', '--print-address']);
  await new Promise<void>((resolve, reject) => {
    dbus.child.stdout!.once('data', () => resolve());
    dbus.child.once('close', () => reject(new Error(`dbus-daemon ended: ${dbus.stderr()}`)));
  });
  const env = { DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${bus}` };
  const avahi = link.spawn(link.nodes.b, 'avahi-daemon', ['-f', path.join(dir, 'avahi.conf'), '--no-drop-root', '--no-chroot', '--no-rlimits'], env);
  await avahi.waitStderr(/Server startup complete/);
  void t;
  return env;
}

describe('avahi interoperates with announce and discover', { skip: skip ?? (avahiMissing ? 'avahi-daemon, avahi-utils or dbus-daemon missing' : undefined) }, () => {
  test('avahi-browse resolves our announcement with its TXT records; our discover finds and checks a service avahi-publish announces', async (t) => {
    const dir = await tempDir(t);
    const link = makeNetwork(t, ['a', 'b']);
    const env = await startAvahi(t, link, dir);

    // Ours -> avahi.
    const ours = key('for-avahi', 9);
    await serve(link, link.nodes.a, dir, ours, 8090, true);
    let resolved = '';
    for (let attempt = 0; attempt < 10 && !resolved.includes('=;'); attempt++) {
      const b = link.spawn(link.nodes.b, 'avahi-browse', ['--resolve', '--terminate', '--parsable', '_sourcemesh._tcp'], env);
      await new Promise((r) => b.child.once('close', r));
      resolved = b.stdout();
    }
    const line = resolved.split('\n').find((l) => l.startsWith('=;'));
    assert.ok(line, `avahi-browse saw nothing: ${resolved}`);
    const f = line.split(';');
    assert.equal(f[7], link.nodes.a.address);
    assert.equal(f[8], '8090');
    assert.match(f[9]!, new RegExp(`"key=${formatVerifierKey(ours).replace(/[+/]/g, '\\$&')}"`));
    assert.match(f[9]!, /"roles=mirror"/);
    assert.match(f[9]!, /"path=\/\.well-known\/sourcemesh\/inventory"/);

    // avahi -> ours: a mirror in b, published by avahi-publish.
    const theirs = key('via-avahi', 10);
    await serve(link, link.nodes.b, dir, theirs, 8091, false);
    const pub = link.spawn(link.nodes.b, 'avahi-publish', ['-s', 'Avahi Published Mirror', '_sourcemesh._tcp', '8091', 'txtvers=1', `key=${formatVerifierKey(theirs)}`, 'roles=mirror', 'path=/.well-known/sourcemesh/inventory'], env);
    await pub.waitStderr(/Established under name/);
    const r = await discover(link, link.nodes.a);
    const found = r.nodes.find((n) => n.key === formatVerifierKey(theirs));
    assert.ok(found, JSON.stringify(r));
    assert.equal(found.instance, 'Avahi Published Mirror');
    assert.equal(found.url, `http://${link.nodes.b.address}:8091`);
    assert.ok('inventory' in found.checked);
  });

  test('a name avahi holds is taken: our announcer probes, finds it, and announces as "NAME (2)"', async (t) => {
    const dir = await tempDir(t);
    const link = makeNetwork(t, ['a', 'b']);
    const env = await startAvahi(t, link, dir);
    const ours = key('avahi-holds', 15);
    const instance = `avahi-holds ${ours.keyId.toString(16).padStart(8, '0')}`;
    const pub = link.spawn(link.nodes.b, 'avahi-publish', ['-s', instance, '_sourcemesh._tcp', '9999', 'txtvers=1', 'roles=mirror'], env);
    await pub.waitStderr(/Established under name/);
    const s = await serve(link, link.nodes.a, dir, ours, 8092, true);
    assert.equal(JSON.parse((await s.waitStderr(/announcing ("[^"]+") on /))[1]!), `${instance} (2)`);
    const r = await discover(link, link.nodes.a);
    assert.deepEqual(r.nodes.map((n) => n.instance), [`${instance} (2)`], JSON.stringify(r));
  });
});

