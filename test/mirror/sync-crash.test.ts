// mirror sync killed with SIGKILL mid-download, with the piece layers taken in the download's own pass
// (src/fetch/hash-thread.ts): no file under its final name that does not verify at any kill, and the run
// after resumes each partial (Range, its prefix hashed by the thread), publishing every file and a piece
// layer equal to the one read back from the file.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { pieceMapOfFile } from '../../src/fetch/piece-map.ts';
import { bytes, distfile, sha256, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { CLI, ROOT, runCli, tempDir, waitFor } from '../helpers/run.ts';

const PART = /^([0-9a-f]{64})\.(\d+)-[0-9a-f]+\.part$/;

/** The largest partial per sha256 in the store's tmp/. */
async function partials(tmp: string): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (const name of await readdir(tmp).catch(() => [])) {
    const m = PART.exec(name);
    const size = m && (await stat(path.join(tmp, name)).catch(() => undefined))?.size;
    if (m && size) sizes.set(m[1]!, Math.max(size, sizes.get(m[1]!) ?? 0));
  }
  return sizes;
}

test('mirror sync killed -9 mid-download: never an unverified file under its name; the next run resumes and publishes right piece layers', async (t) => {
  const dir = await tempDir(t);
  // Three files of more than one 1 MiB piece, trickled out (16 KiB every 10 ms per connection), so each
  // kill finds downloads under way.
  const files = [0, 1, 2].map((i) => ({ name: `f${i}.tar.gz`, body: bytes(1_200_000 + i * 300_001, 40 + i) }));
  const origin = await startOrigin(Object.fromEntries(files.map((f) => [`/${f.name}`, { body: f.body, behaviour: { kind: 'slow' as const, chunk: 16_384, delayMs: 10 } }])));
  t.after(() => origin.close());
  const manifest = await writeManifest(dir, files.map((f) => distfile(f.name, f.body, [`${origin.url}/${f.name}`])));
  const root = path.join(dir, 'root');
  const tmp = path.join(root, '.sourcemesh', 'store', 'tmp');

  const resumed = new Set<string>();
  for (const atLeast of [300_000, 700_000]) {
    const child = spawn(process.execPath, [CLI, 'mirror', 'sync', manifest, '--root', root, '--jobs', '3'], { cwd: ROOT, env: { ...process.env, CI: '1' }, stdio: 'ignore' });
    let exited = false;
    const closed = new Promise((resolve) => child.on('close', () => resolve((exited = true))));
    // Killed once the partials on disk hold `atLeast` bytes in all (an event, not a time).
    await waitFor(`${atLeast} bytes in the partials`, async () => exited || [...(await partials(tmp)).values()].reduce((a, b) => a + b, 0) >= atLeast, { timeoutMs: 60_000 });
    child.kill('SIGKILL');
    await closed;
    assert.equal(exited, true);
    for (const [sha, size] of await partials(tmp)) if (size > 0) resumed.add(sha);
    // Whatever has its final name verifies.
    for (const f of files) {
      const have = await readFile(path.join(root, f.name)).catch(() => undefined);
      if (have) assert.equal(sha256(have), sha256(f.body), `${f.name} under its name after kill -9`);
    }
  }
  assert.ok(resumed.size > 0, 'some kill left a partial on disk');

  const r = await runCli(['mirror', 'sync', manifest, '--root', root, '--json']);
  assert.equal(r.code, 0, r.stderr);
  for (const f of files) {
    assert.deepEqual(await readFile(path.join(root, f.name)), f.body, f.name);
    const layer = await readFile(path.join(root, 'sha256', `${sha256(f.body)}.pieces`));
    assert.deepEqual(layer, Buffer.concat((await pieceMapOfFile(path.join(root, f.name), 1 << 20)).layer), `${f.name}: its piece layer`);
  }
  for (const f of files.filter((x) => resumed.has(sha256(x.body)))) {
    assert.ok(origin.log.some((l) => l.path === `/${f.name}` && l.range), `${f.name}: its partial was resumed with Range`);
  }
  assert.deepEqual(await readdir(tmp), [], 'no partials left');
});
