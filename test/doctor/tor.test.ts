// The node's Tor proxy (node.json torProxy): `node run`'s mirror sync connects through it (a real SOCKS5
// server, Debian's dante, logs each connection it carried), and `sourcemesh doctor --node` checks that its
// SOCKS port answers a SOCKS5 greeting: pass while dante runs; fail once it is stopped, when the port
// speaks another protocol, stays silent, or refuses every method we offer.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { checkSocks } from '../../src/doctor/checks.ts';
import { limitsWith } from '../../src/limits.ts';
import { parseConfig } from '../../src/node/config.ts';
import { serviceArgs } from '../../src/node/services.ts';
import { bytes, distfile, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin } from '../helpers/origin.ts';
import { runCli, tempDir, waitFor } from '../helpers/run.ts';
import { startSocks } from '../helpers/socks.ts';
import { makeNode, startNode } from '../node/node-process.ts';

interface Check { check: string; status: string; detail: string; hint?: string }

async function doctorTor(node: string): Promise<{ code: number | null; tor?: Check; stderr: string }> {
  const r = await runCli(['doctor', '--json', '--node', node, '--store', path.join(node, 'store'), '--sample', '1']);
  const checks = r.stdout ? (JSON.parse(r.stdout) as { checks: Check[] }).checks : [];
  return { code: r.code, tor: checks.find((c) => c.check === 'tor'), stderr: r.stderr };
}

/** A loopback listener that does `behave` with each connection; its port. */
async function listener(t: { after(fn: () => unknown): void }, behave: (s: net.Socket) => void): Promise<number> {
  const open = new Set<net.Socket>();
  const server = net.createServer((s) => {
    open.add(s);
    s.on('error', () => {});
    behave(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    for (const s of open) s.destroy();
  }));
  return (server.address() as net.AddressInfo).port;
}

test('node torProxy: mirror sync goes through the SOCKS server; doctor passes while it answers SOCKS5 and fails once it is stopped', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t, 'sourcemesh-tor-');
  const socks = await startSocks(dir);
  t.after(() => socks.close());
  const file = bytes(40_000, 77);
  const upstream = await startOrigin({ '/t.tar.gz': { body: file } });
  t.after(() => upstream.close());
  const manifest = await writeManifest(dir, [distfile('t.tar.gz', file, [`${upstream.url}/t.tar.gz`])]);
  const proxy = `socks5h://127.0.0.1:${socks.port}`;
  const node = await makeNode(path.join(dir, 'node'), (c) => {
    c.torProxy = proxy;
    c.services.mirrorSync.enabled = true;
    c.services.mirrorSync.manifest = manifest;
  });

  // The node's mirror sync: the file arrives, and every connection to the upstream came through the proxy,
  // with credentials of its own (--tor: stream isolation).
  const n = await startNode(t, node);
  await waitFor('the mirror holds the file', async () => existsSync(path.join(node.dir, 'mirror', 't.tar.gz')), { timeoutMs: 60_000, everyMs: 100 });
  await socks.logged(upstream.connections());
  const seen = (await socks.connections()).filter((c) => c.port === upstream.port);
  assert.ok(seen.length > 0, 'the upstream was reached through the SOCKS server');
  assert.equal(seen.length, upstream.connections(), 'no connection to the upstream that did not come through it');
  assert.deepEqual(serviceArgs(parseConfig(JSON.parse(await readFile(path.join(node.dir, 'node.json'), 'utf8')), 'node.json'), node.dir, 'mirrorSync')!.slice(-3), ['--tor', '--proxy', proxy]);
  await n.stop();

  // doctor: the SOCKS port answers a SOCKS5 greeting (dante offers username/password, as Tor does).
  const ok = await doctorTor(node.dir);
  assert.equal(ok.tor?.status, 'pass', JSON.stringify(ok.tor));
  assert.match(ok.tor!.detail, new RegExp(`socks5h://127\\.0\\.0\\.1:${socks.port} answers SOCKS5 \\(username/password\\)`));
  assert.notEqual(ok.code, 3, JSON.stringify(ok));

  // Stopped: the check fails, and doctor exits 3.
  await socks.close();
  const stopped = await doctorTor(node.dir);
  assert.equal(stopped.code, 3);
  assert.equal(stopped.tor?.status, 'fail');
  assert.match(stopped.tor!.detail, /ECONNREFUSED/);
  assert.match(stopped.tor!.hint ?? '', /Tor running/);
});

test('doctor\'s SOCKS check: another protocol, silence, every method refused, a closed connection fail; a SOCKS5 answer passes', async (t) => {
  const http = await listener(t, (s) => s.once('data', () => s.end('HTTP/1.1 400 Bad Request\r\n\r\n')));
  const silent = await listener(t, () => {});
  const refuses = await listener(t, (s) => s.once('data', () => s.write(Buffer.of(0x05, 0xff))));
  const closes = await listener(t, (s) => s.once('data', () => s.end()));
  // An answer split over two segments is read whole.
  const split = await listener(t, (s) => s.once('data', (greeting: Buffer) => {
    assert.deepEqual(greeting, Buffer.of(0x05, 0x02, 0x00, 0x02), 'VER 5, two methods: none and username/password');
    s.write(Buffer.of(0x05));
    setImmediate(() => s.write(Buffer.of(0x00)));
  }));
  const timeout = limitsWith({}).doctorConnectTimeoutMs;
  const at = (port: number) => `socks5h://127.0.0.1:${port}`;
  const r = {
    http: await checkSocks(at(http)),
    silent: await checkSocks(at(silent), 300),
    refuses: await checkSocks(at(refuses)),
    closes: await checkSocks(at(closes)),
    split: await checkSocks(at(split)),
    bad: await checkSocks('socks5://127.0.0.1:9050'),
  };
  assert.ok(timeout > 300);
  assert.equal(r.http.status, 'fail');
  assert.match(r.http.detail, /not as a SOCKS5 server \(first byte 0x48\)/);
  assert.equal(r.silent.status, 'fail');
  assert.match(r.silent.detail, /no SOCKS5 answer within 300 ms/);
  assert.equal(r.refuses.status, 'fail');
  assert.match(r.refuses.detail, /accepts none of our methods \(0xff\)/);
  assert.equal(r.closes.status, 'fail');
  assert.match(r.closes.detail, /closed the connection without a SOCKS5 answer/);
  assert.equal(r.split.status, 'pass', r.split.detail);
  assert.match(r.split.detail, /answers SOCKS5 \(no authentication\)/);
  assert.equal(r.bad.status, 'fail');
  assert.match(r.bad.detail, /not a socks5h:\/\/HOST:PORT URL/);
  // Credentials in the URL never reach the output.
  const creds = await checkSocks(`socks5h://alice:secret@127.0.0.1:${split}`);
  assert.doesNotMatch(creds.detail, /secret|alice/);
});
