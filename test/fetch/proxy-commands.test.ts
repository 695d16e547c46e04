// `mirror sync` and `audit` through a real SOCKS5 server (dante): every connection goes through it,
// git's clone of an upstream repository included, and with --tor each upstream host is seen with its
// own credentials (stream isolation).
import assert from 'node:assert/strict';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bytes, distfile, writeManifest } from '../helpers/distfiles.ts';
import { gitArchiveGzip, gitIn, makeRepo } from '../helpers/git.ts';
import { startOrigin, type Route } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { startSocks } from '../helpers/socks.ts';

const A = bytes(70_000, 41);
const B = bytes(50_000, 42);

/** Every file of a bare repository, for git's "dumb" HTTP transport (plain GETs). */
async function dumbHttpRoutes(bare: string, prefix: string): Promise<Record<string, Route>> {
  const routes: Record<string, Route> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if ((await stat(p)).isFile()) routes[`${prefix}/${path.relative(bare, p)}`] = { body: await readFile(p) };
    }
  };
  await walk(bare);
  return routes;
}

async function setup(t: any) {
  const dir = await tempDir(t);
  const work = path.join(dir, 'work');
  const commit = await makeRepo(work, { 'README': 'through the proxy\n', 'src/x.c': 'int x;\n' });
  const snapshot = gitArchiveGzip(work, 'proj-1.0/', commit);
  const bare = path.join(dir, 'proj.git');
  gitIn(dir, ['clone', '-q', '--bare', work, bare]);
  gitIn(bare, ['repack', '-a', '-d', '-q']);
  gitIn(bare, ['update-server-info']);
  const upstream = await startOrigin({ '/a.tar.gz': { body: A }, '/b.tar.gz': { body: B } });
  t.after(() => upstream.close());
  const forge = await startOrigin(await dumbHttpRoutes(bare, '/proj.git'));
  t.after(() => forge.close());
  const socks = await startSocks(dir);
  t.after(() => socks.close());
  const manifest = await writeManifest(dir, [
    distfile('a.tar.gz', A, [`${upstream.url}/a.tar.gz`]),
    distfile('b.tar.gz', B, [`${upstream.url}/b.tar.gz`]),
    distfile('proj-1.0.tar.gz', snapshot, [], { git: { repo: `${forge.url}/proj.git`, ref: commit, prefix: 'proj-1.0/', compression: 'gzip-n', level: 6 } }),
  ]);
  const seen = async (port: number) => (await socks.connections()).filter((c) => c.port === port);
  return { dir, upstream, forge, socks, manifest, snapshot, seen };
}

test('mirror sync --proxy: every connection, git\'s clone included, goes through the SOCKS server', async (t) => {
  const s = await setup(t);
  const root = path.join(s.dir, 'mirror');
  const r = await runCli(['mirror', 'sync', s.manifest, '--root', root, '--json', '--proxy', `socks5h://alice:secret@127.0.0.1:${s.socks.port}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).added.length, 3);
  assert.deepEqual(await readFile(path.join(root, 'proj-1.0.tar.gz')), s.snapshot);
  await s.socks.logged(s.upstream.connections() + s.forge.connections());
  for (const origin of [s.upstream, s.forge]) {
    const seen = await s.seen(origin.port);
    assert.ok(seen.length > 0, `${origin.url}: reached through the proxy`);
    assert.equal(seen.length, origin.connections(), `${origin.url}: no connection that did not come through the proxy`);
    assert.deepEqual([...new Set(seen.map((c) => c.user))], ['alice']);
  }
  assert.ok(s.forge.log.some((l) => l.path === '/proj.git/info/refs'), 'git cloned over HTTP');
});

test('mirror sync --tor: each upstream host on its own credentials, git\'s too', async (t) => {
  const s = await setup(t);
  const r = await runCli(['mirror', 'sync', s.manifest, '--root', path.join(s.dir, 'mirror'), '--json', '--tor', '--proxy', `socks5h://127.0.0.1:${s.socks.port}`]);
  assert.equal(r.code, 0, r.stderr);
  await s.socks.logged(s.upstream.connections() + s.forge.connections());
  const up = new Set((await s.seen(s.upstream.port)).map((c) => c.user));
  const forge = new Set((await s.seen(s.forge.port)).map((c) => c.user));
  assert.equal(up.size, 1, [...up].join(' '));
  assert.equal(forge.size, 1, [...forge].join(' '));
  assert.notDeepEqual([...up], [...forge], 'two hosts, two identities');
  for (const u of [...up, ...forge]) assert.match(u, /^sourcemesh-[0-9a-f]{12}-[0-9a-f]{16}$/);
  assert.equal((await s.seen(s.upstream.port)).length, s.upstream.connections());
  assert.equal((await s.seen(s.forge.port)).length, s.forge.connections());
});

test('audit --proxy: the audited mirror and upstream are both reached through the SOCKS server', async (t) => {
  const s = await setup(t);
  const mirror = await startOrigin({ '/m/a.tar.gz': { body: A }, '/m/b.tar.gz': { body: B } });
  t.after(() => mirror.close());
  const urlOnly = await writeManifest(path.join(s.dir, 'work'), [distfile('a.tar.gz', A, [`${s.upstream.url}/a.tar.gz`]), distfile('b.tar.gz', B, [`${s.upstream.url}/b.tar.gz`])]);
  const r = await runCli(['audit', `${mirror.url}/m`, '--manifest', urlOnly, '--sample', '1', '--json', '--proxy', `socks5h://bob:pw@127.0.0.1:${s.socks.port}`], { env: { SOURCEMESH_STORE: path.join(s.dir, 'store') } });
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.files, 2);
  assert.deepEqual(report.differences, []);
  await s.socks.logged(mirror.connections() + s.upstream.connections());
  for (const origin of [mirror, s.upstream]) {
    const seen = await s.seen(origin.port);
    assert.ok(seen.length > 0);
    assert.equal(seen.length, origin.connections(), `${origin.url}: every connection through the proxy`);
    assert.deepEqual([...new Set(seen.map((c) => c.user))], ['bob']);
  }
});

test('sync and audit refuse socks5:// (local name resolution)', async (t) => {
  const s = await setup(t);
  const sync = await runCli(['mirror', 'sync', s.manifest, '--root', path.join(s.dir, 'mirror'), '--proxy', `socks5://127.0.0.1:${s.socks.port}`]);
  assert.equal(sync.code, 2, sync.stderr);
  const audit = await runCli(['audit', `${s.upstream.url}`, '--manifest', s.manifest, '--proxy', `socks5://127.0.0.1:${s.socks.port}`], { env: { SOURCEMESH_STORE: path.join(s.dir, 'store') } });
  assert.equal(audit.code, 2, audit.stderr);
  assert.equal(s.upstream.connections() + s.forge.connections(), 0, 'nothing was contacted');
});
