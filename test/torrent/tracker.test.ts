// The HTTP tracker client (BEP 3, 7, 12, 23): the announce URL, the reading of answers, the re-announce
// schedule and the tiers, property-tested; then hostile trackers of the test's own on loopback (an
// oversized answer, bad bencoding, an endless body, one that drips, 10,000 bogus peers), each refused
// with one error naming the tracker, within its bounds.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { isSourcemeshError, SourcemeshError } from '../../src/errors.ts';
import { createAgent } from '../../src/fetch/http.ts';
import { LIMITS, limitsWith } from '../../src/limits.ts';
import { announceTiers, announceTo } from '../../src/torrent/announce.ts';
import { bdict, encode } from '../../src/torrent/bencode.ts';
import { TrackerTiers, announceUrl, nextAnnounceDelay, parseAnnounceResponse, type AnnounceParams } from '../../src/torrent/tracker.ts';

/** Percent-decoding to bytes (URLSearchParams would read the bytes as UTF-8). */
function queryBytes(url: string, name: string): Buffer {
  const q = url.slice(url.indexOf('?') + 1).split('&').find((kv) => kv.startsWith(`${name}=`))!;
  const v = q.slice(name.length + 1);
  const out: number[] = [];
  for (let i = 0; i < v.length; i++) {
    if (v[i] === '%') {
      out.push(parseInt(v.slice(i + 1, i + 3), 16));
      i += 2;
    } else out.push(v.charCodeAt(i));
  }
  return Buffer.from(out);
}

const params = (over: Partial<AnnounceParams> = {}): AnnounceParams => ({
  infoHash: Buffer.alloc(20, 0xab), peerId: Buffer.from('-SM0001-abcdefghijkl'), port: 6881, uploaded: 1, downloaded: 2, left: 3, event: 'started', numwant: 50, ...over,
});

test('announce URL: every byte of info_hash and peer_id round-trips, the tracker\'s own query is kept', () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 20, maxLength: 20 }), fc.uint8Array({ minLength: 20, maxLength: 20 }), fc.constantFrom('http://t/announce', 'http://t/a?passkey=x', 'https://t/a?'), (h, id, base) => {
    const url = announceUrl(base, params({ infoHash: Buffer.from(h), peerId: Buffer.from(id) }));
    assert.ok(url.startsWith(base.replace(/\?$/, '')));
    assert.deepEqual(queryBytes(url, 'info_hash'), Buffer.from(h));
    assert.deepEqual(queryBytes(url, 'peer_id'), Buffer.from(id));
    assert.match(url, /[?&]compact=1&/);
    assert.match(url, /[?&]port=6881&uploaded=1&downloaded=2&left=3&/);
    assert.ok(!/[?&]&|\?\?/.test(url), url);
    if (base.includes('passkey')) assert.match(url, /\?passkey=x&info_hash=/);
  }));
});

const compact4 = (peers: { a: number[]; port: number }[]) => Buffer.concat(peers.map((p) => {
  const b = Buffer.alloc(6);
  p.a.forEach((x, i) => (b[i] = x));
  b.writeUInt16BE(p.port, 4);
  return b;
}));

test('answers: compact IPv4 (BEP 23), IPv6 (BEP 7) and dictionary peers read back; port 0 and unspecified addresses dropped', () => {
  const peer4 = fc.record({ a: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 }), port: fc.integer({ min: 0, max: 65535 }) });
  const peer6 = fc.record({ g: fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }), port: fc.integer({ min: 0, max: 65535 }) });
  fc.assert(fc.property(fc.array(peer4, { maxLength: 100 }), fc.array(peer6, { maxLength: 100 }), fc.nat(100_000), fc.option(fc.nat(100_000)), (v4, v6, interval, minInterval) => {
    const b6 = Buffer.concat(v6.map((p) => {
      const b = Buffer.alloc(18);
      p.g.forEach((x, i) => b.writeUInt16BE(x, i * 2));
      b.writeUInt16BE(p.port, 16);
      return b;
    }));
    const body = encode(bdict([['interval', interval], ['min interval', minInterval ?? undefined], ['peers', compact4(v4)], ['peers6', b6]]));
    const r = parseAnnounceResponse(body, 'tracker t');
    assert.equal(r.interval, interval);
    assert.equal(r.minInterval, minInterval ?? undefined);
    const want4 = v4.map((p) => ({ host: p.a.join('.'), port: p.port }));
    const want6 = v6.map((p) => {
      const mapped = p.g.slice(0, 5).every((x) => x === 0) && p.g[5] === 0xffff;
      return { host: mapped ? `${p.g[6]! >> 8}.${p.g[6]! & 255}.${p.g[7]! >> 8}.${p.g[7]! & 255}` : p.g.map((x) => x.toString(16)).join(':'), port: p.port };
    });
    const reaches = (p: { host: string; port: number }) => p.port !== 0 && p.host !== '0.0.0.0' && p.host !== '0:0:0:0:0:0:0:0';
    assert.deepEqual(r.peers, [...want4, ...want6].filter(reaches));
  }));
  const dict = encode(bdict([['interval', 60], ['peers', [bdict([['ip', Buffer.from('10.0.0.1')], ['peer id', Buffer.alloc(20)], ['port', 7]]), bdict([['ip', Buffer.from('evil.example')], ['port', 7]])]]]));
  // A name would have us resolve what the tracker chose: only IP literals are kept.
  assert.deepEqual(parseAnnounceResponse(dict, 't').peers, [{ host: '10.0.0.1', port: 7 }]);
});

