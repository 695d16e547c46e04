// writeFully (src/fs/write-fully.ts): a short write is carried on or fails, never silently accepted.
// A real 64 KiB tmpfs: writev(2) of more than fits writes what fits and reports fewer bytes; the next
// write fails with ENOSPC. FileHandle.writev alone returns the short count as success.
import assert from 'node:assert/strict';
import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { writeFully } from '../../src/fs/write-fully.ts';
import { mountTmpfs } from '../helpers/tmpfs.ts';

const parts = [Buffer.alloc(40 * 1024, 1), Buffer.alloc(40 * 1024, 2), Buffer.alloc(40 * 1024, 3)];

test('more than the disk holds: FileHandle.writev reports a short write as success; writeFully fails with ENOSPC', async (t) => {
  const dir = await mountTmpfs(t, 'size=64k');
  const plain = await open(path.join(dir, 'plain'), 'w');
  const { bytesWritten } = await plain.writev(parts, 0);
  await plain.close();
  assert.ok(bytesWritten < 120 * 1024, `the short write this test needs did not happen (${bytesWritten})`);
  const fh = await open(path.join(dir, 'full'), 'w');
  t.after(() => fh.close());
  await assert.rejects(writeFully(fh, parts, 0), { code: 'ENOSPC' });
});

test('everything written, in order, at the position or the current offset, empty buffers skipped', async (t) => {
  const dir = await mountTmpfs(t, 'size=1m');
  const file = path.join(dir, 'f');
  const fh = await open(file, 'w');
  await writeFully(fh, [Buffer.from('ab'), Buffer.alloc(0), Buffer.from('cd')], null);
  await writeFully(fh, [Buffer.from('XY')], 1);
  await writeFully(fh, [...parts], 4);
  await fh.close();
  assert.deepEqual(await readFile(file), Buffer.concat([Buffer.from('aXYd'), ...parts]));
});
