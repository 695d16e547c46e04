// `sourcemesh fetch` end to end: the real CLI against real HTTP servers on loopback that serve right,
// serve wrong bytes, truncate, fail then recover, stall, reset, ignore Range, and redirect badly.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bytes, distfile, sha256, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin, type Route } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';

const A = bytes(300_000, 1);
const B = bytes(70_000, 2);

async function setup(t: any, routes: Record<string, Route>) {
  const dir = await tempDir(t);
  const origin = await startOrigin(routes);
  t.after(() => origin.close());
  const env = { SOURCEMESH_STORE: path.join(dir, 'store') };
  const out = path.join(dir, 'distfiles');
  const fetch = (manifest: string, ...args: string[]) => runCli(['fetch', manifest, '-o', out, '--json', ...args], { env });
  return { dir, origin, env, out, fetch };
}

const report = (stdout: string) => JSON.parse(stdout) as { files: { name: string; status: string; source?: string; error?: { code: string; message: string }; rejected: { source: string; code: string; message: string }[] }[]; fetched: number; present: number; failed: number };

test('fetches every distfile from upstream, verified, exported by name; a second run downloads nothing', async (t) => {
  const s = await setup(t, { '/a.tar.gz': { body: A }, '/dir/b.tar.xz': { body: B } });
  const m = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/a.tar.gz`]), distfile('b.tar.xz', B, [`${s.origin.url}/dir/b.tar.xz`])]);
  const r = await s.fetch(m);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(report(r.stdout).fetched, 2);
  assert.deepEqual(await readFile(path.join(s.out, 'a.tar.gz')), A);
  assert.deepEqual(await readFile(path.join(s.out, 'b.tar.xz')), B);
  assert.ok(s.origin.log.every((l) => l.acceptEncoding === 'identity'));
  // Exported as a hard link to the read-only store object.
  const [exported, stored] = await Promise.all([stat(path.join(s.out, 'a.tar.gz')), stat(path.join(s.env.SOURCEMESH_STORE, 'objects/sha256', sha256(A).slice(0, 2), sha256(A)))]);
  assert.equal(exported.ino, stored.ino);
  assert.equal(stored.mode & 0o777, 0o444);

  const again = await s.fetch(m);
  assert.equal(again.code, 0);
  assert.equal(report(again.stdout).present, 2);
  assert.equal(s.origin.log.length, 2, 'nothing downloaded twice');
  assert.deepEqual(await readdir(path.join(s.env.SOURCEMESH_STORE, 'tmp')), []);
});

test('a mirror serving wrong bytes is named and rejected; the file comes from upstream; exit 0', async (t) => {
  const s = await setup(t, { '/mirror/a.tar.gz': { body: A, behaviour: { kind: 'wrong-bytes' } }, '/up/a.tar.gz': { body: A } });
  const m = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/up/a.tar.gz`])]);
  const r = await s.fetch(m, '--mirror', `${s.origin.url}/mirror`);
  assert.equal(r.code, 0, r.stderr);
  const f = report(r.stdout).files[0]!;
  assert.equal(f.source, `${s.origin.url}/up/a.tar.gz`);
  assert.equal(f.rejected.length, 1);
  assert.equal(f.rejected[0]!.code, 'E_CHECKSUM');
  assert.equal(f.rejected[0]!.source, `${s.origin.url}/mirror`);
  assert.deepEqual(await readFile(path.join(s.out, 'a.tar.gz')), A);
  // The human summary names the liar too.
  const human = await runCli(['fetch', m, '-o', path.join(s.dir, 'o2'), '--mirror', `${s.origin.url}/mirror`], { env: { SOURCEMESH_STORE: path.join(s.dir, 'store2') } });
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stderr, new RegExp(`${s.origin.url}/mirror served wrong bytes for 1 file`));
});

