// `mirror nginx-config` and `mirror sync --static-links` against the real nginx: the same answers as
// `serve` for every kind of request target, and a segmented fetch with blame and `audit` that work
// against nginx exactly as against `serve` (a liar named the same way, the file verified).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { link, lstat, mkdir, open, readdir, readFile, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { pieceMapOfFile } from '../../src/fetch/piece-map.ts';
import { LIMITS } from '../../src/limits.ts';
import { nginxConfig } from '../../src/mirror/nginx-config.ts';
import { bytes, distfile, sha256, writeManifest } from '../helpers/distfiles.ts';
import { freePort, openToWorkers, startNginxWith } from '../helpers/nginx.ts';
import { startOrigin } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { startServe } from './serve-process.ts';

const BIG = bytes(8 * 1024 * 1024 + 12_345, 91); // 9 pieces of 1 MiB in the published layer: the liar surely serves one
const SMALL = bytes(70_000, 92);

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** One request on its own connection, the target sent as is (no client-side normalisation). */
function request(base: string, target: string, headers: Record<string, string> = {}): Promise<Reply> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname);
    const chunks: Buffer[] = [];
    s.setTimeout(20_000, () => s.destroy(new Error(`no answer to ${target} from ${base}`)));
    s.on('data', (d) => chunks.push(d));
    s.on('error', reject);
    s.on('end', () => {
      const raw = Buffer.concat(chunks);
      const split = raw.indexOf('\r\n\r\n');
      const head = raw.subarray(0, split).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head[0]!)?.[1]);
      const h: Record<string, string> = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(':');
        h[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status, headers: h, body: raw.subarray(split + 4) });
    });
    s.write(`GET ${target} HTTP/1.1\r\nHost: mirror.test\r\nConnection: close\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
  });
}

/** An honest root and a liar's copy of it, synced with --static-links, each served by nginx and by serve. */
async function setup(t: any) {
  const dir = await tempDir(t);
  const origin = await startOrigin({ '/big.tar.gz': { body: BIG }, '/small.txt': { body: SMALL } });
  t.after(() => origin.close());
  const bigFile = path.join(dir, 'big');
  await writeFile(bigFile, BIG);
  const merkleRoot = (await pieceMapOfFile(bigFile, 1 << 20)).root.toString('hex');
  const manifest = await writeManifest(dir, [
    distfile('big.tar.gz', BIG, [`${origin.url}/big.tar.gz`], { merkleRoot }),
    distfile('small.txt', SMALL, [`${origin.url}/small.txt`]),
  ]);
  const honest = path.join(dir, 'honest');
  const r = await runCli(['mirror', 'sync', manifest, '--root', honest, '--static-links', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.hashLinks.linked, 2);

  // The liar: the same root with one byte in every 64 KiB of big.tar.gz flipped in place (its
  // sha256/HEX link is the same inode, so it lies under both names).
  const liar = path.join(dir, 'liar');
  assert.equal(spawnSync('cp', ['-a', honest, liar]).status, 0);
  const fh = await open(path.join(liar, 'big.tar.gz'), 'r+');
  for (let at = 1000; at < BIG.length; at += 65_536) await fh.write(Buffer.from([BIG[at]! ^ 0xff]), 0, 1, at);
  await fh.close();

  // Things no server may answer with: a hidden file, a directory's file, a symlink's target outside.
  await writeFile(path.join(honest, '.hidden'), 'hidden\n');
  await mkdir(path.join(honest, 'subdir'));
  await writeFile(path.join(honest, 'subdir', 'x'), 'x\n');
  await openToWorkers(dir, honest, liar);

  // A port found free may be taken by another test before nginx binds it: then again with new ones.
  let ports: number[] = [];
  for (let attempt = 1; ; attempt++) {
    ports = [await freePort(), await freePort()];
    const sites: string[] = [];
    for (const [i, root] of [honest, liar].entries()) {
      const c = await runCli(['mirror', 'nginx-config', root, '--listen', `127.0.0.1:${ports[i]}`]);
      assert.equal(c.code, 0, c.stderr);
      assert.equal(c.stderr, '', 'the links are there: no note');
      sites.push(c.stdout);
    }
    try {
      await startNginxWith(t, path.join(dir, `nginx-${attempt}`), sites, ports);
      break;
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
  const nginx = { honest: `http://127.0.0.1:${ports[0]}`, liar: `http://127.0.0.1:${ports[1]}` };
  const served = { honest: (await startServe(t, ['--root', honest, '--no-access-log'])).url, liar: (await startServe(t, ['--root', liar, '--no-access-log'])).url };
  return { dir, origin, manifest, honest, liar, nginx, served };
}

