// Break 6 of issue 11: decompression bombs cost unbounded time. A 104 KB .tar.bz2 pinned by tarSha256 alone
// decompressed for 129 s (16 GiB), and `cleanse` expanded 13 KB to 2 GiB. Decompression is now bounded by a
// ratio to the compressed bytes read (src/limits.ts decompressionRatio, past decompressionFloorBytes) and an
// absolute cap (decompressedTarBytes): bombs are refused after some tens of MB, with one E_ARCHIVE line.
// Also break 1's setting: the bomb decompressing next to bodies ended by FIN, in one fetch.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { decompressedChunks } from '../../src/compression/decompress.ts';
import { isSourcemeshError } from '../../src/errors.ts';
import { LIMITS, limitsWith, type Limits } from '../../src/limits.ts';
import { MANIFEST_FORMAT } from '../../src/manifest/distfile.ts';
import { bytes, sha256 } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { closeDelimitedHead, startRawServer } from './fetch-raw-server.ts';

const MB = 1_000_000;

/** `count` bzip2 streams of 45 MB of zeros each, back to back (as pbzip2 writes): 50 bytes per 45 MB. */
function bzip2Bomb(count: number): Buffer {
  const one = execFileSync('bzip2', ['-9', '-c'], { input: Buffer.alloc(45 * MB) });
  return Buffer.concat(Array.from({ length: count }, () => one));
}

/** A ustar header for a regular file `name` of `size` bytes (POSIX.1-2001 ustar; octal fields). */
function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  const field = (at: number, len: number, value: string) => h.write(value, at, len, 'latin1');
  field(0, 100, name);
  field(100, 8, '0000644\0');
  field(108, 8, '0000000\0');
  field(116, 8, '0000000\0');
  field(124, 12, `${size.toString(8).padStart(11, '0')}\0`);
  field(136, 12, '00000000000\0');
  field(148, 8, '        ');
  field(156, 1, '0');
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  let sum = 0;
  for (const b of h) sum += b;
  field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return h;
}

/** Decompress `file` through the bounds; how many bytes came out before the refusal, and the refusal. */
async function drain(file: Buffer, limits: Limits = LIMITS): Promise<{ out: number; err?: unknown }> {
  async function* chunks() {
    for (let i = 0; i < file.length; i += 65_536) yield file.subarray(i, i + 65_536);
  }
  let out = 0;
  try {
    for await (const c of decompressedChunks(chunks(), 'bomb', limits)) out += c.length;
  } catch (err) {
    return { out, err };
  }
  return { out };
}

const refusedAsBomb = (err: unknown) => isSourcemeshError(err, 'E_ARCHIVE') && /refused as a decompression bomb/.test(err.message);

test('bzip2, xz and gzip bombs are refused after a bounded output, with E_ARCHIVE', async () => {
  // 2,000 streams: 100 KB that would be 90 GB.
  const bz2 = bzip2Bomb(2000);
  const b = await drain(bz2);
  assert.ok(refusedAsBomb(b.err), String(b.err));
  // The floor, the ratio times what was read, and at most one block (45 MB) decoded before the check.
  assert.ok(b.out <= LIMITS.decompressionFloorBytes + LIMITS.decompressionRatio * bz2.length + 45 * MB, `${b.out} bytes out`);

  // xz: 100 MB of zeros in about 15 KB.
  const xz = execFileSync('xz', ['-T1', '-1', '-c'], { input: Buffer.alloc(100 * MB), maxBuffer: 1 << 26 });
  const x = await drain(xz);
  assert.ok(refusedAsBomb(x.err), String(x.err));
  assert.ok(x.out < 100 * MB);

  // Deflate tops out near 1032:1, under the default ratio: a gzip bomb is only linear. With a ratio of
  // 100 the same rule refuses one.
  const gz = execFileSync('gzip', ['-9', '-c'], { input: Buffer.alloc(100 * MB), maxBuffer: 1 << 26 });
  const g = await drain(gz, limitsWith({ decompressionRatio: 100, decompressionFloorBytes: 1 << 20 }));
  assert.ok(refusedAsBomb(g.err), String(g.err));
  assert.ok(g.out < 30 * MB, `${g.out}`);
});

test('the absolute cap holds whatever the ratio; honest tarballs pass the ratio', async () => {
  const gz = execFileSync('gzip', ['-1', '-c'], { input: bytes(3 * MB, 5), maxBuffer: 1 << 26 });
  const capped = await drain(gz, limitsWith({ decompressedTarBytes: 2 * MB }));
  assert.ok(isSourcemeshError(capped.err, 'E_ARCHIVE') && /the limit for any tarball/.test(capped.err.message), String(capped.err));
  // A real tar of text, random and zero-filled files, in each compression: well within the bounds.
  const tar = Buffer.concat([Buffer.from('x'.repeat(2 * MB)), bytes(MB, 6), Buffer.alloc(3 * MB)]);
  for (const argv of [['gzip', '-9', '-c'], ['xz', '-T1', '-9', '-c'], ['bzip2', '-9', '-c']]) {
    const packed = execFileSync(argv[0]!, argv.slice(1), { input: tar, maxBuffer: 1 << 26 });
    const r = await drain(packed, limitsWith({ decompressionFloorBytes: 0, decompressionRatio: 1024 }));
    assert.equal(r.err, undefined, `${argv[0]}: ${String(r.err)}`);
    assert.equal(r.out, tar.length);
  }
});

