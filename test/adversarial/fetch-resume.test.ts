// Break 5 of issue 11: a partial left in the store as long as the file, or longer (a crash after the last
// byte, garbage from a hostile source), made the next fetch fail with "HTTP 416 for bytes=N-". A 416 on
// resume now means: the partial may be the whole file (the digest judges it), else drop it and fetch the
// whole file at once.
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { Store } from '../../src/store/store.ts';
import { bytes, distfile, sha256, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';

const SIZE = 3_000_000;

/** A store holding, for `body`, the partial a dead process left: `partial` bytes. */
async function storeWithPartial(dir: string, body: Buffer, partial: Buffer): Promise<string> {
  const store = path.join(dir, 'store');
  await Store.open(store);
  await writeFile(path.join(store, 'tmp', `${sha256(body)}.999999999-0b.part`), partial);
  return store;
}

for (const [label, partial] of [
  ['as long as the file, garbage', (body: Buffer) => bytes(body.length, 99)],
  ['longer than the file, garbage', (body: Buffer) => Buffer.concat([body, bytes(500_000, 98)])],
  ['much longer than the file, garbage', (body: Buffer) => bytes(body.length * 3, 97)],
] as const) {
  test(`a leftover partial ${label}, size not pinned: dropped on the 416, the file fetched whole, exit 0`, async (t) => {
    const dir = await tempDir(t);
    const body = bytes(SIZE, 21);
    const origin = await startOrigin({ '/f.tar.gz': { body } });
    t.after(() => origin.close());
    const manifest = await writeManifest(dir, [distfile('f.tar.gz', body, [`${origin.url}/f.tar.gz`])]); // sha256 only: no size
    const store = await storeWithPartial(dir, body, partial(body));
    const r = await runCli(['fetch', manifest, '-o', path.join(dir, 'out')], { env: { SOURCEMESH_STORE: store } });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readFile(path.join(dir, 'out', 'f.tar.gz')), body);
    assert.deepEqual(origin.log.map((l) => l.range ?? 'whole'), [`bytes=${partial(body).length}-`, 'whole'], 'one resume answered 416, then one whole download');
    assert.deepEqual(await readdir(path.join(store, 'tmp')), []);
  });
}

test('a leftover partial that is the whole file, size not pinned: the 416 says so, it verifies, nothing downloaded again', async (t) => {
  const dir = await tempDir(t);
  const body = bytes(SIZE, 22);
  const origin = await startOrigin({ '/f.tar.gz': { body } });
  t.after(() => origin.close());
  const manifest = await writeManifest(dir, [distfile('f.tar.gz', body, [`${origin.url}/f.tar.gz`])]);
  const store = await storeWithPartial(dir, body, body);
  const r = await runCli(['fetch', manifest, '-o', path.join(dir, 'out')], { env: { SOURCEMESH_STORE: store } });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await readFile(path.join(dir, 'out', 'f.tar.gz')), body);
  assert.deepEqual(origin.log.map((l) => l.range ?? 'whole'), [`bytes=${SIZE}-`]);
});

test('a leftover partial as long as the pinned size, or longer: fetched whole, exit 0', async (t) => {
  const dir = await tempDir(t);
  const body = bytes(SIZE, 23);
  const origin = await startOrigin({ '/f.tar.gz': { body } });
  t.after(() => origin.close());
  const manifest = await writeManifest(dir, [distfile('f.tar.gz', body, [`${origin.url}/f.tar.gz`], { size: SIZE })]);
  for (const [i, partial] of [bytes(SIZE, 96), bytes(SIZE + 1, 95)].entries()) {
    const store = await storeWithPartial(path.join(dir), body, partial);
    const out = path.join(dir, `out${i}`);
    const r = await runCli(['fetch', manifest, '-o', out], { env: { SOURCEMESH_STORE: store } });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readFile(path.join(out, 'f.tar.gz')), body);
    await import('node:fs/promises').then((fs) => fs.rm(store, { recursive: true }));
  }
});
