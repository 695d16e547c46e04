// `fetch --bittorrent` asks a peer for a piece's blocks (BEP 3 `request`, 17 bytes each) in one write, not
// one system call and one TCP segment per request (src/torrent/peer-source.ts corks the socket for a turn
// of the event loop). Seen from outside with strace on the real `sourcemesh fetch`: almost no request
// leaves alone, and the file still verifies.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bytes, rootWithFiles } from '../helpers/distfiles.ts';
import { CLI, ROOT, runCli } from '../helpers/run.ts';
import { startSeed } from './seed-process.ts';

const SIZE = 4 * 1024 * 1024 + 99;
const DATA = bytes(SIZE, 81);
const NAME = 'req-1.0.tar';
const PIECE = 256 * 1024; // 16 blocks of 16 KiB per piece

test('the requests for a piece leave together (strace of a real fetch --bittorrent)', async (t) => {
  const { dir, root, manifest: bare } = await rootWithFiles(t, { [NAME]: { body: DATA, url: 'http://127.0.0.1:9/gone' } }, 'req');
  const manifest = path.join(dir, 'pinned.json');
  const made = await runCli(['torrent', 'create', bare, '--root', root, '-o', path.join(dir, 't'), '--manifest-out', manifest, '--piece-length', String(PIECE)]);
  assert.equal(made.code, 0, made.stderr);
  const torrent = path.join(dir, 't', `${NAME}.torrent`);
  // Pieces of 16 blocks: a torrent of its own piece length, which seed --torrent offers.
  const seed = await startSeed(t, ['--root', root, '--torrent', torrent]);

  const out = path.join(dir, 'out');
  const trace = path.join(dir, 'strace.out');
  const child = spawn('strace', ['-f', '-qq', '-s', '24', '-e', 'trace=write,writev', '-o', trace, process.execPath, CLI,
    'fetch', manifest, '--store', path.join(out, 'store'), '-o', out, '--json', '--no-upload', '--bittorrent', '--torrent', torrent, '--peer', seed.address,
  ], { cwd: ROOT, env: { ...process.env, CI: '1', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  let so = '';
  child.stdout.on('data', (d) => (so += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  assert.equal(code, 0, `${err}${so}`);
  assert.equal(createHash('sha256').update(await readFile(path.join(out, NAME))).digest('hex'), createHash('sha256').update(DATA).digest('hex'));

  // strace writes a byte string as C escapes: a request is <len=13><id=6>, 00 00 00 0d 06.
  const request = '"\\0\\0\\0\\r\\6';
  const lines = (await readFile(trace, 'utf8')).split('\n');
  const alone = lines.filter((l) => /\bwrite\(\d+, /.test(l) && l.includes(request)).length;
  const together = lines.filter((l) => /\bwritev\(\d+, /.test(l) && l.includes(request));
  const inWritev = together.reduce((n, l) => n + l.split(request).length - 1, 0);
  const blocks = Math.ceil(SIZE / 16_384);
  // Every block was asked for once at least; a piece's 16 requests go out as one writev.
  assert.ok(alone + inWritev >= blocks, `${alone} + ${inWritev} requests seen, ${blocks} blocks`);
  assert.ok(alone <= Math.ceil(SIZE / PIECE), `${alone} requests written alone (at most one per piece expected), ${inWritev} in ${together.length} writev calls`);
  assert.ok(together.length <= 2 * Math.ceil(SIZE / PIECE), `${together.length} writev calls carried requests`);
});
