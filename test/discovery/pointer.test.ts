// The mirror-list pointer end to end: `mirrors publish --dht` and `mirrors get` / `fetch --mirror-list
// dht:...` as users run them, against a private DHT of 20 nodes on loopback hosted by this test and a
// loopback HTTP origin serving the list. Rollbacks, a list that does not match its pointer and malformed
// addresses are refused with their codes. With --trust-policy, the list's release is checked against a real
// `log serve` and three `witness serve` processes (test/trust/release/network.ts).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DhtNode } from '../../src/discovery/dht.ts';
import { parsePointer, parsePointerAddress, pointerTo, pointerValue, PointerState } from '../../src/discovery/pointer.ts';
import { isSourcemeshError } from '../../src/errors.ts';
import { limitsWith } from '../../src/limits.ts';
import { formatSignerKey, KEY_TYPE_ED25519, signerKeyFromSeed } from '../../src/trust/note.ts';
import { startDhtSwarm } from '../helpers/dht.ts';
import { bytes, distfile, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin, type Origin } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { startTrustNetwork } from '../trust/release/network.ts';

const limits = limitsWith({ dhtQueryTimeoutMs: 15_000 });
const publisher = signerKeyFromSeed('lists.example', KEY_TYPE_ED25519, Buffer.alloc(32, 21));
const HEX = Buffer.from(publisher.publicKey).toString('hex');

const list = (urls: string[]) => JSON.stringify({ format: 'sourcemesh.mirrors/v1', mirrors: urls.map((url) => ({ url })) }, null, 2) + '\n';

