// `sourcemesh serve --root` with real clients: curl and wget (ranges, resume, conditional requests),
// live-bootstrap's own download loop, the signed inventory, reindexing, and hostile requests.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildInventory, parseInventory, writeInventory } from '../../src/mirror/inventory.ts';
import { parseSignerKey } from '../../src/trust/note.ts';
import { bytes, sha256 } from '../helpers/distfiles.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { curlHead, eventually, startServe, tool, type Served } from './serve-process.ts';

const SMALL = bytes(1000, 1);
const MID = bytes(300_000, 2);
const LARGE = bytes(1_500_000, 6); // over the in-memory cache's per-file size: always read from disk
const TARS = { 'bash-2.05b.tar.gz': bytes(70_000, 3), 'gnulib-8f4538a5.tar.gz': bytes(123_457, 4), 'name with space+plus.tar': bytes(5000, 5) };
const SECRET = Buffer.from('root:x:0:0:secret outside the mirror\n');
const OLD = new Date('2026-01-01T00:00:00Z'); // mtimes in the past: Last-Modified is a strong validator

interface Fixture {
  dir: string;
  root: string;
  outside: string;
  log: string;
  server: Served;
}

async function makeRoot(t: any): Promise<Fixture> {
  const dir = await tempDir(t);
  const root = path.join(dir, 'mirror');
  await mkdir(root);
  await writeFile(path.join(root, 'small.txt'), SMALL);
  await writeFile(path.join(root, 'mid.bin'), MID);
  await writeFile(path.join(root, 'large.bin'), LARGE);
  for (const [name, body] of Object.entries(TARS)) await writeFile(path.join(root, name), body);
  for (const name of ['small.txt', 'mid.bin', 'large.bin', ...Object.keys(TARS)]) await utimes(path.join(root, name), OLD, OLD);
  // Things that must never be served.
  const outside = path.join(dir, 'outside-secret');
  await writeFile(outside, SECRET);
  await symlink(outside, path.join(root, 'escape'));
  await symlink('../outside-secret', path.join(root, 'escape-relative'));
  await symlink('small.txt', path.join(root, 'alias.txt')); // inside the root: fine
  await mkdir(path.join(root, 'subdir'));
  await writeFile(path.join(root, 'subdir', 'nested.txt'), 'nested\n');
  await writeFile(path.join(root, '.hidden'), 'hidden\n');
  const log = path.join(dir, 'access.log');
  const server = await startServe(t, ['--root', root, '--access-log', log, '--key-name', 'mirror.test']);
  await symlink('.sourcemesh/node.key', path.join(root, 'key-alias')); // after start: picked up on reindex
  return { dir, root, outside, log, server };
}

