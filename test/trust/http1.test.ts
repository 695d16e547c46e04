// No client of ours negotiates HTTP/2 (src/fetch/http.ts HTTP1_ONLY: the bounds and timeouts are the ones
// proven on HTTP/1.1). A TLS server on loopback that prefers h2 (and would take HTTP/1.1) must see only
// HTTP/1.1 from the log's witness client and from a LogClient given no dispatcher (`release`,
// `release rotate`, `release verify --online`). undici 8 offers h2 unless told not to.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import http2 from 'node:http2';
import type { TLSSocket } from 'node:tls';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT, tempDir } from '../helpers/run.ts';
import { add, ServerProcess, writeKey } from './log/servers.ts';

interface H2Server {
  url: string;
  cert: string;
  /** The protocol each TLS connection agreed on (ALPN), and the HTTP version of each request. */
  alpn: string[];
  versions: string[];
}

/** An HTTPS server that offers h2 first and HTTP/1.1 too, answering every request 503. */
async function h2Server(t: { after(fn: () => unknown): void }, dir: string): Promise<H2Server> {
  const key = path.join(dir, 'tls.key');
  const cert = path.join(dir, 'tls.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const alpn: string[] = [];
  const versions: string[] = [];
  const sockets = new Set<TLSSocket>();
  const server = http2.createSecureServer({ key: await readFile(key), cert: await readFile(cert), allowHTTP1: true }, (req, res) => {
    versions.push(req.httpVersion);
    req.resume();
    res.writeHead(503, { 'retry-after': '1' });
    res.end('busy\n');
  });
  server.on('secureConnection', (s: TLSSocket) => {
    alpn.push(String(s.alpnProtocol));
    sockets.add(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { url: `https://127.0.0.1:${(server.address() as { port: number }).port}`, cert, alpn, versions };
}

function assertHttp1(s: H2Server): void {
  assert.ok(s.versions.length > 0, 'the client made requests');
  assert.deepEqual([...new Set(s.alpn)], ['http/1.1'], `ALPN: ${s.alpn.join(', ')}`);
  assert.deepEqual([...new Set(s.versions)], ['1.1'], `HTTP versions: ${s.versions.join(', ')}`);
}

test('a LogClient given no dispatcher speaks HTTP/1.1 to a server that prefers h2', async (t) => {
  const dir = await tempDir(t);
  const server = await h2Server(t, dir);
  const script = `
    import { LogClient } from ${JSON.stringify(path.join(ROOT, 'src/trust/log-client.ts'))};
    try { await new LogClient(${JSON.stringify(server.url)}).checkpoint(); } catch (err) { console.error(err.code + ' ' + err.message); }`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NODE_EXTRA_CA_CERTS: server.cert }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await once(child, 'close');
  clearTimeout(timer);
  assert.match(stderr, /E_HTTP .*checkpoint: HTTP 503/);
  assertHttp1(server);
});

test('log serve speaks HTTP/1.1 to a witness that prefers h2', async (t) => {
  const dir = await tempDir(t);
  const witness = await h2Server(t, dir);
  const logKey = await writeKey(dir, 'example.test/http1-log');
  const witnessKey = await writeKey(dir, 'example.test/http1-witness', 'cosignature');
  // The child takes the certificate as trusted from its environment, read once at its start.
  const saved = process.env.NODE_EXTRA_CA_CERTS;
  process.env.NODE_EXTRA_CA_CERTS = witness.cert;
  let log: ServerProcess;
  try {
    log = await ServerProcess.start(['log', 'serve', '--root', path.join(dir, 'log'), '--key', logKey.file, '--listen', '127.0.0.1:0', '--witness', `${witnessKey.vkey}=${witness.url}`, '--admit-unsigned', '--checkpoint-interval', '100ms']);
  } finally {
    if (saved === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
    else process.env.NODE_EXTRA_CA_CERTS = saved;
  }
  t.after(() => log.stop());
  await add(log.url, 'an entry to cosign\n');
  for (let i = 0; i < 300 && witness.versions.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  assertHttp1(witness);
});
