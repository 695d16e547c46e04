// `sourcemesh serve`: the mirror's HTTP/1.1 (and HTTPS) server on node:http. It serves only what the
// file index holds (src/mirror/file-index.ts): a request path is parsed into a name or a digest and
// looked up; it never becomes a file system path. Bytes stream from disk with 1 MiB reads and
// backpressure (pipeline), ranges and conditional requests follow RFC 9110 (src/mirror/ranges.ts).
//
// Everything in a request is attacker-controlled: the target is bounded and decoded strictly, header
// size, connections, request rate and every timeout are limited (src/limits.ts, "mirror server").
import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo, type Socket } from 'node:net';
import { fromSystemError } from '../errors.ts';
import type { Limits } from '../limits.ts';
import { nameProblem, SHA256_HEX } from '../manifest/distfile.ts';
import { BufferPool, OpenFiles, SmallFileCache, writeFileRange, type OpenFile } from './file-body.ts';
import { MirrorContent, type ContentOptions, type IndexedFile } from './file-index.ts';
import { clientKey, retryAfterSeconds, TokenBuckets } from '../net/rate-limit.ts';
import {
  contentRange, decideRange, evaluatePreconditions, multipartLayout, unsatisfiedRange, type ByteRange, type RangeDecision, type Validators,
} from './ranges.ts';

// ---------------------------------------------------------------------------------------------------
// Request targets

