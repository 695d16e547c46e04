// The node's seed service (`sourcemesh seed --root`) and serve's announce setting: seed switched on by an
// edit of node.json and SIGHUP answers a BitTorrent handshake for a file of the mirror, serve untouched;
// switched off, its port refuses. The announce flags are checked as arguments (announcing for real would
// multicast on this machine's networks, which tests must not reach).
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { defaultConfig, parseConfig } from '../../src/node/config.ts';
import { serviceArgs } from '../../src/node/services.ts';
import { tempDir, waitFor } from '../helpers/run.ts';
import { editConfig, makeNode, startNode } from './node-process.ts';

/** A BEP 3 handshake for `infoHash`; resolves with the info-hash of the peer's handshake. */
function handshake(address: string, infoHash: string): Promise<string> {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(i + 1));
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const timer = setTimeout(() => (sock.destroy(), reject(new Error('no handshake in 10 s'))), 10_000);
    let got = Buffer.alloc(0);
    sock.on('connect', () => {
      sock.write(Buffer.concat([Buffer.from([19]), Buffer.from('BitTorrent protocol'), Buffer.alloc(8), Buffer.from(infoHash, 'hex'), Buffer.from('-SM0000-testpeer0001')]));
    });
    sock.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 48) {
        clearTimeout(timer);
        sock.destroy();
        resolve(got.subarray(28, 48).toString('hex'));
      }
    });
    sock.on('error', (err) => (clearTimeout(timer), reject(err)));
    sock.on('close', () => (clearTimeout(timer), reject(new Error(`closed after ${got.length} bytes`))));
  });
}

function refused(address: string): Promise<boolean> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const s = net.connect({ host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) });
    s.on('connect', () => (s.destroy(), resolve(false)));
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

test('node run: seed switched on by SIGHUP seeds the mirror (a BEP 3 handshake answered), serve untouched; switched off, refused', async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, 'mirror'), { recursive: true });
  await writeFile(path.join(dir, 'mirror', 'hello.tar'), Buffer.alloc(100_000, 7));
  const node = await makeNode(dir, (c) => {
    c.services.serve.enabled = true;
  });
  const n = await startNode(t, node, ['--no-panel']);
  await n.serviceUrl('serve');
  const servePid = Number((await n.waitLine('serve started', (l) => l.msg === 'service started' && l.service === 'serve')).child);

  await editConfig(dir, (c) => {
    c.services.seed.enabled = true;
    c.services.seed.port = 0;
  });
  n.child.kill('SIGHUP');
  const line = await n.waitLine('seed listening', (l) => l.service === 'seed' && l.stream === 'stdout' && typeof l.line === 'string' && l.line.includes('"listening"'));
  const seen = JSON.parse(String(line.line)) as { address: string; files: { name: string; infoHashes: { v1: string } }[] };
  assert.deepEqual(seen.files.map((f) => f.name), ['hello.tar']);
  const infoHash = seen.files[0]!.infoHashes.v1;
  assert.equal(await handshake(seen.address, infoHash), infoHash);
  assert.equal(n.lines().filter((l) => l.msg === 'service started' && l.service === 'serve').length, 1, 'serve not restarted');
  process.kill(servePid, 0);

  await editConfig(dir, (c) => {
    c.services.seed.enabled = false;
  });
  n.child.kill('SIGHUP');
  await n.waitLine('seed stopped', (l) => l.msg === 'service stopped' && l.service === 'seed');
  await waitFor('the seed port refused', () => refused(seen.address));
  assert.equal((await n.stop()).code, 0, n.stderr());
});

test('serve announce and seed settings become the flags of `serve` and `seed`; interfaces without announce refused', () => {
  const c = defaultConfig('n');
  c.services.serve.enabled = true;
  assert.ok(!serviceArgs(c, '/srv/n', 'serve')!.includes('--announce'));
  c.services.serve.announce = true;
  c.services.serve.announceInterfaces = ['eth0', 'wlan1'];
  const args = serviceArgs(parseConfig(c, 'test'), '/srv/n', 'serve')!;
  assert.deepEqual(args.slice(args.indexOf('--announce')), ['--announce', '--announce-interface', 'eth0', '--announce-interface', 'wlan1']);
  c.services.seed = { enabled: true, host: '::', port: 6881, root: 'mirror', maxPeers: 50, uploadRate: 1_000_000, dht: true };
  assert.deepEqual(serviceArgs(parseConfig(c, 'test'), '/srv/n', 'seed'),
    ['seed', '--root', '/srv/n/mirror', '--listen', '[::]:6881', '--max-peers', '50', '--upload-rate', '1000000', '--dht']);
  c.services.serve.announce = false;
  assert.throws(() => parseConfig(c, 'test'), (e: Error & { details?: { field?: string } }) => e.details?.field === 'services.serve.announceInterfaces');
  c.services.serve.announceInterfaces = ['eth0; rm'];
  assert.throws(() => parseConfig(c, 'test'), (e: Error & { details?: { field?: string } }) => e.details?.field === 'services.serve.announceInterfaces.0');
});
