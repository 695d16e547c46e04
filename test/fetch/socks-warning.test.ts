// undici's "SOCKS5 proxy support is experimental" warning is dropped while a SOCKS5 agent is made
// (src/fetch/network.ts), and nothing else is: other warnings, the same text under another type, and the
// same warning outside that moment all still reach process 'warning' listeners. That the CLI under --tor
// prints no such line (undici's text still matching ours) is checked in test/time/tor.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SOCKS_EXPERIMENTAL_WARNING, withoutSocksWarning } from '../../src/fetch/network.ts';

test('only the SOCKS5 experimental warning is dropped, and only while an agent is made', async () => {
  const seen: string[] = [];
  const listen = (w: Error) => seen.push(`${w.name}: ${w.message}`);
  process.on('warning', listen);
  try {
    const made = withoutSocksWarning(() => {
      process.emitWarning(SOCKS_EXPERIMENTAL_WARNING, 'ExperimentalWarning');
      process.emitWarning(SOCKS_EXPERIMENTAL_WARNING, { type: 'ExperimentalWarning' });
      process.emitWarning(SOCKS_EXPERIMENTAL_WARNING, 'DeprecationWarning');
      process.emitWarning('another experiment', 'ExperimentalWarning');
      process.emitWarning(SOCKS_EXPERIMENTAL_WARNING);
      return 42;
    });
    assert.equal(made, 42);
    assert.throws(() => withoutSocksWarning(() => { throw new Error('made nothing'); }), /made nothing/);
    process.emitWarning(SOCKS_EXPERIMENTAL_WARNING, 'ExperimentalWarning');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(seen, [
      `DeprecationWarning: ${SOCKS_EXPERIMENTAL_WARNING}`,
      'ExperimentalWarning: another experiment',
      `Warning: ${SOCKS_EXPERIMENTAL_WARNING}`,
      `ExperimentalWarning: ${SOCKS_EXPERIMENTAL_WARNING}`,
    ]);
  } finally {
    process.off('warning', listen);
  }
});