test('answers: failure reason is E_HTTP with its text on one line; malformed ones are E_FORMAT; no input throws anything else', () => {
  assert.throws(() => parseAnnounceResponse(encode(bdict([['failure reason', Buffer.from('unregistered torrent\nsecond line')]])), 'tracker t'),
    (e: unknown) => isSourcemeshError(e, 'E_HTTP') && e.message === 'tracker t: the tracker refused: unregistered torrent?second line');
  for (const bad of [
    Buffer.from('not bencode'), encode(bdict([['peers', Buffer.alloc(12)]])), encode(bdict([['interval', 1], ['peers', Buffer.alloc(7)]])),
    encode(bdict([['interval', 1], ['peers6', Buffer.alloc(17)]])), encode(bdict([['interval', -1]])), encode([1]),
  ]) assert.throws(() => parseAnnounceResponse(bad, 't'), (e: unknown) => isSourcemeshError(e, 'E_FORMAT'), bad.toString('latin1'));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
    try {
      parseAnnounceResponse(Buffer.from(b), 't');
    } catch (e) {
      assert.ok(e instanceof SourcemeshError && (e.code === 'E_FORMAT' || e.code === 'E_HTTP'), String(e));
    }
  }));
});

test('answers naming more peers than trackerPeers are refused whole, in any form', () => {
  const n = LIMITS.trackerPeers + 1;
  const many = [
    bdict([['interval', 60], ['peers', Buffer.alloc(6 * n, 1)]]),
    bdict([['interval', 60], ['peers6', Buffer.alloc(18 * n, 1)]]),
    bdict([['interval', 60], ['peers', Buffer.alloc(6 * 100, 1)], ['peers6', Buffer.alloc(18 * 101, 1)]]),
    bdict([['interval', 60], ['peers', Array.from({ length: n }, () => bdict([['ip', Buffer.from('1.2.3.4')], ['port', 1]]))]]),
  ];
  for (const d of many) assert.throws(() => parseAnnounceResponse(encode(d), 't'), (e: unknown) => isSourcemeshError(e, 'E_FORMAT') && /more than 200/.test(e.message));
  // At the bound, taken.
  assert.equal(parseAnnounceResponse(encode(bdict([['interval', 60], ['peers', Buffer.alloc(6 * LIMITS.trackerPeers, 1)]])), 't').peers.length, LIMITS.trackerPeers);
});

test('re-announce delay: the interval asked, never before min interval, within our floor and ceiling; back-off after failures', () => {
  const limits = { trackerIntervalFloorMs: 60_000, trackerIntervalCeilingMs: 7_200_000 };
  fc.assert(fc.property(fc.nat(1e7), fc.option(fc.nat(1e7)), (interval, minInterval) => {
    const d = nextAnnounceDelay({ interval, minInterval: minInterval ?? undefined }, limits);
    assert.ok(d >= limits.trackerIntervalFloorMs && d <= limits.trackerIntervalCeilingMs);
    assert.ok(d >= Math.min(limits.trackerIntervalCeilingMs, (minInterval ?? 0) * 1000), 'min interval respected up to the ceiling');
    if (interval * 1000 >= limits.trackerIntervalFloorMs && interval * 1000 <= limits.trackerIntervalCeilingMs && (minInterval ?? 0) <= interval) assert.equal(d, interval * 1000);
  }));
  fc.assert(fc.property(fc.integer({ min: 1, max: 100 }), (f) => {
    const d = nextAnnounceDelay({ failures: f }, limits);
    assert.ok(d >= limits.trackerIntervalFloorMs && d <= limits.trackerIntervalCeilingMs);
    assert.ok(nextAnnounceDelay({ failures: f + 1 }, limits) >= d);
  }));
});

