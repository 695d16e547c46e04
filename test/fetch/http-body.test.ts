// readBoundedBody against a real loopback server: a body past the limit is refused (and the stream
// destroyed) instead of buffered; one within it comes back whole.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { request } from 'undici';
import { readBoundedBody } from '../../src/fetch/http.ts';
import { bytes } from '../helpers/distfiles.ts';

test('readBoundedBody: a body within the limit whole, one past it refused', async (t) => {
  const body = bytes(3 << 20, 7);
  const server = http.createServer((_req, res) => res.end(body));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

  const whole = await readBoundedBody((await request(url)).body, body.length, () => new Error('too large'));
  assert.ok(whole.equals(body));

  const res = await request(url);
  await assert.rejects(readBoundedBody(res.body, 1 << 20, () => new Error('over 1 MiB')), /over 1 MiB/);
  assert.ok(res.body.destroyed, 'the rest of the body is not read');
});
