// `fetch --metalink`: the real aria2c downloads through our Metalink from our mirrors and verifies.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { bytes, distfile, sha256, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { formatMetalink } from '../../src/fetch/metalink.ts';

const run = promisify(execFile);

test('aria2c -M downloads every file through our Metalink and checks its piece and file hashes', async (t) => {
  const dir = await tempDir(t);
  const big = bytes(3_500_000, 51); // several 1 MiB pieces
  const small = bytes(1000, 52);
  const origin = await startOrigin({ '/m1/big.tar.gz': { body: big }, '/m1/small+more.txt': { body: small }, '/m2/big.tar.gz': { body: big }, '/up/big.tar.gz': { body: big }, '/up/small': { body: small } });
  t.after(() => origin.close());
  const m = await writeManifest(dir, [distfile('big.tar.gz', big, [`${origin.url}/up/big.tar.gz`]), distfile('small+more.txt', small, [`${origin.url}/up/small`])]);
  const meta = path.join(dir, 'distfiles.meta4');
  const r = await runCli(['fetch', m, '-o', path.join(dir, 'ours'), '--mirror', `${origin.url}/m1`, '--mirror', `${origin.url}/m2`, '--metalink', meta], { env: { SOURCEMESH_STORE: path.join(dir, 'store') } });
  assert.equal(r.code, 0, r.stderr);
  const xml = await readFile(meta, 'utf8');
  assert.match(xml, /<hash type="sha-256">[0-9a-f]{64}<\/hash>/);
  assert.equal((xml.match(/<file /g) ?? []).length, 2);
  assert.equal((xml.match(/<pieces length="1048576" type="sha-256">/g) ?? []).length, 2);

  const before = origin.log.length;
  const out = path.join(dir, 'aria2');
  await run('aria2c', ['-M', meta, '-d', out, '--check-integrity=true', '-x', '2', '-s', '2', '--allow-overwrite=true', '--console-log-level=warn', '--summary-interval=0', '--file-allocation=none']);
  assert.deepEqual(await readFile(path.join(out, 'big.tar.gz')), big);
  assert.deepEqual(await readFile(path.join(out, 'small+more.txt')), small);
  const used = origin.log.slice(before).map((l) => l.path.split('/')[1]);
  assert.ok(used.includes('m1') || used.includes('m2'), `aria2 used our mirrors: ${used}`);
  assert.equal(sha256(await readFile(path.join(out, 'big.tar.gz'))), sha256(big));
});

test('aria2c refuses a file whose sources serve a tampered piece: the piece hash catches it, the download fails', async (t) => {
  const dir = await tempDir(t);
  const big = bytes(3_500_000, 53);
  const origin = await startOrigin({ '/m1/big.tar.gz': { body: big }, '/up/big.tar.gz': { body: big } });
  t.after(() => origin.close());
  const m = await writeManifest(dir, [distfile('big.tar.gz', big, [`${origin.url}/up/big.tar.gz`])]);
  const meta = path.join(dir, 'distfiles.meta4');
  const r = await runCli(['fetch', m, '-o', path.join(dir, 'ours'), '--mirror', `${origin.url}/m1`, '--metalink', meta], { env: { SOURCEMESH_STORE: path.join(dir, 'store') } });
  assert.equal(r.code, 0, r.stderr);
  // From now on the mirror and upstream both flip one byte in the middle of the file: in piece 1 of 4.
  for (const p of ['/m1/big.tar.gz', '/up/big.tar.gz']) origin.routes.get(p)!.behaviour = { kind: 'wrong-bytes' };
  const out = path.join(dir, 'aria2');
  const argv = ['-M', meta, '-d', out, '--check-integrity=true', '-x', '2', '-s', '2', '--allow-overwrite=true', '--console-log-level=warn', '--summary-interval=0', '--file-allocation=none', '--max-tries=2', '--retry-wait=1'];
  const refused = await run('aria2c', argv, { timeout: 60_000 }).then(() => undefined, (err: { code?: number; stdout?: string }) => err);
  assert.ok(refused, 'aria2c accepted a file with a tampered piece');
  assert.notEqual(refused.code, 0);
  // Caught by the hash of the piece holding the flipped byte (a whole-file check would say no index).
  assert.match(refused.stdout ?? '', /Invalid checksum index=1\b/, refused.stdout);
  // What is on disk stays marked unfinished: aria2's control file is kept beside it, for a resume.
  assert.ok((await readdir(out)).includes('big.tar.gz.aria2'), 'the download is left unfinished');
});

test('Metalink text escapes XML in names and URLs', () => {
  const d = distfile('a & <b>.txt', Buffer.from('x'), ["http://h/a?x=1&y='2'"]);
  const xml = formatMetalink([{ distfile: d, size: 1, pieces: [sha256(Buffer.from('x'))], pieceLength: 1 << 20 }], [{ kind: 'http', base: 'http://m' }], 'sourcemesh/test');
  assert.match(xml, /<file name="a &amp; &lt;b&gt;\.txt">/);
  assert.match(xml, /<url priority="1">http:\/\/m\/a%20%26%20%3Cb%3E\.txt<\/url>/);
  assert.match(xml, /<url priority="2">http:\/\/h\/a\?x=1&amp;y=&apos;2&apos;<\/url>/);
});
