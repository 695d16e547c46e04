// BitTorrent peers as sources of `fetch`: each peer of a torrent becomes a Source whose ranges are read
// over the peer wire (requests of at most 16 KiB inside one piece), so the segmented scheduler of
// src/fetch/segmented.ts asks peers and HTTP mirrors for pieces at once, checks every piece against the
// manifest's Merkle layer, and names and drops a peer that sent a bad one as it does a lying mirror. The
// whole file is still accepted only on its sha256. Peers are attacker-controlled: their messages are
// bounded before buffering (MessageGuard), a piece we did not ask for is ignored, silence times out.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { SourcemeshError } from '../errors.ts';
import type { Source } from '../fetch/plan.ts';
import { transferError, type OpenOptions, type Opened } from '../fetch/transport.ts';
import { LIMITS, type Limits } from '../limits.ts';
import type { Torrent } from './metainfo.ts';
import { PeerReader } from './peer-wire.ts';
import { createWire, deliverPiece, type Wire } from './wire.ts';

/** Requests in flight on one connection (below the `reqq` 250 most clients advertise). */
const WINDOW = 64;
/** Bytes of one read from a peer's socket, into the connection's own memory (PeerReader): as a socket read of Node's. */
const READ_BYTES = 64 * 1024;

/**
 * Where each file of a torrent starts in its piece space: v2 and hybrid files start on a piece boundary
 * (BEP 52, BEP 47); a v1 torrent's files lie end to end, after the pad files before them (BEP 47) if any.
 */
export function fileOffsets(t: Torrent): number[] {
  if (t.version === 'v1' && t.v1Offsets?.length === t.files.length) return t.v1Offsets;
  const out: number[] = [];
  let at = 0;
  for (const f of t.files) {
    out.push(at);
    at += t.version === 'v1' || !t.multiFile ? f.size : Math.ceil(f.size / t.pieceLength) * t.pieceLength;
  }
  return out;
}

export interface PeerSwarmOptions {
  limits?: Limits;
  /** Connect here instead of the peer's address (tests bind a loopback address of their own). */
  localAddress?: string;
  /** Our peer id (the one our uploads and tracker announces use); a fresh one otherwise. */
  peerId?: Buffer;
}

/** The peers of one run, their connections kept across the pieces of a file, closed at the end. */
export class PeerSwarm {
  private readonly conns = new Map<string, PeerConnection>();
  /** Connections made again after one closed on its own (see `linkTo`), per peer and torrent. */
  private readonly reconnects = new Map<string, number>();
  private readonly peerId: Buffer;
  private readonly limits: Limits;
  private readonly opts: PeerSwarmOptions;
  private closed = false;

  constructor(opts: PeerSwarmOptions = {}) {
    this.opts = opts;
    this.limits = opts.limits ?? LIMITS;
    this.peerId = opts.peerId ?? Buffer.concat([Buffer.from('-SM0001-'), randomBytes(12)]);
  }

  /**
   * Sources for file `index` of torrent `t`, one per peer address (HOST:PORT). Each peer is connected to
   * at once, so that its bitfield is known before the scheduler picks pieces (rarest first needs them).
   */
  sources(t: Torrent, index: number, peers: string[]): Source[] {
    const start = fileOffsets(t)[index]!;
    const file = t.files[index]!;
    // v2 peers greet with the first 20 bytes of the v2 info-hash (BEP 52); a hybrid has both, v1 reaches more clients.
    const infoHash = t.infoHashV1 ?? t.infoHashV2!.subarray(0, 20);
    const hex = infoHash.toString('hex');
    return peers.map((peer) => {
      const label = `peer ${peer}`;
      const key = `${peer} ${hex}`;
      if (!this.closed) this.connection(key, peer, infoHash, t.pieceLength);
      return {
        role: 'peer', label,
        location: {
          type: 'opener',
          open: (o: OpenOptions) => this.connection(key, peer, infoHash, t.pieceLength).open(label, start, file.size, o),
          // What the peer said it has (bitfield, have), so the scheduler asks it for pieces it has.
          has: (from: number, to: number) => this.linkTo(key, peer, infoHash, t.pieceLength)?.claims(start + from, start + to),
          hasVersion: () => this.linkTo(key, peer, infoHash, t.pieceLength)?.version ?? -2,
        },
      };
    });
  }