describe('mirrors publish --dht, mirrors get and fetch --mirror-list dht:', () => {
  let nodes: DhtNode[] = [];
  let origin: Origin;
  let boot: string;
  before(async () => {
    nodes = await startDhtSwarm(20, limits);
    boot = `127.0.0.1:${nodes[7]!.address().port}`;
    origin = await startOrigin({});
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.close()));
    await origin.close();
  });

  test('published from one DHT node, got from another: the newest list, checked against its digest; older seqs refused as rollbacks', async (t) => {
    const dir = await tempDir(t);
    const keyFile = path.join(dir, 'publisher.key');
    await writeFile(keyFile, formatSignerKey(publisher) + '\n', { mode: 0o600 });
    const v1 = list(['https://mirror-one.example/distfiles']);
    const v2 = list(['https://mirror-one.example/distfiles', 'https://mirror-two.example/distfiles']);
    origin.routes.set('/v1/live-bootstrap.json', { body: Buffer.from(v1) });
    origin.routes.set('/v2/live-bootstrap.json', { body: Buffer.from(v2) });
    await writeFile(path.join(dir, 'live-bootstrap.json'), v1);
    const pubStore = path.join(dir, 'publisher-state');
    const publish = (seq: string) => runCli(['mirrors', 'publish', path.join(dir, 'live-bootstrap.json'), '--key', keyFile, '--dht', '--url', `${origin.url}/${seq === '1' ? 'v1' : 'v2'}/live-bootstrap.json`, '--seq', seq, '--dht-bootstrap', boot, '--store', pubStore, '--json']);
    const p1 = await publish('1');
    assert.equal(p1.code, 0, p1.stderr);
    const out1 = JSON.parse(p1.stdout);
    assert.equal(out1.address, `dht:${HEX}?salt=live-bootstrap`);
    assert.ok(out1.nodes > 0);

    const client = path.join(dir, 'client');
    const get = (bootstrap = boot, state?: string) => runCli(['mirrors', 'get', `dht:${HEX}?salt=live-bootstrap`, '--dht-bootstrap', bootstrap, '--store', client, ...(state ? ['--dht-state', state] : []), '--json']);
    const g1 = await get(`127.0.0.1:${nodes[15]!.address().port}`);
    assert.equal(g1.code, 0, g1.stderr);
    assert.deepEqual(JSON.parse(g1.stdout).mirrors.map((m: { url: string }) => m.url), ['https://mirror-one.example/distfiles']);
    assert.equal(JSON.parse(g1.stdout).seq, 1);

    await writeFile(path.join(dir, 'live-bootstrap.json'), v2);
    const p2 = await publish('2');
    assert.equal(p2.code, 0, p2.stderr);
    const g2 = await get();
    assert.equal(g2.code, 0, g2.stderr);
    assert.equal(JSON.parse(g2.stdout).seq, 2);
    assert.equal(JSON.parse(g2.stdout).mirrors.length, 2);

    // A separate DHT that only holds seq 1 (a replay): the client, which accepted seq 2, refuses it.
    const other = await startDhtSwarm(4, limits);
    t.after(() => Promise.all(other.map((n) => n.close())));
    await other[1]!.putMutable({ seed: publisher.seed, publicKey: publisher.publicKey, value: pointerValue(pointerTo(v1, [`${origin.url}/v1/live-bootstrap.json`], 'v1')), seq: 1, salt: Buffer.from('live-bootstrap') });
    const replay = await get(`127.0.0.1:${other[2]!.address().port}`, path.join(dir, 'fresh-dht.json'));
    assert.equal(replay.code, 3, replay.stderr);
    assert.match(replay.stderr, /rollback.*E_POLICY|E_POLICY/s);
    assert.match(replay.stderr, /seq 1.*seq 2/);
  });

  test('mirrors publish --torrent: the pointer names the info-hash of a torrent of the list (v2 for a hybrid, v1 for a v1 torrent, as libtorrent computes them); a torrent of anything else is refused and nothing published', async (t) => {
    const dir = await tempDir(t);
    const keyFile = path.join(dir, 'publisher.key');
    await writeFile(keyFile, formatSignerKey(publisher) + '\n', { mode: 0o600 });
    // Over one 16 KiB piece, so that the v1 pieces and the v2 layer both matter.
    const l = list(Array.from({ length: 400 }, (_, i) => `https://mirror-${i}.example/distfiles`));
    assert.ok(Buffer.byteLength(l) > 16_384);
    const listFile = path.join(dir, 'with-torrent.json');
    await writeFile(listFile, l);
    origin.routes.set('/with-torrent.json', { body: Buffer.from(l) });
    const torrent = (file: string, kind: 'hybrid' | 'v1') => execFileSync('/usr/bin/python3', [path.join(import.meta.dirname, 'make-torrent.py'), file, `${file}.${kind}.torrent`, kind], { encoding: 'utf8' }).trim();
    const publish = (name: string, torrentFile: string) => runCli(['mirrors', 'publish', listFile, '--key', keyFile, '--dht', '--url', `${origin.url}/with-torrent.json`, '--name', name, '--torrent', torrentFile, '--dht-bootstrap', boot, '--store', path.join(dir, 's'), '--json']);
    const get = (name: string) => runCli(['mirrors', 'get', `dht:${HEX}?salt=${name}`, '--dht-bootstrap', boot, '--store', path.join(dir, 'c'), '--json']);
    for (const kind of ['hybrid', 'v1'] as const) {
      const btih = torrent(listFile, kind);
      assert.match(btih, kind === 'v1' ? /^[0-9a-f]{40}$/ : /^[0-9a-f]{64}$/);
      const p = await publish(`bt-${kind}`, `${listFile}.${kind}.torrent`);
      assert.equal(p.code, 0, p.stderr);
      assert.equal(JSON.parse(p.stdout).pointer.btih, btih);
      const g = await get(`bt-${kind}`);
      assert.equal(g.code, 0, g.stderr);
      assert.equal(JSON.parse(g.stdout).pointer.btih, btih);
    }
    // A torrent of another file of the same size (one byte differs): its hashes differ.
    const other = path.join(dir, 'other.json');
    const forged = Buffer.from(l);
    forged[forged.length - 20] ^= 1;
    await writeFile(other, forged);
    torrent(other, 'hybrid');
    const bad = await publish('bt-other', `${other}.hybrid.torrent`);
    assert.equal(bad.code, 3, bad.stderr);
    assert.match(bad.stderr, /--torrent .*other\.json\.hybrid\.torrent: not a torrent of .*with-torrent\.json.*\[E_CHECKSUM\]/);
    const none = await get('bt-other');
    assert.equal(none.code, 1, none.stderr);
    assert.match(none.stderr, /E_NO_SOURCE/);
  });

  test('a pointer whose URL serves another list is refused (E_CHECKSUM, exit 3); one nobody published is E_NO_SOURCE', async (t) => {
    const dir = await tempDir(t);
    const keyFile = path.join(dir, 'publisher.key');
    await writeFile(keyFile, formatSignerKey(publisher) + '\n', { mode: 0o600 });
    await writeFile(path.join(dir, 'swapped.json'), list(['https://honest.example/']));
    origin.routes.set('/swapped.json', { body: Buffer.from(list(['https://evil.example/'])) });
    const p = await runCli(['mirrors', 'publish', path.join(dir, 'swapped.json'), '--key', keyFile, '--dht', '--url', `${origin.url}/swapped.json`, '--dht-bootstrap', boot, '--store', path.join(dir, 's')]);
    assert.equal(p.code, 0, p.stderr);
    const g = await runCli(['mirrors', 'get', `dht:${HEX}?salt=swapped`, '--dht-bootstrap', boot, '--store', path.join(dir, 'c')]);
    assert.equal(g.code, 3, g.stderr);
    assert.match(g.stderr, /E_CHECKSUM/);
    const none = await runCli(['mirrors', 'get', `dht:${HEX}?salt=never-published`, '--dht-bootstrap', boot, '--store', path.join(dir, 'c')]);
    assert.equal(none.code, 1, none.stderr);
    assert.match(none.stderr, /E_NO_SOURCE/);
  });

  test('fetch --mirror-list dht: gets the distfile from a mirror of the list the pointer names', async (t) => {
    const dir = await tempDir(t);
    const keyFile = path.join(dir, 'publisher.key');
    await writeFile(keyFile, formatSignerKey(publisher) + '\n', { mode: 0o600 });
    const body = bytes(50_000, 5);
    origin.routes.set('/mirror/pkg-1.0.tar.gz', { body });
    const l = list([`${origin.url}/mirror`]);
    origin.routes.set('/fetch-list.json', { body: Buffer.from(l) });
    await writeFile(path.join(dir, 'fetch-list.json'), l);
    const manifest = await writeManifest(dir, [distfile('pkg-1.0.tar.gz', body, [`${origin.url}/upstream-gone/pkg-1.0.tar.gz`])]);
    const p = await runCli(['mirrors', 'publish', path.join(dir, 'fetch-list.json'), '--key', keyFile, '--dht', '--url', `${origin.url}/fetch-list.json`, '--dht-bootstrap', boot, '--store', path.join(dir, 's')]);
    assert.equal(p.code, 0, p.stderr);
    await mkdir(path.join(dir, 'out'));
    const f = await runCli(['fetch', manifest, '-o', path.join(dir, 'out'), '--store', path.join(dir, 'store'), '--mirror-list', `dht:${HEX}?salt=fetch-list`, '--dht-bootstrap', boot, '--json']);
    assert.equal(f.code, 0, f.stderr);
    assert.deepEqual(await readFile(path.join(dir, 'out', 'pkg-1.0.tar.gz')), body);
    assert.ok(origin.hits('/mirror/pkg-1.0.tar.gz') >= 1);
  });

  test('fetch --mirror-list dht: with --trust-policy checks the list\'s release from URL.release against a real log and witnesses', async (t) => {
    const dir = await tempDir(t);
    const net = await startTrustNetwork(t, dir);
    const policy = await net.policy('policy.json');
    const [r1, r2] = net.releaseKeys;
    const keyFile = path.join(dir, 'publisher.key');
    await writeFile(keyFile, formatSignerKey(publisher) + '\n', { mode: 0o600 });
    const body = bytes(40_000, 9);
    origin.routes.set('/released-mirror/rel-1.0.tar.gz', { body });
    const manifest = await writeManifest(dir, [distfile('rel-1.0.tar.gz', body, [`${origin.url}/upstream-gone/rel-1.0.tar.gz`])]);
    const m = await runCli(['release', manifest, '--release-version', '1.0', '--key', r1!.file, '--key', r2!.file, '--log', net.log.url]);
    assert.equal(m.code, 0, m.stderr);
    // Two lists naming the same mirror: one released by two keys (the policy's threshold), one by one.
    const setUp = async (name: string, keys: string[]) => {
      const file = path.join(dir, `${name}.json`);
      const text = list([`${origin.url}/released-mirror`]);
      await writeFile(file, text);
      const r = await runCli(['release', file, '--kind', 'mirror-list', '--name', name, '--release-version', '1', ...keys.flatMap((k) => ['--key', k]), '--log', net.log.url]);
      assert.equal(r.code, 0, r.stderr);
      origin.routes.set(`/lists/${name}.json`, { body: Buffer.from(text) });
      origin.routes.set(`/lists/${name}.json.release`, { body: await readFile(`${file}.release`) });
      const p = await runCli(['mirrors', 'publish', file, '--key', keyFile, '--dht', '--url', `${origin.url}/lists/${name}.json`, '--dht-bootstrap', boot, '--store', path.join(dir, `pub-${name}`)]);
      assert.equal(p.code, 0, p.stderr);
    };
    await setUp('released-list', [r1!.file, r2!.file]);
    await setUp('one-key-list', [r1!.file]);
    const fetch = async (salt: string, label = salt) => {
      const out = path.join(dir, `out-${label}`);
      await mkdir(out);
      const r = await runCli(['fetch', manifest, '-o', out, '--store', path.join(dir, `store-${label}`), '--trust-policy', policy, '--mirror-list', `dht:${HEX}?salt=${salt}`, '--dht-bootstrap', boot]);
      return { ...r, out };
    };
    const good = await fetch('released-list');
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stderr, /^mirror list release accepted: .*released-list/m);
    assert.equal(origin.hits('/lists/released-list.json.release'), 1);
    assert.deepEqual(await readFile(path.join(good.out, 'rel-1.0.tar.gz')), body);
    const hitsBefore = origin.hits('/released-mirror/rel-1.0.tar.gz');

    // Signed by one release key where the policy wants two: refused before any download.
    const weak = await fetch('one-key-list');
    assert.equal(weak.code, 3, weak.stderr);
    assert.match(weak.stderr, /E_POLICY/);
    assert.match(weak.stderr, /one-key-list/);
    assert.equal(origin.hits('/lists/one-key-list.json.release'), 1);
    assert.equal(origin.hits('/released-mirror/rel-1.0.tar.gz'), hitsBefore);
    await assert.rejects(readFile(path.join(weak.out, 'rel-1.0.tar.gz')), { code: 'ENOENT' });

    // No bundle beside the list at all: refused too.
    origin.routes.delete('/lists/released-list.json.release');
    const none = await fetch('released-list', 'no-bundle');
    assert.equal(none.code, 3, none.stderr);
    assert.match(none.stderr, /E_POLICY.*no release bundle|no release bundle.*E_POLICY/s);
  });
});

