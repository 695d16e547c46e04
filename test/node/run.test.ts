// `node run`: the supervisor end to end, through the real CLI and real services on loopback: a service
// switched on and off by an edit and SIGHUP without touching the others, a bad config refused whole
// while services go on, a crashed service restarted, graceful stop on SIGTERM.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { waitFor, tempDir } from '../helpers/run.ts';
import { editConfig, httpGet, makeNode, startNode } from './node-process.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('node run: services switched on and off by SIGHUP alone, a bad config refused whole, a crash restarted, SIGTERM stops all', async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, 'mirror'), { recursive: true });
  await writeFile(path.join(dir, 'mirror', 'hello.txt'), 'hello, node\n');
  const node = await makeNode(dir, (c) => {
    c.services.serve.enabled = true;
  });
  const n = await startNode(t, node, ['--no-panel']);
  const serveUrl = await n.serviceUrl('serve');
  assert.deepEqual(await httpGet(`${serveUrl}/hello.txt`), { status: 200, body: 'hello, node\n' });
  const servePid = Number((await n.waitLine('serve started', (l) => l.msg === 'service started' && l.service === 'serve')).child);

  // Witness on, serve untouched: same process, still answering.
  const wkey = (await import('node:fs')).readFileSync(path.join(dir, 'keys', 'log.key.pub'), 'utf8').trim();
  await editConfig(dir, (c) => {
    c.services.witnessServe.enabled = true;
    c.services.witnessServe.logs = [wkey];
  });
  const mark = n.lines().length;
  n.child.kill('SIGHUP');
  const witnessUrl = await n.serviceUrl('witnessServe', mark);
  assert.ok(alive(servePid), 'serve kept running');
  assert.equal(n.lines().filter((l) => l.msg === 'service started' && l.service === 'serve').length, 1, 'serve not restarted');
  assert.deepEqual(await httpGet(`${serveUrl}/hello.txt`), { status: 200, body: 'hello, node\n' });
  const w = await httpGet(`${witnessUrl}/add-checkpoint`);
  assert.ok('status' in w && w.status >= 400 && w.status < 500, `the witness answers: ${JSON.stringify(w)}`);

  // A bad config: refused whole, with the field named; serve and the witness go on.
  await editConfig(dir, (c) => {
    c.services.serve.enabled = false; // would stop serve, but the next field is bad
    (c.services.witnessServe as { port: unknown }).port = 'many';
  });
  n.child.kill('SIGHUP');
  const refused = await n.waitLine('config refused', (l) => l.msg?.toString().startsWith('config refused') === true);
  assert.equal(refused.field, 'services.witnessServe.port');
  assert.equal(refused.code, 'E_CONFIG');
  assert.deepEqual(await httpGet(`${serveUrl}/hello.txt`), { status: 200, body: 'hello, node\n' });
  assert.ok(alive(servePid));

  // serve off: its port refuses; the witness stays.
  await editConfig(dir, (c) => {
    c.services.serve.enabled = false;
    c.services.witnessServe.port = 0;
  });
  n.child.kill('SIGHUP');
  await n.waitLine('serve stopped', (l) => l.msg === 'service stopped' && l.service === 'serve');
  assert.deepEqual(await httpGet(`${serveUrl}/hello.txt`), { error: 'ECONNREFUSED' });
  assert.ok(!alive(servePid));
  const witnessPid = Number(n.lines().find((l) => l.msg === 'service started' && l.service === 'witnessServe')!.child);
  assert.ok(alive(witnessPid), 'the witness kept running');

  // A crash: the witness killed -9 is restarted after a backoff, on its own.
  process.kill(witnessPid, 'SIGKILL');
  await n.waitLine('witness restarting', (l) => l.msg === 'service exited; restarting after a backoff' && l.service === 'witnessServe');
  await waitFor('a second witness process', () => n.lines().filter((l) => l.msg === 'service started' && l.service === 'witnessServe').length === 2, { timeoutMs: 20_000 });
  const again = Number(n.lines().filter((l) => l.msg === 'service started' && l.service === 'witnessServe')[1]!.child);
  assert.notEqual(again, witnessPid);

  // SIGTERM: everything stops, exit 0, no child left.
  const end = await n.stop('SIGTERM');
  assert.equal(end.code, 0, n.stderr());
  assert.ok(!alive(again), 'the witness stopped with the node');
  assert.ok(n.lines().some((l) => l.msg === 'stopped'));
});