  /**
   * The connection to ask what a peer has. One that closed on its own (the peer was not listening yet,
   * another leecher starting at the same time) is made again, at most `swarmPeerReconnects` times, a
   * second apart or more; after that the peer claims nothing (it is asked only when no one else can be).
   */
  private linkTo(key: string, peer: string, infoHash: Buffer, pieceLength: number): Pick<PeerConnection, 'claims' | 'version'> | undefined {
    const c = this.conns.get(key);
    if (!c || !c.closed || this.closed) return c;
    const n = this.reconnects.get(key) ?? 0;
    if (n >= this.limits.swarmPeerReconnects) return NOTHING;
    if (performance.now() - c.closedAt < 1000 * 2 ** n) return c;
    this.reconnects.set(key, n + 1);
    return this.connection(key, peer, infoHash, pieceLength);
  }

  private connection(key: string, peer: string, infoHash: Buffer, pieceLength: number): PeerConnection {
    let c = this.conns.get(key);
    if (!c || c.closed) {
      c = new PeerConnection(peer, infoHash, pieceLength, this.peerId, this.limits, this.opts.localAddress);
      this.conns.set(key, c);
    }
    return c;
  }

  close(): void {
    this.closed = true;
    for (const c of this.conns.values()) c.destroy();
    this.conns.clear();
  }
}

/** A peer we gave up connecting to: it claims no piece. */
const NOTHING = { claims: () => false, version: -1 };

/** Versions of what connections said (`hasVersion`): one counter for all, so a new connection never repeats an old one's. */
let said = 0;

class PeerConnection {
  closed = false;
  /** When it closed (performance.now()). */
  closedAt = 0;
  /** Changes whenever what `claims` says may change: a bitfield, a `have`, the connection closing. */
  version = ++said;
  /** The peer said which pieces it has (a bitfield or a `have`). */
  private heard = false;
  private readonly socket: net.Socket;
  private readonly wire: Wire;
  private readonly reader: PeerReader;
  private readonly ready: Promise<void>;
  private failure?: SourcemeshError;
  private readonly peer: string;
  private readonly pieceLength: number;
  private readonly limits: Limits;
  private unchoked?: () => void;