describe('pointer values and addresses', () => {
  test('a pointer is one canonical line of JSON; anything else is refused with E_FORMAT', () => {
    const p = pointerTo(list(['https://a.example/']), ['https://lists.example/a.json'], 'a');
    assert.deepEqual(parsePointer(pointerValue(p), 'x'), p);
    const bad = [
      Buffer.from(' ' + pointerValue(p).toString()),
      Buffer.from(JSON.stringify({ ...p, extra: 1 })),
      Buffer.from(JSON.stringify({ ...p, sha256: 'A'.repeat(64) })),
      Buffer.from(JSON.stringify({ ...p, urls: ['ftp://x/'] })),
      Buffer.from([0xff, 0xfe]),
    ];
    for (const b of bad) assert.throws(() => parsePointer(b, 'x'), (e) => isSourcemeshError(e, 'E_FORMAT'), b.toString());
  });

  test('dht: addresses: 64 hex digits and an optional salt of at most 64 bytes', () => {
    const a = parsePointerAddress(`dht:${HEX}?salt=live%2Fbootstrap`);
    assert.equal(a.salt, 'live/bootstrap');
    for (const bad of [`dht:${HEX.slice(2)}`, 'dht:zz', `dht:${HEX}?salt=${'x'.repeat(65)}`, `dht:${HEX}?salt=%zz`]) {
      assert.throws(() => parsePointerAddress(bad), (e) => isSourcemeshError(e, 'E_USAGE'), bad);
    }
  });

  test('the highest seq is remembered across processes and a lower one refused', async (t) => {
    const dir = await tempDir(t);
    const a = parsePointerAddress(`dht:${HEX}?salt=s`);
    const s1 = PointerState.open(dir);
    s1.accept(a, 5, 'a'.repeat(64), 0);
    s1.close();
    const s2 = PointerState.open(dir);
    t.after(() => s2.close());
    assert.throws(() => s2.accept(a, 4, 'a'.repeat(64), 0), (e) => isSourcemeshError(e, 'E_POLICY'));
    assert.throws(() => s2.accept(a, 5, 'b'.repeat(64), 0), (e) => isSourcemeshError(e, 'E_POLICY'));
    s2.accept(a, 5, 'a'.repeat(64), 0);
    s2.accept(a, 6, 'b'.repeat(64), 0);
    assert.equal(s2.highest(a)?.seq, 6);
  });
});
