// What the log and witness HTTP servers share: bounded request bodies, server timeouts and connection
// caps, plain-text answers, and a request-rate bucket per client address. Everything a client sends is
// attacker-controlled: sizes are checked against the declared Content-Length before reading, and again
// while reading.

import http from 'node:http';
import type { Limits } from '../../limits.ts';

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

/** The remote address a client is counted under: IPv6 by /64 (one host routinely holds a whole /64). */
export function clientAddress(req: http.IncomingMessage): string {
  let a = req.socket.remoteAddress ?? '?';
  if (a.startsWith('::ffff:')) a = a.slice(7);
  if (!a.includes(':')) return a;
  const groups = expandIpv6(a);
  return groups === undefined ? a : `${groups.slice(0, 4).join(':')}::/64`;
}

function expandIpv6(address: string): string[] | undefined {
  const [head, tail, extra] = address.split('%')[0]!.split('::');
  if (extra !== undefined) return undefined;
  const left = head ? head.split(':') : [];
  const right = tail === undefined ? [] : tail ? tail.split(':') : [];
  const fill = tail === undefined ? 0 : 8 - left.length - right.length;
  if (fill < 0) return undefined;
  return [...left, ...Array<string>(fill).fill('0'), ...right];
}

/** A token bucket per client: `perSecond` sustained, `burst` at once, at most `maxClients` buckets. */
export class ClientRate {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #perSecond: number;
  readonly #burst: number;
  readonly #maxClients: number;

  constructor(perSecond: number, burst: number, maxClients: number) {
    this.#perSecond = perSecond;
    this.#burst = burst;
    this.#maxClients = maxClients;
  }

  /** Take a token for `client` at `now` (ms): 0 if allowed, else the seconds until one is due. */
  take(client: string, now: number): number {
    if (this.#perSecond <= 0) return 0;
    let bucket = this.#buckets.get(client);
    if (bucket === undefined) {
      // Full buckets are as good as new: forget them first, then the oldest.
      if (this.#buckets.size >= this.#maxClients) {
        for (const [key, b] of this.#buckets) if (b.tokens + ((now - b.at) * this.#perSecond) / 1000 >= this.#burst) this.#buckets.delete(key);
        if (this.#buckets.size >= this.#maxClients) this.#buckets.delete(this.#buckets.keys().next().value!);
      }
      bucket = { tokens: this.#burst, at: now };
      this.#buckets.set(client, bucket);
    } else {
      bucket.tokens = Math.min(this.#burst, bucket.tokens + ((now - bucket.at) * this.#perSecond) / 1000);
      bucket.at = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.#perSecond));
  }
}

/** Listen on HOST:PORT and return the URL clients reach it at. */
export function listen(server: http.Server, host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      if (address === null || typeof address === 'string') return resolve(`http://${host}:${port}`);
      const h = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      resolve(`http://${h}:${address.port}`);
    });
  });
}

/** Close the listener and any idle keep-alive connections; in-flight requests finish. */
export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
