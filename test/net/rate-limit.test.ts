// The one client keyer and token bucket of every server: fixed cases, then properties over random
// addresses and random request times (fast-check, seeded: a failure prints its seed and path).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { clientKey, retryAfterSeconds, TokenBuckets } from '../../src/net/rate-limit.ts';

test('client keys: IPv4 as is, IPv4-mapped unwrapped, IPv6 by /64, zones dropped, junk is "?"', () => {
  assert.equal(clientKey('127.0.0.1'), '127.0.0.1');
  assert.equal(clientKey('::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(clientKey('::FFFF:a01:203'), '10.1.2.3');
  assert.equal(clientKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:0DB8:0001:0002:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
  assert.equal(clientKey('::1'), '0:0:0:0::/64');
  assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(clientKey('2001:db8::1.2.3.4'), '2001:db8:0:0::/64');
  assert.equal(clientKey(undefined), '?');
  assert.equal(clientKey(''), '?');
  assert.equal(clientKey('not an address'), '?');
  assert.notEqual(clientKey('2001:db8:1:2::1'), clientKey('2001:db8:1:3::1'));
});

const group = fc.integer({ min: 0, max: 0xffff });
const groups = fc.array(group, { minLength: 8, maxLength: 8 });

/** One IPv6 address written in one of the ways RFC 4291 §2.2 allows (and RFC 5952 recommends). */
function write(g: number[], style: { zeros: boolean; upper: boolean; gapAt: number; gapLen: number }): string {
  const parts = g.map((x) => (style.zeros ? x.toString(16).padStart(4, '0') : x.toString(16)));
  let text: string;
  // Compress a run of zero groups with "::" when the chosen run is all zeros.
  const run = g.slice(style.gapAt, style.gapAt + style.gapLen);
  if (style.gapLen >= 1 && run.length === style.gapLen && run.every((x) => x === 0)) {
    text = `${parts.slice(0, style.gapAt).join(':')}::${parts.slice(style.gapAt + style.gapLen).join(':')}`;
  } else {
    text = parts.join(':');
  }
  return style.upper ? text.toUpperCase() : text;
}
const style = fc.record({ zeros: fc.boolean(), upper: fc.boolean(), gapAt: fc.integer({ min: 0, max: 7 }), gapLen: fc.integer({ min: 1, max: 8 }) });
// Addresses with zero runs, so that "::" forms really occur.
const sparse = fc.array(fc.oneof(fc.constant(0), group), { minLength: 8, maxLength: 8 });

test('property: every spelling of an address, and every address of one /64, has one key; other /64s another', () => {
  fc.assert(fc.property(fc.oneof(groups, sparse), fc.array(group, { minLength: 4, maxLength: 4 }), style, style, (g, low, s1, s2) => {
    if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) return; // IPv4-mapped: below
    const k = clientKey(write(g, s1));
    assert.equal(clientKey(write(g, s2)), k, 'the same address written two ways');
    assert.equal(clientKey(write([...g.slice(0, 4), ...low], s2)), k, 'another interface id in the same /64');
    const other = [...g];
    other[3] = (other[3]! + 1) & 0xffff;
    assert.notEqual(clientKey(write(other, s1)), k, 'the next /64');
  }), { seed: 0x5eed13, numRuns: 2000 });
});

test('property: IPv4-mapped IPv6 has the key of the IPv4 address', () => {
  fc.assert(fc.property(fc.ipV4(), (v4) => {
    assert.equal(clientKey(`::ffff:${v4}`), v4);
    assert.equal(clientKey(v4), v4);
  }), { seed: 0x5eed14, numRuns: 500 });
});

test('token bucket: a burst, then the sustained rate; the wait is announced; rate 0 is no limit', () => {
  const rl = new TokenBuckets({ perSecond: 2, burst: 3, maxClients: 4 });
  const now = 1_000_000;
  assert.deepEqual([rl.take('a', now), rl.take('a', now), rl.take('a', now)], [0, 0, 0]);
  assert.equal(rl.take('a', now), 500);
  assert.equal(rl.take('a', now + 499), 1);
  assert.equal(rl.take('a', now + 500), 0);
  assert.equal(rl.take('b', now), 0, 'another client has its own bucket');
  assert.equal(new TokenBuckets({ perSecond: 0, burst: 1, maxClients: 1 }).take('x', 0), 0, 'rate 0: no limit');
  assert.equal(retryAfterSeconds(1), 1);
  assert.equal(retryAfterSeconds(1000), 1);
  assert.equal(retryAfterSeconds(1001), 2);
});

test('token bucket: a clock that steps back neither refills nor drains', () => {
  const rl = new TokenBuckets({ perSecond: 1, burst: 1, maxClients: 4 });
  assert.equal(rl.take('a', 10_000), 0);
  assert.ok(rl.take('a', 5_000) > 0, 'going back in time gives no token');
  assert.equal(rl.take('a', 6_000), 0, 'a second after the step, one token');
});

test('token bucket: at most maxClients buckets; refilled ones go first, then the least recently used', () => {
  const rl = new TokenBuckets({ perSecond: 1, burst: 2, maxClients: 8 });
  for (let i = 0; i < 8; i++) rl.take(`c${i}`, 0);
  rl.take('c0', 0);
  rl.take('c0', 0); // c0 is empty now, and the most recently used
  for (let i = 0; i < 3; i++) rl.take(`n${i}`, 1); // c1, c2, c3 (least recently used) make room
  assert.equal(rl.clients, 8);
  assert.ok(rl.take('c0', 1) > 0, 'the most recently used, empty bucket was kept');
  assert.equal(rl.take('c1', 1), 0, 'c1 was forgotten: a fresh bucket');
  assert.ok(rl.take('c1', 1) === 0 && rl.take('c1', 1) > 0, 'of burst 2');
  // Buckets that have refilled are what a new client would get anyway: they go before any other.
  const r2 = new TokenBuckets({ perSecond: 1, burst: 1, maxClients: 2 });
  r2.take('old', 0);
  r2.take('busy', 5_000);
  r2.take('new', 5_000); // 'old' has refilled by 5 s: it goes, 'busy' stays
  assert.ok(r2.take('busy', 5_000) > 0, 'busy kept its empty bucket');
});

test('property: no client gets more than burst + rate x time, and a token is there when announced', () => {
  const step = fc.record({ dt: fc.integer({ min: 0, max: 3000 }), client: fc.integer({ min: 0, max: 5 }) });
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 50 }), fc.array(step, { maxLength: 300 }),
    (perSecond, burst, steps) => {
      // maxClients above the client count: no eviction, so each client's own bound must hold exactly.
      const rl = new TokenBuckets({ perSecond, burst, maxClients: 16 });
      const allowed = new Map<number, number[]>();
      let now = 1_000;
      for (const s of steps) {
        now += s.dt;
        const wait = rl.take(String(s.client), now);
        assert.ok(Number.isInteger(wait) && wait >= 0);
        if (wait === 0) {
          const times = allowed.get(s.client) ?? [];
          times.push(now);
          allowed.set(s.client, times);
        } else {
          assert.ok(wait <= Math.ceil(1000 / perSecond) + 1, 'never more than one token interval');
        }
      }
      for (const times of allowed.values()) {
        // In every window, at most burst + rate x length (with a hair for rounding).
        for (let i = 0; i < times.length; i++) {
          for (let j = i; j < times.length; j++) {
            const n = j - i + 1;
            assert.ok(n <= burst + ((times[j]! - times[i]!) * perSecond) / 1000 + 1e-6, `${n} requests in ${times[j]! - times[i]!} ms`);
          }
        }
      }
    },
  ), { seed: 0x5eed15, numRuns: 300 });

  fc.assert(fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 1e9 }), (perSecond, burst, t0) => {
    const rl = new TokenBuckets({ perSecond, burst, maxClients: 1 });
    let wait = 0;
    for (let i = 0; i <= burst && wait === 0; i++) wait = rl.take('c', t0);
    assert.ok(wait > 0, 'the burst is spent');
    assert.equal(rl.take('c', t0 + wait), 0, 'a token is there when announced');
  }), { seed: 0x5eed16, numRuns: 1000 });
});

test('property: the number of buckets never exceeds maxClients', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 64 }), fc.array(fc.tuple(fc.integer({ min: 0, max: 500 }), fc.integer({ min: 0, max: 100 })), { maxLength: 500 }), (max, steps) => {
    const rl = new TokenBuckets({ perSecond: 10, burst: 5, maxClients: max });
    let now = 0;
    for (const [client, dt] of steps) {
      now += dt;
      rl.take(`k${client}`, now);
      assert.ok(rl.clients <= max);
    }
  }), { seed: 0x5eed17, numRuns: 300 });
});
