// libtorrent 2.0.8 seeding one torrent (test/torrent/libtorrent-seed.py) as a child process: its port once
// it has checked the files and seeds, and how much it uploaded once stopped.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ROOT, waitFor } from '../helpers/run.ts';

/** libtorrent seeding `torrent` from `dir` (a multi-file torrent's files under dir/NAME/). */
export async function libtorrentSeed(t: { after(fn: () => unknown): void }, torrent: string, dir: string) {
  const child = spawn('/usr/bin/python3', [path.join(ROOT, 'test/torrent/libtorrent-seed.py'), torrent, dir], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await waitFor('libtorrent to seed', () => {
    if (child.exitCode !== null) throw new Error(`libtorrent-seed.py exited: ${err}`);
    return out.includes('\n');
  }, { timeoutMs: 60_000 });
  const first = JSON.parse(out.split('\n')[0]!);
  assert.ok(first.seeding, 'libtorrent checked the file and seeds it');
  return {
    port: first.port as number,
    async stop(): Promise<number> {
      child.stdin.end();
      await waitFor('libtorrent to stop', () => out.split('\n').length > 2, { timeoutMs: 30_000 });
      return JSON.parse(out.split('\n')[1]!).uploaded;
    },
  };
}
