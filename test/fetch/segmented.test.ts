// Segmented fetch: one file in pieces from several loopback mirrors at once; liars named with the byte
// range as evidence and dropped; mirrors that ignore Range or stall do not stop the download.
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bytes, distfile, sha256, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin, type Behaviour } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { pieceMapOfFile } from '../../src/fetch/piece-map.ts';

/** The BEP 52 piece map of `body` with pieces of `pieceBytes`, as a mirror publishes it (written to a file to be mapped). */
async function publishedMap(dir: string, body: Buffer, pieceBytes: number) {
  const file = path.join(dir, 'mapped');
  await writeFile(file, body);
  return pieceMapOfFile(file, pieceBytes);
}

const BIG = bytes(4 * 1024 * 1024 + 12_345, 61); // 17 pieces of 256 KiB
const OTHER = bytes(1024 * 1024, 62);

async function mirrors(t: any, behaviours: (Behaviour | undefined)[]) {
  const dir = await tempDir(t);
  const routes: Record<string, { body: Buffer; behaviour?: Behaviour }> = {};
  behaviours.forEach((b, i) => {
    routes[`/m${i}/big.tar.gz`] = { body: BIG, behaviour: b };
    routes[`/m${i}/other.tar.gz`] = { body: OTHER, behaviour: b };
  });
  const origin = await startOrigin(routes);
  t.after(() => origin.close());
  const bases = behaviours.map((_, i) => `${origin.url}/m${i}`);
  const fetch = async (files: ('big' | 'other')[], ...args: string[]) => {
    const m = await writeManifest(dir, files.map((f) => distfile(`${f}.tar.gz`, f === 'big' ? BIG : OTHER, [])));
    const r = await runCli(['fetch', m, '-o', path.join(dir, 'out'), '--json', '--policy', 'mirrors-only', '--min-piece', '256KiB', '--jobs', '1', ...bases.flatMap((b) => ['--mirror', b]), ...args], { env: { SOURCEMESH_STORE: path.join(dir, 'store') } });
    return { ...r, report: r.stdout ? JSON.parse(r.stdout) : undefined };
  };
  const piecesAt = (i: number, file = 'big') => origin.log.filter((l) => l.path === `/m${i}/${file}.tar.gz` && /^bytes=\d+-\d+$/.test(l.range ?? '')).length;
  return { dir, origin, fetch, piecesAt };
}

test('a large file comes in Range pieces from every mirror at once, verified', async (t) => {
  const s = await mirrors(t, [undefined, undefined, undefined]);
  const r = await s.fetch(['big'], '--cross-check', '0');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await readFile(path.join(s.dir, 'out', 'big.tar.gz')), BIG);
  const f = r.report.files[0];
  assert.ok(f.contributors.length >= 2, JSON.stringify(f.contributors));
  assert.equal(f.contributors.reduce((n: number, c: { bytes: number }) => n + c.bytes, 0), BIG.length);
  for (const i of [0, 1, 2]) assert.ok(s.piecesAt(i) >= 1, `mirror ${i} served pieces`);
});

test('two files in pieces at once (one hashing thread for both), both verified', async (t) => {
  const s = await mirrors(t, [undefined, undefined, undefined]);
  const r = await s.fetch(['big', 'other'], '--cross-check', '0', '--jobs', '2');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await readFile(path.join(s.dir, 'out', 'big.tar.gz')), BIG);
  assert.deepEqual(await readFile(path.join(s.dir, 'out', 'other.tar.gz')), OTHER);
  for (const f of r.report.files) assert.ok(f.contributors.length >= 2, `${f.name} came in pieces`);
});

