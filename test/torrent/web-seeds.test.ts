// Our mirrors as BEP 19 web seeds: real clients with no peer at all get the files from `sourcemesh serve`
// through the torrents `torrent create` made. libtorrent 2.0.8 takes the hybrid torrent; Transmission 3.00
// (v1 only: it refuses hybrids) and aria2 take the v1 torrent.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { rootWithFiles } from '../helpers/distfiles.ts';
import { ROOT, runCli, waitFor } from '../helpers/run.ts';
import { startServe, tool } from '../mirror/serve-process.ts';

/** A port free on loopback now, for a tool that cannot be told to take any (aria2c's --listen-port). */
async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const FILES = { 'small.tar.gz': 50_001, 'big.tar.xz': 3_000_017 };

async function setup(t: { after(fn: () => unknown): void }) {
  const { dir, root, manifest, expected } = await rootWithFiles(t, FILES, 'seeds');
  const server = await startServe(t, ['--root', root, '--no-access-log']);
  const make = async (out: string, extra: string[]) => {
    const r = await runCli(['torrent', 'create', manifest, '--root', root, '-o', path.join(dir, out), '--web-seed', server.url, ...extra]);
    assert.equal(r.code, 0, r.stderr);
    return path.join(dir, out);
  };
  return { dir, root, make, expected };
}

test('libtorrent with no peers downloads our hybrid torrents from serve through the web seeds', async (t) => {
  const { dir, make, expected } = await setup(t);
  const torrents = await make('hybrid', []);
  for (const name of Object.keys(FILES)) {
    const save = path.join(dir, `lt-${name}`);
    await mkdir(save);
    const r = await tool('/usr/bin/python3', [path.join(ROOT, 'test/torrent/libtorrent-download.py'), path.join(torrents, `${name}.torrent`), save, '60'], { timeoutMs: 90_000 });
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout.toString());
    assert.ok(result.done, `libtorrent did not finish ${name}: ${r.stdout}`);
    assert.equal(result.failedBytes, 0);
    assert.equal(sha(await readFile(path.join(save, name))), expected[name]);
  }
});

test('aria2c and Transmission download our v1 torrent from serve through the web seeds', async (t) => {
  const { dir, make, expected } = await setup(t);
  const torrents = await make('v1', ['--v1']);
  const name = 'big.tar.xz';
  const torrent = path.join(torrents, `${name}.torrent`);

  const aria = path.join(dir, 'aria2');
  const a = await tool('aria2c', [
    '--seed-time=0', '--enable-dht=false', '--enable-dht6=false', '--bt-enable-lpd=false', '--enable-peer-exchange=false',
    `--listen-port=${await freePort()}`, `--dht-listen-port=${await freePort()}`, '--check-integrity=true', '--summary-interval=0', '--console-log-level=warn', '--no-conf', '--dir', aria, torrent,
  ], { timeoutMs: 90_000 });
  assert.equal(a.code, 0, a.stderr + a.stdout.toString());
  assert.equal(sha(await readFile(path.join(aria, name))), expected[name]);

  // transmission-cli seeds forever once done: it is stopped (by its own PID) when the file verifies.
  const cfg = path.join(dir, 'transmission');
  const out = path.join(dir, 'transmission-dl');
  await mkdir(cfg);
  await mkdir(out);
  await writeFile(path.join(cfg, 'settings.json'), JSON.stringify({
    'dht-enabled': false, 'lpd-enabled': false, 'pex-enabled': false, 'port-forwarding-enabled': false, 'utp-enabled': false, 'rpc-enabled': false, 'peer-port-random-on-start': true,
  }));
  const child = spawn('transmission-cli', ['-g', cfg, '-w', out, torrent], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const file = path.join(out, name);
  await waitFor(`Transmission to download ${name}`, async () => {
    if (child.exitCode !== null) throw new Error(`transmission-cli exited with ${child.exitCode}: ${log}`);
    const got = await readFile(file).catch(() => undefined);
    return got !== undefined && got.length === FILES[name] && sha(got) === expected[name];
  }, { timeoutMs: 90_000, everyMs: 100 });
  child.kill('SIGTERM');
});
