// Crash safety and concurrency: kill -9 at any moment, then the same command again, must end with
// every file verified and no garbage left; two processes on one store never fetch a file twice.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { bytes, distfile, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { CLI, ROOT, runCli, tempDir } from '../helpers/run.ts';

test('kill -9 at many moments, then the same command: every file verified, nothing left over', async (t) => {
  const dir = await tempDir(t);
  const files = Array.from({ length: 6 }, (_, i) => ({ name: `f${i}.tar.gz`, body: bytes(400_000 + i * 77_777, 10 + i) }));
  const origin = await startOrigin(Object.fromEntries(files.map((f) => [`/${f.name}`, { body: f.body, behaviour: { kind: 'slow' as const, chunk: 16_384, delayMs: 10 } }])));
  t.after(() => origin.close());
  const manifest = await writeManifest(dir, files.map((f) => distfile(f.name, f.body, [`${origin.url}/${f.name}`])));
  const store = path.join(dir, 'store');
  const out = path.join(dir, 'distfiles');
  const env = { ...process.env, SOURCEMESH_STORE: store, CI: '1' };

  // Kills spread over the whole run: two during start-up, then the others at growing delays after the
  // upstream saw a new request from that process (mid-download, commits, exports), so that how fast the
  // machine starts processes does not decide whether any download is cut.
  for (const [round, ms] of [100, 250, 0, 30, 60, 120, 200, 350].entries()) {
    const requestsBefore = origin.log.length;
    const child = spawn(process.execPath, [CLI, 'fetch', manifest, '-o', out, '--jobs', '3'], { cwd: ROOT, env, stdio: 'ignore' });
    let exited = false;
    const closed = new Promise((resolve) => child.on('close', () => resolve((exited = true))));
    if (round >= 2) for (let i = 0; !exited && origin.log.length === requestsBefore && i < 400; i++) await sleep(50);
    await sleep(ms);
    child.kill('SIGKILL');
    await closed;
  }
  const r = await runCli(['fetch', manifest, '-o', out, '--json'], { env: { SOURCEMESH_STORE: store } });
  assert.equal(r.code, 0, r.stderr);
  for (const f of files) assert.deepEqual(await readFile(path.join(out, f.name)), f.body, f.name);
  assert.deepEqual((await readdir(out)).sort(), files.map((f) => f.name).sort(), 'no temporary files in the output');
  assert.deepEqual(await readdir(path.join(store, 'tmp')), [], 'no partials left in the store');
  assert.deepEqual(await readdir(path.join(store, 'locks')), [], 'no locks left');
  const resumed = origin.log.filter((l) => l.range).length;
  assert.ok(resumed > 0, 'killed downloads were resumed with Range, not restarted');
});

test('two fetch processes on one store: each file downloaded once, both succeed', async (t) => {
  const dir = await tempDir(t);
  const body = bytes(600_000, 99);
  // The upstream holds the first download until the second process says it waits for the first's lock
  // (or 30 s pass, and the assertions below fail): the order does not depend on how fast processes start.
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const fuse = setTimeout(release, 30_000);
  t.after(() => clearTimeout(fuse));
  const origin = await startOrigin({ '/big.tar.gz': { body, behaviour: { kind: 'held', until: held } } });
  t.after(() => origin.close());
  const manifest = await writeManifest(dir, [distfile('big.tar.gz', body, [`${origin.url}/big.tar.gz`])]);
  const env = { SOURCEMESH_STORE: path.join(dir, 'store') };
  await mkdir(path.join(dir, 'a'));
  const first = runCli(['fetch', manifest, '-o', path.join(dir, 'a')], { env });
  for (let i = 0; origin.hits('/big.tar.gz') === 0 && i < 600; i++) await sleep(50);
  const second = runCli(['fetch', manifest, '-o', path.join(dir, 'b')], { env, onStderr: (s) => { if (/waiting +big\.tar\.gz: another process/.test(s)) release(); } });
  const [a, b] = await Promise.all([first, second]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(origin.hits('/big.tar.gz'), 1);
  assert.match(a.stderr + b.stderr, /waiting +big\.tar\.gz: another process/);
  assert.deepEqual(await readFile(path.join(dir, 'b', 'big.tar.gz')), body);
});