export type Target =
  | { kind: 'name'; name: string }
  | { kind: 'sha256'; hex: string }
  | { kind: 'pieces'; hex: string }
  | { kind: 'inventory' }
  | { kind: 'refused'; status: 400 | 404; why: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * What a request target asks for. Origin-form (`/a/b?q`) and absolute-form (`http://host/a/b`, RFC 9112
 * §3.2.2) are accepted; the query is ignored. Each path segment is percent-decoded strictly and must be
 * UTF-8; a segment that decodes to `.` or `..` or contains `/`, `\` or a control character is refused
 * (400), as is any raw byte outside visible ASCII. Empty segments, hidden names and anything but
 * `/NAME`, `/sha256/HEX`, `/sha256/HEX.pieces` and `/.well-known/sourcemesh/inventory` are 404.
 */
export function parseTarget(raw: string, maxBytes: number): Target {
  const refuse = (status: 400 | 404, why: string): Target => ({ kind: 'refused', status, why });
  if (raw.length > maxBytes) return refuse(400, 'request target too long');
  let target = raw;
  const abs = /^https?:\/\/[^/?#]*/i.exec(target);
  if (abs) target = target.slice(abs[0].length) || '/';
  if (!target.startsWith('/')) return refuse(400, 'not an origin-form or absolute-form target');
  const q = target.indexOf('?');
  if (q >= 0) target = target.slice(0, q);
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c < 0x21 || c > 0x7e || c === 0x5c) return refuse(400, 'a character outside visible ASCII, or a backslash');
  }
  const segments: string[] = [];
  for (const raw of target.slice(1).split('/')) {
    const seg = percentDecode(raw);
    if (seg === undefined) return refuse(400, 'bad percent-encoding or not UTF-8');
    if (seg === '.' || seg === '..') return refuse(400, 'a dot segment');
    if (/[/\\\u0000-\u001f\u007f]/.test(seg)) return refuse(400, 'an encoded slash, backslash or control character');
    segments.push(seg);
  }
  if (segments.some((s) => s === '')) return refuse(404, segments.length === 1 ? 'no directory listing' : 'an empty segment');
  if (segments.length === 1) {
    const name = segments[0]!;
    if (name.startsWith('.') || nameProblem(name) !== undefined) return refuse(404, 'not a servable name');
    return { kind: 'name', name };
  }
  if (segments.length === 2 && segments[0] === 'sha256') {
    const s = segments[1]!;
    if (SHA256_HEX.test(s)) return { kind: 'sha256', hex: s };
    if (s.endsWith('.pieces') && SHA256_HEX.test(s.slice(0, -7))) return { kind: 'pieces', hex: s.slice(0, -7) };
    return refuse(404, 'not a lowercase sha256');
  }
  if (segments.length === 3 && segments[0] === '.well-known' && segments[1] === 'sourcemesh' && segments[2] === 'inventory') return { kind: 'inventory' };
  return refuse(404, 'no such path');
}

function percentDecode(seg: string): string | undefined {
  if (!seg.includes('%')) return seg;
  const bytes: number[] = [];
  for (let i = 0; i < seg.length; i++) {
    const c = seg.charCodeAt(i);
    if (c !== 0x25) {
      bytes.push(c);
      continue;
    }
    const hex = seg.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return undefined;
    bytes.push(parseInt(hex, 16));
    i += 2;
  }
  try {
    return utf8.decode(Uint8Array.from(bytes));
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------
// The server

/** One access-log record per request, and the server's own notices. */
export interface ServerLog {
  request(r: AccessRecord): void;
  notice(level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>): void;
}

export interface AccessRecord {
  remote: string;
  method: string;
  /** The target as sent, cut to 512 characters. */
  target: string;
  status: number;
  /** Body bytes the response announced (Content-Length), 0 for HEAD and errors without a body. */
  bytes: number;
  /** False when the client went away before the response was complete. */
  complete: boolean;
  ms: number;
  range?: string;
  ua?: string;
}

export interface ServeOptions extends ContentOptions {
  host: string;
  port: number;
  tls?: { cert: Buffer; key: Buffer };
  /** Requests per second and burst per client; perSecond 0 turns the limit off. */
  rate: { perSecond: number; burst: number };
  maxConnections: number;
  log?: ServerLog;
}

const TEXT = 'text/plain; charset=utf-8';
const OCTETS = 'application/octet-stream';
const ALLOW = 'GET, HEAD';
const IMMUTABLE = 'public, max-age=31536000, immutable';

export class MirrorServer {
  readonly content: MirrorContent;
  readonly url: string;
  readonly address: AddressInfo;
  private readonly server: http.Server;
  private readonly opts: ServeOptions;
  private readonly limiter: TokenBuckets;
  private readonly pool: BufferPool;
  private readonly cache: SmallFileCache;
  private readonly files: OpenFiles;
  private closing = false;
  private inFlight = 0;
  /** Open connections and how many responses each has in progress. */
  private readonly sockets = new Map<Socket, number>();

  private constructor(opts: ServeOptions, content: MirrorContent, server: http.Server, address: AddressInfo) {
    this.opts = opts;
    this.content = content;
    this.server = server;
    this.address = address;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    this.url = `${opts.tls ? 'https' : 'http'}://${host}:${address.port}`;
    this.limiter = new TokenBuckets({ perSecond: opts.rate.perSecond, burst: opts.rate.burst, maxClients: opts.limits.serveRateClients });
    this.pool = new BufferPool(opts.limits.serveStreamBufferBytes, 64, Math.floor(opts.limits.serveBufferBytes / opts.limits.serveStreamBufferBytes));
    this.cache = new SmallFileCache(opts.limits.serveCacheBytes, opts.limits.serveCachedFileBytes, () => void content.refresh());
    this.files = new OpenFiles(opts.limits.serveOpenFiles, () => void content.refresh());
  }

  /** Index the files, then listen. Resolves once the server accepts connections. */
  static async start(opts: ServeOptions): Promise<MirrorServer> {
    // The server learns of each new index, to let go of files no longer in it.
    let onIndexed: (() => void) | undefined;
    const content = await MirrorContent.open({ ...opts, onEvent: (e) => {
      if (e.kind === 'indexed') onIndexed?.();
      opts.onEvent?.(e);
    } });
    const { limits } = opts;
    const options: http.ServerOptions = {
      maxHeaderSize: limits.serveMaxHeaderBytes,
      headersTimeout: limits.serveHeadersTimeoutMs,
      requestTimeout: limits.serveRequestTimeoutMs,
      keepAliveTimeout: limits.serveKeepAliveTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, limits.serveHeadersTimeoutMs),
      noDelay: true,
    };
    const server = opts.tls ? https.createServer({ ...options, cert: opts.tls.cert, key: opts.tls.key }) : http.createServer(options);
    server.maxConnections = opts.maxConnections;
    server.timeout = limits.serveIdleTimeoutMs; // idle sockets, stalled readers included, are destroyed
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: opts.host, port: opts.port }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      content.close();
      throw fromSystemError(err, `cannot listen on ${opts.host}:${opts.port}`);
    }
    const self = new MirrorServer(opts, content, server, server.address() as AddressInfo);
    onIndexed = () => self.files.retain(content.index);
    server.on(opts.tls ? 'secureConnection' : 'connection', (socket: Socket) => {
      self.sockets.set(socket, 0);
      socket.once('close', () => self.sockets.delete(socket));
    });
    server.on('request', (req, res) => self.onRequest(req, res));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => self.onClientError(err, socket));
    server.on('drop', (data?: { remoteAddress?: string }) => opts.log?.notice('warn', 'connection refused: too many connections', { remote: data?.remoteAddress, max: opts.maxConnections }));
    content.watch();
    return self;
  }

  /** Reindex now (SIGHUP). */
  reload(): Promise<void> {
    return this.content.refresh();
  }

  /**
   * Graceful shutdown: stop accepting, let in-flight responses finish (new requests on open
   * connections are still answered, with `Connection: close`), and after `deadlineMs` cut the
   * connections still open. Resolves with how many had to be cut.
   */
  async close(deadlineMs: number): Promise<{ cut: number }> {
    this.closing = true;
    this.content.close();
    let cut = 0;
    // net.Server's close, not http.Server's: the latter also destroys every connection it deems idle,
    // and it deems a response idle once end() was called, while its last bytes may still be queued
    // for a slow client. Connections are ended here instead, each once its responses are out.
    const closed = new Promise<void>((resolve) => net.Server.prototype.close.call(this.server, () => resolve()));
    for (const [socket, active] of this.sockets) if (active === 0) socket.end();
    const timer = setTimeout(() => {
      cut = this.sockets.size;
      for (const socket of this.sockets.keys()) socket.destroy();
    }, deadlineMs);
    await closed;
    clearTimeout(timer);
    this.files.closeAll();
    return { cut };
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    // Node's own handler answers the same way; ours also logs. Never write into a response in progress.
    const busy = (Reflect.get(socket, '_httpMessage') as http.ServerResponse | undefined)?.headersSent;
    if (err.code !== 'ECONNRESET' && socket.writable && !busy) {
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      this.opts.log?.notice('info', 'bad request', { remote: socket.remoteAddress, status, error: err.code });
    }
    socket.destroy();
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const t0 = performance.now();
    this.inFlight++;
    let bytes = 0;
    const socket = req.socket;
    this.sockets.set(socket, (this.sockets.get(socket) ?? 0) + 1);
    res.once('close', () => {
      this.inFlight--;
      const active = (this.sockets.get(socket) ?? 1) - 1;
      if (this.sockets.has(socket)) this.sockets.set(socket, active);
      // Shutting down: end this connection once its responses are out. end(), not destroy(): bytes
      // still queued for a slow client are flushed before the FIN.
      if (this.closing && active === 0 && !socket.destroyed) socket.end();
      this.opts.log?.request({
        remote: req.socket.remoteAddress ?? '?', method: String(req.method).slice(0, 16), target: String(req.url).slice(0, 512),
        status: res.statusCode, bytes: req.method === 'HEAD' ? 0 : bytes, complete: res.writableFinished, ms: Math.round((performance.now() - t0) * 100) / 100,
        ...(req.headers.range !== undefined ? { range: req.headers.range.slice(0, 128) } : {}),
        ...(req.headers['user-agent'] !== undefined ? { ua: req.headers['user-agent'].slice(0, 256) } : {}),
      });
    });
    if (this.closing) res.setHeader('Connection', 'close');
    const setBytes = (n: number) => (bytes = n);
    this.handle(req, res, setBytes).catch((err) => {
      // A read error after the head was sent can only be signalled by cutting the connection short.
      this.opts.log?.notice('warn', 'response failed', { target: String(req.url).slice(0, 512), error: (err as Error).message });
      if (!res.headersSent) sendText(res, 500, 'internal error\n', setBytes);
      else res.destroy();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, setBytes: (n: number) => void): Promise<void> {
    const wait = this.limiter.enabled ? this.limiter.take(clientKey(req.socket.remoteAddress), Date.now()) : 0;
    if (wait > 0) return sendText(res, 429, 'too many requests\n', setBytes, { 'Retry-After': String(retryAfterSeconds(wait)) });
    const method = req.method;
    if (method !== 'GET' && method !== 'HEAD') return sendText(res, 405, 'method not allowed\n', setBytes, { 'Allow': ALLOW });
    const target = parseTarget(req.url ?? '', this.opts.limits.serveTargetBytes);
    const index = this.content.index;
    switch (target.kind) {
      case 'refused':
        return sendText(res, target.status, target.status === 404 ? 'not found\n' : 'bad request\n', setBytes);
      case 'inventory': {
        const inv = this.content.inventory;
        const e: Entity = { headers: { 'Cache-Control': 'no-cache' }, size: inv.body.length, etag: inv.etag, lastModified: inv.lastModified, lastModifiedHttp: inv.lastModifiedHttp, contentType: TEXT, buffer: inv.body };
        return this.sendEntity(req, res, method, e, setBytes);
      }
      case 'name':
      case 'sha256':
      case 'pieces': {
        const f = target.kind === 'name' ? index.byName.get(target.name) : target.kind === 'sha256' ? index.bySha256.get(target.hex) : index.pieces.get(target.hex);
        if (f === undefined) return sendText(res, 404, 'not found\n', setBytes);
        // Content-addressed paths never change meaning: caches may keep them for good.
        const headers = target.kind === 'name' ? { 'Repr-Digest': f.reprDigest } : target.kind === 'sha256' ? { 'Repr-Digest': f.reprDigest, 'Cache-Control': IMMUTABLE } : { 'Cache-Control': IMMUTABLE };
        return this.sendEntity(req, res, method, entityOf(f, headers), setBytes);
      }
    }
  }

  private async sendEntity(req: http.IncomingMessage, res: http.ServerResponse, method: 'GET' | 'HEAD', e: Entity, setBytes: (n: number) => void): Promise<void> {
    const now = Date.now();
    const validators: Validators = { etag: e.etag, lastModified: e.lastModified, lastModifiedIsStrong: now - e.lastModified * 1000 >= 2000 };
    const head: http.OutgoingHttpHeaders = { ...e.headers, 'ETag': e.etag, 'Last-Modified': e.lastModifiedHttp, 'Accept-Ranges': 'bytes' };
    const h = req.headers;
    // The common case, a plain GET or HEAD, skips the precondition machinery.
    const plain = h.range === undefined && h['if-none-match'] === undefined && h['if-modified-since'] === undefined && h['if-match'] === undefined && h['if-unmodified-since'] === undefined;
    const pre = plain ? { status: 'proceed' as const, useRange: false } : evaluatePreconditions({
      ifMatch: h['if-match'], ifNoneMatch: h['if-none-match'], ifModifiedSince: h['if-modified-since'],
      ifUnmodifiedSince: h['if-unmodified-since'], ifRange: header(h['if-range']), range: h.range,
    }, validators, method);
    if (pre.status === 304) {
      res.writeHead(304, head).end();
      return;
    }
    if (pre.status === 412) return sendText(res, 412, 'precondition failed\n', setBytes, head);
    const decision: RangeDecision = pre.useRange ? decideRange(h.range, e.size, this.opts.limits.serveMaxRanges) : { kind: 'full' };
    if (decision.kind === 'unsatisfiable') return sendText(res, 416, 'range not satisfiable\n', setBytes, { ...head, 'Content-Range': unsatisfiedRange(e.size) });

    // The bytes: in memory (the inventory, a cached small file) or from an open file. The file is
    // opened before the head is sent, so a file that vanished or changed since it was indexed gets an
    // honest status instead of bytes under another file's ETag.
    let buffer = e.buffer;
    let file: OpenFile | undefined;
    if (method === 'GET' && e.file !== undefined && e.size > 0) {
      const f = e.file;
      let opened: Buffer | OpenFile | 'gone' | 'changed';
      if (this.cache.fits(f)) opened = this.cache.get(f, now) ?? await this.cache.load(f, now);
      else opened = await this.files.acquire(f, now).catch((err) => { throw fromSystemError(err, f.path); });
      if (opened === 'gone' || opened === 'changed') {
        void this.content.refresh();
        if (opened === 'gone') return sendText(res, 404, 'not found\n', setBytes);
        return sendText(res, 503, 'file changed, reindexing\n', setBytes, { 'Retry-After': '1' });
      }
      if (Buffer.isBuffer(opened)) buffer = opened;
      else file = opened;
    }
    const fh = file?.fh;
    try {
      if (decision.kind === 'multi') {
        const boundary = randomBytes(12).toString('hex');
        const layout = multipartLayout(decision.ranges, e.size, e.contentType, boundary);
        res.writeHead(206, { ...head, 'Content-Type': layout.contentType, 'Content-Length': layout.length });
        setBytes(layout.length);
        if (method === 'HEAD') return void res.end();
        for (const part of layout.parts) {
          if (!(await flushed(res, part.head))) return;
          const { start, end } = part.range;
          if (buffer !== undefined) {
            if (!(await flushed(res, buffer.subarray(start, end + 1)))) return;
          } else {
            await writeFileRange(fh!, res, start, end, this.pool, false);
          }
        }
        res.end(layout.tail);
        return;
      }
      const range: ByteRange = decision.kind === 'single' ? decision.range : { start: 0, end: e.size - 1 };
      const length = range.end - range.start + 1;
      head['Content-Type'] = e.contentType;
      head['Content-Length'] = length;
      if (decision.kind === 'single') head['Content-Range'] = contentRange(range, e.size);
      res.writeHead(decision.kind === 'single' ? 206 : 200, head);
      setBytes(length);
      if (method === 'HEAD' || length === 0) return void res.end();
      if (buffer !== undefined) return void res.end(range.start === 0 && length === buffer.length ? buffer : buffer.subarray(range.start, range.end + 1));
      await writeFileRange(fh!, res, range.start, range.end, this.pool, true);
    } finally {
      file?.release();
    }
  }
}

/** Write a chunk and wait until the socket took it; false when the client went away first. */
function flushed(res: http.ServerResponse, chunk: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const onClose = () => resolve(false);
    res.once('close', onClose);
    res.write(chunk, (err) => {
      res.off('close', onClose);
      resolve(!err);
    });
  });
}

interface Entity {
  /** Headers particular to what is served (Cache-Control, Repr-Digest). */
  headers: http.OutgoingHttpHeaders;
  size: number;
  etag: string;
  lastModified: number;
  lastModifiedHttp: string;
  contentType: string;
  /** In memory (the inventory), or a file from the index. */
  buffer?: Buffer;
  file?: IndexedFile;
}

function entityOf(f: IndexedFile, headers: http.OutgoingHttpHeaders): Entity {
  return { headers, size: f.size, etag: f.etag, lastModified: f.lastModified, lastModifiedHttp: f.lastModifiedHttp, contentType: OCTETS, file: f };
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

function sendText(res: http.ServerResponse, status: number, text: string, setBytes: (n: number) => void, headers: http.OutgoingHttpHeaders = {}): void {
  const body = Buffer.from(text);
  setBytes(body.length);
  res.writeHead(status, { ...headers, 'Content-Type': TEXT, 'Content-Length': body.length, 'X-Content-Type-Options': 'nosniff' }).end(body);
}