test('every source wrong: exit 3, nothing under the final name, no partial left', async (t) => {
  const s = await setup(t, { '/a.tar.gz': { body: A, behaviour: { kind: 'wrong-bytes' } } });
  const m = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/a.tar.gz`])]);
  const r = await s.fetch(m);
  assert.equal(r.code, 3, r.stderr);
  const f = report(r.stdout).files[0]!;
  assert.equal(f.error!.code, 'E_CHECKSUM');
  assert.match(f.error!.message, new RegExp(`${s.origin.url}/a.tar.gz served 300000 bytes with sha256 [0-9a-f]{64}, expected ${sha256(A)}`));
  await assert.rejects(stat(path.join(s.out, 'a.tar.gz')));
  assert.deepEqual(await readdir(path.join(s.env.SOURCEMESH_STORE, 'tmp')), []);
  const human = await runCli(['fetch', m, '-o', s.out], { env: s.env });
  assert.equal(human.code, 3);
  assert.match(human.stderr, /^failed +a\.tar\.gz: no source served it verified/m);
});

test('404 and an unreachable host: clear failure, exit 1', async (t) => {
  const s = await setup(t, {});
  const closed = await startOrigin({});
  const deadUrl = `${closed.url}/x.tar.gz`;
  await closed.close();
  const m = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/missing.tar.gz`]), distfile('x.tar.gz', B, [deadUrl])]);
  const r = await s.fetch(m, '--retries', '1');
  assert.equal(r.code, 1, r.stderr);
  const files = report(r.stdout).files;
  assert.equal(files[0]!.error!.code, 'E_NO_SOURCE');
  assert.match(files[0]!.error!.message, /HTTP 404/);
  assert.match(files[1]!.error!.message, /connection refused/);
  assert.equal(s.origin.hits('/missing.tar.gz'), 1, '404 is not retried');
});

test('500 twice then recovery: retried with backoff, fetched', async (t) => {
  const s = await setup(t, { '/a.tar.gz': { body: A, behaviour: { kind: 'fail-then-ok', failures: 2 } } });
  const m = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/a.tar.gz`])]);
  const r = await s.fetch(m);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(s.origin.hits('/a.tar.gz'), 3);
});

test('a connection reset mid-body resumes with Range and If-Range instead of starting over', async (t) => {
  const s = await setup(t, { '/a.tar.gz': { body: A, behaviour: { kind: 'reset-once', after: 100_000 } } });
  const m = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/a.tar.gz`])]);
  const r = await s.fetch(m);
  assert.equal(r.code, 0, r.stderr);
  const second = s.origin.log[1]!;
  assert.match(second.range ?? '', /^bytes=\d+-$/);
  assert.ok(Number(second.range!.slice(6, -1)) > 0);
  assert.equal(second.ifRange, `"${sha256(A)}"`);
  assert.deepEqual(await readFile(path.join(s.out, 'a.tar.gz')), A);
});

test('a truncated body is retried and completed', async (t) => {
  const s = await setup(t, { '/a.tar.gz': { body: A, behaviour: { kind: 'truncate', after: 1000 } }, '/b': { body: A } });
  const m = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/a.tar.gz`, `${s.origin.url}/b`])]);
  // One source at a time (--segments 1): the whole-file path, with its retries and resume.
  const r = await s.fetch(m, '--retries', '1', '--segments', '1');
  assert.equal(r.code, 0, r.stderr);
  const f = report(r.stdout).files[0]!;
  assert.equal(f.source, `${s.origin.url}/b`);
  assert.equal(f.rejected[0]!.code, 'E_NETWORK');
  assert.match(f.rejected[0]!.message, /shorter than Content-Length|ended after|connection closed/);
});

test('a stalled server times out and the next source is used', async (t) => {
  const s = await setup(t, { '/stall': { body: A, behaviour: { kind: 'stall', after: 10 } }, '/ok': { body: A } });
  const m = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/stall`, `${s.origin.url}/ok`])]);
  const t0 = Date.now();
  const r = await s.fetch(m, '--timeout', '1', '--retries', '0', '--segments', '1');
  assert.equal(r.code, 0, r.stderr);
  assert.ok(Date.now() - t0 < 20_000);
  const f = report(r.stdout).files[0]!;
  assert.equal(f.source, `${s.origin.url}/ok`);
  assert.match(f.rejected[0]!.message, /stalled/);
});

