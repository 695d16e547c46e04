// `fetch` loads the modules of its optional features only when their options are given (src/cli/fetch.ts):
// the packages of BitTorrent, the DHT, mDNS, serve's logger and progress bars stay unloaded by a plain
// `fetch --help` and a plain `fetch --json` from a directory mirror, and load once their option is used.
// undici is loaded by its parts (src/net/undici.ts): never its index, which brings its fetch, WebSocket,
// cache and mocks, nor node:http2 (every agent of ours is HTTP/1.1). Nor the trust modules (only
// --trust-policy prints a verdict) and the decompressors (only a tarSha256 is checked through them): together
// 6-8 MB of RSS (docs/BENCHMARKS.md, bench:mirrors, issue 21).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { distfile, writeManifest } from '../helpers/distfiles.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const MAIN = path.join(ROOT, 'src/cli/main.ts');
const OPTIONAL = ['bittorrent-protocol', 'bittorrent-dht', 'multicast-dns', 'pino', 'cli-progress', 'xz-decompress'];
/** Our modules a plain fetch does without. */
const OWN_OPTIONAL = ['/src/trust/', '/src/compression/'];

/** The node_modules packages a CLI run loaded (module load hook), and its exit status. */
async function packagesLoaded(dir: string, args: string[]): Promise<{ status: number | null; stderr: string; packages: Set<string>; archiver: boolean; undiciIndex: boolean; http2: boolean; own: string[] }> {
  const trace = path.join(dir, `trace-${Math.random().toString(36).slice(2)}`);
  const hook = path.join(dir, 'trace-hook.mjs');
  await writeFile(hook, [
    "import { registerHooks } from 'node:module';",
    "import { appendFileSync } from 'node:fs';",
    'registerHooks({ load(url, ctx, next) { appendFileSync(process.env.TRACE_OUT, url + "\\n"); return next(url, ctx); } });',
  ].join('\n'));
  const r = spawnSync(process.execPath, ['--import', hook, MAIN, ...args], { encoding: 'utf8', env: { ...process.env, TRACE_OUT: trace }, cwd: dir, timeout: 60_000 });
  const urls = (await readFile(trace, 'utf8').catch(() => '')).split('\n');
  const packages = new Set(urls.flatMap((u) => {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u);
    return m ? [m[1]!] : [];
  }));
  const undiciIndex = urls.some((u) => /\/node_modules\/undici\/(index\.js|lib\/web\/)/.test(u));
  const own = urls.filter((u) => OWN_OPTIONAL.some((dir) => u.includes(dir)));
  return { status: r.status, stderr: r.stderr, packages, archiver: urls.some((u) => u.includes('/src/archive/')), undiciIndex, http2: urls.includes('node:http2'), own };
}

test('fetch --help and a plain fetch load none of the optional features\' packages; --bittorrent loads the wire', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'fetch-lazy-'));
  t.after(() => rm(dir, { recursive: true, force: true }));

  const help = await packagesLoaded(dir, ['fetch', '--help']);
  assert.equal(help.status, 0, help.stderr);
  assert.ok(help.packages.has('commander'), 'the trace sees packages at all');
  for (const p of OPTIONAL) assert.ok(!help.packages.has(p), `fetch --help loaded ${p}`);
  assert.ok(!help.archiver, 'fetch --help loaded the archiver (git snapshots, cleansing)');
  assert.deepEqual(help.own, [], 'fetch --help loaded trust or decompression modules');

  // A real fetch from a directory mirror, verified into the store.
  const bytes = Buffer.from('lazy imports\n');
  await mkdir(path.join(dir, 'mirror'));
  await writeFile(path.join(dir, 'mirror', 'a.txt'), bytes);
  const manifest = await writeManifest(dir, [distfile('a.txt', bytes, [])]);
  const base = ['fetch', manifest, '--json', '--offline', '--mirror', path.join(dir, 'mirror'), '--store', path.join(dir, 'store'), '-o', path.join(dir, 'out')];
  const plain = await packagesLoaded(dir, base);
  assert.equal(plain.status, 0, plain.stderr);
  assert.deepEqual(await readFile(path.join(dir, 'out', 'a.txt')), bytes);
  for (const p of OPTIONAL) assert.ok(!plain.packages.has(p), `a plain fetch loaded ${p}`);
  assert.ok(!plain.archiver, 'a fetch without git or cleansed entries loaded the archiver');
  assert.deepEqual(plain.own, [], 'a plain fetch loaded trust or decompression modules');
  assert.ok(plain.packages.has('undici'), 'the trace sees undici\'s parts');
  assert.ok(!help.undiciIndex && !plain.undiciIndex, 'fetch loaded undici\'s index (its fetch, WebSocket, cache...) instead of its parts');
  assert.ok(plain.packages.has('undici') && !plain.http2, 'a plain fetch loaded node:http2');

  // The control: the same trace sees the wire once --bittorrent is given.
  const bt = await packagesLoaded(dir, ['fetch', manifest, '--json', '--bittorrent', '--no-upload', '--mirror', path.join(dir, 'mirror'), '--store', path.join(dir, 'store2'), '-o', path.join(dir, 'out2'), '--policy', 'mirrors-only']);
  assert.ok(bt.packages.has('bittorrent-protocol'), `--bittorrent did not load the wire: ${[...bt.packages].join(' ')}`);
});