test('BEP 12 tiers: tier order kept, each tier a shuffle of itself, the tracker that answered first in its tier', () => {
  fc.assert(fc.property(fc.array(fc.uniqueArray(fc.stringMatching(/^[a-z]{1,8}$/).map((h) => `http://${h}/announce`), { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 4 }), fc.integer(), (tiers, seed) => {
    const distinct = tiers.map((t, i) => t.map((u) => `${u}#${i}`));
    let s = seed;
    const random = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
    const t = new TrackerTiers(distinct, random);
    assert.equal(t.tiers.length, distinct.length);
    t.tiers.forEach((tier, i) => assert.deepEqual([...tier].sort(), [...distinct[i]!].sort()));
    assert.deepEqual(t.order(), t.tiers.flat());
    const last = distinct[distinct.length - 1]!;
    const pick = last[last.length - 1]!;
    t.answered(pick);
    assert.equal(t.tiers[t.tiers.length - 1]![0], pick);
  }));
});

// ---- hostile trackers on loopback ------------------------------------------------------------------

async function tracker(t: { after(fn: () => unknown): void }, handler: http.RequestListener): Promise<{ url: string; closed: () => number; requests: () => string[] }> {
  let closed = 0;
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    res.on('close', () => closed++);
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => { server.closeAllConnections(); server.close(r); }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/announce`, closed: () => closed, requests: () => requests };
}

test('hostile trackers: oversized, bad bencoding, endless, dripping and 10,000 bogus peers, each one error naming the tracker', async (t) => {
  const dispatcher = createAgent(LIMITS);
  t.after(() => dispatcher.close());
  const limits = limitsWith({ trackerTimeoutMs: 2_000 });
  const oversized = await tracker(t, (_q, res) => res.end(Buffer.concat([Buffer.from(`d8:intervali60e5:peers${LIMITS.trackerResponseBytes}:`), Buffer.alloc(LIMITS.trackerResponseBytes), Buffer.from('e')])));
  const garbage = await tracker(t, (_q, res) => res.end('d8:intervali60e5:peers5:12345'));
  let endlessSent = 0;
  const endless = await tracker(t, (_q, res) => {
    // As fast as the socket takes it, until we hang up.
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const pump = () => {
      while (!res.destroyed && res.write(chunk)) endlessSent += chunk.length;
      if (!res.destroyed) res.once('drain', pump);
    };
    res.write('d8:intervali60e5:peers999999999:');
    pump();
  });
  const drip = await tracker(t, (_q, res) => {
    res.write('d8:intervali60e');
    const timer = setInterval(() => res.write('5:peers0:'.slice(0, 1)), 200);
    res.on('close', () => clearInterval(timer));
  });
  const bogus = await tracker(t, (_q, res) => res.end(encode(bdict([['interval', 60], ['peers', compact4(Array.from({ length: 10_000 }, (_, i) => ({ a: [127, 0, (i >> 8) & 255, i & 255], port: 9 })))]]))));
  const refusing = await tracker(t, (_q, res) => res.end(encode(bdict([['failure reason', Buffer.from('not a torrent of ours')]]))));

  const cases: [string, string, RegExp][] = [
    [oversized.url, 'E_FORMAT', /more than 262144 bytes/],
    [garbage.url, 'E_FORMAT', /bad bencoding/],
    [endless.url, 'E_FORMAT', /more than 262144 bytes/],
    [drip.url, 'E_NETWORK', /no whole answer within 2 s/],
    [bogus.url, 'E_FORMAT', /10000 peers, more than 200/],
    [refusing.url, 'E_HTTP', /the tracker refused: not a torrent of ours/],
  ];
  for (const [url, code, message] of cases) {
    await assert.rejects(announceTo(url, params(), { dispatcher, limits }), (e: unknown) => {
      assert.ok(isSourcemeshError(e, code as 'E_FORMAT'), `${url}: ${String(e)}`);
      assert.match(e.message, message);
      assert.ok(e.message.startsWith(`tracker ${url}: `), e.message);
      assert.ok(!e.message.includes('\n'));
      return true;
    });
  }
  // The endless body was cut: we hung up after about our bound (socket buffers aside), not after gigabytes.
  await new Promise((r) => setTimeout(r, 0));
  assert.ok(endlessSent < 64 * 1024 * 1024, `${endlessSent} bytes sent`);
  assert.ok(endless.closed() >= 1 && drip.closed() >= 1, 'the endless and dripping answers were hung up on');

  // BEP 12: a tier of hostile trackers, then a good one: the good one answers, every other is one line.
  const good = await tracker(t, (_q, res) => res.end(encode(bdict([['interval', 1800], ['peers', compact4([{ a: [127, 0, 0, 7], port: 6881 }])]]))));
  const tiers = new TrackerTiers([[garbage.url, bogus.url], [refusing.url], [good.url]], () => 0.5);
  const r = await announceTiers(tiers, params(), { dispatcher, limits });
  assert.equal(r.url, good.url);
  assert.deepEqual(r.response?.peers, [{ host: '127.0.0.7', port: 6881 }]);
  assert.deepEqual(r.errors.map((e) => e.code).sort(), ['E_FORMAT', 'E_FORMAT', 'E_HTTP']);
  // The announce it received carried what BEP 3 asks for.
  const got = good.requests()[0]!;
  for (const f of ['info_hash=', 'peer_id=-SM0001-abcdefghijkl', 'port=6881', 'uploaded=1', 'downloaded=2', 'left=3', 'compact=1', 'event=started', 'numwant=50']) assert.ok(got.includes(f), `${f} in ${got}`);
});
