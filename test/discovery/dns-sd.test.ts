// The pure DNS-SD code: what a node announces and answers, and the bounds of what a browser keeps.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  announcementFor, announcementRecords, answerQuestions, BrowseState, CANDIDATES_PER_SOURCE, parseTxt, SERVICE_TYPE, txtStrings,
  type Candidate, type DnsRecord,
} from '../../src/discovery/dns-sd.ts';
import { isSourcemeshError } from '../../src/errors.ts';
import { limitsWith } from '../../src/limits.ts';
import { formatVerifierKey, KEY_TYPE_ED25519, signerKeyFromSeed } from '../../src/trust/note.ts';

const key = signerKeyFromSeed('mirror.example.org', KEY_TYPE_ED25519, Buffer.alloc(32, 1));
const vkey = formatVerifierKey(key);
const link = { address: '10.0.0.1', netmask: '255.255.255.0' };

test('an announcement: instance "NAME KEYID" without dots, host by key ID, TXT keys of docs/FORMATS.md', () => {
  const a = announcementFor(key, vkey, { port: 8080, roles: ['mirror'], scheme: 'http', path: '/.well-known/sourcemesh/inventory' });
  const id = key.keyId.toString(16).padStart(8, '0');
  assert.equal(a.instance, `mirror-example-org ${id}`);
  assert.equal(a.host, `sourcemesh-${id}`);
  assert.deepEqual(txtStrings(a).map(String), ['txtvers=1', `key=${vkey}`, 'roles=mirror', 'scheme=http', 'path=/.well-known/sourcemesh/inventory']);
  // A key name too long for one TXT string is refused when announcing, not cut.
  const long = signerKeyFromSeed('n'.repeat(250), KEY_TYPE_ED25519, Buffer.alloc(32, 2));
  assert.throws(() => announcementFor(long, formatVerifierKey(long), { port: 1, roles: ['mirror'], scheme: 'http' }), (e) => isSourcemeshError(e, 'E_USAGE'));
  assert.ok(Buffer.byteLength(announcementFor(signerKeyFromSeed('é'.repeat(100), KEY_TYPE_ED25519, Buffer.alloc(32, 3)), 'x', { port: 1, roles: ['mirror'], scheme: 'http' }, limitsWith({ discoveryTxtBytes: 10_000 })).instance) <= 63);
});

test('queries: the service PTR brings SRV, TXT and A; the instance and host are answered by name, in any case; others are not ours', () => {
  const a = announcementFor(key, vkey, { port: 8080, roles: ['mirror'], scheme: 'http' });
  const ptr = answerQuestions(a, '10.0.0.1', [{ name: SERVICE_TYPE.toUpperCase(), type: 'PTR' }]);
  assert.deepEqual(ptr?.answers.map((r) => r.type), ['PTR']);
  assert.deepEqual(ptr?.additionals.map((r) => r.type), ['SRV', 'TXT', 'A']);
  assert.equal(ptr?.additionals[2]!.data, '10.0.0.1');
  assert.deepEqual(answerQuestions(a, '10.0.0.1', [{ name: `${a.instance}.${SERVICE_TYPE}`, type: 'TXT' }])?.answers.map((r) => r.type), ['TXT']);
  assert.deepEqual(answerQuestions(a, '10.0.0.1', [{ name: `${a.host}.LOCAL`, type: 'A' }])?.answers.map((r) => r.type), ['A']);
  assert.deepEqual(answerQuestions(a, '10.0.0.1', [{ name: '_services._dns-sd._udp.local', type: 'PTR' }])?.answers.map((r) => r.data), [SERVICE_TYPE]);
  assert.equal(answerQuestions(a, '10.0.0.1', [{ name: '_http._tcp.local', type: 'PTR' }]), undefined);
  assert.ok(announcementRecords(a, '10.0.0.1', true).additionals.every((r) => r.ttl === 0));
});

test('a browser turns one packet of ours into one candidate, and refuses an A record off the link', () => {
  const a = announcementFor(key, vkey, { port: 8080, roles: ['mirror', 'seed'], scheme: 'http' });
  const heard: Candidate[] = [];
  const state = new BrowseState((c) => heard.push(c));
  const { answers, additionals } = announcementRecords(a, '10.0.0.7');
  state.add([...answers, ...additionals], '10.0.0.7', link);
  state.add([...answers, ...additionals], '10.0.0.7', link); // heard twice: one candidate
  assert.deepEqual(heard, [{ instance: a.instance, address: '10.0.0.7', port: 8080, key: vkey, roles: ['mirror', 'seed'], scheme: 'http', path: undefined, bittorrent: undefined }]);
  const off = announcementRecords({ ...a, instance: 'elsewhere', host: 'elsewhere', port: 9000 }, '203.0.113.5');
  state.add([...off.answers, ...off.additionals], '10.0.0.7', link);
  assert.equal(heard.length, 1);
});