test('a mirror that lies in its pieces is named with the byte range as evidence and dropped for the run; the file verifies', async (t) => {
  const s = await mirrors(t, [undefined, { kind: 'wrong-bytes', every: 100_000 }, undefined]);
  const r = await s.fetch(['big', 'other'], '--cross-check', '0', '--segments', '3');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await readFile(path.join(s.dir, 'out', 'big.tar.gz')), BIG);
  const big = r.report.files.find((f: { name: string }) => f.name === 'big.tar.gz');
  const liar = `${s.origin.url}/m1`;
  assert.ok(s.piecesAt(1) > 0, 'an untried mirror is always given a piece');
  const lie = big.rejected.find((x: { source: string }) => x.source === liar);
  assert.ok(lie, JSON.stringify(big.rejected));
  assert.equal(lie.code, 'E_CHECKSUM');
  assert.match(lie.message, /served bytes \d+-\d+ of big\.tar\.gz with sha256 [0-9a-f]{64}; .* served [0-9a-f]{64}/);
  assert.ok(!big.contributors.some((c: { source: string }) => c.source === liar), 'every piece it served was replaced');
  assert.equal(s.origin.log.filter((l) => l.path === '/m1/other.tar.gz').length, 0, 'dropped for the rest of the run');
});

test('every piece disputed by a liar among two mirrors: the liar is found and the file verifies', async (t) => {
  // Two mirrors, one lying, pieces spread over both: whichever pieces it served are caught.
  for (let round = 0; round < 3; round++) {
    const s = await mirrors(t, [{ kind: 'wrong-bytes' }, undefined]);
    const r = await s.fetch(['big'], '--segments', '4', '--cross-check', '0');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readFile(path.join(s.dir, 'out', 'big.tar.gz')), BIG);
    assert.deepEqual((await readdir(path.join(s.dir, 'store', 'tmp'))).filter((n) => n.endsWith('.disputed')), [], 'disputed bytes are not left behind');
  }
});

test('a mirror that ignores Range is not used for pieces; the others serve the file', async (t) => {
  const s = await mirrors(t, [{ kind: 'ignore-range' }, undefined, undefined]);
  const r = await s.fetch(['big'], '--cross-check', '0');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await readFile(path.join(s.dir, 'out', 'big.tar.gz')), BIG);
  assert.ok(s.origin.log.filter((l) => l.path === '/m0/big.tar.gz').length <= 3, 'asked at most once per worker');
  assert.ok(!r.report.files[0].contributors.some((c: { source: string }) => c.source.endsWith('/m0')));
});

test('a stalled mirror does not hold the file hostage: its piece is re-issued elsewhere (end game)', async (t) => {
  const s = await mirrors(t, [{ kind: 'stall', after: 10 }, undefined, undefined]);
  const t0 = Date.now();
  const r = await s.fetch(['big'], '--timeout', '60', '--cross-check', '0');
  assert.equal(r.code, 0, r.stderr);
  assert.ok(Date.now() - t0 < 20_000, `took ${Date.now() - t0} ms with a 60 s timeout`);
  assert.deepEqual(await readFile(path.join(s.dir, 'out', 'big.tar.gz')), BIG);
});

test('a throttled mirror gets fewer pieces than fast ones', async (t) => {
  const s = await mirrors(t, [{ kind: 'slow', chunk: 16_384, delayMs: 50 }, undefined, undefined]);
  const r = await s.fetch(['big'], '--cross-check', '0', '--segments', '3');
  assert.equal(r.code, 0, r.stderr);
  assert.ok(s.piecesAt(0) < Math.max(s.piecesAt(1), s.piecesAt(2)), `slow ${s.piecesAt(0)}, fast ${s.piecesAt(1)}, ${s.piecesAt(2)}`);
});

test('cross-check: with --cross-check 1 every piece is compared with a second source, and agreement costs no blame', async (t) => {
  const s = await mirrors(t, [undefined, undefined]);
  const r = await s.fetch(['big'], '--cross-check', '1');
  assert.equal(r.code, 0, r.stderr);
  const ranged = s.piecesAt(0) + s.piecesAt(1);
  assert.ok(ranged >= 2 * 17, `every piece fetched twice: ${ranged} range requests`);
  assert.deepEqual(r.report.files[0].rejected, []);
});

test('bad --min-piece and --cross-check values: exit 2', async (t) => {
  const s = await mirrors(t, [undefined]);
  assert.equal((await s.fetch(['big'], '--min-piece', '1000')).code, 2);
  assert.equal((await s.fetch(['big'], '--cross-check', '2')).code, 2);
});

