// serve takes a burst of new connections in few event-loop turns (issue 21: bench:serve's p99 at 128
// connections). libuv accepts one connection per listening socket and turn, and a turn that serves
// many large responses takes milliseconds, so serve listens on limits.serveAcceptSockets sockets
// (SO_REUSEPORT). Here 48 connections complete their handshakes while the server's loop is held, then
// the turns until the server has them all are counted: with one socket it takes one turn each.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { LIMITS } from '../../src/limits.ts';
import { resolveNodeKey } from '../../src/mirror/inventory.ts';
import { MirrorServer } from '../../src/mirror/server.ts';
import { clientKey } from '../../src/net/rate-limit.ts';

async function startServer(root: string, port = 0): Promise<MirrorServer> {
  const { key, file } = await resolveNodeKey(path.join(root, '.sourcemesh'), undefined, 'accept.test');
  return MirrorServer.start({
    source: { kind: 'root', root }, key, keyFile: file, host: '127.0.0.1', port, rate: { perSecond: 0, burst: 1 }, maxConnections: 256, limits: LIMITS,
  });
}

/** A child that opens `n` connections to `port`, writes `ready` once all are established, and holds them until killed. */
const CONNECTOR = `
const net = require('node:net'); const fs = require('node:fs');
const [port, n, ready] = process.argv.slice(1); let up = 0; const held = [];
for (let i = 0; i < Number(n); i++) {
  const s = net.connect(Number(port), '127.0.0.1', () => { if (++up === Number(n)) fs.writeFileSync(ready, 'ok'); });
  s.on('error', (e) => { console.error(e.message); process.exit(1); });
  held.push(s);
}
setInterval(() => {}, 1000);
`;

test('serve: 48 connections waiting in the kernel are accepted in at most 24 event-loop turns', async (t) => {
  assert.ok(LIMITS.serveAcceptSockets >= 4, 'the test is about several accepting sockets');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'serve-accept-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'a.bin'), 'a');
  const server = await startServer(dir);
  t.after(() => server.close(0));
  const n = 48;
  const ready = path.join(dir, 'ready');
  const child = spawn(process.execPath, ['-e', CONNECTOR, String(server.address.port), String(n), ready], { stdio: ['ignore', 'ignore', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  // Hold the loop (as a busy turn does) until every handshake has completed: all 48 wait to be accepted.
  const deadline = performance.now() + 20_000;
  while (!existsSync(ready)) assert.ok(performance.now() < deadline, 'the connector did not connect in 20 s');
  const me = clientKey('127.0.0.1');
  assert.equal(server.connectionsOf(me), 0);
  let turns = 0;
  await new Promise<void>((resolve) => {
    const turn = () => {
      turns++;
      if (server.connectionsOf(me) >= n || turns > 10 * n) resolve();
      else setImmediate(turn);
    };
    setImmediate(turn);
  });
  assert.equal(server.connectionsOf(me), n);
  t.diagnostic(`${n} connections accepted in ${turns} turns`);
  assert.ok(turns <= n / 2, `${n} waiting connections took ${turns} turns to accept (one socket takes one per turn)`);
});

test('serve: a port in use fails to listen, even by another serve, and is free again after close', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'serve-accept-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const first = await startServer(dir);
  let closed = false;
  t.after(() => (closed ? undefined : first.close(0)));
  const port = first.address.port;
  // A second serve on the same port must not share it silently (SO_REUSEPORT would let it).
  await assert.rejects(startServer(dir, port), /cannot listen on 127\.0\.0\.1:\d+/);
  // Nor may a plain listener take it.
  const plain = net.createServer();
  await assert.rejects(new Promise<void>((resolve, reject) => {
    plain.once('error', reject);
    plain.listen({ host: '127.0.0.1', port }, () => resolve());
  }), { code: 'EADDRINUSE' });
  assert.equal((await fetch(`${first.url}/.well-known/sourcemesh/inventory`)).status, 200);
  await first.close(1000);
  closed = true;
  // Every accepting socket is closed: the port can be bound alone again.
  await new Promise<void>((resolve, reject) => {
    plain.once('error', reject);
    plain.listen({ host: '127.0.0.1', port }, () => resolve());
  });
  await new Promise<void>((resolve) => plain.close(() => resolve()));
});
