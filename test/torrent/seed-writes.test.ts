// `seed` sends each block with its `piece` header (BEP 3: <len=9+X><id=7><index><begin><block>) in one
// system call: the library frames a block as two chunks, and the seeder corks the socket for a turn of
// the event loop so that they leave as one writev (src/torrent/seeder.ts). Seen from outside with strace
// on the real `sourcemesh seed`: no 13-byte header ever leaves alone, and every block reaches the peer.
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { BLOCK } from '../../src/fetch/piece-map.ts';
import { bytes } from '../helpers/distfiles.ts';
import { tempDir, waitFor } from '../helpers/run.ts';
import { RawPeer, msg } from './raw-peer.ts';
import { startSeed } from './seed-process.ts';

const SIZE = 200_000; // pieces of one 16 KiB block (autoPieceLength), 13 of them
const DATA = bytes(SIZE, 59);

test('each block leaves in one write with its header (strace of a real seed)', async (t) => {
  const dir = await tempDir(t);
  const root = path.join(dir, 'root');
  await mkdir(root);
  await writeFile(path.join(root, 'file.tar'), DATA);
  const trace = path.join(dir, 'strace.out');
  const seed = await startSeed(t, ['--root', root], { prefix: ['strace', '-f', '-qq', '-s', '64', '-e', 'trace=write,writev', '-o', trace] });
  const first = seed.first;

  const peer = new RawPeer('127.0.0.1', first.port);
  t.after(() => peer.socket.destroy());
  await peer.open(first.files[0]!.infoHashes.hybrid.v1);
  // Twelve whole blocks asked for at once (the thirteenth, shorter, left out: its header differs).
  const wanted = 12;
  peer.send(Buffer.concat(Array.from({ length: wanted }, (_, i) => msg(6, i, 0, BLOCK))));
  await waitFor('every block', () => {
    if (peer.closed) throw new Error('the seed closed the connection');
    return peer.pieces().length === wanted;
  }, { timeoutMs: 30_000 });
  for (const p of peer.pieces()) assert.ok(p.data.equals(DATA.subarray(p.index * BLOCK, (p.index + 1) * BLOCK)), `block ${p.index}`);
  peer.socket.destroy();
  await seed.stop();

  // strace writes a byte string as C escapes: a whole block's header starts 00 00 40 09 07.
  const header = '"\\0\\0@\\t\\7';
  const lines = (await readFile(trace, 'utf8')).split('\n');
  const alone = lines.filter((l) => /\bwrite\(\d+, /.test(l) && l.includes(header));
  const joined = lines.filter((l) => /\bwritev\(\d+, /.test(l) && l.includes(header) && /iov_len=16384/.test(l));
  assert.deepEqual(alone, [], 'no header written on its own');
  const headersJoined = joined.reduce((n, l) => n + l.split(header).length - 1, 0);
  assert.equal(headersJoined, wanted, `every header went out in a writev with its block:\n${joined.join('\n')}`);
});