test('records lapse when their TTL runs out without a refresh from their owner (RFC 6762 §10); heard again, a new candidate', () => {
  const a = announcementFor(key, vkey, { port: 8080, roles: ['mirror'], scheme: 'http' });
  const heard: Candidate[] = [];
  const state = new BrowseState((c) => heard.push(c));
  const { answers, additionals } = announcementRecords(a, '10.0.0.7');
  const t0 = 1_000_000;
  state.add([...answers, ...additionals], '10.0.0.7', link, t0);
  assert.equal(heard.length, 1);
  assert.equal(state.expire(t0 + 119_000), 0);
  assert.deepEqual(state.missing(), []);
  // Another sender repeating the records does not keep them alive: only the owner's refresh counts.
  state.add([...answers, ...additionals], '10.0.0.9', link, t0 + 100_000);
  assert.equal(state.expire(t0 + 120_000), 2); // SRV and A (120 s); PTR and TXT live 4500 s
  assert.deepEqual(state.missing().map((q) => q.type), ['SRV']);
  state.add([...answers, ...additionals], '10.0.0.7', link, t0 + 130_000);
  assert.equal(heard.length, 2);
  // The owner's refresh pushes the lapse back.
  state.add([...answers, ...additionals], '10.0.0.7', link, t0 + 200_000);
  assert.equal(state.expire(t0 + 300_000), 0);
  assert.equal(state.expire(t0 + 200_000 + 4_500_000), 4);
  assert.equal(state.missing().length, 0);
});

test('under random traffic and a random clock, nothing outlives its TTL and lapsed entries give their room back', () => {
  const rec = fc.record({ source: fc.constantFrom('10.0.0.7', '10.0.0.8'), port: fc.integer({ min: 1, max: 4 }), ttl: fc.integer({ min: 0, max: 300 }), dt: fc.integer({ min: 0, max: 200_000 }) });
  fc.assert(fc.property(fc.array(rec, { maxLength: 60 }), (events) => {
    const heard: Candidate[] = [];
    const state = new BrowseState((c) => heard.push(c), limitsWith({ discoveryCandidates: 8 }));
    let now = 0;
    for (const e of events) {
      now += e.dt;
      const a = announcementFor(key, vkey, { port: 8000 + e.port, roles: ['mirror'], scheme: 'http' });
      const { answers, additionals } = announcementRecords({ ...a, instance: `n${e.port}`, host: `h${e.port}` }, e.source);
      state.add([...answers, ...additionals].map((r) => ({ ...r, ttl: e.ttl })), e.source, link, now);
      state.expire(now);
    }
    // Far in the future everything has lapsed: nothing left to ask about, and the room is all back.
    state.expire(now + 301_000);
    assert.deepEqual(state.missing(), []);
    const before = heard.length;
    const a = announcementFor(key, vkey, { port: 9999, roles: ['mirror'], scheme: 'http' });
    const fresh = announcementRecords({ ...a, instance: 'fresh', host: 'fresh' }, '10.0.0.7');
    state.add([...fresh.answers, ...fresh.additionals], '10.0.0.7', link, now + 302_000);
    assert.equal(heard.length, before + 1);
  }), { numRuns: 200 });
});

test('TXT parsing never throws, whatever the bytes', () => {
  fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), (strings) => {
    const r = parseTxt(strings.map((s) => Buffer.from(s)));
    assert.ok('problem' in r || typeof r.key === 'string');
  }));
  assert.match((parseTxt([Buffer.from('txtvers=1'), Buffer.from([0x6b, 0x65, 0x79, 0x3d, 0xff])]) as { problem: string }).problem, /UTF-8/);
  assert.deepEqual(parseTxt([Buffer.from('TXTVERS=1'), Buffer.from(`KEY=${vkey}`), Buffer.from('key=ignored'), Buffer.from('roles=mirror,unknown')]), { key: vkey, roles: ['mirror'], scheme: 'http', path: undefined, bittorrent: undefined });
});

test('a seed announces its peer-wire port in TXT bt=; a bt= that is not a TCP port is refused', () => {
  const a = announcementFor(key, vkey, { port: 40000, roles: ['seed'], scheme: 'http', bittorrent: 6881 });
  assert.ok(txtStrings(a).some((s) => s.toString() === 'bt=6881'));
  const heard: Candidate[] = [];
  const state = new BrowseState((c) => heard.push(c));
  const { answers, additionals } = announcementRecords(a, '10.0.0.7');
  state.add([...answers, ...additionals], '10.0.0.7', link);
  assert.deepEqual(heard.map((c) => [c.port, c.bittorrent, c.roles]), [[40000, 6881, ['seed']]]);
  const txt = (bt: string) => parseTxt([Buffer.from('txtvers=1'), Buffer.from(`key=${vkey}`), Buffer.from('roles=seed'), Buffer.from(`bt=${bt}`)]);
  assert.equal((txt('65535') as { bittorrent: number }).bittorrent, 65535);
  for (const bad of ['0', '65536', '6881x', '-1', '', '06881', '99999999']) assert.match((txt(bad) as { problem: string }).problem, /bt= is not a TCP port/, bad);
});

