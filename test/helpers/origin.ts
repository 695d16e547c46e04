// A real HTTP server on loopback whose routes misbehave on purpose: the hostile and flaky servers
// the fetch tests run against. Every request is recorded so tests can assert what the client did.
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export type Behaviour =
  | { kind: 'ok' }
  | { kind: 'wrong-bytes'; every?: number } // same length, one byte flipped (or one in every `every`)
  | { kind: 'truncate'; after: number } // announces the full length, closes after `after` bytes
  | { kind: 'fail-then-ok'; failures: number; status?: number }
  | { kind: 'stall'; after: number } // sends `after` bytes then goes silent
  | { kind: 'reset'; after: number } // sends `after` bytes then resets the connection
  | { kind: 'reset-once'; after: number } // resets on the first request only
  | { kind: 'ignore-range' } // always 200 with the whole body
  | { kind: 'oversize'; extra: number } // no Content-Length, sends more than the file
  | { kind: 'redirect'; to: string } // 302 to `to` (relative or absolute)
  | { kind: 'status'; status: number }
  | { kind: 'slow'; chunk: number; delayMs: number } // honours Range, trickles the body out
  | { kind: 'held'; until: Promise<void> }; // sends nothing until `until` settles, then the body

export interface Route {
  body: Buffer;
  behaviour?: Behaviour;
}

export interface RequestLog {
  path: string;
  range?: string;
  ifRange?: string;
  acceptEncoding?: string;
}

export interface Origin {
  url: string;
  port: number;
  routes: Map<string, Route>;
  log: RequestLog[];
  hits(path: string): number;
  /** TCP connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

export async function startOrigin(routes: Record<string, Route> = {}, tls?: { key: Buffer; cert: Buffer }): Promise<Origin> {
  const table = new Map(Object.entries(routes));
  const log: RequestLog[] = [];
  const counts = new Map<string, number>();
  const sockets = new Set<Socket>();
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    log.push({ path, range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined, acceptEncoding: req.headers['accept-encoding'] });
    const n = (counts.get(path) ?? 0) + 1;
    counts.set(path, n);
    const route = table.get(path);
    if (!route) {
      res.writeHead(404).end('not found');
      return;
    }
    serve(route, n, req, res);
  };
  const server = tls ? https.createServer({ key: tls.key, cert: tls.cert }, handler) : http.createServer(handler);
  let accepted = 0;
  server.on(tls ? 'secureConnection' : 'connection', (s: Socket) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    routes: table,
    log,
    hits: (p) => counts.get(p) ?? 0,
    connections: () => accepted,
    close: async () => {
      for (const s of sockets) s.destroy();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** /proc/net/tcp's form of an IPv4 address and port: the address's four bytes reversed, both in hex. */
function procAddress(ip: string | undefined, port: number | undefined): string {
  const bytes = (ip ?? '').split('.').map((b) => Number(b).toString(16).padStart(2, '0').toUpperCase());
  return `${bytes.reverse().join('')}:${(port ?? 0).toString(16).padStart(4, '0').toUpperCase()}`;
}

/**
 * Resolves once neither end of this loopback connection holds data in flight: nothing unacknowledged in
 * our send queue, nothing unread in the client's receive queue (both in /proc/net/tcp, the client's socket
 * being on this machine too). Then the client process has read all we sent. Checked every 5 ms, for at
 * most 20 s (then the test's own assertions say what is missing).
 */
async function drained(socket: Socket): Promise<void> {
  const ours = `${procAddress(socket.localAddress, socket.localPort)} ${procAddress(socket.remoteAddress, socket.remotePort)}`;
  const theirs = `${procAddress(socket.remoteAddress, socket.remotePort)} ${procAddress(socket.localAddress, socket.localPort)}`;
  for (let i = 0; i < 4000 && !socket.destroyed; i++) {
    let queued = 0;
    for (const line of (await readFile('/proc/net/tcp', 'utf8')).split('\n')) {
      // "  sl  local_address rem_address   st tx_queue:rx_queue ..."
      const f = line.trim().split(/\s+/);
      const [tx, rx] = (f[4] ?? '').split(':').map((h) => parseInt(h, 16));
      if (`${f[1]} ${f[2]}` === ours) queued += tx ?? 0;
      else if (`${f[1]} ${f[2]}` === theirs) queued += rx ?? 0;
    }
    if (queued === 0) return;
    await sleep(5);
  }
}

const etagOf = (body: Buffer) => `"${createHash('sha256').update(body).digest('hex')}"`;

function serve(route: Route, nth: number, req: http.IncomingMessage, res: http.ServerResponse): void {
  const { body } = route;
  const b = route.behaviour ?? { kind: 'ok' };
  switch (b.kind) {
    case 'status':
      res.writeHead(b.status).end();
      return;
    case 'redirect':
      res.writeHead(302, { location: b.to }).end();
      return;
    case 'fail-then-ok':
      if (nth <= b.failures) {
        res.writeHead(b.status ?? 500).end('try later');
        return;
      }
      return sendRange(body, req, res);
    case 'wrong-bytes': {
      const bad = Buffer.from(body);
      if (b.every) for (let i = 100; i < bad.length; i += b.every) bad[i]! ^= 0x01;
      else bad[bad.length >> 1]! ^= 0x01;
      return sendRange(bad, req, res);
    }
    case 'held':
      void b.until.then(() => sendRange(body, req, res));
      return;
    case 'ignore-range':
      res.writeHead(200, { 'content-length': body.length, etag: etagOf(body) }).end(body);
      return;
    case 'oversize':
      res.writeHead(200);
      res.end(Buffer.concat([body, Buffer.alloc(b.extra, 0x41)]));
      return;
    case 'truncate':
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, b.after), () => res.socket?.end());
      return;
    case 'stall': {
      const [start] = writeRangeHead(req, res, body);
      res.write(body.subarray(start, start + b.after)); // then nothing, until the client gives up
      return;
    }
    case 'reset':
    case 'reset-once':
      if (b.kind === 'reset' || nth === 1) {
        const [start] = writeRangeHead(req, res, body);
        // Reset once the client process has read every byte from its socket: a RST that arrives in the
        // same read as the data makes the client drop what it had not yet handed on.
        const socket = res.socket!;
        res.write(body.subarray(start, start + b.after), () => void drained(socket).then(() => socket.resetAndDestroy()));
        return;
      }
      return sendRange(body, req, res);
    case 'slow': {
      const [start, end] = writeRangeHead(req, res, body);
      let at = start;
      const timer = setInterval(() => {
        if (res.destroyed || at > end) {
          clearInterval(timer);
          res.end();
          return;
        }
        res.write(body.subarray(at, Math.min(at + b.chunk, end + 1)));
        at += b.chunk;
      }, b.delayMs);
      res.on('close', () => clearInterval(timer));
      return;
    }
    case 'ok':
      return sendRange(body, req, res);
  }
}

