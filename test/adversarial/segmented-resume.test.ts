// Break 10 of issue 11: after kill -9, a download split across sources restarted from byte 0. Now the
// pieces in place are recorded beside the partial (tmp/*.part.pieces) once they are on disk, and the
// next run adopts the dead process's partial with its record and fetches only the missing pieces. A
// partial or record that was tampered with is not trusted blindly: a piece map rejects a bad adopted
// piece, and without one the final sha256 check and blame still repair the file, and a liar is still
// named.
//
// The mirrors here are our own loopback server: it honours single byte ranges, trickles every body
// out (so that a run takes a few seconds and can be killed mid-way), counts the bytes each mirror
// sent, and can lie. Kills are timed by events: after the mirrors sent a share of the file, and then
// after the record was rewritten.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pieceMapOfFile } from '../../src/fetch/piece-map.ts';
import { coveredPieces, decodePieceRecord } from '../../src/fetch/piece-record.ts';
import { bytes, distfile, sha256, writeManifest } from '../helpers/distfiles.ts';
import { CLI, ROOT, runCli, tempDir } from '../helpers/run.ts';

const PIECE = 256 * 1024;
const BIG = bytes(8 * 1024 * 1024 + 4321, 1010); // 33 pieces of 256 KiB
const NAME = 'big.tar.gz';

interface Mirrors {
  url: string;
  bases: string[];
  /** Body bytes each mirror has sent so far. */
  sent: number[];
  total(): number;
  reset(): void;
  /** From now on, send `chunk` bytes every `delayMs`. */
  pace(chunk: number, delayMs: number): void;
  close(): Promise<void>;
}

/**
 * `count` mirrors of BIG at /mK/NAME (and /mK/sha256/HEX.pieces when `layer` is given). Each response
 * sends `chunk` bytes every `delayMs`; mirror `liar` flips one byte in every 100,000 it serves.
 */
