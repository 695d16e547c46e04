// The namespace builder always tears down what it made: a test network's processes and namespaces go
// when the test ends (one that ignores SIGTERM too); its nodes share one segment; a run killed with -9
// (namespaces, a tmpfs mount, its work dir) is swept by the next, and a live run is left alone. Needs root.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { test } from 'node:test';
import { createInterface } from 'node:readline';
import { canMakeNamespaces, makeNetwork, namespaces, RUN_DIR, sweepStale } from './netns.ts';

const CHILD = `
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { Network, workDirOf } from ${JSON.stringify(new URL('./netns.ts', import.meta.url).href)};
const id = process.argv[1];
const net = Network.create(id);
net.add('a');
net.add('b');
const work = workDirOf(id, ${JSON.stringify(os.tmpdir())});
mkdirSync(work + '/disk', { recursive: true });
execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', work + '/disk']);
process.stdout.write('ready\\n');
setInterval(() => {}, 1000);
`;

async function startRun(id: string) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, id], { stdio: ['ignore', 'pipe', 'inherit'] });
  for await (const line of createInterface({ input: child.stdout! })) if (line === 'ready') return child;
  throw new Error('the run did not start');
}

test('a test network: nodes on one segment; its processes and namespaces are gone when the test ends', { skip: canMakeNamespaces(), timeout: 60_000 }, async () => {
  const afters: (() => Promise<void> | void)[] = [];
  const n = makeNetwork({ after: (f) => afters.push(f) }, ['x', 'y', 'z']);
  const ours = namespaces().filter((ns) => ns.startsWith(`sm-${n.net.runId}-`)).sort();
  assert.deepEqual(ours, [`sm-${n.net.runId}-br`, `sm-${n.net.runId}-x`, `sm-${n.net.runId}-y`, `sm-${n.net.runId}-z`]);
  assert.equal(readFileSync(`${RUN_DIR}/${n.net.runId}.pid`, 'utf8').trim(), String(process.pid));
  // x reaches z across the bridge.
  const server = n.spawn(n.nodes.z, process.execPath, ['-e', `require('node:net').createServer((s) => s.end('hi from z')).listen(7000, '${n.nodes.z.address}', () => console.error('listening'))`]);
  await server.waitStderr(/listening/);
  const client = n.spawn(n.nodes.x, process.execPath, ['-e', `require('node:net').connect(7000, '${n.nodes.z.address}').on('data', (d) => process.stdout.write(d))`]);
  assert.equal(await client.exited, 0, client.stderr());
  assert.equal(client.stdout(), 'hi from z');
  // A process that ignores SIGTERM is killed all the same, and so is one started behind the helper's back.
  const stubborn = n.spawn(n.nodes.y, 'sh', ['-c', 'trap "" TERM; echo up >&2; while :; do sleep 1; done']);
  await stubborn.waitStderr(/up/);
  const stray = n.net.spawn('z', ['sleep', '600'], { stdio: 'ignore' });
  const strayEnded = new Promise((r) => stray.once('exit', (_code, signal) => r(signal)));
  for (const f of afters.reverse()) await f();
  assert.equal(stubborn.child.signalCode, 'SIGKILL');
  // Reaped once killed (a zombie still answers kill 0): the test times out if the teardown missed it.
  assert.equal(await strayEnded, 'SIGKILL', 'a process left in a namespace outlived its network');
  assert.deepEqual(namespaces().filter((ns) => ns.startsWith(`sm-${n.net.runId}-`)), []);
  assert.equal(existsSync(`${RUN_DIR}/${n.net.runId}.pid`), false);
});

test('a run killed with -9 is swept by the next; a live run is left alone', { skip: canMakeNamespaces(), timeout: 60_000 }, async () => {
  sweepStale(os.tmpdir()); // what an earlier, interrupted run of this test left
  const dead = await startRun('dead01');
  const live = await startRun('11fe01');
  try {
    const work = `${os.tmpdir()}/sourcemesh-stress-dead01`;
    assert.deepEqual(namespaces().filter((n) => n.includes('dead01')).sort(), ['sm-dead01-a', 'sm-dead01-b', 'sm-dead01-br']);
    dead.kill('SIGKILL');
    await new Promise((r) => dead.once('exit', r));
    const swept = sweepStale(os.tmpdir());
    assert.ok(swept.includes('dead01'));
    assert.ok(!swept.includes('11fe01'));
    assert.deepEqual(namespaces().filter((n) => n.includes('dead01')), []);
    assert.equal(readFileSync('/proc/self/mounts', 'utf8').includes(work), false);
    assert.equal(existsSync(work), false);
    assert.equal(namespaces().filter((n) => n.includes('11fe01')).length, 3);
  } finally {
    live.kill('SIGKILL');
    await new Promise((r) => live.once('exit', r));
    sweepStale(os.tmpdir());
  }
  assert.deepEqual(namespaces().filter((n) => n.includes('11fe01')), []);
});
