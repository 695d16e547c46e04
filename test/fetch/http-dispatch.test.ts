// openHttp's body taken from undici's dispatch handler (src/fetch/http-body.ts), against real loopback
// servers: a sink's promise holds the parser (the server is pushed back, no chunk is delivered while it
// waits), a sink's error or an abort closes the connection, and iterating consumers still work.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { createAgent, openHttp, readBoundedBody } from '../../src/fetch/http.ts';
import { pipeBody } from '../../src/fetch/transport.ts';
import { LIMITS } from '../../src/limits.ts';
import { bytes } from '../helpers/distfiles.ts';

const SIZE = 32 << 20;

interface Served {
  url: string;
  /** Resolves when the server's socket refused more (write() returned false: the client stopped reading). */
  pushedBack: Promise<void>;
  /** Resolves when the client closed the connection. */
  closed: Promise<void>;
  sent: () => number;
}

/** One body of SIZE bytes in 1 MiB writes, honouring backpressure. */
async function serve(t: TestContext, body: Buffer): Promise<Served> {
  let sent = 0;
  let pushedBack!: () => void;
  let closed!: () => void;
  const served = { pushedBack: new Promise<void>((r) => (pushedBack = r)), closed: new Promise<void>((r) => (closed = r)) };
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-length': body.length });
    res.on('close', () => closed());
    const more = () => {
      while (sent < body.length && !res.destroyed) {
        const ok = res.write(body.subarray(sent, sent + (1 << 20)));
        sent = Math.min(sent + (1 << 20), body.length);
        if (!ok) {
          pushedBack();
          return void res.once('drain', more);
        }
      }
      if (sent >= body.length) res.end();
    };
    more();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/f`, ...served, sent: () => sent };
}

test('a sink that waits holds the body: no chunk while its promise is pending, the server pushed back; then the whole body', async (t) => {
  const body = bytes(SIZE, 3);
  const s = await serve(t, body);
  const dispatcher = createAgent(LIMITS);
  t.after(() => dispatcher.close());
  const opened = await openHttp(s.url, { offset: 0, dispatcher, limits: LIMITS });
  assert.ok(opened.pipe, 'HTTP bodies are piped from the dispatch handler');
  const parts: Buffer[] = [];
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let callsWhileHeld = 0;
  let holding = true;
  const done = pipeBody(opened, (chunk) => {
    parts.push(Buffer.from(chunk));
    if (parts.length === 1) return held; // the first chunk makes the body wait
    if (holding) callsWhileHeld++;
  });
  // Server and client share this event loop: a client that kept reading would get chunks in the poll
  // phase of these turns (the server keeps writing), so after them the sink must still have one chunk.
  await s.pushedBack;
  for (let turn = 0; turn < 50 && parts.length === 1; turn++) await new Promise((r) => setImmediate(r));
  assert.ok(s.sent() < SIZE, `the server sent ${s.sent()} of ${SIZE} bytes while the sink waited`);
  assert.equal(parts.length, 1, 'no chunk reached the sink while its promise was pending');
  holding = false;
  release();
  await done;
  assert.equal(callsWhileHeld, 0);
  assert.ok(Buffer.concat(parts).equals(body), 'every byte, in order');
});

test('a sink that throws: pipe rejects with its error and the connection is closed before the body is sent', async (t) => {
  const s = await serve(t, bytes(SIZE, 4));
  const dispatcher = createAgent(LIMITS);
  t.after(() => dispatcher.close());
  const opened = await openHttp(s.url, { offset: 0, dispatcher, limits: LIMITS });
  let got = 0;
  await assert.rejects(pipeBody(opened, (chunk) => {
    got += chunk.length;
    if (got > 1 << 20) throw new Error('too much');
  }), /too much/);
  await s.closed;
  assert.ok(s.sent() < SIZE, `the server sent ${s.sent()} of ${SIZE} bytes`);
});

test('an abort mid-body rejects the pipe with an AbortError and closes the connection', async (t) => {
  const s = await serve(t, bytes(SIZE, 5));
  const dispatcher = createAgent(LIMITS);
  t.after(() => dispatcher.close());
  const abort = new AbortController();
  const opened = await openHttp(s.url, { offset: 0, dispatcher, limits: LIMITS, signal: abort.signal });
  let got = 0;
  const err = await pipeBody(opened, (chunk) => {
    got += chunk.length;
    if (got > 1 << 20 && !abort.signal.aborted) abort.abort();
  }).then(() => undefined, (e: unknown) => e);
  assert.equal((err as Error | undefined)?.name, 'AbortError', String(err));
  await s.closed;
  assert.ok(s.sent() < SIZE);
});

test('iterating consumers: the whole body in order; readBoundedBody past its bound cancels the body', async (t) => {
  const body = bytes(SIZE, 6);
  const s = await serve(t, body);
  const dispatcher = createAgent(LIMITS);
  t.after(() => dispatcher.close());
  const parts: Buffer[] = [];
  for await (const chunk of (await openHttp(s.url, { offset: 0, dispatcher, limits: LIMITS })).body) parts.push(Buffer.from(chunk));
  assert.ok(Buffer.concat(parts).equals(body));

  const s2 = await serve(t, body);
  const opened = await openHttp(s2.url, { offset: 0, dispatcher, limits: LIMITS });
  await assert.rejects(readBoundedBody(opened.body as Parameters<typeof readBoundedBody>[0], 1 << 20, () => new Error('over 1 MiB')), /over 1 MiB/);
  await s2.closed;
  assert.ok(s2.sent() < SIZE);
});