test('whatever is heard, a browser keeps at most its bounds: per sender and in all', () => {
  const limits = limitsWith({ discoveryCandidates: 40 });
  const records = fc.record({
    source: fc.constantFrom('10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5'),
    n: fc.nat(5000),
    port: fc.integer({ min: 1, max: 65535 }),
  });
  fc.assert(fc.property(fc.array(records, { maxLength: 400 }), (packets) => {
    const heard: Candidate[] = [];
    const perSource = new Map<string, number>();
    const state = new BrowseState((c) => heard.push(c), limits);
    for (const p of packets) {
      const inst = `x${p.n}.${SERVICE_TYPE}`;
      const recs: DnsRecord[] = [
        { name: SERVICE_TYPE, type: 'PTR', data: inst },
        { name: inst, type: 'SRV', data: { port: p.port, target: `h${p.n}.local` } },
        { name: inst, type: 'TXT', data: [Buffer.from('txtvers=1'), Buffer.from(`key=${vkey}`), Buffer.from('roles=mirror')] },
        { name: `h${p.n}.local`, type: 'A', data: p.source },
      ];
      const before = heard.length;
      state.add(recs, p.source, link);
      perSource.set(p.source, (perSource.get(p.source) ?? 0) + heard.length - before);
    }
    assert.ok(heard.length <= limits.discoveryCandidates);
    for (const n of perSource.values()) assert.ok(n <= CANDIDATES_PER_SOURCE);
    assert.ok(state.missing().length <= 3 * limits.discoveryCandidates);
  }));
});

test('a goodbye from the sender that announced a node gives its room back; a goodbye from anyone else changes nothing', () => {
  const heard: Candidate[] = [];
  const state = new BrowseState((c) => heard.push(c));
  const node = (i: number) => announcementFor(key, vkey, { port: 9000 + i, roles: ['mirror'], scheme: 'http' });
  const say = (i: number, source: string, goodbye = false) => {
    const { answers, additionals } = announcementRecords({ ...node(i), instance: `n${i}`, host: `h${i}` }, '10.0.0.7', goodbye);
    state.add([...answers, ...additionals], source, link);
  };
  // A long-lived browser hears one sender's nodes come and go, many more than its share at once.
  for (let i = 0; i < 3 * CANDIDATES_PER_SOURCE; i++) {
    say(i, '10.0.0.7');
    say(i, '10.0.0.7', true);
  }
  assert.equal(heard.length, 3 * CANDIDATES_PER_SOURCE);
  // Without the goodbyes, the share is full after CANDIDATES_PER_SOURCE; spoofed goodbyes do not free it.
  let n = 0;
  const counted = new BrowseState(() => n++);
  for (let i = 0; i < 2 * CANDIDATES_PER_SOURCE; i++) {
    const { answers, additionals } = announcementRecords({ ...node(i), instance: `m${i}`, host: `g${i}` }, '10.0.0.8');
    counted.add([...answers, ...additionals], '10.0.0.8', link);
    const bye = announcementRecords({ ...node(i), instance: `m${i}`, host: `g${i}` }, '10.0.0.8', true);
    counted.add([...bye.answers, ...bye.additionals], '10.0.0.9', link);
  }
  assert.equal(n, CANDIDATES_PER_SOURCE);
});

test('IPv6: AAAA for an IPv6 link, on-link by prefix or by the zone of a link-local sender, addresses as 16 bytes', async () => {
  const { addressType, ipv6Bytes, onLink } = await import('../../src/discovery/dns-sd.ts');
  assert.equal(addressType('10.0.0.1'), 'A');
  assert.equal(addressType('fd16::a'), 'AAAA');
  assert.equal(addressType('fe80::1%eth0'), 'AAAA');
  assert.equal(ipv6Bytes('fd16::a').toString('hex'), 'fd16' + '0'.repeat(24) + '000a');
  assert.equal(ipv6Bytes('::ffff:10.1.2.3').toString('hex'), '0'.repeat(20) + 'ffff0a010203');
  assert.equal(ipv6Bytes('1:2:3:4:5:6:7:8').toString('hex'), '00010002000300040005000600070008');
  const v6 = { name: 'eth0', address: 'fd16::b', netmask: 'ffff:ffff:ffff:ffff::' };
  assert.equal(onLink('fd16::a', v6), true);
  assert.equal(onLink('fd17::a', v6), false);
  assert.equal(onLink('fe80::1%eth0', v6), true);
  assert.equal(onLink('fe80::1%eth1', v6), false);
  assert.equal(onLink('10.0.0.1', v6), false);
  assert.equal(onLink('fd16::a', { name: 'eth0', address: '10.0.0.2', netmask: '255.255.0.0' }), false);
  // Every address round-trips through its 16 bytes.
  fc.assert(fc.property(fc.ipV6(), (a) => {
    const b = ipv6Bytes(a);
    const back = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16)).join(':');
    assert.equal(ipv6Bytes(back).toString('hex'), b.toString('hex'));
    assert.equal(new URL(`http://[${back}]/`).hostname, new URL(`http://[${a}]/`).hostname);
  }));
});