/** Honour a `bytes=A-[B]` Range (206) or send the whole body (200): write the head, return [start, end]. */
function writeRangeHead(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): [number, number] {
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  const ranged = m !== null && Number(m[1]) < body.length;
  const start = ranged ? Number(m[1]) : 0;
  const end = ranged ? Math.min(m[2] ? Number(m[2]) : body.length - 1, body.length - 1) : body.length - 1;
  res.writeHead(ranged ? 206 : 200, {
    'content-length': end - start + 1,
    etag: etagOf(body),
    ...(ranged ? { 'content-range': `bytes ${start}-${end}/${body.length}` } : {}),
  });
  return [start, end];
}

/** A correct server: 206 for a satisfiable `bytes=A-[B]` whose If-Range matches, 416 past the end. */
function sendRange(body: Buffer, req: http.IncomingMessage, res: http.ServerResponse): void {
  const etag = etagOf(body);
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  const ifRange = req.headers['if-range'] as string | undefined;
  if (m && (ifRange === undefined || ifRange === etag)) {
    const start = Number(m[1]);
    const end = Math.min(m[2] ? Number(m[2]) : body.length - 1, body.length - 1);
    if (start >= body.length || end < start) {
      res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
      return;
    }
    res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${body.length}`, etag });
    res.end(body.subarray(start, end + 1));
    return;
  }
  res.writeHead(200, { 'content-length': body.length, etag, 'accept-ranges': 'bytes' });
  res.end(body);
}