async function startMirrors(count: number, opts: { chunk: number; delayMs: number; liar?: number; layer?: Buffer }): Promise<Mirrors> {
  const sent = new Array<number>(count).fill(0);
  let pace = { chunk: opts.chunk, delayMs: opts.delayMs };
  const bad = Buffer.from(BIG);
  for (let i = 100; i < bad.length; i += 100_000) bad[i]! ^= 0x01;
  const sockets = new Set<import('node:net').Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    const m = /^\/m(\d+)\/(.+)$/.exec(req.url ?? '');
    const k = m ? Number(m[1]) : -1;
    if (!m || k >= count) return void res.writeHead(404).end();
    if (m[2] === `sha256/${sha256(BIG)}.pieces` && opts.layer) {
      const end = Math.min(Number(/^bytes=0-(\d+)$/.exec(req.headers.range ?? '')?.[1] ?? Infinity), opts.layer.length - 1);
      return void res.writeHead(206, { 'content-length': end + 1, 'content-range': `bytes 0-${end}/${opts.layer.length}` }).end(opts.layer.subarray(0, end + 1));
    }
    if (m[2] !== NAME) return void res.writeHead(404).end();
    const body = k === opts.liar ? bad : BIG;
    const r = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const start = r ? Number(r[1]) : 0;
    const end = r ? Math.min(r[2] ? Number(r[2]) : body.length - 1, body.length - 1) : body.length - 1;
    if (start > end) return void res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
    res.writeHead(r ? 206 : 200, { 'content-length': end - start + 1, ...(r ? { 'content-range': `bytes ${start}-${end}/${body.length}` } : {}) });
    let at = start;
    // One chunk per tick, at the pace of the moment (a test slows the mirrors down mid-way).
    let timer: NodeJS.Timeout | undefined;
    const tick = () => {
      timers.delete(timer!);
      if (res.destroyed) return;
      if (at > end) return void res.end();
      const chunk = body.subarray(at, Math.min(at + pace.chunk, end + 1));
      res.write(chunk);
      sent[k]! += chunk.length;
      at += chunk.length;
      timers.add((timer = setTimeout(tick, pace.delayMs)));
    };
    timers.add((timer = setTimeout(tick, pace.delayMs)));
    res.on('close', () => {
      clearTimeout(timer);
      timers.delete(timer!);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    bases: Array.from({ length: count }, (_, k) => `${url}/m${k}`),
    sent,
    total: () => sent.reduce((a, b) => a + b, 0),
    reset: () => sent.fill(0),
    pace: (chunk, delayMs) => (pace = { chunk, delayMs }),
    close: async () => {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function setup(t: any, count: number, opts: { chunk: number; delayMs: number; liar?: number; merkle?: boolean }) {
  const dir = await tempDir(t);
  let layer: Buffer | undefined;
  let extra = {};
  if (opts.merkle) {
    const file = path.join(dir, 'layer-source');
    await writeFile(file, BIG);
    const map = await pieceMapOfFile(file, PIECE);
    layer = Buffer.concat(map.layer);
    extra = { merkleRoot: map.root.toString('hex') };
  }
  const mirrors = await startMirrors(count, { ...opts, layer });
  t.after(() => mirrors.close());
  const manifest = await writeManifest(dir, [distfile(NAME, BIG, [], extra)]);
  const store = path.join(dir, 'store');
  const out = path.join(dir, 'out');
  const args = ['fetch', manifest, '-o', out, '--json', '--policy', 'mirrors-only', '--min-piece', '256KiB', '--segments', '4', '--cross-check', '0', '--jobs', '1', ...mirrors.bases.flatMap((b) => ['--mirror', b])];
  const tmp = path.join(store, 'tmp');
  const recordIno = async () => {
    const name = (await readdir(tmp).catch(() => [] as string[])).find((n) => n.endsWith('.part.pieces'));
    return name ? (await stat(path.join(tmp, name)).catch(() => undefined))?.ino : undefined;
  };

  /**
   * Start the fetch and SIGKILL it once the mirrors sent `share` of the file and the piece record was
   * rewritten twice after that (so that the last record was begun after that moment): the kill lands
   * mid-way, with pieces recorded, however loaded the machine. From that moment the mirrors slow down,
   * so that little more arrives before the kill. Returns the bytes sent by then.
   */
  const fetchAndKill = async (share: number) => {
    mirrors.pace(opts.chunk, opts.delayMs);
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, SOURCEMESH_STORE: store, CI: '1' }, stdio: 'ignore' });
    let exited = false;
    const closed = new Promise<void>((resolve) => child.on('close', () => resolve(void (exited = true))));
    const deadline = Date.now() + 120_000;
    while (!exited && mirrors.total() < share * BIG.length && Date.now() < deadline) await sleep(10);
    mirrors.pace(opts.chunk, 10 * opts.delayMs);
    for (let changes = 0, seen = await recordIno(); changes < 2; changes++) {
      while (!exited && (await recordIno()) === seen && Date.now() < deadline) await sleep(10);
      seen = await recordIno();
    }
    const killedAt = mirrors.total();
    child.kill('SIGKILL');
    await closed;
    assert.ok(killedAt < BIG.length, `killed before the end (the mirrors had sent ${killedAt} of ${BIG.length} bytes)`);
    const left = await readdir(tmp);
    assert.ok(left.some((n) => n.endsWith('.part')) && left.some((n) => n.endsWith('.part.pieces')), `a partial and its piece record are left: ${left.join(' ')}`);
    return killedAt;
  };
  const recordPath = async () => path.join(tmp, (await readdir(tmp)).find((n) => n.endsWith('.part.pieces'))!);
  const fetchAgain = async () => {
    mirrors.reset();
    mirrors.pace(64 * 1024, 1); // the second run is not timed by anything: no need to make it wait
    const r = await runCli(args, { env: { SOURCEMESH_STORE: store }, timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await readFile(path.join(out, NAME)), BIG);
    assert.deepEqual(await readdir(tmp), [], 'no partial, record or scratch file left');
    return { ...r, report: JSON.parse(r.stdout), again: mirrors.total() };
  };
  const partialPath = async () => path.join(tmp, (await readdir(tmp)).find((n) => n.endsWith('.part'))!);
  return { dir, mirrors, tmp, fetchAndKill, fetchAgain, partialPath, recordPath };
}

test('kill -9 mid-way through a download split across three mirrors: the next run fetches only the missing pieces', async (t) => {
  const s = await setup(t, 3, { chunk: 16 * 1024, delayMs: 40 });
  const killedAt = await s.fetchAndKill(0.75);
  const record = decodePieceRecord(await readFile(await s.recordPath(), 'utf8'))!;
  const recorded = coveredPieces(record, BIG.length, PIECE).reduce((n, i) => n + Math.min(PIECE, BIG.length - i * PIECE), 0);
  const r = await s.fetchAgain();
  t.diagnostic(`first run killed after ${killedAt} bytes sent, ${recorded} recorded in place; second run: ${r.again} of ${BIG.length} bytes sent again`);
  // The record holds what was on disk when its checkpoint began: 75% of the file, less the pieces in
  // flight then (4 connections of 256 KiB). The second run asks for the rest, the first piece again
  // (to learn the size), and at most a few end-game duplicates.
  assert.ok(recorded >= 0.75 * BIG.length - 4 * PIECE, `${recorded} bytes recorded`);
  assert.ok(r.again <= BIG.length - recorded + 5 * PIECE, `the second run had ${r.again} bytes sent again, ${BIG.length - recorded} were missing`);
  assert.ok(r.again < 0.5 * BIG.length, `the second run had ${r.again} of ${BIG.length} bytes sent again`);
  const f = r.report.files[0];
  assert.equal(f.status, 'fetched');
  assert.deepEqual(f.rejected, []);
});

test('a tampered partial (adopted pieces changed on disk) is repaired by blame, not trusted; no mirror is blamed for it', async (t) => {
  const s = await setup(t, 3, { chunk: 16 * 1024, delayMs: 40 });
  await s.fetchAndKill(0.5);
  // Flip bytes all over the partial: recorded pieces among them.
  const file = await s.partialPath();
  const buf = await readFile(file);
  for (let i = 777; i < buf.length; i += PIECE / 2) buf[i]! ^= 0xff;
  await writeFile(file, buf);
  const r = await s.fetchAgain();
  assert.deepEqual(r.report.files[0].rejected, [], 'an earlier run\'s bytes name no mirror');
});

test('a forged piece record (every piece "in place" over a partial of zeros) is not trusted: the file still verifies', async (t) => {
  const s = await setup(t, 2, { chunk: 16 * 1024, delayMs: 40 });
  await s.fetchAndKill(0.3);
  const record = await s.recordPath();
  const text = JSON.parse(await readFile(record, 'utf8'));
  const count = Math.ceil(BIG.length / PIECE);
  const have = Buffer.alloc(Math.ceil(count / 8), 0xff);
  if (count % 8) have[have.length - 1] = (1 << (count % 8)) - 1;
  await writeFile(record, JSON.stringify({ ...text, have: have.toString('base64') }));
  await writeFile(await s.partialPath(), Buffer.alloc(BIG.length));
  const r = await s.fetchAgain();
  assert.deepEqual(r.report.files[0].rejected, []);
});

test('a malformed or oversized piece record is ignored: the download starts over and verifies', async (t) => {
  for (const forged of ['{"format":"sourcemesh.pieces/v1","size":-1}', 'x'.repeat(3 * 1024 * 1024)]) {
    const s = await setup(t, 2, { chunk: 32 * 1024, delayMs: 20 });
    await s.fetchAndKill(0.3);
    await writeFile(await s.recordPath(), forged);
    const r = await s.fetchAgain();
    assert.ok(r.again >= BIG.length, `nothing adopted: ${r.again} bytes sent again`);
  }
});

test('a liar among the mirrors, killed mid-way: the next run still names it and the file verifies', async (t) => {
  const s = await setup(t, 2, { chunk: 16 * 1024, delayMs: 40, liar: 1 });
  await s.fetchAndKill(0.5);
  const r = await s.fetchAgain();
  const f = r.report.files[0];
  const lie = f.rejected.find((x: { source: string }) => x.source === s.mirrors.bases[1]);
  assert.ok(lie, JSON.stringify(f.rejected));
  assert.equal(lie.code, 'E_CHECKSUM');
  assert.ok(!f.rejected.some((x: { source: string }) => x.source === s.mirrors.bases[0]), 'the honest mirror is not blamed');
});

test('with a piece map, an adopted piece that no longer matches it is fetched again, and nothing else is', async (t) => {
  const s = await setup(t, 3, { chunk: 16 * 1024, delayMs: 40, merkle: true });
  await s.fetchAndKill(0.75);
  const file = await s.partialPath();
  const buf = await readFile(file);
  buf[PIECE + 5]! ^= 0xff; // in piece 1, one of the first written
  await writeFile(file, buf);
  const r = await s.fetchAgain();
  assert.ok(r.again < 0.5 * BIG.length, `the second run had ${r.again} of ${BIG.length} bytes sent again`);
  assert.deepEqual(r.report.files[0].rejected, []);
});
