// Crash safety and concurrency: kill -9 at any moment, then the same command again, must end with
// every file verified and no garbage left; two processes on one store never fetch a file twice.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bytes, distfile, sha256, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { withSeed } from '../helpers/prng.ts';
import { CLI, ROOT, runCli, tempDir, waitFor } from '../helpers/run.ts';

/** When a round's process is killed: each an event the test observes, never a time after start. */
type Moment =
  | { kind: 'start-up' } // at once: the process is still starting
  | { kind: 'request' } // once upstream has a request from this run
  | { kind: 'partial'; bytes: number } // once this run has put `bytes` new bytes in its partials on disk
  | { kind: 'committed' }; // once this run has committed a file to the store (its export may be under way)

const PART = /^([0-9a-f]{64})\.(\d+)-[0-9a-f]+\.part$/;

/** Sizes of the partials in `tmp` by sha256, for those of process `pid` (or of any process). */
async function partials(tmp: string, pid?: number): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (const name of await readdir(tmp).catch(() => [])) {
    const m = PART.exec(name);
    if (!m || (pid !== undefined && Number(m[2]) !== pid)) continue;
    const size = (await stat(path.join(tmp, name)).catch(() => undefined))?.size;
    if (size !== undefined) sizes.set(m[1]!, Math.max(size, sizes.get(m[1]!) ?? 0));
  }
  return sizes;
}

test('kill -9 at many moments, then the same command: every file verified, nothing left over', async (t) => {
  await withSeed(t, async (rng) => {
    const dir = await tempDir(t);
    const files = Array.from({ length: 6 }, (_, i) => ({ name: `f${i}.tar.gz`, body: bytes(400_000 + i * 77_777, 10 + i) }));
    // Slow enough (16 KiB every 20 ms per connection) that a download is still running when the test sees
    // its first batch of bytes on disk and kills the process (the client writes in batches of 256 KiB).
    const origin = await startOrigin(Object.fromEntries(files.map((f) => [`/${f.name}`, { body: f.body, behaviour: { kind: 'slow' as const, chunk: 16_384, delayMs: 20 } }])));
    t.after(() => origin.close());
    const manifest = await writeManifest(dir, files.map((f) => distfile(f.name, f.body, [`${origin.url}/${f.name}`])));
    const store = path.join(dir, 'store');
    const out = path.join(dir, 'distfiles');
    const env = { ...process.env, SOURCEMESH_STORE: store, CI: '1' };

    // The moments, in a seeded order: kills during start-up, right after a request, mid-download after
    // a seeded number of bytes reached the disk, and right after a commit (during exports).
    const moments: Moment[] = [{ kind: 'start-up' }, { kind: 'request' }, { kind: 'request' }, { kind: 'committed' }, { kind: 'committed' }];
    for (let i = 0; i < 4; i++) moments.push({ kind: 'partial', bytes: rng.between(1, 600_000) });
    for (let i = moments.length - 1; i > 0; i--) {
      const j = rng.below(i + 1);
      [moments[i], moments[j]] = [moments[j]!, moments[i]!];
    }
    t.diagnostic(`moments: ${moments.map((m) => (m.kind === 'partial' ? `partial>=${m.bytes}` : m.kind)).join(', ')}`);

    const survivors = new Set<string>(); // files whose partial was on disk, and not complete, at a kill
    for (const moment of moments) {
      const before = await partials(path.join(store, 'tmp'));
      const requestsBefore = origin.log.length;
      const namesBefore = (await readdir(path.join(store, 'names')).catch(() => [])).length;
      const child = spawn(process.execPath, [CLI, 'fetch', manifest, '-o', out, '--jobs', '3'], { cwd: ROOT, env, stdio: 'ignore' });
      let exited = false;
      const closed = new Promise((resolve) => child.on('close', () => resolve((exited = true))));
      const pid = child.pid!;
      const reached = async (): Promise<boolean> => {
        switch (moment.kind) {
          case 'start-up':
            return true;
          case 'request':
            return origin.log.length > requestsBefore;
          case 'committed':
            return (await readdir(path.join(store, 'names')).catch(() => [])).length > namesBefore;
          case 'partial': {
            let added = 0;
            for (const [sha, size] of await partials(path.join(store, 'tmp'), pid)) added += Math.max(0, size - (before.get(sha) ?? 0));
            return added >= moment.bytes;
          }
        }
      };
      // Done when the moment comes, or when the process ends first (nothing left to do): no kill then.
      await waitFor(`${moment.kind} in fetch pid ${pid}`, async () => exited || (await reached()), { timeoutMs: 60_000 });
      child.kill('SIGKILL');
      await closed;
      for (const [sha, size] of await partials(path.join(store, 'tmp'))) if (size > 0) survivors.add(sha);
    }
    const r = await runCli(['fetch', manifest, '-o', out, '--json'], { env: { SOURCEMESH_STORE: store } });
    assert.equal(r.code, 0, r.stderr);
    for (const f of files) assert.deepEqual(await readFile(path.join(out, f.name)), f.body, f.name);
    assert.deepEqual((await readdir(out)).sort(), files.map((f) => f.name).sort(), 'no temporary files in the output');
    assert.deepEqual(await readdir(path.join(store, 'tmp')), [], 'no partials left in the store');
    assert.deepEqual(await readdir(path.join(store, 'locks')), [], 'no locks left');
    assert.ok(survivors.size > 0, 'some kill left a partial download on disk');
    for (const f of files.filter((x) => survivors.has(sha256(x.body)))) {
      assert.ok(origin.log.some((l) => l.path === `/${f.name}` && l.range), `${f.name}: its partial was resumed with Range, not restarted`);
    }
  });
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
  await waitFor('the first process to request the file', () => origin.hits('/big.tar.gz') > 0);
  const second = runCli(['fetch', manifest, '-o', path.join(dir, 'b')], { env, onStderr: (s) => { if (/waiting +big\.tar\.gz: another process/.test(s)) release(); } });
  const [a, b] = await Promise.all([first, second]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(origin.hits('/big.tar.gz'), 1);
  assert.match(a.stderr + b.stderr, /waiting +big\.tar\.gz: another process/);
  assert.deepEqual(await readFile(path.join(dir, 'b', 'big.tar.gz')), body);
});
