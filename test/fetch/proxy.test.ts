// Fetching through a real SOCKS5 server (dante): every connection goes through it, and with --tor each
// mirror (or mirror and file) is seen with its own credentials (stream isolation).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bytes, distfile, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { startSocks } from '../helpers/socks.ts';

const files = [0, 1, 2].map((i) => ({ name: `s${i}.tar.gz`, body: bytes(40_000 + i, 90 + i) }));

async function setup(t: any) {
  const dir = await tempDir(t);
  const routes: Record<string, { body: Buffer }> = {};
  for (const f of files) for (const m of ['a', 'b']) routes[`/${m}/${f.name}`] = { body: f.body };
  const origin = await startOrigin(routes);
  t.after(() => origin.close());
  const socks = await startSocks(dir);
  t.after(() => socks.close());
  const manifest = await writeManifest(dir, files.map((f) => distfile(f.name, f.body, [])));
  const fetch = (...args: string[]) => runCli(['fetch', manifest, '-o', path.join(dir, `out-${Math.random()}`), '--json', '--policy', 'mirrors-only', ...args], { env: { SOURCEMESH_STORE: path.join(dir, `store-${Math.random()}`) } });
  return { dir, origin, socks, fetch };
}

test('--proxy: every connection to the mirrors goes through the SOCKS server, with the given credentials', async (t) => {
  const s = await setup(t);
  const r = await s.fetch('--proxy', `socks5h://alice:secret@127.0.0.1:${s.socks.port}`, '--mirror', `${s.origin.url}/a`, '--mirror', `${s.origin.url}/b`);
  assert.equal(r.code, 0, r.stderr);
  await s.socks.logged(s.origin.connections());
  const seen = (await s.socks.connections()).filter((c) => c.port === s.origin.port);
  assert.ok(seen.length > 0);
  assert.equal(seen.length, s.origin.connections(), 'the origin saw no connection that did not come through the proxy');
  assert.deepEqual([...new Set(seen.map((c) => c.user))], ['alice']);
});

test('--tor: each mirror on its own credentials; --isolate-per-file: each mirror and file', async (t) => {
  const s = await setup(t);
  const mirrors = ['--mirror', `${s.origin.url}/a`, '--mirror', `${s.origin.url}/b`];
  const r = await s.fetch('--tor', '--proxy', `socks5h://127.0.0.1:${s.socks.port}`, '--segments', '1', ...mirrors);
  assert.equal(r.code, 0, r.stderr);
  await s.socks.logged(s.origin.connections());
  const report = JSON.parse(r.stdout);
  const used = new Set(report.files.map((f: { source: string }) => f.source));
  const users = new Set((await s.socks.connections()).map((c) => c.user));
  assert.ok([...users].every((u) => /^sourcemesh-[0-9a-f]{12}-[0-9a-f]{16}$/.test(u)), [...users].join(' '));
  assert.equal(users.size, used.size, `one identity per mirror used: ${[...users]} for ${[...used]}`);
  assert.equal((await s.socks.connections()).length, s.origin.connections());

  const before = (await s.socks.connections()).length;
  const r2 = await s.fetch('--tor', '--isolate-per-file', '--proxy', `socks5h://127.0.0.1:${s.socks.port}`, '--segments', '1', '--mirror', `${s.origin.url}/a`);
  assert.equal(r2.code, 0, r2.stderr);
  await s.socks.logged(s.origin.connections());
  const perFile = new Set((await s.socks.connections()).slice(before).map((c) => c.user));
  assert.equal(perFile.size, files.length, 'one identity per file from one mirror');
  assert.deepEqual(await readFile(path.join(JSON.parse(r2.stdout).output, files[0]!.name)), files[0]!.body);
});

test('socks5:// (local name resolution) and other schemes are refused; --isolate-per-file needs --tor', async (t) => {
  const s = await setup(t);
  for (const args of [['--proxy', `socks5://127.0.0.1:${s.socks.port}`], ['--proxy', 'http://127.0.0.1:3128'], ['--isolate-per-file']]) {
    const r = await s.fetch(...args, '--mirror', `${s.origin.url}/a`);
    assert.equal(r.code, 2, `${args}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  }
});
