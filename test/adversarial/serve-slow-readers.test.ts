// Issue 11, break 3: clients that hold connections and buffers must not lock everyone else out of
// `serve`. Attackers and honest clients come from different loopback addresses; the server runs as the
// CLI child an operator starts, and its memory is read from /proc.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bytes, sha256 } from '../helpers/distfiles.ts';
import { tempDir } from '../helpers/run.ts';
import { startServe } from '../mirror/serve-process.ts';
import { download, drain, MiB, pacedReader, rssOf, stalledReaders, until, type Stalled } from './serve-clients.ts';

// Larger than what the kernel takes for a client that does not read (about 4 MB on loopback), so the
// rest of each response waits in the server's own buffers.
const BIG = bytes(8 * MiB, 11);
const BIG_SHA = sha256(BIG);

async function mirror(t: any): Promise<string> {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, 'big.bin'), BIG);
  await writeFile(path.join(dir, 'small.txt'), 'small\n');
  return dir;
}

const portOf = (url: string) => Number(new URL(url).port);
const closeAll = (s: Stalled[]) => {
  for (const x of s) x.socket.destroy();
};

test('140 connections from one address that never read cannot lock another client out of a large download', async (t) => {
  const root = await mirror(t);
  // The per-address connection cap is lifted, so what is tested is the per-address bound on buffers.
  const server = await startServe(t, ['--root', root, '--no-access-log', '--max-connections-per-client', '1000']);
  const port = portOf(server.url);
  const attack = await stalledReaders(port, '127.0.0.2', '/big.bin', 140);
  t.after(() => closeAll(attack));
  assert.ok(attack.filter((s) => s.started).length > 0, 'the attack holds responses');
  const d = await download(port, '127.0.0.3', '/big.bin', 20_000);
  assert.equal(d.status, 200);
  assert.equal(d.sha256, BIG_SHA);
  // Another client on the attacker's own address may wait; a client elsewhere must not.
  assert.ok(d.ms < 20_000, `${d.ms} ms`);
});

test('slow readers on many addresses: others still download, and the memory is given back after', async (t) => {
  const root = await mirror(t);
  const server = await startServe(t, ['--root', root, '--no-access-log']);
  const port = portOf(server.url);
  const pid = server.child.pid!;
  // Warm up (JIT, the open file), then the baseline.
  assert.equal((await download(port, '127.0.0.3', '/big.bin', 20_000)).sha256, BIG_SHA);
  const baseline = rssOf(pid);
  const attack: Stalled[] = [];
  t.after(() => closeAll(attack));
  // 36 addresses x 8 connections: 288 responses, more than the 256 MiB of 1 MiB buffers can serve two each.
  const waves = await Promise.all(Array.from({ length: 36 }, (_, i) => stalledReaders(port, `127.0.1.${i + 1}`, '/big.bin', 8)));
  for (const w of waves) attack.push(...w);
  const peak = rssOf(pid);
  const d = await download(port, '127.0.0.3', '/big.bin', 20_000);
  assert.equal(d.sha256, BIG_SHA, 'the honest client got the whole file while the pool was under attack');
  closeAll(attack);
  // Memory taken for the attack is returned: within 48 MiB of the baseline, in bounded time.
  const back = await until(() => rssOf(pid) < baseline + 48 * MiB, 30_000, 250);
  assert.ok(back, `RSS ${(baseline / MiB).toFixed(0)} MiB before, ${(peak / MiB).toFixed(0)} MiB during, ${(rssOf(pid) / MiB).toFixed(0)} MiB 30 s after`);
  // And the server still serves.
  assert.equal((await download(port, '127.0.0.4', '/big.bin', 20_000)).sha256, BIG_SHA);
});