test('a server that ignores Range still gives a correct file after a reset', async (t) => {
  const s = await setup(t, { '/a.tar.gz': { body: A, behaviour: { kind: 'ignore-range' } } });
  // Leave a wrong partial behind as if a previous run had died: fetch must not trust it.
  const m = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/a.tar.gz`])]);
  const tmp = path.join(s.env.SOURCEMESH_STORE, 'tmp');
  await mkdir(tmp, { recursive: true });
  await writeFile(path.join(tmp, `${sha256(A)}.999999-abc.part`), Buffer.from('garbage'));
  const r = await s.fetch(m);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(s.origin.log[0]!.range, 'bytes=7-', 'the adopted partial is resumed');
  assert.deepEqual(await readFile(path.join(s.out, 'a.tar.gz')), A);
  assert.deepEqual(await readdir(tmp), []);
});

test('more bytes than the pinned size: cut off and blamed (E_SIZE)', async (t) => {
  const s = await setup(t, { '/a.tar.gz': { body: A, behaviour: { kind: 'oversize', extra: 5_000_000 } } });
  const m = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/a.tar.gz`], { size: A.length })]);
  const r = await s.fetch(m);
  assert.equal(r.code, 3, r.stderr);
  const f = report(r.stdout).files[0]!;
  assert.equal(f.rejected[0]!.code, 'E_SIZE');
  assert.match(f.rejected[0]!.message, /sent more than 300000 bytes/);
});

test('redirects: followed to http, refused to file://, and a loop stops after 10 hops', async (t) => {
  const s = await setup(t, {
    '/r1': { body: A, behaviour: { kind: 'redirect', to: '/r2' } },
    '/r2': { body: A, behaviour: { kind: 'redirect', to: '/real' } },
    '/real': { body: A },
    '/loop': { body: A, behaviour: { kind: 'redirect', to: '/loop' } },
    '/tofile': { body: A, behaviour: { kind: 'redirect', to: 'file:///etc/passwd' } },
  });
  const ok = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/r1`])]);
  assert.equal((await s.fetch(ok)).code, 0);

  const loopDir = path.join(s.dir, 'loop');
  await mkdir(loopDir);
  const bad = await writeManifest(loopDir, [distfile('b.tar.gz', B, [`${s.origin.url}/loop`, `${s.origin.url}/tofile`])]);
  const r = await s.fetch(bad);
  assert.equal(r.code, 1, r.stderr);
  const f = report(r.stdout).files[0]!;
  assert.deepEqual(f.rejected.map((x) => x.code), ['E_REDIRECT', 'E_REDIRECT']);
  assert.match(f.rejected[0]!.message, /more than 10 redirects/);
  assert.match(f.rejected[1]!.message, /refusing a redirect to file: URL/);
  assert.equal(s.origin.hits('/loop'), 11);
});

test('policies and local mirrors: mirrors-first, upstream-only, --offline with a directory mirror', async (t) => {
  const s = await setup(t, { '/up/a.tar.gz': { body: A }, '/mirror/a.tar.gz': { body: A } });
  const m = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/up/a.tar.gz`])]);
  const first = await s.fetch(m, '--mirror', `${s.origin.url}/mirror/`);
  assert.equal(report(first.stdout).files[0]!.source, `${s.origin.url}/mirror`);

  const s2 = await setup(t, { '/up/a.tar.gz': { body: A }, '/mirror/a.tar.gz': { body: A } });
  const up = await s2.fetch(m.replace(s.origin.url, s2.origin.url), '--policy', 'upstream-only', '--mirror', `${s2.origin.url}/mirror`);
  assert.equal(up.code, 0, up.stderr);

  const local = path.join(s.dir, 'usb');
  await mkdir(local);
  await writeFile(path.join(local, 'a.tar.gz'), A);
  const offline = await runCli(['fetch', m, '-o', path.join(s.dir, 'off'), '--offline', '--mirror', `file://${local}`, '--json'], { env: { SOURCEMESH_STORE: path.join(s.dir, 'store-off') } });
  assert.equal(offline.code, 0, offline.stderr);
  assert.equal(report(offline.stdout).files[0]!.source, local);
  const none = await runCli(['fetch', m, '-o', path.join(s.dir, 'off2'), '--offline', '--json'], { env: { SOURCEMESH_STORE: path.join(s.dir, 'store-off2') } });
  assert.equal(none.code, 1);
  assert.match(report(none.stdout).files[0]!.error!.message, /offline and no local mirror/);
});

