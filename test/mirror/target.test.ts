// The pure parts of `serve`'s front door: request targets and --listen (client keys and the rate limiter: test/net/rate-limit.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseListen } from '../../src/cli/listen.ts';
import { parseTarget } from '../../src/mirror/server.ts';

const HEX = 'e207c0bb72093c3a72dde302fcfaa1dbda12a62172d47b73565883a92209ebab';

test('request targets: names, digests, piece layers and the inventory', () => {
  const t = (s: string) => parseTarget(s, 2048);
  assert.deepEqual(t('/bash-2.05b.tar.gz'), { kind: 'name', name: 'bash-2.05b.tar.gz' });
  assert.deepEqual(t('/bash-2.05b.tar.gz?x=1'), { kind: 'name', name: 'bash-2.05b.tar.gz' });
  assert.deepEqual(t('/a%20b%2B%C3%A9.tar'), { kind: 'name', name: 'a b+é.tar' });
  assert.deepEqual(t('http://mirror.example/zlib.tar.gz'), { kind: 'name', name: 'zlib.tar.gz' });
  assert.deepEqual(t(`/sha256/${HEX}`), { kind: 'sha256', hex: HEX });
  assert.deepEqual(t(`/sha256/${HEX}.pieces`), { kind: 'pieces', hex: HEX });
  assert.deepEqual(t('/.well-known/sourcemesh/inventory'), { kind: 'inventory' });
});

test('request targets: traversal, encoded separators, control bytes and hidden names are refused', () => {
  const status = (s: string) => {
    const r = parseTarget(s, 2048);
    return r.kind === 'refused' ? r.status : r.kind;
  };
  for (const bad of ['/../etc/passwd', '/%2e%2e/etc/passwd', '/%2E%2E', '/.', '/a/..', '/%2F..', '/..%2Fetc%2Fpasswd', '/a%2fb', '/a%5cb', '/a\\b',
    '/a%00b', '/%0a', '/a%', '/a%zz', '/%C3', '/%FF', '*', 'etc/passwd', 'mirror.example:80', `/${'a'.repeat(3000)}`, '/a b', '/é']) {
    assert.equal(status(bad), 400, bad);
  }
  for (const missing of ['/', '//etc/passwd', '/.sourcemesh/node.key', '/.sourcemesh', '/.hidden', '/a/', '/sha256/', `/sha256/${HEX.toUpperCase()}`,
    '/sha256/abc', '/etc/passwd', '/.well-known/sourcemesh', '/.well-known/sourcemesh/inventory/x', `/${'a'.repeat(256)}`]) {
    assert.equal(status(missing), 404, missing);
  }
});

test('request target property: whatever is asked, a served name is a plain visible file name', () => {
  fc.assert(fc.property(fc.string({ unit: fc.constantFrom('/', '.', '%', '2', 'e', 'E', 'f', 'F', '5', 'c', 'a', '\\', '0', 'x') , maxLength: 24 }), (s) => {
    const r = parseTarget(`/${s}`, 2048);
    if (r.kind !== 'name') return true;
    return !r.name.includes('/') && !r.name.includes('\\') && !r.name.startsWith('.') && !r.name.includes('\u0000');
  }), { numRuns: 5000 });
});

test('--listen: addresses, [IPv6]:port, interface names; bad values are usage errors', () => {
  const ifaces = { br0: [{ address: '192.168.122.1', family: 'IPv4' }], v6only: [{ address: 'fe80::1', family: 'IPv6', scopeid: 3 }] } as any;
  assert.deepEqual(parseListen('127.0.0.1:8080', ifaces), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseListen('[::1]:0', ifaces), { host: '::1', port: 0 });
  assert.deepEqual(parseListen('br0:8080', ifaces), { host: '192.168.122.1', port: 8080 });
  assert.deepEqual(parseListen('v6only:80', ifaces), { host: 'fe80::1%v6only', port: 80 });
  assert.deepEqual(parseListen('localhost:80', ifaces), { host: 'localhost', port: 80 });
  for (const bad of ['8080', '127.0.0.1', '127.0.0.1:99999', ':80', '[nothex]:80', '::1:80', 'a b:80']) {
    assert.throws(() => parseListen(bad, ifaces), { code: 'E_USAGE' }, bad);
  }
});
