// libtorrent 2.0.8 leeching one torrent from one peer (test/torrent/libtorrent-download.py) as a child
// process: what it got, once stopped.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { ROOT } from '../helpers/run.ts';

/** libtorrent leeching `torrent` from `peer` (HOST:PORT) into `save` until stopped; `extra` goes to the script (e.g. --v2-handshake). */
export function libtorrentLeech(t: { after(fn: () => unknown): void }, torrent: string, save: string, peer: string, extra: string[] = []) {
  const child = spawn('/usr/bin/python3', [path.join(ROOT, 'test/torrent/libtorrent-download.py'), torrent, save, '120', ...extra, peer], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = once(child, 'close');
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return {
    async stop(): Promise<{ done: boolean; peerBytes: number; failedBytes: number; errors: string[] }> {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      assert.ok(out.trim(), `libtorrent-download.py printed nothing: ${err}`);
      return JSON.parse(out.trim());
    },
  };
}