test('--offline touches no network: a mirror list by URL, --discover and --bittorrent are refused before anything starts', async (t) => {
  const s = await setup(t, { '/list.json': { body: Buffer.from(JSON.stringify({ format: 'sourcemesh.mirrors/v1', mirrors: [] })) } });
  const m = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/a.tar.gz`])]);
  for (const extra of [['--mirror-list', `${s.origin.url}/list.json`], ['--discover', '1'], ['--bittorrent']]) {
    const r = await s.fetch(m, '--offline', ...extra);
    assert.equal(r.code, 2, `${extra.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^sourcemesh: error: ${extra[0]}.*--offline.*\\[E_USAGE\\]$`, 'm'), r.stderr);
  }
  assert.equal(s.origin.log.length, 0, 'nothing was asked of the network');
});

test('bad usage and bad input: one line, exit 2', async (t) => {
  const s = await setup(t, {});
  const garbage = path.join(s.dir, 'm.json');
  await writeFile(garbage, '{"format": "sourcemesh.manifest/v1", "name": "x", "distfiles": [{"name": "a", "sha256": "zz", "urls": []}]}');
  for (const args of [['fetch', garbage], ['fetch', path.join(s.dir, 'nope.json')], ['fetch', garbage, '--jobs', '0'], ['fetch', garbage, '--policy', 'whatever'], ['fetch', garbage, '--mirror', 'ftp://x/']]) {
    const r = await runCli(args, { env: s.env });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test('HTTPS with a certificate the system trusts (here via NODE_EXTRA_CA_CERTS); an untrusted one is refused', async (t) => {
  const dir = await tempDir(t);
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const origin = await startOrigin({ '/a.tar.gz': { body: A } }, { key: await readFile(key), cert: await readFile(cert) });
  t.after(() => origin.close());
  assert.match(origin.url, /^https:/);
  const m = await writeManifest(dir, [distfile('a.tar.gz', A, [`${origin.url}/a.tar.gz`])]);
  const trusted = await runCli(['fetch', m, '-o', path.join(dir, 'out'), '--json'], { env: { SOURCEMESH_STORE: path.join(dir, 'store'), NODE_EXTRA_CA_CERTS: cert } });
  assert.equal(trusted.code, 0, trusted.stderr);
  assert.deepEqual(await readFile(path.join(dir, 'out', 'a.tar.gz')), A);
  const untrusted = await runCli(['fetch', m, '-o', path.join(dir, 'out2'), '--json', '--retries', '0'], { env: { SOURCEMESH_STORE: path.join(dir, 'store2') } });
  assert.equal(untrusted.code, 1);
  assert.match(report(untrusted.stdout).files[0]!.error!.message, /TLS certificate not accepted \(DEPTH_ZERO_SELF_SIGNED_CERT/);
});

test('--mirror-list from a file and from a URL; a malformed list is refused naming the field', async (t) => {
  const s = await setup(t, { '/m1/a.tar.gz': { body: A }, '/up/a.tar.gz': { body: A } });
  const list = { format: 'sourcemesh.mirrors/v1', mirrors: [{ url: `${s.origin.url}/m1`, operator: 'Example Org', key: 'mirror.example+01234567+AQID' }] };
  s.origin.routes.set('/mirrors.json', { body: Buffer.from(JSON.stringify(list)) });
  const listFile = path.join(s.dir, 'mirrors.json');
  await writeFile(listFile, JSON.stringify(list));
  const m = await writeManifest(s.dir, [distfile('a.tar.gz', A, [`${s.origin.url}/up/a.tar.gz`])]);
  const fromFile = await s.fetch(m, '--mirror-list', listFile);
  assert.equal(fromFile.code, 0, fromFile.stderr);
  assert.equal(report(fromFile.stdout).files[0]!.source, `${s.origin.url}/m1`);
  const fromUrl = await runCli(['fetch', m, '-o', path.join(s.dir, 'o2'), '--json', '--mirror-list', `${s.origin.url}/mirrors.json`, '--policy', 'mirrors-only'], { env: { SOURCEMESH_STORE: path.join(s.dir, 'st2') } });
  assert.equal(fromUrl.code, 0, fromUrl.stderr);
  await writeFile(listFile, JSON.stringify({ ...list, mirrors: [{ url: 'ftp://x/' }] }));
  const bad = await s.fetch(m, '--mirror-list', listFile);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /mirrors\.json: mirrors\.0\.url must be an http\(s\) URL/);
});