describe('serve --root', () => {
  let f: Fixture;
  let url: string;
  const cleanups: (() => unknown)[] = [];
  before(async () => {
    f = await makeRoot({ after: (fn: () => unknown) => void cleanups.push(fn) });
    url = f.server.url;
  });
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });

  test('GET and HEAD: whole files with a strong sha256 ETag, Last-Modified, Accept-Ranges and Content-Length', async () => {
    const out = path.join(f.dir, 'get.bin');
    const r = await curlHead(['-o', out, `${url}/mid.bin`]);
    assert.equal(r.status, 200);
    assert.deepEqual(await readFile(out), MID);
    assert.equal(r.headers.etag, `"${sha256(MID)}"`);
    assert.equal(r.headers['last-modified'], 'Thu, 01 Jan 2026 00:00:00 GMT');
    assert.equal(r.headers['accept-ranges'], 'bytes');
    assert.equal(r.headers['content-length'], String(MID.length));
    assert.equal(r.headers['content-type'], 'application/octet-stream');
    assert.equal(r.headers['repr-digest'], `sha-256=:${createHash('sha256').update(MID).digest('base64')}:`);
    const head = await curlHead(['-I', `${url}/mid.bin`]);
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(MID.length));
    assert.equal(head.headers.etag, `"${sha256(MID)}"`);
    // Content-addressed, and a symlink inside the root.
    const bySha = await tool('curl', ['-sS', '--fail', `${url}/sha256/${sha256(MID)}`]);
    assert.deepEqual(bySha.stdout, MID);
    assert.deepEqual((await tool('curl', ['-sS', '--fail', `${url}/alias.txt`])).stdout, SMALL);
    const imm = await curlHead(['-o', '/dev/null', `${url}/sha256/${sha256(SMALL)}`]);
    assert.match(imm.headers['cache-control'] ?? '', /immutable/);
    // A name that needs percent-encoding.
    assert.deepEqual((await tool('curl', ['-sS', '--fail', `${url}/name%20with%20space%2Bplus.tar`])).stdout, TARS['name with space+plus.tar']);
  });

  test('ranges with curl: single, multiple (multipart/byteranges), overlapping (whole file), past the end (416)', async () => {
    const one = await tool('curl', ['-sS', '-r', '100-199', '-w', '%{http_code}', '-o', path.join(f.dir, 'r1'), `${url}/mid.bin`]);
    assert.equal(one.stdout.toString(), '206');
    assert.deepEqual(await readFile(path.join(f.dir, 'r1')), MID.subarray(100, 200));
    const h1 = await curlHead(['-r', '100-199', '-o', '/dev/null', `${url}/mid.bin`]);
    assert.equal(h1.headers['content-range'], `bytes 100-199/${MID.length}`);
    assert.equal(h1.headers['content-length'], '100');

    const multi = await curlHead(['-r', '0-99,200-299', '-o', path.join(f.dir, 'multi'), `${url}/mid.bin`]);
    assert.equal(multi.status, 206);
    const boundary = /^multipart\/byteranges; boundary=(\S+)$/.exec(multi.headers['content-type'] ?? '')?.[1];
    assert.ok(boundary, multi.headers['content-type']);
    const body = await readFile(path.join(f.dir, 'multi'));
    assert.equal(String(body.length), multi.headers['content-length']);
    const parts = parseMultipart(body, boundary);
    assert.deepEqual(parts.map((p) => p.range), [`bytes 0-99/${MID.length}`, `bytes 200-299/${MID.length}`]);
    assert.deepEqual(parts[0]!.body, MID.subarray(0, 100));
    assert.deepEqual(parts[1]!.body, MID.subarray(200, 300));

    const overlap = await curlHead(['-r', '0-99,50-149', '-o', path.join(f.dir, 'overlap'), `${url}/mid.bin`]);
    assert.equal(overlap.status, 200);
    assert.deepEqual(await readFile(path.join(f.dir, 'overlap')), MID);

    const past = await curlHead(['-r', `${MID.length}-`, '-o', '/dev/null', `${url}/mid.bin`]);
    assert.equal(past.status, 416);
    assert.equal(past.headers['content-range'], `bytes */${MID.length}`);
    const suffix = await tool('curl', ['-sS', '-r', '-10', `${url}/mid.bin`]);
    assert.deepEqual(suffix.stdout, MID.subarray(-10));
  });

  test('resume: curl -C - and wget -c continue a partial file; If-Range with the ETag or the exact date', async () => {
    const partial = path.join(f.dir, 'resume', 'mid.bin');
    await mkdir(path.dirname(partial), { recursive: true });
    await writeFile(partial, MID.subarray(0, 12_345));
    const c = await tool('curl', ['-sS', '--fail', '-C', '-', '-o', partial, `${url}/mid.bin`]);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(await readFile(partial), MID);

    await writeFile(partial, MID.subarray(0, 54_321));
    const w = await tool('wget', ['-q', '-c', `${url}/mid.bin`], { cwd: path.dirname(partial) });
    assert.equal(w.code, 0, w.stderr);
    assert.deepEqual(await readFile(partial), MID);
    const wfull = await tool('wget', ['-q', '-O', '-', `${url}/bash-2.05b.tar.gz`]);
    assert.deepEqual(wfull.stdout, TARS['bash-2.05b.tar.gz']);

    const etag = `"${sha256(MID)}"`;
    const same = await curlHead(['-r', '1000-', '-H', `If-Range: ${etag}`, '-o', '/dev/null', `${url}/mid.bin`]);
    assert.equal(same.status, 206);
    const changed = await curlHead(['-r', '1000-', '-H', 'If-Range: "0000"', '-o', '/dev/null', `${url}/mid.bin`]);
    assert.equal(changed.status, 200, 'a changed validator gets the whole file');
    const weak = await curlHead(['-r', '1000-', '-H', `If-Range: W/${etag}`, '-o', '/dev/null', `${url}/mid.bin`]);
    assert.equal(weak.status, 200, 'weak tags are never used with If-Range');
    const date = await curlHead(['-r', '1000-', '-H', 'If-Range: Thu, 01 Jan 2026 00:00:00 GMT', '-o', '/dev/null', `${url}/mid.bin`]);
    assert.equal(date.status, 206);
    const otherDate = await curlHead(['-r', '1000-', '-H', 'If-Range: Thu, 01 Jan 2026 00:00:01 GMT', '-o', '/dev/null', `${url}/mid.bin`]);
    assert.equal(otherDate.status, 200);
  });

  test('conditional GET: curl --etag-compare and If-None-Match give 304; -z (If-Modified-Since) too', async () => {
    const etagFile = path.join(f.dir, 'etag.txt');
    const first = await curlHead(['--etag-save', etagFile, '-o', '/dev/null', `${url}/small.txt`]);
    assert.equal(first.status, 200);
    const again = await curlHead(['--etag-compare', etagFile, '-o', '/dev/null', `${url}/small.txt`]);
    assert.equal(again.status, 304);
    assert.equal(again.headers.etag, `"${sha256(SMALL)}"`);
    const inm = await curlHead(['-H', `If-None-Match: "x", "${sha256(SMALL)}"`, '-o', '/dev/null', `${url}/small.txt`]);
    assert.equal(inm.status, 304);
    const other = await curlHead(['-H', 'If-None-Match: "x"', '-o', '/dev/null', `${url}/small.txt`]);
    assert.equal(other.status, 200);
    const since = await curlHead(['-z', 'Fri, 02 Jan 2026 00:00:00 GMT', '-o', '/dev/null', `${url}/small.txt`]);
    assert.equal(since.status, 304);
    const older = await curlHead(['-z', 'Wed, 31 Dec 2025 00:00:00 GMT', '-o', '/dev/null', `${url}/small.txt`]);
    assert.equal(older.status, 200);
    const ifMatch = await curlHead(['-H', 'If-Match: "nope"', '-o', '/dev/null', `${url}/small.txt`]);
    assert.equal(ifMatch.status, 412);
  });

  test('live-bootstrap\'s download loop (curl --fail --location, then sha256sum -c) against the mirror', async () => {
    const work = path.join(f.dir, 'lb');
    await mkdir(work);
    const list = Object.entries(TARS).filter(([n]) => !n.includes(' ')).map(([n, b]) => `${n} ${sha256(b)}`).join('\n') + '\n';
    await writeFile(path.join(work, 'list'), list);
    // The loop of live-bootstrap's download-distfiles.sh, in our own words: fetch each missing
    // distfile by name from the mirror base, then check its sha256.
    const script = `set -e
mkdir -p distfiles
while read -r name checksum; do
  if ! [ -e "distfiles/$name" ]; then
    curl --fail --location "$BASE/$name" --output "distfiles/$name"
  fi
  echo "$checksum  distfiles/$name" | sha256sum -c
done < list
`;
    const r = await tool('bash', ['-c', script], { cwd: work, env: { BASE: url } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /distfiles\/bash-2\.05b\.tar\.gz: OK\ndistfiles\/gnulib-8f4538a5\.tar\.gz: OK\n/);
    const missing = await tool('bash', ['-c', 'curl --fail --location "$BASE/absent.tar.gz" --output x'], { cwd: work, env: { BASE: url } });
    assert.equal(missing.code, 22, 'curl --fail: a 404 fails the build step');
  });

  test('traversal and hidden files: every attempt is refused and nothing outside the index leaks', async () => {
    const cases: [string, number][] = [
      ['/../etc/passwd', 400],
      ['/../../../../etc/passwd', 400],
      ['/%2e%2e/%2e%2e/etc/passwd', 400],
      ['/%2E%2E%2Fetc%2Fpasswd', 400],
      ['/%2F../etc/passwd', 400],
      ['/..%2f..%2fetc/passwd', 400],
      ['/.well-known/../.sourcemesh/node.key', 400],
      ['/.sourcemesh/node.key', 404],
      ['/.sourcemesh/node.pub', 404],
      ['/.sourcemesh/', 404],
      ['/.hidden', 404],
      ['/escape', 404],
      ['/escape-relative', 404],
      ['/key-alias', 404],
      ['/subdir', 404],
      ['/subdir/nested.txt', 404],
      ['/', 404],
      ['/sha256/', 404],
      ['//etc/passwd', 404],
      ['/etc/passwd', 404],
      [`/sha256/${sha256(SECRET)}`, 404],
      [`/sha256/${sha256(await readFile(path.join(f.root, '.sourcemesh', 'node.key')))}`, 404],
      [`/${'a'.repeat(3000)}`, 400],
    ];
    for (const [p, status] of cases) {
      const r = await tool('curl', ['-sS', '--path-as-is', '-w', '\n%{http_code}', `${url}${p}`]);
      const text = r.stdout.toString();
      assert.equal(Number(text.slice(text.lastIndexOf('\n') + 1)), status, p);
      assert.doesNotMatch(text, /root:|PRIVATE\+KEY|nested/, p);
    }
    // Absolute-form targets, and bytes curl would not send: through a raw socket.
    for (const [target, status] of [['http://x/../etc/passwd', 400], ['/a%00b', 400], ['/a\\b', 400], ['/%C0%AE%C0%AE/etc/passwd', 400], ['http://x/small.txt', 200]] as const) {
      assert.equal(await rawStatus(url, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`), status, target);
    }
    // No directory listing, and other methods are refused with Allow.
    const post = await curlHead(['-X', 'POST', '-o', '/dev/null', `${url}/small.txt`]);
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    // Header size is bounded.
    const big = await curlHead(['-H', `X-Big: ${'a'.repeat(20_000)}`, '-o', '/dev/null', `${url}/small.txt`]);
    assert.equal(big.status, 431);
    // Warned about at start, never indexed.
    assert.match(f.server.stderr(), /not serving "escape": a symlink that leads outside the root/);
  });

  test('the signed inventory lists every served file and verifies against node.pub', async () => {
    const note = (await tool('curl', ['-sS', '--fail', `${url}/.well-known/sourcemesh/inventory`])).stdout;
    const vkey = (await readFile(path.join(f.root, '.sourcemesh', 'node.pub'), 'utf8')).trim();
    assert.equal(f.server.first.key, vkey);
    assert.match(vkey, /^mirror\.test\+[0-9a-f]{8}\+/);
    const inv = parseInventory(note, vkey);
    const expected = [['alias.txt', SMALL], ['large.bin', LARGE], ['mid.bin', MID], ['small.txt', SMALL], ...Object.entries(TARS)] as [string, Buffer][];
    assert.deepEqual(inv.files, expected.sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, b]) => ({ name, size: b.length, sha256: sha256(b) })));
    assert.deepEqual(await readFile(path.join(f.root, '.well-known', 'sourcemesh', 'inventory')), note, 'the same bytes are on disk');
  });

  test('a new inventory written by sync is picked up; SIGHUP reindexes; a replaced file is never served under its old ETag', async () => {
    const key = parseSignerKey((await readFile(path.join(f.root, '.sourcemesh', 'node.key'), 'utf8')).trim());
    const vkey = (await readFile(path.join(f.root, '.sourcemesh', 'node.pub'), 'utf8')).trim();
    // What mirror sync does: publish a file, then write and sign the inventory.
    const added = bytes(4321, 9);
    await writeFile(path.join(f.root, 'added-by-sync.tar.gz'), added);
    const prior = parseInventory((await tool('curl', ['-sS', `${url}/.well-known/sourcemesh/inventory`])).stdout, vkey);
    const files = [...prior.files.filter((x) => x.name !== 'alias.txt'), { name: 'added-by-sync.tar.gz', size: added.length, sha256: sha256(added) }];
    await writeInventory(f.root, buildInventory(files, key, new Date()));
    await eventually(async () => (await tool('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `${url}/added-by-sync.tar.gz`])).stdout.toString() === '200');
    assert.deepEqual((await tool('curl', ['-sS', `${url}/added-by-sync.tar.gz`])).stdout, added);
    // The server serves what is in the root (alias.txt too), so it signed a fresh inventory.
    await eventually(async () => parseInventory((await tool('curl', ['-sS', `${url}/.well-known/sourcemesh/inventory`])).stdout, vkey).files.some((x) => x.name === 'alias.txt'));

    // A file copied in by hand: served after SIGHUP.
    await writeFile(path.join(f.root, 'by-hand.txt'), 'by hand\n');
    f.server.child.kill('SIGHUP');
    await eventually(async () => (await tool('curl', ['-sS', `${url}/by-hand.txt`])).stdout.toString() === 'by hand\n');
    const inv = parseInventory((await tool('curl', ['-sS', `${url}/.well-known/sourcemesh/inventory`])).stdout, vkey);
    assert.ok(inv.files.some((x) => x.name === 'by-hand.txt'));

    // Replaced behind the server's back. Whatever answer comes, its bytes are the ones its ETag
    // names: a large file read from disk gets 503 until reindexed; a small one may come from the
    // memory cache (the old, verified bytes) for up to a second. Then the new file is served.
    for (const [name, old] of [['large.bin', LARGE], ['small.txt', SMALL]] as const) {
      const replacement = bytes(old.length, 77);
      await writeFile(path.join(f.root, `${name}.new`), replacement);
      await rename(path.join(f.root, `${name}.new`), path.join(f.root, name));
      const body = path.join(f.dir, 'replaced.out');
      const r = await curlHead(['-o', body, `${url}/${name}`]);
      if (name === 'large.bin') {
        assert.equal(r.status, 503);
        assert.equal(r.headers['retry-after'], '1');
      } else {
        assert.equal(r.status, 200);
        assert.equal(r.headers.etag, `"${sha256(await readFile(body))}"`, 'the bytes served are the bytes the ETag names');
      }
      await eventually(async () => (await curlHead(['-o', body, `${url}/${name}`])).headers.etag === `"${sha256(replacement)}"`);
      assert.deepEqual(await readFile(body), replacement);
    }
  });

  test('the access log is JSON lines, one per request, after the "listening" line', async () => {
    const lines = (await readFile(f.log, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    const requests = lines.filter((l) => l.msg === 'request');
    assert.ok(requests.length > 30);
    const resumed = requests.find((l) => l.target === '/mid.bin' && l.range === 'bytes=12345-');
    assert.ok(resumed, 'curl -C - asked from where the partial ended');
    assert.equal(resumed.status, 206);
    assert.equal(resumed.bytes, MID.length - 12_345);
    assert.equal(resumed.complete, true);
    assert.match(resumed.ua, /^curl\//);
    assert.ok(requests.some((l) => l.target === '/../etc/passwd' && l.status === 400));
    assert.equal(JSON.parse(f.server.stdout().split('\n')[0]!).msg, 'listening');
  });
});

test('shutdown: a slow client in the middle of a download when SIGTERM arrives still gets the whole file; exit 0', async (t) => {
  const dir = await tempDir(t);
  const root = path.join(dir, 'mirror');
  await mkdir(root);
  // Larger than what the kernel's socket buffers on both sides can hold (up to ~36 MiB on loopback),
  // so the response is really still being written when the signal comes.
  const big = randomBytes(64 << 20);
  await writeFile(path.join(root, 'big.bin'), big);
  const server = await startServe(t, ['--root', root, '--no-access-log']);
  const out = path.join(dir, 'big.out');
  const download = tool('curl', ['-sS', '--fail', '--limit-rate', '40M', '-o', out, `${server.url}/big.bin`]);
  await eventually(async () => ((await stat(out).catch(() => null))?.size ?? 0) > 0, 20_000); // the body is flowing
  server.child.kill('SIGTERM');
  await eventually(async () => server.stderr().includes('shutting down'), 20_000); // the listener is closed
  const refused = await tool('curl', ['-sS', '-o', '/dev/null', `${server.url}/big.bin`]);
  assert.equal(refused.code, 7, 'no new connections once shutting down');
  assert.equal(server.child.exitCode, null, 'still running while the download goes on');
  const d = await download;
  assert.equal(d.code, 0, d.stderr);
  assert.equal(sha256(await readFile(out)), sha256(big));
  const exit = await server.exited();
  assert.equal(exit.code, 0, server.stderr());
  assert.match(server.stderr(), /shutting down/);
  assert.doesNotMatch(server.stderr(), /cut at the deadline/);
});

test('shutdown: past --shutdown-timeout what is left is cut, and the server still exits 0', async (t) => {
  const dir = await tempDir(t);
  const root = path.join(dir, 'mirror');
  await mkdir(root);
  await writeFile(path.join(root, 'big.bin'), randomBytes(64 << 20));
  const server = await startServe(t, ['--root', root, '--no-access-log', '--shutdown-timeout', '500ms']);
  const download = tool('curl', ['-sS', '--limit-rate', '1M', '-o', path.join(dir, 'out'), `${server.url}/big.bin`]);
  await eventually(async () => ((await stat(path.join(dir, 'out')).catch(() => null))?.size ?? 0) > 0, 20_000);
  server.child.kill('SIGINT');
  const exit = await server.exited();
  assert.equal(exit.code, 0);
  assert.match(server.stderr(), /1 connections cut at the deadline/);
  assert.equal((await download).code, 18, 'curl: partial file');
});

test('rate limit per client: past the burst, 429 with Retry-After', async (t) => {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, 'a.txt'), 'a\n');
  const server = await startServe(t, ['--root', dir, '--rate', '1', '--burst', '3', '--no-access-log']);
  const r = await tool('curl', ['-sS', '-w', '%{http_code} ', ...Array(5).fill(['-o', '/dev/null', `${server.url}/a.txt`]).flat()]);
  assert.equal(r.stdout.toString().trim(), '200 200 200 429 429');
  const h = await curlHead(['-o', '/dev/null', `${server.url}/a.txt`]);
  assert.equal(h.status, 429);
  assert.match(h.headers['retry-after'] ?? '', /^[12]$/);
});

test('HTTPS with --tls-cert and --tls-key, checked by curl against the certificate', async (t) => {
  const dir = await tempDir(t);
  const root = path.join(dir, 'mirror');
  await mkdir(root);
  await writeFile(path.join(root, 'mid.bin'), MID);
  const [key, cert] = [path.join(dir, 'key.pem'), path.join(dir, 'cert.pem')];
  const gen = await tool('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
  assert.equal(gen.code, 0, gen.stderr);
  const server = await startServe(t, ['--root', root, '--tls-cert', cert, '--tls-key', key, '--no-access-log']);
  assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const r = await tool('curl', ['-sS', '--fail', '--cacert', cert, '-r', '10-19', `${server.url}/mid.bin`]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout, MID.subarray(10, 20));
  const insecure = await tool('curl', ['-sS', `${server.url}/mid.bin`]);
  assert.equal(insecure.code, 60, 'an unknown certificate is refused by default');
});

test('bad usage is one line and exit 2; a taken port is exit 1', async (t) => {
  const dir = await tempDir(t);
  for (const args of [[], ['--root', dir, '--local'], ['--root', dir, '--listen', 'nonsense'], ['--root', dir, '--tls-cert', 'x.pem'], ['--root', dir, '--rate', '-1'],
    ['--root', path.join(dir, 'missing')], ['--root', dir, '--shutdown-timeout', 'soon']]) {
    const r = await runCli(['serve', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.after(() => blocker.close());
  const port = (blocker.address() as net.AddressInfo).port;
  const r = await runCli(['serve', '--root', dir, '--listen', `127.0.0.1:${port}`]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
});

function parseMultipart(body: Buffer, boundary: string): { range: string; body: Buffer }[] {
  const text = body.toString('latin1');
  const parts: { range: string; body: Buffer }[] = [];
  const delim = `--${boundary}`;
  assert.ok(text.startsWith(`${delim}\r\n`));
  assert.ok(text.endsWith(`\r\n${delim}--\r\n`));
  for (const chunk of text.slice(0, -(`\r\n${delim}--\r\n`.length)).split(`\r\n${delim}`).map((c, i) => (i === 0 ? c.slice(delim.length) : c))) {
    const end = chunk.indexOf('\r\n\r\n');
    const head = chunk.slice(2, end);
    const range = /Content-Range: (.*)/.exec(head)?.[1] ?? '';
    assert.match(head, /Content-Type: application\/octet-stream/);
    parts.push({ range, body: Buffer.from(chunk.slice(end + 4), 'latin1') });
  }
  return parts;
}

/** Send a raw request and read the status code of the answer. */
function rawStatus(url: string, request: string): Promise<number> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(request));
    let data = '';
    socket.on('data', (d) => (data += d.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)));
  });
}