test('fetch: a .tar.bz2 bomb pinned by tarSha256 alone is refused in seconds, next to bodies ended by FIN; the honest source after it serves the file', async (t) => {
  const dir = await tempDir(t);
  const tar = execFileSync('tar', ['--mtime=@0', '--owner=0', '--group=0', '-C', path.join(import.meta.dirname), '-cf', '-', 'fetch-bomb.test.ts']);
  const honest = execFileSync('gzip', ['-n', '-c'], { input: tar });
  const bomb = bzip2Bomb(2000);
  const origin = await startOrigin({ '/p.tar.bz2': { body: bomb }, '/p.tar.gz': { body: honest }, '/only.tar.bz2': { body: bomb } });
  t.after(() => origin.close());
  const fin = [65_536, 100_000, 1_000_000].map((size, i) => ({ name: `fin${i}.tar`, body: bytes(size, 40 + i) }));
  const raw = await startRawServer((req) => ({ bytes: [closeDelimitedHead(), fin.find((f) => `/${f.name}` === req.path)?.body ?? Buffer.alloc(0)] }));
  t.after(() => raw.close());
  const manifest = path.join(dir, 'manifest.json');
  await writeFile(manifest, JSON.stringify({
    format: MANIFEST_FORMAT, name: 'bombs', distfiles: [
      ...fin.map((f) => ({ name: f.name, sha256: sha256(f.body), urls: [`${raw.url}/${f.name}`] })),
      { name: 'only.tar.bz2', tarSha256: sha256(tar), urls: [`${origin.url}/only.tar.bz2`] },
      { name: 'p.tar.gz', tarSha256: sha256(tar), urls: [`${origin.url}/p.tar.bz2`, `${origin.url}/p.tar.gz`] },
    ],
  }));
  const store = path.join(dir, 'store');
  const t0 = performance.now();
  const r = await runCli(['fetch', manifest, '-o', path.join(dir, 'out'), '--jobs', '3', '--json'], { env: { SOURCEMESH_STORE: store }, timeoutMs: 120_000 });
  const seconds = (performance.now() - t0) / 1000;
  assert.doesNotMatch(r.stderr, /AssertionError|internal error|\n\s+at /, r.stderr);
  const report = JSON.parse(r.stdout);
  const byName = Object.fromEntries(report.files.map((f: { name: string }) => [f.name, f]));
  for (const f of fin) assert.equal(byName[f.name].status, 'fetched', f.name);
  assert.equal(byName['p.tar.gz'].status, 'fetched', JSON.stringify(byName['p.tar.gz']));
  assert.deepEqual(await readFile(path.join(dir, 'out', 'p.tar.gz')), honest);
  assert.match(byName['p.tar.gz'].rejected[0].message, /refused as a decompression bomb/);
  assert.equal(byName['only.tar.bz2'].status, 'failed');
  assert.match(byName['only.tar.bz2'].error.message, /refused as a decompression bomb/);
  // Bytes that are no tar at all cannot have the pinned tarSha256: a checksum failure (exit 3), the source named.
  assert.equal(byName['only.tar.bz2'].error.code, 'E_CHECKSUM');
  assert.equal(r.code, 3);
  // 90 GB of bzip2 would take over ten minutes; the bound stops each bomb after well under a GB.
  assert.ok(seconds < 90, `${seconds.toFixed(1)} s`);
  assert.deepEqual(await readdir(path.join(store, 'tmp')), []);
  assert.deepEqual(await readdir(path.join(store, 'locks')), []);
});

test('cleanse: a 13 KB-class bomb is refused with E_ARCHIVE, exit 2, nothing written', async (t) => {
  const dir = await tempDir(t);
  const bomb = path.join(dir, 'bomb.tar.bz2');
  // One entry of 8 GiB - 1 of zeros: the cleanser must read it all (13 KB of bzip2 streams, 11.7 GB).
  const head = execFileSync('bzip2', ['-9', '-c'], { input: Buffer.concat([tarHeader('big', 8 * 1024 ** 3 - 1), Buffer.alloc(45 * MB)]) });
  await writeFile(bomb, Buffer.concat([head, bzip2Bomb(260)]));
  const out = path.join(dir, 'clean.tar.gz');
  const r = await runCli(['cleanse', bomb, '--delete', 'x', '-o', out], { timeoutMs: 120_000 });
  assert.match(r.stderr, /bomb\.tar\.bz2: refused as a decompression bomb.*\[E_ARCHIVE\]/, r.stderr);
  assert.equal(r.code, 2);
  assert.deepEqual(await readdir(dir), ['bomb.tar.bz2']);
});
