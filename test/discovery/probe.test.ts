// The pure side of claiming a name (src/discovery/probe.ts, RFC 6762 §8-9): conflicts, the simultaneous
// probe tiebreak and the next name, with fast-check over names and records.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { announcementFor, type DnsRecord } from '../../src/discovery/dns-sd.ts';
import { claimedRecords, conflictsIn, probeOrder, probeQuery, rdataOf, renamed } from '../../src/discovery/probe.ts';
import { formatVerifierKey, KEY_TYPE_ED25519, signerKeyFromSeed } from '../../src/trust/note.ts';

const key = signerKeyFromSeed('mirror.example.org', KEY_TYPE_ED25519, Buffer.alloc(32, 7));
const a = announcementFor(key, formatVerifierKey(key), { port: 8080, roles: ['mirror'], scheme: 'http', path: '/.well-known/sourcemesh/inventory' });

test('a probe asks ANY for both names and carries SRV, TXT and one A per address in its authorities', () => {
  const q = probeQuery(a, ['10.0.0.7', '10.1.0.7']);
  assert.deepEqual(q.questions, [{ name: `${a.instance}._sourcemesh._tcp.local`, type: 'ANY' }, { name: `${a.host}.local`, type: 'ANY' }]);
  assert.deepEqual(q.authorities.map((r) => r.type), ['SRV', 'TXT', 'A', 'A']);
});

test('conflicts: the same name with other data; never our own records, a goodbye, or another name', () => {
  const ours = claimedRecords(a, ['10.0.0.7']);
  assert.deepEqual(conflictsIn(a, ['10.0.0.7'], ours), { instance: false, host: false });
  const srv = ours[0]!;
  const otherPort = { ...srv, data: { ...(srv.data as object), port: 8081 } };
  assert.deepEqual(conflictsIn(a, ['10.0.0.7'], [otherPort]), { instance: true, host: false });
  assert.deepEqual(conflictsIn(a, ['10.0.0.7'], [{ ...otherPort, name: otherPort.name.toUpperCase() }]), { instance: true, host: false }, 'names are case-insensitive');
  assert.deepEqual(conflictsIn(a, ['10.0.0.7'], [{ ...otherPort, ttl: 0 }]), { instance: false, host: false });
  assert.deepEqual(conflictsIn(a, ['10.0.0.7'], [{ ...otherPort, name: 'other._sourcemesh._tcp.local' }]), { instance: false, host: false });
  assert.deepEqual(conflictsIn(a, ['10.0.0.7'], [{ name: `${a.host}.local`, type: 'A', ttl: 120, data: '10.0.0.8' }]), { instance: false, host: true });
  assert.deepEqual(conflictsIn(a, ['10.0.0.7'], [{ ...ours[1]!, data: [Buffer.from('txtvers=1'), Buffer.from('key=someone-else')] }]), { instance: true, host: false });
  // Anything at all heard: never a throw.
  fc.assert(fc.property(fc.array(fc.record({ name: fc.oneof(fc.constant(ours[0]!.name), fc.string()), type: fc.constantFrom('SRV', 'TXT', 'A', 'PTR'), ttl: fc.nat(), data: fc.anything() }), { maxLength: 10 }), (rs) => {
    conflictsIn(a, ['10.0.0.7'], rs as DnsRecord[]);
  }));
});

test('the tiebreak is an order: antisymmetric, zero only for the same records, and a longer set with a common prefix wins', () => {
  const rec = fc.oneof(
    fc.record({ name: fc.constant('x.local'), type: fc.constant('A'), data: fc.ipV4() }),
    fc.record({ name: fc.constant('x.local'), type: fc.constant('SRV'), data: fc.record({ priority: fc.nat(65535), weight: fc.nat(65535), port: fc.integer({ min: 1, max: 65535 }), target: fc.domain() }) }),
    fc.record({ name: fc.constant('x.local'), type: fc.constant('TXT'), data: fc.array(fc.string({ maxLength: 20 }).map((s) => Buffer.from(s)), { maxLength: 4 }) }),
  );
  fc.assert(fc.property(fc.array(rec, { maxLength: 5 }), fc.array(rec, { maxLength: 5 }), (x, y) => {
    const xy = Math.sign(probeOrder(x, y));
    assert.equal(xy, 0 - Math.sign(probeOrder(y, x)) || 0);
    assert.equal(probeOrder(x, [...x].reverse()), 0);
    if (xy === 0) assert.deepEqual(x.map((r) => rdataOf(r).toString('hex')).sort(), y.map((r) => rdataOf(r).toString('hex')).sort());
  }));
  // RFC 6762 §8.2's example: the same type, rdata 169.254.99.200 beats 169.254.200.50.
  const A = (ip: string) => ({ name: 'h.local', type: 'A', data: ip });
  assert.ok(probeOrder([A('169.254.200.50')], [A('169.254.99.200')]) > 0);
  assert.ok(probeOrder([A('10.0.0.1'), A('10.0.0.2')], [A('10.0.0.1')]) > 0);
});

test('a taken name becomes "NAME (2)", then (3); the host name gets -2; labels stay within 63 bytes', () => {
  const r1 = renamed(a, { instance: true, host: false });
  assert.equal(r1.instance, `${a.instance} (2)`);
  assert.equal(r1.host, a.host);
  const r2 = renamed(r1, { instance: true, host: true });
  assert.equal(r2.instance, `${a.instance} (3)`);
  assert.equal(r2.host, `${a.host}-2`);
  assert.equal(renamed(r2, { instance: false, host: true }).host, `${a.host}-3`);
  fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 80 }), fc.nat(200), (name, times) => {
    const k = signerKeyFromSeed(name.replace(/[\s+]/g, 'x') || 'x', KEY_TYPE_ED25519, Buffer.alloc(32, 9));
    let n;
    try {
      n = announcementFor(k, formatVerifierKey(k), { port: 1, roles: ['mirror'], scheme: 'http' });
    } catch {
      return; // a key name the note format refuses
    }
    for (let i = 0; i < times % 40; i++) n = renamed(n, { instance: true, host: true });
    assert.ok(Buffer.byteLength(n.instance) <= 63, n.instance);
    if (times % 40 > 0) assert.match(n.instance, new RegExp(` \\(${(times % 40) + 1}\\)$`));
  }));
});
