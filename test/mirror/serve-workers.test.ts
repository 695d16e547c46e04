// `serve --workers N`: one address served by N processes, each client address by one of them, so the
// per-address limits (connections, rate) hold across workers, not N times over. Real processes, real
// sockets from several loopback addresses, `ss` to see which process holds which connection.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { LIMITS } from '../../src/limits.ts';
import { keyHash, pickWorker, workerLimits } from '../../src/mirror/serve-workers.ts';
import { runCli, tempDir, waitFor } from '../helpers/run.ts';
import { startServe } from './serve-process.ts';

test('pickWorker: a client stays on its worker while it is up, never goes to one that is down; round robin visits every worker', () => {
  fc.assert(fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), fc.string(), fc.nat(), (up, key, last) => {
    const w = pickWorker(key, up, true, last);
    if (!up.some(Boolean)) return w === undefined;
    assert.ok(w !== undefined && up[w]);
    if (up[keyHash(key) % up.length]) assert.equal(w, keyHash(key) % up.length);
    assert.equal(pickWorker(key, up, true, last + 1), w, 'affinity ignores the turn');
    return true;
  }));
  const up = [true, false, true, true];
  const seen: number[] = [];
  let last = -1;
  for (let i = 0; i < 6; i++) seen.push((last = pickWorker('x', up, false, last)!));
  assert.deepEqual(seen, [0, 2, 3, 0, 2, 3]);
});

test('workerLimits: the server-wide limits split, the per-client ones kept', () => {
  fc.assert(fc.property(fc.integer({ min: 2, max: 64 }), fc.integer({ min: 1, max: 100_000 }), (n, max) => {
    const w = workerLimits(LIMITS, n, max);
    assert.ok(w.maxConnections * n <= Math.max(max, n));
    assert.ok(w.limits.serveBufferBytes * n <= Math.max(LIMITS.serveBufferBytes, n * (LIMITS.serveStreamBufferBytes + LIMITS.serveSmallBufferBytes)));
    assert.ok(w.limits.serveCacheBytes * n <= Math.max(LIMITS.serveCacheBytes, n * LIMITS.serveCachedFileBytes));
    assert.equal(w.limits.serveClientConnections, LIMITS.serveClientConnections);
    assert.equal(w.limits.serveClientBufferBytes, LIMITS.serveClientBufferBytes);
  }));
});

/** A keep-alive connection from `from` that has had one request answered; `status` of that answer, or 0 if the server closed it. */
async function connection(url: string, from: string, target = '/a.txt'): Promise<{ socket: net.Socket; status: number }> {
  const u = new URL(url);
  const socket = net.connect({ host: u.hostname, port: Number(u.port), localAddress: from });
  socket.on('error', () => undefined);
  const status = await new Promise<number>((resolve) => {
    let got = '';
    socket.on('data', (d) => {
      got += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(got);
      if (m && got.includes('\r\n\r\n')) resolve(Number(m[1]));
    });
    socket.on('close', () => resolve(0));
    socket.write(`GET ${target} HTTP/1.1\r\nHost: t\r\n\r\n`);
  });
  return { socket, status };
}

