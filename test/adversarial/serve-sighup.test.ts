// Issue 11, break 4: SIGHUP (log rotation, reindexing) must never stop `serve`: with the access log on
// stdout (the default) there is nothing to reopen; with a file, a new file is opened under the name.
import assert from 'node:assert/strict';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/run.ts';
import { startServe, tool, type Served } from '../mirror/serve-process.ts';
import { until } from './serve-clients.ts';

const indexedLines = (s: Served) => s.stderr().split('\n').filter((l) => l.startsWith('indexed ')).length;

/** Send SIGHUP and wait for the reindex it causes (an "indexed" line on stderr). */
async function hangUp(s: Served): Promise<void> {
  const before = indexedLines(s);
  s.child.kill('SIGHUP');
  assert.ok(await until(() => indexedLines(s) > before || s.child.exitCode !== null, 20_000), 'reindexed after SIGHUP');
  assert.equal(s.child.exitCode, null, `still running after SIGHUP: ${s.stderr()}`);
}

async function get(url: string): Promise<string> {
  const r = await tool('curl', ['-sS', '--fail', url]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.toString();
}

test('SIGHUP with the access log on stdout (the default) keeps serving', async (t) => {
  const root = await tempDir(t);
  await writeFile(path.join(root, 'a.txt'), 'a\n');
  const server = await startServe(t, ['--root', root]);
  assert.equal(await get(`${server.url}/a.txt`), 'a\n');
  await hangUp(server);
  await hangUp(server);
  assert.equal(await get(`${server.url}/a.txt`), 'a\n');
  assert.ok(await until(() => server.stdout().includes('"target":"/a.txt"'), 5000));
  assert.doesNotMatch(server.stderr(), /SonicBoom|reopen/);
  const exit = await server.stop('SIGTERM');
  assert.equal(exit.code, 0, server.stderr());
});

test('SIGHUP with --access-log FILE reopens it: rotated by rename, a new file gets the new lines', async (t) => {
  const dir = await tempDir(t);
  const root = path.join(dir, 'mirror');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(root);
  await writeFile(path.join(root, 'before.txt'), 'before\n');
  await writeFile(path.join(root, 'after.txt'), 'after\n');
  const log = path.join(dir, 'access.log');
  const server = await startServe(t, ['--root', root, '--access-log', log]);
  assert.equal(await get(`${server.url}/before.txt`), 'before\n');
  assert.ok(await until(async () => (await readFile(log, 'utf8').catch(() => '')).includes('/before.txt'), 5000), 'the first request is logged');
  await rename(log, `${log}.1`); // what logrotate does
  await hangUp(server);
  assert.equal(await get(`${server.url}/after.txt`), 'after\n');
  assert.ok(await until(async () => (await readFile(log, 'utf8').catch(() => '')).includes('/after.txt'), 5000), 'a new file under the old name has the new lines');
  assert.doesNotMatch(await readFile(`${log}.1`, 'utf8'), /after\.txt/, 'nothing new goes to the rotated file');
  assert.ok((await stat(log)).isFile());
  const exit = await server.stop('SIGTERM');
  assert.equal(exit.code, 0, server.stderr());
});
