// What a service's page says it exposes: the address the running service announced (serve, log and
// witness print a URL, seed prints HOST:PORT), else the configured one, where port 0 is never shown as
// `:0`. Pure code, property-tested; the browser test (test/panel/browser.test.ts) checks the same on a
// real serve.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { bound, SERVICES } from '../../src/node/services.ts';
import { defaultConfig } from '../../src/node/config.ts';

const host = fc.oneof(fc.ipV4(), fc.constantFrom('::1', '::', '2001:db8::7', 'fe80::1'));
const wrap = (h: string) => (h.includes(':') ? `[${h}]` : h);

test('bound: the announced address wins, in both forms the services print', () => {
  fc.assert(fc.property(host, host, fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 1, max: 65535 }), (cfgHost, realHost, cfgPort, realPort) => {
    const addr = `${wrap(realHost)}:${realPort}`;
    assert.equal(bound(cfgHost, cfgPort, addr), addr, 'seed form HOST:PORT');
    const url = new URL(`http://${addr}`);
    // A URL with the scheme's default port has no port in it: then the config's address is what is known.
    const expected = url.port === '' ? (cfgPort === 0 ? undefined : `${wrap(cfgHost)}:${cfgPort}`) : url.host;
    const got = bound(cfgHost, cfgPort, `http://${addr}/`);
    if (expected !== undefined) assert.equal(got, expected, 'URL form');
  }));
});

test('bound: without an announced address, the configured one; port 0 in words, never ":0"', () => {
  fc.assert(fc.property(host, fc.integer({ min: 0, max: 65535 }), fc.option(fc.constantFrom('', 'not an address', 'listening', 'http://'), { nil: undefined }), (h, port, junk) => {
    const got = bound(h, port, junk);
    if (port === 0) {
      assert.doesNotMatch(got, /:0\b/);
      assert.ok(got.startsWith(wrap(h)) && got.includes('port 0'), got);
    } else assert.equal(got, `${wrap(h)}:${port}`);
  }));
});

test('every service page says the announced port, not the configured 0', () => {
  const c = defaultConfig('n');
  for (const s of ['serve', 'seed', 'logServe', 'witnessServe'] as const) (c.services[s] as { port: number }).port = 0;
  assert.match(SERVICES.serve.exposes(c, 'http://127.0.0.1:41234'), /HTTP on 127\.0\.0\.1:41234:/);
  assert.match(SERVICES.seed.exposes(c, '127.0.0.1:41235'), /peer wire on 127\.0\.0\.1:41235:/);
  assert.match(SERVICES.logServe.exposes(c, 'http://[::1]:41236'), /HTTP on \[::1\]:41236:/);
  assert.match(SERVICES.witnessServe.exposes(c, 'http://127.0.0.1:41237/'), /HTTP on 127\.0\.0\.1:41237:/);
  for (const s of ['serve', 'seed', 'logServe', 'witnessServe'] as const) assert.doesNotMatch(SERVICES[s].exposes(c), /:0\b/, s);
});
