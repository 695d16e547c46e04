// What the log and witness HTTP servers share: bounded request bodies, server timeouts and connection
// caps, plain-text answers, and the key a client is rate-limited under. Everything a client sends is
// attacker-controlled: sizes are checked against the declared Content-Length before reading, and again
// while reading.

import http from 'node:http';
import type { Limits } from '../../limits.ts';
import { clientKey } from '../../net/rate-limit.ts';
import { listenOn } from '../../net/listen.ts';

export type TrustServerLimits = Pick<Limits, 'tlogMaxConnections' | 'tlogMaxHeaderBytes' | 'tlogHeadersTimeoutMs' | 'tlogRequestTimeoutMs' | 'tlogKeepAliveTimeoutMs'>;

export function createTrustServer(limits: TrustServerLimits, handler: http.RequestListener): http.Server {
  const server = http.createServer({
    maxHeaderSize: limits.tlogMaxHeaderBytes,
    headersTimeout: limits.tlogHeadersTimeoutMs,
    requestTimeout: limits.tlogRequestTimeoutMs,
    keepAliveTimeout: limits.tlogKeepAliveTimeoutMs,
    // Small answers: send them at once rather than waiting to coalesce.
    noDelay: true,
  }, handler);
  server.maxConnections = limits.tlogMaxConnections;
  server.maxHeadersCount = 64;
  return server;
}

export class BodyTooLarge extends Error {}

/**
 * Read a request body of at most `max` bytes. A larger declared Content-Length is refused before any byte
 * is read; a body that grows past `max` is cut off.
 */
export function readBody(req: http.IncomingMessage, max: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && !(Number(declared) <= max)) return Promise.reject(new BodyTooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (length > max) {
        req.removeAllListeners('data');
        req.resume();
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length)));
    req.on('error', reject);
    req.on('aborted', () => reject(new Error('request aborted')));
  });
}

export function sendText(res: http.ServerResponse, status: number, body: string, headers: http.OutgoingHttpHeaders = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const bytes = Buffer.from(body, 'utf8');
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': bytes.length, 'cache-control': 'no-store', ...headers });
  res.end(bytes);
}

/** The key a client is counted under (IPv6 by /64): src/net/rate-limit.ts's, for every server. */
export function clientAddress(req: http.IncomingMessage): string {
  return clientKey(req.socket.remoteAddress);
}

/** Listen on HOST:PORT and return the URL clients reach it at. */
export async function listen(server: http.Server, host: string, port: number): Promise<string> {
  await listenOn(server, { host, port });
  const address = server.address();
  if (address === null || typeof address === 'string') return `http://${host}:${port}`;
  const h = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${h}:${address.port}`;
}

/** Close the listener and any idle keep-alive connections; in-flight requests finish. */
export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