  constructor(peer: string, infoHash: Buffer, pieceLength: number, peerId: Buffer, limits: Limits, localAddress?: string) {
    this.peer = peer;
    this.pieceLength = pieceLength;
    this.limits = limits;
    const i = peer.lastIndexOf(':');
    const host = peer.slice(0, i).replace(/^\[|\]$/g, '');
    this.wire = createWire('tcpOutgoing');
    // Reads land in the connection's own memory: each block is copied from it into its piece by the
    // request's callback (`open`), the other messages go to the wire library as copies.
    const wire = this.wire;
    const reader = new PeerReader(limits.peerMessageBytes, READ_BYTES, (why) => this.fail(why ? `sent ${why}` : 'did not answer with a BitTorrent handshake', false),
      (index, begin, block) => deliverPiece(wire, index, begin, block), (bytes) => wire.write(bytes));
    this.reader = reader;
    this.socket = net.connect({ host, port: Number(peer.slice(i + 1)), localAddress, noDelay: true, onread: { buffer: reader.buffer, callback: (n: number) => {
      // Consumed before the callback returns (bounded by the requests we made), so reading goes on.
      reader.read(n);
      return true;
    } } });
    this.socket.on('error', (err) => this.fail(err.message, true));
    this.socket.on('close', () => this.fail('closed the connection', true));
    // The socket's end is the wire's (what a pipe from it did): its requests still waiting fail at once.
    this.socket.on('close', () => this.wire.destroy());
    this.wire.on('error', (err) => this.fail(err.message, true));
    this.wire.pipe(this.socket);
    this.socket.setTimeout(limits.idleTimeoutMs, () => this.fail(`sent nothing for ${limits.idleTimeoutMs / 1000} s`, true));
    this.wire.setTimeout(limits.idleTimeoutMs, true);
    this.wire.on('timeout', () => this.fail(`answered no request for ${limits.idleTimeoutMs / 1000} s`, true));

    this.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(`did not unchoke us within ${limits.connectTimeoutMs / 1000} s`, true), limits.connectTimeoutMs);
      this.unchoked = () => {
        clearTimeout(timer);
        resolve();
      };
      this.socket.once('close', () => {
        clearTimeout(timer);
        reject(this.failure);
      });
    });
    this.ready.catch(() => {}); // a connection nobody asked anything of yet may fail quietly
    this.socket.once('connect', () => this.wire.handshake(infoHash, peerId));
    this.wire.on('handshake', (got: string, theirId: string) => {
      if (got.toLowerCase() !== infoHash.toString('hex')) return this.fail(`answered for another torrent (${got})`, false);
      // A tracker or the DHT may name our own upload address back to us.
      if (theirId.toLowerCase() === peerId.toString('hex')) return this.fail('is ourselves', false);
      this.wire.interested();
    });
    this.wire.on('unchoke', () => this.unchoked?.());
    const heard = () => {
      this.heard = true;
      this.version = ++said;
    };
    this.wire.on('bitfield', heard);
    this.wire.on('have', heard);
    this.wire.on('have-all', heard); // BEP 6, when the fast extension is spoken
  }

  private fail(why: string, retryable: boolean): void {
    this.failure ??= transferError('E_NETWORK', `peer ${this.peer}: ${why}`, retryable);
    if (!this.closed) {
      this.closedAt = performance.now();
      this.version = ++said;
    }
    this.closed = true;
    this.reader.stop();
    this.socket.destroy();
  }

  /** Ours to end: the run is over. */
  destroy(): void {
    this.failure ??= transferError('E_NETWORK', `peer ${this.peer}: the download ended`, true);
    if (!this.closed) {
      this.closedAt = performance.now();
      this.version = ++said;
    }
    this.closed = true;
    this.reader.stop();
    this.socket.destroy();
  }

  /**
   * Requests made in one turn of the event loop (a piece's blocks, BEP 3 `request`, 17 bytes each) leave
   * in one write, not one system call and one TCP segment each, which the peer would read one by one.
   */
  private corkForTurn(): void {
    if (this.socket.writableCorked || this.closed) return;
    this.socket.cork();
    setImmediate(() => this.socket.uncork());
  }

  /** Whether the peer claims every piece under bytes `from`..`to` of the torrent; undefined before it said anything (or once closed). */
  claims(from: number, to: number): boolean | undefined {
    if (this.closed || !this.heard) return undefined;
    const pieces = (this.wire as unknown as { peerPieces: { get(i: number): boolean } }).peerPieces;
    for (let i = Math.floor(from / this.pieceLength); i <= Math.floor(to / this.pieceLength); i++) if (!pieces.get(i)) return false;
    return true;
  }

  /** Resolves once the peer claims every piece of `indexes` (bitfield or `have`), within `peerHaveWaitMs`. */
  private claimed(indexes: number[], label: string, signal?: AbortSignal): Promise<void> {
    const pieces = (this.wire as unknown as { peerPieces: { get(i: number): boolean } }).peerPieces;
    const missing = () => indexes.find((i) => !pieces.get(i));
    if (missing() === undefined) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (missing() !== undefined) return;
        done();
        resolve();
      };
      const stop = (err: SourcemeshError) => {
        done();
        reject(err);
      };
      // Not the peer's fault (a leecher that lacks a piece yet): `notYet`, so the scheduler asks elsewhere without blame.
      const timer = setTimeout(() => stop(transferError('E_NETWORK', `${label} does not have piece ${missing()} (waited ${this.limits.peerHaveWaitMs / 1000} s for it)`, true, { notYet: true })), this.limits.peerHaveWaitMs);
      const closed = () => stop(this.failure ?? transferError('E_NETWORK', `${label}: connection closed`, true));
      const aborted = () => stop(transferError('E_NETWORK', `${label}: its read was cancelled`, true));
      const done = () => {
        clearTimeout(timer);
        this.wire.off('have', check);
        this.wire.off('bitfield', check);
        this.socket.off('close', closed);
        signal?.removeEventListener('abort', aborted);
      };
      this.wire.on('have', check);
      this.wire.on('bitfield', check);
      this.socket.once('close', closed);
      signal?.addEventListener('abort', aborted, { once: true });
    });
  }

  /** Bytes [offset, end] of the file that starts at `fileStart` in the torrent's piece space. */
  async open(label: string, fileStart: number, fileSize: number, o: OpenOptions): Promise<Opened> {
    if (this.closed) throw this.failure ?? transferError('E_NETWORK', `peer ${this.peer}: connection closed`, true);
    const last = Math.min(o.end ?? fileSize - 1, fileSize - 1);
    if (o.offset > last) throw new SourcemeshError('E_HTTP', `${label}: bytes ${o.offset}- lie past the end of the file`, { rangeNotSatisfiable: true, completeLength: fileSize });
    await this.ready;
    /** `at`: where the block lies in the range. */
    const blocks: { index: number; begin: number; length: number; at: number }[] = [];
    for (let pos = fileStart + o.offset; pos <= fileStart + last;) {
      const index = Math.floor(pos / this.pieceLength);
      const begin = pos - index * this.pieceLength;
      const length = Math.min(this.limits.peerBlockBytes, this.pieceLength - begin, fileStart + last + 1 - pos);
      blocks.push({ index, begin, length, at: pos - fileStart - o.offset });
      pos += length;
    }
    // A peer is asked only for pieces it claims. Another leecher may lack one yet: wait a little for its
    // `have` (BEP 3), then give up on this peer.
    await this.claimed([...new Set(blocks.map((b) => b.index))], label, o.signal);
    const wire = this.wire as unknown as { request(i: number, b: number, l: number, cb: (e: Error | null, d?: Uint8Array) => void): void; cancel(i: number, b: number, l: number): void };
    // Blocks asked for and not answered yet: a cancelled read takes back only its own requests (BEP 3
    // `cancel`), so the other pieces in flight on this connection go on.
    const pending = new Set<(typeof blocks)[number]>();
    let cancelled = false;
    // The caller's memory for the range (OpenOptions.into), when it holds all of it: each block is copied
    // there as it arrives, and the body yields views of it in place.
    const into = o.into && o.into.length >= last - o.offset + 1 ? o.into : undefined;
    const request = (b: (typeof blocks)[number]) => new Promise<Buffer>((resolve, reject) => {
      pending.add(b);
      this.corkForTurn();
      wire.request(b.index, b.begin, b.length, (err, data) => {
        pending.delete(b);
        if (cancelled) return reject(transferError('E_NETWORK', `${label}: its read was cancelled (slower than another source)`, true));
        if (err || !data) return reject(this.failure ?? transferError('E_NETWORK', `${label}: ${err?.message ?? 'no data'}`, true));
        // `data` is a view of the connection's read memory (PeerReader), good only now: copied at once.
        // Its length is the request's (the wire matches index, begin and length), so it fits its place.
        if (!into) return resolve(Buffer.from(data));
        into.set(data, b.at);
        resolve(Buffer.from(into.buffer, into.byteOffset + b.at, data.length));
      });
    });
    const abort = () => {
      if (cancelled) return;
      cancelled = true;
      for (const b of [...pending]) wire.cancel(b.index, b.begin, b.length);
    };
    o.signal?.addEventListener('abort', abort, { once: true });
    async function* body(): AsyncGenerator<Uint8Array> {
      const inflight: Promise<Buffer>[] = [];
      let next = 0;
      try {
        while (next < blocks.length || inflight.length) {
          while (!cancelled && next < blocks.length && inflight.length < WINDOW) {
            const p = request(blocks[next++]!);
            p.catch(() => {});
            inflight.push(p);
          }
          if (!inflight.length) throw transferError('E_NETWORK', `${label}: its read was cancelled`, true);
          yield await inflight.shift()!;
        }
      } finally {
        if (pending.size) abort(); // the reader stopped early: take back what is still asked for
        o.signal?.removeEventListener('abort', abort);
      }
    }
    return { body: body(), start: o.offset, ranged: true, total: fileSize, url: label, cancel: abort };
  }
}