test('sync --static-links: sha256/HEX is a hard link to each served file; nginx answers every target as serve does', async (t) => {
  const s = await setup(t);
  const hexBig = sha256(BIG);
  const hexSmall = sha256(SMALL);
  for (const [name, hex] of [['big.tar.gz', hexBig], ['small.txt', hexSmall]] as const) {
    const [a, b] = await Promise.all([stat(path.join(s.honest, name)), lstat(path.join(s.honest, 'sha256', hex))]);
    assert.ok(b.isFile() && a.ino === b.ino, `${name}: sha256/${hex} is a hard link`);
  }
  const attestations = await readdir(path.join(s.honest, '.well-known', 'sourcemesh', 'attestations'));
  assert.ok(attestations.length >= 1);
  const targets: [string, Record<string, string>?][] = [
    ['/big.tar.gz'], ['/small.txt'], ['/small%2Etxt'], [`/sha256/${hexBig}`], [`/sha256/${hexSmall}`], [`/sha256/${hexBig}.pieces`],
    [`/sha256/${hexSmall}.pieces`], // one piece: no layer published
    [`/sha256/${hexBig.toUpperCase()}`], [`/sha256/${'0'.repeat(64)}`], ['/.well-known/sourcemesh/inventory'],
    [`/.well-known/sourcemesh/attestations/${attestations[0]}`], ['/.well-known/sourcemesh/attestations/'],
    ['/'], ['/sha256'], ['/sha256/'], ['/.hidden'], ['/subdir'], ['/subdir/x'], ['/missing.tar.gz'],
    ['/.sourcemesh/node.key'], ['/.sourcemesh/node.pub'], ['/.sourcemesh/'], ['/.well-known/sourcemesh/'],
    ['/big.tar.gz', { Range: 'bytes=100-199' }], ['/big.tar.gz', { Range: `bytes=-5000` }], [`/sha256/${hexSmall}`, { Range: 'bytes=69990-' }],
    ['/small.txt', { Range: 'bytes=5000000-' }],
  ];
  for (const [target, headers] of targets) {
    const [n, v] = await Promise.all([request(s.nginx.honest, target, headers), request(s.served.honest, target, headers)]);
    const what = `${target} ${JSON.stringify(headers ?? {})}`;
    assert.equal(n.status, v.status, `${what}: nginx ${n.status}, serve ${v.status}`);
    if (v.status === 200 || v.status === 206) {
      assert.ok(n.body.equals(v.body), `${what}: the same bytes`);
      assert.equal(n.headers['content-range'], v.headers['content-range'], what);
      assert.equal(n.headers['content-type'], v.headers['content-type'], what);
      assert.equal(n.headers['cache-control'], v.headers['cache-control'], what);
    }
  }
  // The whole file by its hash, from nginx, is the pinned bytes.
  assert.ok((await request(s.nginx.honest, `/sha256/${hexBig}`)).body.equals(BIG));

  // A symlink is served by serve when it stays inside the root; nginx follows none (docs/OPERATIONS.md).
  await symlink('small.txt', path.join(s.honest, 'alias.txt'));
  assert.equal((await request(s.nginx.honest, '/alias.txt')).status, 404);
  assert.equal((await request(s.served.honest, '/alias.txt')).status, 404, 'serve indexed before the link was made');
});