test('per-address connection cap: 1,100 idle sockets from one address leave room for everyone else', async (t) => {
  const root = await mirror(t);
  const server = await startServe(t, ['--root', root, '--no-access-log']);
  const port = portOf(server.url);
  const sockets: { closed: boolean; socket: import('node:net').Socket }[] = [];
  t.after(() => {
    for (const s of sockets) s.socket.destroy();
  });
  const net = await import('node:net');
  await Promise.all(Array.from({ length: 1100 }, () => new Promise<void>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.5' });
    const s = { closed: false, socket };
    sockets.push(s);
    socket.on('error', () => {});
    socket.on('data', () => {});
    socket.once('connect', () => resolve());
    socket.once('close', () => {
      s.closed = true;
      resolve();
    });
  })));
  // Well before the 10 s head timeout would have freed anything.
  const d = await download(port, '127.0.0.6', '/small.txt', 3000);
  assert.equal(d.status, 200);
  const capped = await until(() => sockets.filter((s) => !s.closed).length <= 64, 5000);
  assert.ok(capped, `${sockets.filter((s) => !s.closed).length} of the attacker's connections still open`);
  assert.ok(sockets.filter((s) => !s.closed).length > 0, 'the attacker may keep its share');
});

test('idle keep-alive connections do not starve a new client at --max-connections', async (t) => {
  const root = await mirror(t);
  const server = await startServe(t, ['--root', root, '--no-access-log', '--max-connections', '20']);
  const port = portOf(server.url);
  const http = await import('node:http');
  const agents: import('node:http').Agent[] = [];
  t.after(() => {
    for (const a of agents) a.destroy();
  });
  // 20 clients, each with one keep-alive connection left idle after its request.
  for (let i = 0; i < 20; i++) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: `127.0.2.${i + 1}` } as import('node:http').AgentOptions);
    agents.push(agent);
    const status = await new Promise<number>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/small.txt', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      }).on('error', reject);
    });
    assert.equal(status, 200);
  }
  const d = await download(port, '127.0.0.7', '/small.txt', 3000);
  assert.equal(d.status, 200, 'served, an idle connection made room');
});

test('send timeout: a response that makes no progress is cut, a slow reader that keeps reading is not', async (t) => {
  const root = await mirror(t);
  // Larger than what 7 s at 1 MiB/s and the kernel's buffers on both sides (about 4 MB of send buffer)
  // take, so the slow reader's response is still being sent when the reader stops pacing.
  const slowFile = randomBytes(32 * MiB);
  await writeFile(path.join(root, 'slow.bin'), slowFile);
  const server = await startServe(t, ['--root', root, '--no-access-log', '--send-timeout', '4s']);
  const port = portOf(server.url);
  const [stalled] = await stalledReaders(port, '127.0.0.8', '/big.bin', 1);
  t.after(() => stalled!.socket.destroy());
  assert.ok(stalled!.started);
  // 1 MiB/s for 7 s, well past the 4 s timeout: the kernel takes the server's bytes in steps of about a
  // third of its send buffer (about 1.3 MB), each within the timeout. Then the rest as fast as it comes:
  // only a response that was never cut arrives whole.
  const slow = pacedReader(port, '127.0.0.9', '/slow.bin', MiB, 7000);
  const got = await until(() => stalled!.closed, 8000);
  // What the kernel's buffers still held, then the end: a response that was cut ends short of the file
  // (one that was sent whole ends too, after the idle keep-alive timeout, but with every byte).
  const rest = await drain(stalled!.socket, 8000);
  assert.ok(got || rest.closed, 'the stalled response was cut');
  const total = stalled!.bytes + rest.bytes; // the head included
  assert.ok(total < BIG.length, `the stalled client got ${total} bytes: not the whole file`);
  const s = await slow;
  t.diagnostic(`slow reader: ${s.paced} bytes while pacing, ${s.body} in all, cut: ${s.cut}; stalled client: ${total} bytes`);
  assert.equal(s.status, 200);
  assert.ok(s.paced > 2 * MiB, `the slow reader kept reading: ${s.paced} bytes while pacing`);
  assert.ok(s.paced < slowFile.length - 8 * MiB, `still being sent when pacing stopped: ${s.paced} of ${slowFile.length} bytes read`);
  assert.equal(s.cut, false, `the slow reader was cut after ${s.body} of ${slowFile.length} bytes`);
  assert.equal(s.body, slowFile.length);
});
