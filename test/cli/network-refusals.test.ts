// fetch refuses, before anything starts, what would go around --tor/--proxy or touch the network under
// --offline (src/cli/network-refusals.ts): the property over every combination of the flags; the CLI's
// refusals end to end are in test/time/tor-mirror-list.test.ts and test/fetch/fetch.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { offlineRefusal, proxyRefusal } from '../../src/cli/network-refusals.ts';

const flags = fc.record({
  proxy: fc.option(fc.constant('socks5h://127.0.0.1:9050'), { nil: undefined }),
  tor: fc.option(fc.boolean(), { nil: undefined }),
  mirrorList: fc.array(fc.oneof(fc.constant('https://example.org/list.json'), fc.constant('list.json'), fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => `dht:${Buffer.from(b).toString('hex')}?salt=x`))),
  discover: fc.option(fc.oneof(fc.constant(true as const), fc.constant('3')), { nil: undefined }),
  bittorrent: fc.option(fc.boolean(), { nil: undefined }),
  dhtBootstrap: fc.array(fc.constant('127.0.0.1:6881'), { maxLength: 2 }),
});

test('refused exactly when a proxy is in use and a UDP, LAN or peer-wire feature is asked for; one line naming the option', () => {
  fc.assert(fc.property(flags, (o) => {
    const proxied = Boolean(o.tor) || o.proxy !== undefined;
    const direct = o.mirrorList.some((l) => l.startsWith('dht:')) || o.discover !== undefined || Boolean(o.bittorrent) || o.dhtBootstrap.length > 0;
    const why = proxyRefusal(o);
    assert.equal(why !== undefined, proxied && direct, JSON.stringify(o));
    if (why === undefined) return;
    assert.ok(!why.includes('\n'));
    assert.match(why, /^--(mirror-list dht:|discover|bittorrent|dht-bootstrap)/);
    assert.ok(why.includes(o.tor ? '--tor' : '--proxy'));
  }), { numRuns: 2000 });
});

test('--offline refuses exactly what touches the network: a list by URL or from the DHT, --discover, --bittorrent, --dht-bootstrap', () => {
  fc.assert(fc.property(flags, fc.option(fc.boolean(), { nil: undefined }), (o, offline) => {
    const networked = o.mirrorList.some((l) => l.startsWith('dht:') || l.startsWith('https:')) || o.discover !== undefined || Boolean(o.bittorrent) || o.dhtBootstrap.length > 0;
    const why = offlineRefusal({ ...o, offline });
    assert.equal(why !== undefined, Boolean(offline) && networked, JSON.stringify({ ...o, offline }));
    if (why === undefined) return;
    assert.ok(!why.includes('\n'));
    assert.match(why, /^--(mirror-list (dht:|https:)|discover|bittorrent|dht-bootstrap)/);
    assert.ok(why.includes('--offline'));
  }), { numRuns: 2000 });
});