test('with a merkle root pinned and piece layers on the mirrors, a bad piece names its mirror on arrival', async (t) => {
  const dir = await tempDir(t);
  const map = await publishedMap(dir, BIG, 256 * 1024);
  const layer = Buffer.concat(map.layer);
  const routes: Record<string, { body: Buffer; behaviour?: Behaviour }> = {};
  for (const i of [0, 1, 2]) {
    routes[`/m${i}/big.tar.gz`] = { body: BIG, behaviour: i === 1 ? { kind: 'wrong-bytes', every: 100_000 } : undefined };
    routes[`/m${i}/sha256/${sha256(BIG)}.pieces`] = { body: layer };
  }
  const origin = await startOrigin(routes);
  t.after(() => origin.close());
  const m = await writeManifest(dir, [distfile('big.tar.gz', BIG, [], { merkleRoot: map.root.toString('hex') })]);
  const r = await runCli(['fetch', m, '-o', path.join(dir, 'out'), '--json', '--policy', 'mirrors-only', '--min-piece', '1MiB', '--cross-check', '0', ...[0, 1, 2].flatMap((i) => ['--mirror', `${origin.url}/m${i}`])], { env: { SOURCEMESH_STORE: path.join(dir, 'store') } });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await readFile(path.join(dir, 'out', 'big.tar.gz')), BIG);
  const f = JSON.parse(r.stdout).files[0];
  // Pieces follow the published layer (256 KiB), not --min-piece (the first 1 MiB answer covers pieces 0-3).
  const ranges = origin.log.filter((l) => /^\/m\d\/big/.test(l.path) && l.range).map((l) => l.range!);
  assert.ok(ranges.some((x) => /^bytes=1048576-1310719$/.test(x)), ranges.join(' '));
  const lie = f.rejected.find((x: { source: string }) => x.source === `${origin.url}/m1`);
  // Either its first answer (when it was asked first) or a piece of its own: checked on arrival both ways.
  assert.ok(origin.log.some((l) => l.path === '/m1/big.tar.gz' && l.range), 'an untried mirror is always given a piece');
  assert.ok(lie, JSON.stringify(f.rejected));
  assert.match(lie.message, /\(piece \d+\) that do not match the piece map pinned by its merkle root/);
});

test('the first answer (asked before the size and the piece map were known) is checked piece by piece: a lie in it names its mirror', async (t) => {
  const dir = await tempDir(t);
  const map = await publishedMap(dir, BIG, 256 * 1024);
  // The one mirror lies and is asked first (mirrors come before upstream); its probe of 1 MiB covers
  // four 256 KiB pieces of the published layer. Upstream is honest and publishes no layer.
  const origin = await startOrigin({
    '/m0/big.tar.gz': { body: BIG, behaviour: { kind: 'wrong-bytes', every: 100_000 } },
    [`/m0/sha256/${sha256(BIG)}.pieces`]: { body: Buffer.concat(map.layer) },
    '/up/big.tar.gz': { body: BIG },
  });
  t.after(() => origin.close());
  const m = await writeManifest(dir, [distfile('big.tar.gz', BIG, [`${origin.url}/up/big.tar.gz`], { merkleRoot: map.root.toString('hex') })]);
  const r = await runCli(['fetch', m, '-o', path.join(dir, 'out'), '--json', '--min-piece', '1MiB', '--cross-check', '0', '--mirror', `${origin.url}/m0`], { env: { SOURCEMESH_STORE: path.join(dir, 'store') } });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await readFile(path.join(dir, 'out', 'big.tar.gz')), BIG);
  assert.equal(origin.log.filter((l) => l.path === '/m0/big.tar.gz').length, 1, 'the liar answered the probe only');
  const lie = JSON.parse(r.stdout).files[0].rejected.find((x: { source: string }) => x.source === `${origin.url}/m0`);
  assert.ok(lie, r.stdout);
  assert.match(lie.message, /\(piece 0\) that do not match the piece map pinned by its merkle root/);
});

