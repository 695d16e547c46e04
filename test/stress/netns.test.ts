// The stress network is always torn down: a harness killed with -9 leaves namespaces, a tmpfs mount and a
// work directory; the next run's sweep removes them (and leaves a live run's alone). Needs root.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { test } from 'node:test';
import { createInterface } from 'node:readline';
import { namespaces, sweepStale } from './netns.ts';

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

test('a run killed with -9 is swept by the next; a live run is left alone', { timeout: 60_000 }, async () => {
  assert.equal(process.getuid?.(), 0, 'network namespaces need root');
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