test('a segmented fetch with blame, and audit, work against nginx as against serve', async (t) => {
  const s = await setup(t);
  for (const [kind, bases] of [['nginx', s.nginx], ['serve', s.served]] as const) {
    const out = path.join(s.dir, `out-${kind}`);
    const r = await runCli(['fetch', s.manifest, '-o', out, '--json', '--policy', 'mirrors-only', '--segments', '3', '--cross-check', '0', '--jobs', '1',
      '--mirror', bases.honest, '--mirror', bases.liar], { env: { SOURCEMESH_STORE: path.join(s.dir, `store-${kind}`) } });
    assert.equal(r.code, 0, `${kind}: ${r.stderr}`);
    assert.ok((await readFile(path.join(out, 'big.tar.gz'))).equals(BIG), kind);
    const big = JSON.parse(r.stdout).files.find((f: { name: string }) => f.name === 'big.tar.gz');
    const lie = big.rejected.find((x: { source: string }) => x.source === bases.liar);
    assert.ok(lie, `${kind}: the liar is named: ${JSON.stringify(big.rejected)}`);
    assert.equal(lie.code, 'E_CHECKSUM', kind);
    assert.match(lie.message, /\(piece \d+\) that do not match the piece map pinned by its merkle root/, `${kind}: blamed on arrival, through the published layer`);
    assert.ok(!big.contributors.some((c: { source: string }) => c.source === bases.liar), `${kind}: none of the liar's pieces kept`);

    const audit = (mirror: string) => runCli(['audit', mirror, '--manifest', s.manifest, '--json', '--sample', '1', '--range', '64KiB'], { env: { SOURCEMESH_STORE: path.join(s.dir, `store-audit-${kind}`) } });
    const good = await audit(bases.honest);
    assert.equal(good.code, 0, `${kind}: ${good.stderr}`);
    assert.deepEqual(JSON.parse(good.stdout).differences, []);
    const bad = await audit(bases.liar);
    assert.equal(bad.code, 3, `${kind}: ${bad.stderr}`);
    const d = JSON.parse(bad.stdout).differences[0];
    assert.equal(d.name, 'big.tar.gz');
    assert.match(d.problem, /^bytes \d+-\d+: sha256 [0-9a-f]{64} on the mirror, [0-9a-f]{64} on http/);
  }
});

test('sync --static-links keeps sha256/ in step: a replaced link is made again, links of files gone are removed', async (t) => {
  const dir = await tempDir(t);
  const origin = await startOrigin({ '/a.bin': { body: SMALL }, '/b.bin': { body: BIG } });
  t.after(() => origin.close());
  const root = path.join(dir, 'root');
  const both = await writeManifest(dir, [distfile('a.bin', SMALL, [`${origin.url}/a.bin`]), distfile('b.bin', BIG, [`${origin.url}/b.bin`])]);
  assert.equal((await runCli(['mirror', 'sync', both, '--root', root, '--static-links'])).code, 0);
  const linkOf = (body: Buffer) => path.join(root, 'sha256', sha256(body));
  // Someone put other bytes under a hash name: the next sync puts the verified file back.
  await unlink(linkOf(SMALL));
  await writeFile(linkOf(SMALL), 'not these bytes\n');
  await link(path.join(root, 'a.bin'), path.join(root, 'sha256', `.${sha256(SMALL)}.link-1`)); // a crash's leftover
  const again = await runCli(['mirror', 'sync', both, '--root', root, '--static-links', '--json']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(JSON.parse(again.stdout).hashLinks.linked, 1);
  assert.equal((await stat(linkOf(SMALL))).ino, (await stat(path.join(root, 'a.bin'))).ino);
  // b.bin leaves the root: its link and its piece layer go with it.
  await unlink(path.join(root, 'b.bin'));
  const one = await writeManifest(dir, [distfile('a.bin', SMALL, [`${origin.url}/a.bin`])]);
  const r = await runCli(['mirror', 'sync', one, '--root', root, '--static-links', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).hashLinks.removed, 2);
  assert.deepEqual((await readdir(path.join(root, 'sha256'))).sort(), [sha256(SMALL)]);
  // Without the flag nothing is linked.
  const plain = path.join(dir, 'plain');
  assert.equal((await runCli(['mirror', 'sync', one, '--root', plain])).code, 0);
  assert.deepEqual(await readdir(path.join(plain, 'sha256')).catch(() => []), []);
});

test('nginx-config refuses what it cannot write safely, in one line', async (t) => {
  const base = { host: '127.0.0.1', port: 8080, limits: LIMITS, version: 'test' };
  for (const root of ['/srv/mir$ror', '/srv/a;b', '/srv/a"b', '/srv/a{b', '/srv/a\nb', '/srv/a\\b'])
    assert.throws(() => nginxConfig({ ...base, root }), { code: 'E_INPUT' }, root);
  assert.throws(() => nginxConfig({ ...base, root: 'relative' }), { code: 'E_USAGE' });
  assert.throws(() => nginxConfig({ ...base, root: '/srv', serverName: 'a b' }), { code: 'E_USAGE' });
  assert.throws(() => nginxConfig({ ...base, root: '/srv', host: 'fe80::1%eth0' }), { code: 'E_USAGE' });
  assert.match(nginxConfig({ ...base, root: '/srv/mirror', host: '::1' }), /listen \[::1\]:8080;/);
  const dir = await tempDir(t);
  const r = await runCli(['mirror', 'nginx-config', path.join(dir, 'nope')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /nope: not a directory/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  const bad = await runCli(['mirror', 'nginx-config', dir, '--listen', 'nonsense']);
  assert.equal(bad.code, 2);
});