test('a first answer that covers many small pieces of the map (16 KiB, as in a torrent) is checked and kept whole, not asked for again', async (t) => {
  // The stress run's case: the size is not pinned, so the first answer (256 KiB) comes before the map,
  // whose pieces are 16 KiB; each is checked on its own. Buffers of 16 KiB from Node's pool cannot be
  // moved to the hashing thread, which once failed every such fetch.
  const dir = await tempDir(t);
  const body = bytes(1024 * 1024 + 5000, 63);
  const map = await publishedMap(dir, body, 16 * 1024);
  const routes: Record<string, { body: Buffer }> = {};
  for (const i of [0, 1]) {
    routes[`/m${i}/mid.tar.gz`] = { body };
    routes[`/m${i}/sha256/${sha256(body)}.pieces`] = { body: Buffer.concat(map.layer) };
  }
  const origin = await startOrigin(routes);
  t.after(() => origin.close());
  const m = await writeManifest(dir, [distfile('mid.tar.gz', body, [], { merkleRoot: map.root.toString('hex') })]);
  const r = await runCli(['fetch', m, '-o', path.join(dir, 'out'), '--json', '--policy', 'mirrors-only', '--min-piece', '256KiB', '--cross-check', '0', '--mirror', `${origin.url}/m0`, '--mirror', `${origin.url}/m1`], { env: { SOURCEMESH_STORE: path.join(dir, 'store') } });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.deepEqual(await readFile(path.join(dir, 'out', 'mid.tar.gz')), body);
  const f = JSON.parse(r.stdout).files[0];
  assert.deepEqual(f.rejected, []);
  const ranges = origin.log.filter((l) => /^\/m\d\/mid\.tar\.gz$/.test(l.path) && l.range).map((l) => Number(/^bytes=(\d+)-/.exec(l.range!)![1]));
  assert.equal(ranges.filter((start) => start === 0).length, 1, `the first answer only: ${ranges.join(' ')}`);
  assert.ok(ranges.every((start) => start === 0 || start >= 256 * 1024), `bytes of the first answer asked for again: ${ranges.join(' ')}`);
  assert.equal(f.contributors.reduce((n: number, c: { bytes: number }) => n + c.bytes, 0), body.length);
});

test("a first answer shorter than the map's first piece: the rest of that piece is asked of the same source and the piece checked whole", async (t) => {
  const dir = await tempDir(t);
  const map = await publishedMap(dir, BIG, 1024 * 1024);
  const layer = Buffer.concat(map.layer);
  const run = async (lie: boolean) => {
    // m0 is asked first (mirrors before upstream), for 256 KiB (--min-piece); the map's pieces are 1 MiB.
    const origin = await startOrigin({
      '/m0/big.tar.gz': { body: BIG, behaviour: lie ? { kind: 'wrong-bytes', every: 100_000 } : undefined },
      [`/m0/sha256/${sha256(BIG)}.pieces`]: { body: layer },
      '/up/big.tar.gz': { body: BIG },
    });
    t.after(() => origin.close());
    const m = await writeManifest(dir, [distfile('big.tar.gz', BIG, [`${origin.url}/up/big.tar.gz`], { merkleRoot: map.root.toString('hex') })]);
    const out = path.join(dir, lie ? 'out-lie' : 'out');
    const r = await runCli(['fetch', m, '-o', out, '--json', '--min-piece', '256KiB', '--cross-check', '0', '--mirror', `${origin.url}/m0`], { env: { SOURCEMESH_STORE: path.join(dir, lie ? 'store-lie' : 'store') } });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readFile(path.join(out, 'big.tar.gz')), BIG);
    const asked = origin.log.filter((l) => l.path === '/m0/big.tar.gz').map((l) => l.range);
    return { f: JSON.parse(r.stdout).files[0], asked, all: origin.log.filter((l) => l.path.endsWith('/big.tar.gz')).map((l) => l.range) };
  };
  const liar = await run(true);
  assert.deepEqual(liar.asked, ['bytes=0-262143', 'bytes=262144-1048575'], 'the probe and the rest of piece 0, then dropped');
  const lie = liar.f.rejected.find((x: { source: string }) => x.source.endsWith('/m0'));
  assert.ok(lie, JSON.stringify(liar.f.rejected));
  assert.match(lie.message, /bytes 0-1048575 of big\.tar\.gz \(piece 0\) that do not match the piece map pinned by its merkle root/);
  const honest = await run(false);
  assert.deepEqual(honest.f.rejected, []);
  assert.ok(!honest.all.some((x) => x !== undefined && /^bytes=0-/.test(x) && x !== 'bytes=0-262143'), `piece 0 asked for again: ${honest.all.join(' ')}`);
});