/** The pid of the process holding each established connection to `port` whose client port is in `ports`. */
function holders(port: number, clientPorts: number[]): number[] {
  const r = spawnSync('ss', ['-tnpH', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return clientPorts.map((cp) => {
    const line = r.stdout.split('\n').find((l) => l.includes(`:${cp} `) || l.trimEnd().endsWith(`:${cp}`) || new RegExp(`:${cp}\\s`).test(l));
    return Number(/pid=(\d+)/.exec(line ?? '')?.[1]);
  });
}

async function root(t: any) {
  const dir = await tempDir(t);
  const r = path.join(dir, 'root');
  await (await import('node:fs/promises')).mkdir(r);
  await writeFile(path.join(r, 'a.txt'), 'hello\n');
  return r;
}

test('--workers 2: each client address on one worker; the per-client connection cap holds across workers', async (t) => {
  const served = await startServe(t, ['--root', await root(t), '--workers', '2', '--max-connections-per-client', '3', '--no-access-log']);
  const pids = served.first.pids as number[];
  assert.equal(pids.length, 2);
  const port = Number(new URL(served.url).port);
  const open: net.Socket[] = [];
  t.after(() => open.forEach((s) => s.destroy()));
  // Four addresses, three connections each: every address's connections are held by one process.
  const where = new Map<string, Set<number>>();
  for (const from of ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']) {
    const conns = [];
    for (let i = 0; i < 3; i++) conns.push(await connection(served.url, from));
    assert.deepEqual(conns.map((c) => c.status), [200, 200, 200], from);
    open.push(...conns.map((c) => c.socket));
    where.set(from, new Set(holders(port, conns.map((c) => c.socket.localPort!))));
  }
  for (const [from, set] of where) {
    assert.equal(set.size, 1, `${from}: held by ${[...set]}`);
    assert.ok(pids.includes([...set][0]!), `${from}: a worker holds it`);
  }
  // The fourth connection of an address is refused, whichever worker would otherwise have had room.
  const fourth = await connection(served.url, '127.0.0.2');
  assert.equal(fourth.status, 0, 'closed at accept');
  // Other addresses are not affected.
  const other = await connection(served.url, '127.0.0.9');
  assert.equal(other.status, 200);
  open.push(other.socket);
  assert.equal((await served.stop()).code, 0);
});

test('--workers 2: the request rate of one address is one bucket across workers', async (t) => {
  const served = await startServe(t, ['--root', await root(t), '--workers', '2', '--rate', '1', '--burst', '4', '--no-access-log']);
  // Twelve requests on twelve connections in quick succession: at most the burst and what a second refills.
  const t0 = Date.now();
  const statuses: number[] = [];
  for (let i = 0; i < 12; i++) {
    const c = await connection(served.url, '127.0.0.7');
    statuses.push(c.status);
    c.socket.destroy();
  }
  const seconds = (Date.now() - t0) / 1000;
  const ok = statuses.filter((s) => s === 200).length;
  assert.ok(ok >= 4, statuses.join(' '));
  assert.ok(ok <= 4 + Math.ceil(seconds) + 1, `${ok} allowed in ${seconds} s: ${statuses.join(' ')}`);
  assert.ok(statuses.includes(429));
});

test('--workers 2 without per-client limits: connections spread over both workers; a worker killed is started again; the pool killed takes its workers', async (t) => {
  const served = await startServe(t, ['--root', await root(t), '--workers', '2', '--max-connections-per-client', '0', '--rate', '0', '--no-access-log']);
  const pids = served.first.pids as number[];
  const port = Number(new URL(served.url).port);
  const conns: Awaited<ReturnType<typeof connection>>[] = [];
  for (let i = 0; i < 4; i++) conns.push(await connection(served.url, '127.0.0.1'));
  t.after(() => conns.forEach((c) => c.socket.destroy()));
  assert.ok(conns.every((c) => c.status === 200));
  assert.deepEqual(new Set(holders(port, conns.map((c) => c.socket.localPort!))), new Set(pids), 'both workers hold connections');

  process.kill(pids[0]!, 'SIGKILL');
  await waitFor('the pool to answer with one worker', async () => (await connection(served.url, '127.0.0.1')).status === 200);
  const count = () => spawnSync('pgrep', ['-P', String(served.child.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).map(Number);
  await waitFor('the killed worker started again', () => count().length === 2 && !count().includes(pids[0]!), { timeoutMs: 20_000 });
  const workers = count();
  served.child.kill('SIGKILL');
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  await waitFor('the workers to end with their pool', () => !workers.some(alive), { timeoutMs: 20_000 });
});

test('bad --workers values, and --announce with --workers on a loopback address (the pool announces; nobody could reach it), are refused in one line, exit 2', async (t) => {
  const r = await root(t);
  for (const args of [['--workers', '0'], ['--workers', 'two'], ['--workers', '2', '--announce']]) {
    const out = await runCli(['serve', '--root', r, '--listen', '127.0.0.1:0', ...args]);
    assert.equal(out.code, 2, `${args.join(' ')}: ${out.stderr}`);
    assert.equal(out.stderr.trim().split('\n').length, 1, out.stderr);
  }
});
