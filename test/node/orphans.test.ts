// No service outlives `node run`: the supervisor killed with SIGKILL (no chance to stop anything), every
// process it started, and theirs, ends on its own within a bounded time (src/node/supervised.ts).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { MANIFEST_FORMAT } from '../../src/manifest/distfile.ts';
import { tempDir, waitFor } from '../helpers/run.ts';
import { makeNode, startNode } from './node-process.ts';

/** pid -> [parent pid, state] of every process, from /proc. */
function processes(): Map<number, { ppid: number; state: string }> {
  const m = new Map<number, { ppid: number; state: string }>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses; the last ')' ends it.
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      m.set(Number(e), { ppid: Number(ppid), state: state! });
    } catch {
      // gone meanwhile
    }
  }
  return m;
}

function descendants(root: number): number[] {
  const all = processes();
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [pid, x] of all) if (x.ppid === p) (out.push(pid), walk(pid));
  };
  walk(root);
  return out;
}

/** Alive and not a zombie waiting for whoever inherited it to reap it. */
function running(pid: number): boolean {
  const x = processes().get(pid);
  return x !== undefined && x.state !== 'Z' && x.state !== 'X';
}

test('node run killed with SIGKILL: every service process (serve, mirror sync, log, witness) ends by itself', async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, 'mirror'), { recursive: true });
  await writeFile(path.join(dir, 'mirror', 'a.txt'), 'a\n');
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify({ format: MANIFEST_FORMAT, name: 'empty', distfiles: [] }));
  const node = await makeNode(dir, (c) => {
    c.services.serve.enabled = true;
    c.services.logServe.enabled = true;
    c.services.mirrorSync.enabled = true;
    c.services.mirrorSync.manifest = 'manifest.json';
    c.services.mirrorSync.intervalSeconds = 3600;
  });
  const wkey = readFileSync(path.join(dir, 'keys', 'log.key.pub'), 'utf8').trim();
  const { editConfig } = await import('./node-process.ts');
  await editConfig(dir, (c) => {
    c.services.witnessServe.enabled = true;
    c.services.witnessServe.logs = [wkey];
  });
  const n = await startNode(t, node);
  await n.panelUrl();
  for (const s of ['serve', 'logServe', 'witnessServe']) await n.serviceUrl(s);
  await n.waitLine('mirror sync started', (l) => l.msg === 'service started' && l.service === 'mirrorSync');
  const started = n.lines().filter((l) => l.msg === 'service started').map((l) => Number(l.child));
  assert.equal(started.length, 4);
  const pids = descendants(n.child.pid!);
  for (const p of started) assert.ok(pids.includes(p), `service ${p} is a child of node run`);

  // Should this fail, the test does not leave them behind.
  t.after(() => {
    for (const p of pids) if (running(p)) process.kill(p, 'SIGKILL');
  });
  n.child.kill('SIGKILL');
  await n.stop();
  // Bounded: the services' own graceful stop, well within nodeStopMs and a loaded machine's slack.
  await waitFor(`every service gone (left: ${pids.filter(running).join(', ')})`, () => pids.every((p) => !running(p)), { timeoutMs: 20_000, everyMs: 50 });
});
