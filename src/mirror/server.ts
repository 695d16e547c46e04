// `sourcemesh serve`: the mirror's HTTP/1.1 (and HTTPS) server on node:http. It serves only what the
// file index holds (src/mirror/file-index.ts): a request path is parsed into a name or a digest and
// looked up; it never becomes a file system path. Bytes stream from disk with 1 MiB reads and
// backpressure (pipeline), ranges and conditional requests follow RFC 9110 (src/mirror/ranges.ts).
//
// Everything in a request is attacker-controlled: the target is bounded and decoded strictly, header
// size, connections, request rate and every timeout are limited (src/limits.ts, "mirror server"). What
// one client address (IPv6: one /64) can hold is bounded too: connections, read buffers, and the time a
// response may make no progress (docs/OPERATIONS.md, "Limits").
import { createHash, randomBytes } from 'node:crypto';
import { lstat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ATTESTATIONS_DIR } from '../attest/files.ts';
import { answerChallenge, hostPort, isNonce } from '../discovery/challenge.ts';
import { readBoundedBytes } from '../fs/bounded-read.ts';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo, type Socket } from 'node:net';
import { fromSystemError } from '../errors.ts';
import type { Limits } from '../limits.ts';
import { nameProblem, SHA256_HEX } from '../manifest/distfile.ts';
import type { Logger } from '../logger.ts';
import { SendWatch } from '../net/send-watch.ts';
import { BufferPool, OpenFiles, ReadPlace, SmallFileCache, writeFileRange, type OpenFile } from './file-body.ts';
import { MirrorContent, type ContentOptions, type IndexedFile } from './file-index.ts';
import { clientKey, retryAfterSeconds, TokenBuckets } from '../net/rate-limit.ts';
import { listenOn } from '../net/listen.ts';
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
  | { kind: 'challenge'; nonce: string }
  | { kind: 'attestation'; name: string }
  | { kind: 'refused'; status: 400 | 404; why: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * What a request target asks for. Origin-form (`/a/b?q`) and absolute-form (`http://host/a/b`, RFC 9112
 * §3.2.2) are accepted; the query is ignored. Each path segment is percent-decoded strictly and must be
 * UTF-8; a segment that decodes to `.` or `..` or contains `/`, `\` or a control character is refused
 * (400), as is any raw byte outside visible ASCII. Empty segments, hidden names and anything but
 * `/NAME`, `/sha256/HEX`, `/sha256/HEX.pieces`, `/.well-known/sourcemesh/inventory` and
 * `/.well-known/sourcemesh/challenge?nonce=HEX` are 404.
 */
export function parseTarget(raw: string, maxBytes: number): Target {
  // The common request, `/NAME` in plain visible ASCII, answered without the general parse below:
  // nothing to decode, and no such name can fail nameProblem but by its length (255 bytes). The
  // property test in test/mirror/serve-fast-paths.test.ts holds the two paths to the same answers.
  if (raw.length <= 256 && raw.length <= maxBytes && PLAIN_NAME.test(raw)) return { kind: 'name', name: raw.slice(1) };
  return parseTargetGeneral(raw, maxBytes);
}

/** `/` and one segment of visible ASCII but `%`, `/`, `?` and `\`, not beginning with a dot. */
const PLAIN_NAME = /^\/[\x21-\x24\x26-\x2d\x30-\x3e\x40-\x5b\x5d-\x7e][\x21-\x24\x26-\x2e\x30-\x3e\x40-\x5b\x5d-\x7e]*$/;

/** parseTarget without its fast path (exported for the test that holds the two to the same answers). */
export function parseTargetGeneral(raw: string, maxBytes: number): Target {
  const refuse = (status: 400 | 404, why: string): Target => ({ kind: 'refused', status, why });
  if (raw.length > maxBytes) return refuse(400, 'request target too long');
  let target = raw;
  const abs = /^https?:\/\/[^/?#]*/i.exec(target);
  if (abs) target = target.slice(abs[0].length) || '/';
  if (!target.startsWith('/')) return refuse(400, 'not an origin-form or absolute-form target');
  const q = target.indexOf('?');
  const query = q >= 0 ? target.slice(q + 1) : '';
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
  // The discovery challenge (docs/FORMATS.md, "Discovery challenge"): the nonce is the whole query.
  if (segments.length === 3 && segments[0] === '.well-known' && segments[1] === 'sourcemesh' && segments[2] === 'challenge') {
    const nonce = query.startsWith('nonce=') ? query.slice(6) : '';
    return isNonce(nonce) ? { kind: 'challenge', nonce } : refuse(400, 'the challenge needs ?nonce= and 32 to 64 lowercase hex digits');
  }
  // A node's attestations (docs/FORMATS.md, "Attestations"), beside the inventory.
  if (segments.length === 4 && segments[0] === '.well-known' && segments[1] === 'sourcemesh' && segments[2] === 'attestations') {
    const name = segments[3]!;
    if (name.startsWith('.') || !name.endsWith('.sigstore.json') || nameProblem(name) !== undefined) return refuse(404, 'not an attestation name');
    return { kind: 'attestation', name };
  }
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

/** The fields of the access-log record ('request') written for each response. */
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
  /** Open connections in all (per client address: limits.serveClientConnections). */
  maxConnections: number;
  /** Access records ('request', info), notices (info) and warnings (warn). */
  log?: Logger;
  /**
   * False: listen on nothing; connections are handed in through `accept` (a worker of `serve
   * --workers`, src/mirror/serve-workers.ts; `host` and `port` are then the pool's, for the URL).
   */
  listen?: boolean;
}

/** An open connection: whose it is and how many responses it has in progress. */
interface Connection {
  /** The TCP socket (under TLS, the one beneath the TLS socket). */
  raw: Socket;
  /** The socket HTTP runs on (the TLS socket under TLS), once known. */
  http: Socket;
  client: string;
  active: number;
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
  private readonly readPlace: ReadPlace;
  private readonly sendWatch: SendWatch;
  private readonly timer: NodeJS.Timeout;
  private closing = false;
  /** The listening sockets beside the server's own (listenShared), closed with it. */
  private acceptors: net.Server[] = [];
  private onIndexed?: () => void;
  /** Resolves the wait of close() once the last connection is gone (connections handed in by accept). */
  private drained?: () => void;
  private inFlight = 0;
  /** Open connections by TCP socket, and how many each client address holds. */
  private readonly connections = new Map<Socket, Connection>();
  private readonly perClient = new Map<string, number>();
  /** Connections refused or closed to make room since the last warning (one warning a second at most). */
  private refused = { perClient: 0, full: 0, evicted: 0, stalled: 0, at: 0 };

  private constructor(opts: ServeOptions, content: MirrorContent, server: http.Server, address: AddressInfo) {
    this.opts = opts;
    this.content = content;
    this.server = server;
    this.address = address;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    this.url = `${opts.tls ? 'https' : 'http'}://${host}:${address.port}`;
    this.limiter = new TokenBuckets({ perSecond: opts.rate.perSecond, burst: opts.rate.burst, maxClients: opts.limits.serveRateClients });
    const l = opts.limits;
    // No per-client connection cap (serving behind a proxy, where every client has its address) means
    // no per-client buffer share either. Otherwise each connection a client may open can at least get
    // a small buffer beyond its share of large ones.
    const perClient = l.serveClientConnections > 0;
    this.pool = new BufferPool({
      largeBytes: l.serveStreamBufferBytes, smallBytes: l.serveSmallBufferBytes, maxBytes: l.serveBufferBytes, reserveBytes: l.serveBufferReserveBytes,
      clientBytes: perClient ? l.serveClientBufferBytes : l.serveBufferBytes, clientSmallBytes: perClient ? l.serveClientConnections * l.serveSmallBufferBytes : l.serveBufferBytes,
      floorBytes: l.serveBufferFloorBytes, idleMs: l.serveBufferIdleMs,
    });
    this.sendWatch = new SendWatch(l.serveSendTimeoutMs);
    // Stalled sends, idle buffers and pending warnings are looked at once a second (a quarter of the
    // send timeout when that is shorter).
    const every = Math.max(50, Math.min(1000, Math.floor(l.serveSendTimeoutMs / 4) || 1000));
    this.timer = setInterval(() => this.tick(performance.now()), every).unref();
    this.cache = new SmallFileCache(opts.limits.serveCacheBytes, opts.limits.serveCachedFileBytes, () => void content.refresh());
    this.files = new OpenFiles(opts.limits.serveOpenFiles, () => void content.refresh());
    this.readPlace = new ReadPlace(opts.limits.serveSyncReadSlowMs, opts.limits.serveSyncReadBackoffMs);
  }

  /** Index the files, then listen. Resolves once the server accepts connections. */
  static async start(opts: ServeOptions): Promise<MirrorServer> {
    // The server learns of each new index, to let go of files no longer in it.
    let self: MirrorServer | undefined;
    const content = await MirrorContent.open({ ...opts, onEvent: (e) => {
      if (e.kind === 'indexed') self?.onIndexed?.();
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
      // GET and HEAD carry no body: a request without Content-Length or Transfer-Encoding gets an
      // already-ended body stream instead of a Readable's life cycle per request (nothing here reads
      // request bodies; a request with one is answered 405 as before).
      optimizeEmptyRequests: true,
    };
    const server = opts.tls ? https.createServer({ ...options, cert: opts.tls.cert, key: opts.tls.key }) : http.createServer(options);
    // Connections are admitted by onConnection (per client, and making room when full), not by Node's
    // maxConnections, which refuses newcomers while idle keep-alive connections hold every slot.
    server.timeout = limits.serveIdleTimeoutMs; // idle sockets, stalled readers included, are destroyed
    if (opts.listen === false) {
      const family = net.isIPv6(opts.host) ? 'IPv6' : 'IPv4';
      self = new MirrorServer(opts, content, server, { address: opts.host, family, port: opts.port });
      self.wire(opts);
      return self;
    }
    const acceptors: net.Server[] = [];
    try {
      await listenShared(server, acceptors, opts.host, opts.port, limits.serveAcceptSockets);
    } catch (err) {
      for (const a of acceptors) a.close();
      if (server.listening) server.close();
      content.close();
      throw fromSystemError(err, `cannot listen on ${opts.host}:${opts.port}`);
    }
    self = new MirrorServer(opts, content, server, server.address() as AddressInfo);
    self.acceptors = acceptors;
    self.wire(opts);
    return self;
  }

  private wire(opts: ServeOptions): void {
    const { server, content } = this;
    this.onIndexed = () => this.files.retain(content.index);
    // 'connection' is the TCP socket for HTTP and HTTPS alike (before any TLS handshake).
    server.on('connection', (socket: Socket) => this.onConnection(socket));
    if (opts.tls) {
      server.on('secureConnection', (socket: Socket) => {
        const c = this.connections.get(rawOf(socket));
        if (c !== undefined) c.http = socket;
      });
    }
    server.on('request', (req, res) => this.onRequest(req, res));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.onClientError(err, socket));
    content.watch();
  }

  /** Take a connection accepted elsewhere (a worker of `serve --workers`): admitted as any other. */
  accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.server.emit('connection', socket);
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
    // Connections handed in by accept() or taken by the other accepting sockets are not the
    // net.Server's own: wait for them by our count.
    const waits: Promise<void>[] = [];
    if (this.opts.listen !== false) waits.push(new Promise<void>((resolve) => net.Server.prototype.close.call(this.server, () => resolve())));
    for (const a of this.acceptors) a.close();
    if (this.opts.listen === false || this.acceptors.length > 0) {
      waits.push(new Promise<void>((resolve) => {
        this.drained = resolve;
        if (this.connections.size === 0) resolve();
      }));
    }
    const closed = Promise.all(waits);
    for (const c of this.connections.values()) if (c.active === 0) c.http.end();
    const timer = setTimeout(() => {
      cut = this.connections.size;
      for (const c of this.connections.values()) c.raw.destroy();
    }, deadlineMs);
    await closed;
    clearTimeout(timer);
    clearInterval(this.timer);
    this.files.closeAll();
    return { cut };
  }

  /** The most bytes a body read takes now: less than a buffer while few connections are open (writeFileRange). */
  private readBytes(): number {
    const l = this.opts.limits;
    return this.connections.size <= l.serveQuietConnections ? l.serveQuietReadBytes : Infinity;
  }

  /** Open connections held by `client` now. */
  connectionsOf(client: string): number {
    return this.perClient.get(client) ?? 0;
  }

  /**
   * Admit a new TCP connection: refused when its client address already holds its share; when every
   * slot is taken, an idle connection (no response in progress: an idle keep-alive, or one that never
   * sent a request) of the client holding the most connections is closed to make room, so idle
   * connections never starve a newcomer; refused when none is idle.
   */
  private onConnection(socket: Socket): void {
    const client = clientKey(socket.remoteAddress);
    const held = this.perClient.get(client) ?? 0;
    const { serveClientConnections } = this.opts.limits;
    if (serveClientConnections > 0 && held >= serveClientConnections) {
      this.refused.perClient++;
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.opts.maxConnections) {
      const victim = this.idleOfBusiestClient();
      if (victim === undefined) {
        this.refused.full++;
        socket.destroy();
        return;
      }
      this.refused.evicted++;
      this.forget(victim);
      victim.raw.destroy();
    }
    const c: Connection = { raw: socket, http: socket, client, active: 0 };
    this.connections.set(socket, c);
    this.perClient.set(client, held + 1);
    socket.once('close', () => this.forget(c));
  }

  private forget(c: Connection): void {
    if (this.connections.get(c.raw) !== c) return;
    this.connections.delete(c.raw);
    const left = (this.perClient.get(c.client) ?? 1) - 1;
    if (left > 0) this.perClient.set(c.client, left);
    else this.perClient.delete(c.client);
    if (this.closing && this.connections.size === 0) this.drained?.();
  }

  /** The oldest idle connection of the client that holds the most connections (a scan: only when full). */
  private idleOfBusiestClient(): Connection | undefined {
    let best: Connection | undefined;
    let bestHeld = 0;
    for (const c of this.connections.values()) {
      if (c.active > 0) continue;
      const held = this.perClient.get(c.client) ?? 0;
      if (held > bestHeld) {
        best = c;
        bestHeld = held;
      }
    }
    return best;
  }

  private tick(now: number): void {
    this.sendWatch.tick(now);
    this.pool.trim(now);
    const r = this.refused;
    if (r.perClient + r.full + r.evicted + r.stalled > 0 && now - r.at >= 1000) {
      this.opts.log?.warn({ perClientCap: r.perClient, full: r.full, idleClosed: r.evicted, stalled: r.stalled, maxConnections: this.opts.maxConnections, maxPerClient: this.opts.limits.serveClientConnections },
        'connections refused or closed by the limits');
      this.refused = { perClient: 0, full: 0, evicted: 0, stalled: 0, at: now };
    }
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    // Node's own handler answers the same way; ours also logs. Never write into a response in progress.
    const busy = (Reflect.get(socket, '_httpMessage') as http.ServerResponse | undefined)?.headersSent;
    if (err.code !== 'ECONNRESET' && socket.writable && !busy) {
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      this.opts.log?.info({ remote: socket.remoteAddress, status, error: err.code }, 'bad request');
    }
    socket.destroy();
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const t0 = performance.now();
    this.inFlight++;
    let bytes = 0;
    const socket = req.socket;
    const conn = this.connections.get(rawOf(socket));
    if (conn !== undefined) conn.active++;
    const client = conn?.client ?? clientKey(socket.remoteAddress);
    // A response of which the kernel takes nothing for the send timeout is cut (src/net/send-watch.ts).
    const unwatch = this.sendWatch.watch(socket, performance.now(), () => {
      this.refused.stalled++;
      res.destroy();
    });
    // 'close' comes once per response: a plain listener, not once()'s wrapper.
    res.on('close', () => {
      this.inFlight--;
      unwatch();
      const active = conn === undefined ? 0 : --conn.active;
      // Shutting down: end this connection once its responses are out. end(), not destroy(): bytes
      // still queued for a slow client are flushed before the FIN.
      if (this.closing && active === 0 && !socket.destroyed) socket.end();
      this.opts.log?.info({
        remote: req.socket.remoteAddress ?? '?', method: String(req.method).slice(0, 16), target: String(req.url).slice(0, 512),
        status: res.statusCode, bytes: req.method === 'HEAD' ? 0 : bytes, complete: res.writableFinished, ms: Math.round((performance.now() - t0) * 100) / 100,
        ...(req.headers.range !== undefined ? { range: req.headers.range.slice(0, 128) } : {}),
        ...(req.headers['user-agent'] !== undefined ? { ua: req.headers['user-agent'].slice(0, 256) } : {}),
      } satisfies AccessRecord, 'request');
    });
    if (this.closing) res.setHeader('Connection', 'close');
    const setBytes = (n: number) => (bytes = n);
    this.handle(req, res, client, setBytes).catch((err) => {
      // A read error after the head was sent can only be signalled by cutting the connection short.
      this.opts.log?.warn({ target: String(req.url).slice(0, 512), error: (err as Error).message }, 'response failed');
      if (!res.headersSent) sendText(res, 500, 'internal error\n', setBytes);
      else res.destroy();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, client: string, setBytes: (n: number) => void): Promise<void> {
    const wait = this.limiter.enabled ? this.limiter.take(client, Date.now()) : 0;
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
        return this.sendEntity(req, res, method, e, client, setBytes);
      }
      case 'challenge': {
        // Signed over the address and port this connection reached, never the Host header.
        const answer = answerChallenge(this.opts.key, target.nonce, hostPort(req.socket.localAddress ?? '', req.socket.localPort ?? 0));
        return sendText(res, 200, answer, setBytes, { 'Cache-Control': 'no-store' });
      }
      case 'attestation': {
        const e = await attestationEntity(this.opts.source, target.name, this.opts.limits);
        if (e === undefined) return sendText(res, 404, 'not found\n', setBytes);
        return this.sendEntity(req, res, method, e, client, setBytes);
      }
      case 'name':
      case 'sha256':
      case 'pieces': {
        const f = target.kind === 'name' ? index.byName.get(target.name) : target.kind === 'sha256' ? index.bySha256.get(target.hex) : index.pieces.get(target.hex);
        if (f === undefined) return sendText(res, 404, 'not found\n', setBytes);
        if (isPlain(req.headers)) return this.sendPlainFile(res, method, f, target.kind, client, setBytes);
        return this.sendEntity(req, res, method, entityOf(f, pathHeaders(f, target.kind)), client, setBytes);
      }
    }
  }

  private async sendEntity(req: http.IncomingMessage, res: http.ServerResponse, method: 'GET' | 'HEAD', e: Entity, client: string, setBytes: (n: number) => void): Promise<void> {
    const now = Date.now();
    const validators: Validators = { etag: e.etag, lastModified: e.lastModified, lastModifiedIsStrong: now - e.lastModified * 1000 >= 2000 };
    const head: http.OutgoingHttpHeaders = { ...e.headers, 'ETag': e.etag, 'Last-Modified': e.lastModifiedHttp, 'Accept-Ranges': 'bytes' };
    const h = req.headers;
    // The common case, a plain GET or HEAD, skips the precondition machinery.
    const pre = isPlain(h) ? { status: 'proceed' as const, useRange: false } : evaluatePreconditions({
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

    let buffer = e.buffer;
    let file: OpenFile | undefined;
    if (method === 'GET' && e.file !== undefined && e.size > 0) {
      const opened = await this.openBody(res, e.file, now, setBytes);
      if (opened === undefined) return;
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
            await writeFileRange(fh!, res, start, end, this.pool, client, false, file!.local ? this.readPlace : undefined, this.readBytes());
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
      await writeFileRange(fh!, res, range.start, range.end, this.pool, client, true, file!.local ? this.readPlace : undefined, this.readBytes());
    } finally {
      file?.release();
    }
  }

  /**
   * A plain GET or HEAD of a file (no Range, no condition): the case of nearly every request, with its
   * head built once per file (plainHead) instead of per request. Same answers as sendEntity.
   */
  private async sendPlainFile(res: http.ServerResponse, method: 'GET' | 'HEAD', f: IndexedFile, kind: FileKind, client: string, setBytes: (n: number) => void): Promise<void> {
    let buffer: Buffer | undefined;
    let file: OpenFile | undefined;
    if (method === 'GET' && f.size > 0) {
      const opened = await this.openBody(res, f, Date.now(), setBytes);
      if (opened === undefined) return;
      if (Buffer.isBuffer(opened)) buffer = opened;
      else file = opened;
    }
    try {
      res.writeHead(200, plainHead(f, kind));
      setBytes(f.size);
      if (buffer !== undefined) return void res.end(buffer);
      if (file === undefined) return void res.end();
      await writeFileRange(file.fh, res, 0, f.size - 1, this.pool, client, true, file.local ? this.readPlace : undefined, this.readBytes());
    } finally {
      file?.release();
    }
  }

  /**
   * The bytes of `f` for a GET: verified in memory (a small file) or an open file. Opened before the
   * head is sent, so a file that vanished or changed since it was indexed gets an honest status instead
   * of bytes under another file's ETag: then the answer is sent here and the result is undefined.
   */
  private async openBody(res: http.ServerResponse, f: IndexedFile, now: number, setBytes: (n: number) => void): Promise<Buffer | OpenFile | undefined> {
    let opened: Buffer | OpenFile | 'gone' | 'changed';
    if (this.cache.fits(f)) opened = this.cache.get(f, now) ?? await this.cache.load(f, now);
    else opened = await this.files.acquire(f, now).catch((err) => { throw fromSystemError(err, f.path); });
    if (opened !== 'gone' && opened !== 'changed') return opened;
    void this.content.refresh();
    if (opened === 'gone') sendText(res, 404, 'not found\n', setBytes);
    else sendText(res, 503, 'file changed, reindexing\n', setBytes, { 'Retry-After': '1' });
    return undefined;
  }
}

type FileKind = 'name' | 'sha256' | 'pieces';

/**
 * Listen on HOST:PORT with `count` sockets (SO_REUSEPORT), every one handing its connections to
 * `server`; those beside the server's own go into `acceptors`. libuv accepts one connection per
 * listening socket and event-loop turn, and a turn that serves many large responses takes
 * milliseconds (a pread and a write of 1 MiB each): a burst of newcomers waited in the kernel's
 * queue one turn each, 128 at once up to 1.5 s (docs/BENCHMARKS.md, bench:serve, "Accepting").
 * With `count` sockets the kernel spreads newcomers over them and a turn takes up to `count`.
 * The port is first bound alone, so a port in use fails as a plain listen does, and another
 * `serve` on the same port fails the same way instead of sharing it.
 */
async function listenShared(server: net.Server, acceptors: net.Server[], host: string, port: number, count: number): Promise<void> {
  if (count <= 1) return listenOn(server, { host, port });
  if (port !== 0) {
    const probe = net.createServer();
    await listenOn(probe, { host, port });
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  }
  await listenOn(server, { host, port, reusePort: true });
  const bound = server.address() as AddressInfo;
  for (let i = 1; i < count; i++) {
    const a = net.createServer({ noDelay: true }, (socket) => server.emit('connection', socket));
    acceptors.push(a);
    await listenOn(a, { host: bound.address, port: bound.port, reusePort: true });
    // As on the server's own socket: an accept error (EMFILE) is the server's.
    a.on('error', (err) => server.emit('error', err));
  }
}

/** No Range and no condition: a plain GET or HEAD. */
function isPlain(h: http.IncomingHttpHeaders): boolean {
  return h.range === undefined && h['if-none-match'] === undefined && h['if-modified-since'] === undefined && h['if-match'] === undefined && h['if-unmodified-since'] === undefined;
}

/** Headers particular to the kind of path. Content-addressed paths never change meaning: caches may keep them for good. */
function pathHeaders(f: IndexedFile, kind: FileKind): http.OutgoingHttpHeaders {
  return kind === 'name' ? { 'Repr-Digest': f.reprDigest } : kind === 'sha256' ? { 'Repr-Digest': f.reprDigest, 'Cache-Control': IMMUTABLE } : { 'Cache-Control': IMMUTABLE };
}

/** The head of a plain 200 for each file and kind of path, built on first use (an index's files are immutable objects). */
const plainHeads = new WeakMap<IndexedFile, Partial<Record<FileKind, string[]>>>();

/** The same fields, in the same order, as sendEntity's head for a whole file, as Node's flat [name, value, ...] form. */
function plainHead(f: IndexedFile, kind: FileKind): string[] {
  let heads = plainHeads.get(f);
  if (heads === undefined) plainHeads.set(f, (heads = {}));
  let head = heads[kind];
  if (head === undefined) {
    head = Object.entries(pathHeaders(f, kind)).flatMap(([k, v]) => [k, String(v)]);
    head.push('ETag', f.etag, 'Last-Modified', f.lastModifiedHttp, 'Accept-Ranges', 'bytes', 'Content-Type', OCTETS, 'Content-Length', String(f.size));
    heads[kind] = head;
  }
  return head;
}

/** The TCP socket beneath `socket` (itself, unless it is a TLS socket). */
function rawOf(socket: Socket): Socket {
  return (Reflect.get(socket, '_parent') as Socket | null | undefined) ?? socket;
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

/** ROOT/.well-known/sourcemesh/attestations/NAME, a regular file of at most attestationBytes, read now. */
async function attestationEntity(source: ContentOptions['source'], name: string, limits: Limits): Promise<Entity | undefined> {
  if (source.kind !== 'root') return undefined;
  const file = path.join(source.root, ATTESTATIONS_DIR, name);
  const st = await lstat(file).catch(() => undefined);
  if (!st?.isFile() || st.size > limits.attestationBytes) return undefined;
  const body = await readBoundedBytes(file, limits.attestationBytes, 'attestation').catch(() => undefined);
  if (body === undefined) return undefined;
  const lastModified = Math.floor(st.mtimeMs / 1000);
  return {
    headers: { 'Cache-Control': 'no-cache' }, size: body.length, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
    lastModified, lastModifiedHttp: new Date(lastModified * 1000).toUTCString(), contentType: 'application/json', buffer: body,
  };
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
