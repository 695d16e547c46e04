// `seed`: verified files offered to BitTorrent peers over TCP. Each file is one swarm under the torrents
// `torrent create` makes for it without a fixed piece length (v1, v2 and hybrid: web seeds and trackers
// live outside the info dictionary, so every such torrent has one of these info-hashes). A peer may
// greet with a v1 info-hash or a v2 one truncated to 20 bytes (BEP 52, "Upgrade path"). Every block is
// checked against the file's BEP 52 leaf hash before it leaves, so a file changed on disk is never sent.
// Peers are attacker-controlled: messages are bounded before buffering (MessageGuard), requests
// checked, queues capped, and a peer that breaks a rule is banned for the run.
import { randomBytes } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import net from 'node:net';
import { hash } from 'node:crypto';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import { BLOCK } from '../fetch/piece-map.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { SILENT, type Logger } from '../logger.ts';
import { TokenBuckets } from '../net/rate-limit.ts';
import { autoPieceLength } from './create.ts';
import { hashTorrentFiles } from './file-hashes.ts';
import { MerkleTree } from './merkle-tree.ts';
import { makeTorrent, type TorrentVersion } from './metainfo.ts';
import { HASH_REJECT, HASH_REQUEST, HASHES, MessageGuard, fullBitfield, hashMessagePayload, parseHashRequest } from './peer-wire.ts';
import { createWire, sendMessage, type Wire } from './wire.ts';

/** A file to seed, as its index knows it: the sha256 it was verified to have. */
export interface SeedSource {
  name: string;
  path: string;
  size: number;
  sha256: string;
}

export interface SeededFile extends SeedSource {
  pieceLength: number;
  pieces: number;
  root: Buffer;
  leaves: Buffer[];
  /** Info-hashes (hex) of the torrents this file is seeded under. */
  infoHashes: { hybrid: { v1: string; v2: string }; v1: string; v2: string };
  tree?: MerkleTree;
  /**
   * A file still downloading (`fetch --bittorrent`, src/torrent/leech-upload.ts): the pieces verified so
   * far, as a BEP 3 bitfield; only their leaves are set. Undefined: a whole, verified file.
   */
  have?: Uint8Array;
  /** Bytes of this file sent to peers this run (what a tracker announce reports as `uploaded`, BEP 3). */
  sent?: number;
}

/** A BEP 20 style peer id: our client code and version, then 12 random bytes. */
export function newPeerId(): Buffer {
  return Buffer.concat([Buffer.from('-SM0001-'), randomBytes(12)]);
}

/** Is piece `index` of `f` ours to send? */
export function hasPiece(f: SeededFile, index: number): boolean {
  return !f.have || ((f.have[index >> 3] ?? 0) & (0x80 >> (index & 7))) !== 0;
}

/** One info-hash a file is offered under (hex of 20 bytes: a v1 info-hash, or a v2 one cut to 20 bytes). */
export interface SwarmKey {
  infoHash: string;
  greeting: 'v1' | 'v2';
  paddedTail: boolean;
}

/** Hash a verified file once: its blocks, pieces and info-hashes. A file that no longer hashes to its sha256 is refused. */
export async function prepareSeedFile(src: SeedSource): Promise<SeededFile> {
  const pieceLength = autoPieceLength(src.size);
  const { files: [h], v1Pieces } = await hashTorrentFiles([{ path: src.path, pad: 0 }], pieceLength, true);
  if (h!.sha256 !== src.sha256 || h!.size !== src.size) throw new SourcemeshError('E_CHECKSUM', `${src.path}: no longer the verified file (sha256 ${h!.sha256}, expected ${src.sha256})`);
  const made = (version: TorrentVersion) => makeTorrent({
    name: src.name, files: [{ name: src.name, size: h!.size, root: h!.root, layer: h!.layer }], multiFile: false, pieceLength, version, v1Pieces, webSeeds: [], trackers: [],
  });
  const hy = made('hybrid');
  return {
    ...src, pieceLength, pieces: Math.max(1, Math.ceil(src.size / pieceLength)), root: h!.root, leaves: h!.leaves,
    infoHashes: { hybrid: { v1: hy.infoHashV1!.toString('hex'), v2: hy.infoHashV2!.toString('hex') }, v1: made('v1').infoHashV1!.toString('hex'), v2: made('v2').infoHashV2!.toString('hex') },
  };
}

export interface SeederOptions {
  host: string;
  port: number;
  maxPeers: number;
  /** Bytes per second for all peers together; 0 for no limit. */
  uploadRate: number;
  limits?: Limits;
  log?: Logger;
  /** The 20-byte peer id of our handshakes (and tracker announces); a fresh one otherwise. */
  peerId?: Buffer;
}

interface Swarm {
  file: SeededFile;
  /** How the peer greeted: a v2 (truncated SHA-256) or a v1 info-hash. */
  greeting: 'v1' | 'v2';
  /**
   * The v2-only torrent: its last piece counts as whole, the bytes past the end of the file as zeros (a
   * pad, as libtorrent 2.0 lays out v2 torrents); v1 and hybrid single-file torrents end with the file.
   */
  paddedTail: boolean;
}

export class Seeder {
  readonly url: string;
  readonly port: number;
  /** Addresses banned for this run, with why. */
  readonly banned = new Map<string, string>();
  uploaded = 0;
  /** BEP 52 hash requests answered with hashes, and with a reject. */
  hashesSent = 0;
  hashesRejected = 0;
  private readonly server: net.Server;
  private readonly swarms = new Map<string, Swarm>();
  private readonly handles = new Map<string, Promise<FileHandle>>();
  /** Pieces read lately (see `cachedPiece`), least recently used first. */
  private readonly pieceCache = new Map<string, { bytes: Promise<Buffer>; length: number }>();
  private pieceCacheBytes = 0;
  private readonly sockets = new Set<net.Socket>();
  /** The wires that greeted for each file, told of each piece it gains (partial files). */
  private readonly wires = new Map<SeededFile, Set<Wire>>();
  readonly peerId: Buffer;
  private readonly bucket?: TokenBuckets;
  private readonly limits: Limits;
  private readonly log: Logger;
  private readonly maxPeers: number;

  private constructor(server: net.Server, files: SeededFile[], opts: SeederOptions) {
    this.server = server;
    this.limits = opts.limits ?? LIMITS;
    this.log = opts.log ?? SILENT;
    this.maxPeers = opts.maxPeers;
    this.peerId = opts.peerId ?? newPeerId();
    // Tokens are 16 KiB blocks; the burst is one second's worth.
    if (opts.uploadRate > 0) {
      const perSecond = Math.max(opts.uploadRate / BLOCK, 0.001);
      this.bucket = new TokenBuckets({ perSecond, burst: Math.max(1, Math.floor(perSecond)), maxClients: 1 });
    }
    for (const f of files) {
      this.swarms.set(f.infoHashes.hybrid.v1, { file: f, greeting: 'v1', paddedTail: false });
      this.swarms.set(f.infoHashes.hybrid.v2.slice(0, 40), { file: f, greeting: 'v2', paddedTail: false });
      this.swarms.set(f.infoHashes.v1, { file: f, greeting: 'v1', paddedTail: false });
      this.swarms.set(f.infoHashes.v2.slice(0, 40), { file: f, greeting: 'v2', paddedTail: true });
    }
    const a = server.address() as net.AddressInfo;
    this.port = a.port;
    this.url = `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    server.on('connection', (s) => this.accept(s));
  }

  static async start(files: SeededFile[], opts: SeederOptions): Promise<Seeder> {
    const server = net.createServer({ pauseOnConnect: false, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(fromSystemError(err, `cannot listen on ${opts.host}:${opts.port}`)));
      server.listen(opts.port, opts.host, () => resolve());
    });
    return new Seeder(server, files, opts);
  }

  /** Offer one more file (a partial one, as its pieces verify) under these info-hashes. */
  offer(file: SeededFile, keys: SwarmKey[]): void {
    for (const k of keys) this.swarms.set(k.infoHash.toLowerCase(), { file, greeting: k.greeting, paddedTail: k.paddedTail });
  }

  /** Piece `index` of a partial file just verified (its leaves set): mark it, and tell its peers (BEP 3 `have`). */
  have(file: SeededFile, index: number): void {
    if (!file.have || hasPiece(file, index)) return;
    file.have[index >> 3]! |= 0x80 >> (index & 7);
    for (const w of this.wires.get(file) ?? []) w.have(index);
  }

  get peers(): number {
    return this.sockets.size;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const h of this.handles.values()) await h.then((fh) => fh.close(), () => {});
  }

  private ban(socket: net.Socket, why: string): void {
    const who = socket.remoteAddress ?? '?';
    if (!this.banned.has(who)) this.log.warn({ peer: `${who}:${socket.remotePort}`, why }, 'peer banned');
    this.banned.set(who, why);
    socket.destroy();
  }

  private accept(socket: net.Socket): void {
    const who = socket.remoteAddress ?? '?';
    if (this.banned.has(who) || this.sockets.size >= this.maxPeers) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setTimeout(this.limits.peerIdleTimeoutMs, () => socket.destroy());
    const greeted = setTimeout(() => socket.destroy(), this.limits.peerHandshakeTimeoutMs);
    socket.on('close', () => clearTimeout(greeted));

    const wire = createWire();
    const guard = new MessageGuard(this.limits.peerMessageBytes, (why) => (why ? this.ban(socket, why) : socket.destroy()));
    wire.on('error', () => socket.destroy());
    guard.on('error', () => socket.destroy());
    socket.pipe(guard).pipe(wire).pipe(socket);
    socket.on('close', () => wire.destroy());
    wire.extendedHandshake.reqq = this.limits.peerRequestQueue;

    let swarm: Swarm | undefined;
    wire.on('handshake', (infoHashHex) => {
      clearTimeout(greeted);
      swarm = this.swarms.get(infoHashHex.toLowerCase());
      if (!swarm) {
        socket.destroy(); // not a file we seed: nothing to say
        return;
      }
      this.log.info({ peer: `${who}:${socket.remotePort}`, file: swarm.file.name, greeting: swarm.greeting }, 'peer');
      wire.handshake(Buffer.from(infoHashHex, 'hex'), this.peerId);
      const f = swarm.file;
      wire.bitfield(f.have ? Uint8Array.from(f.have) : fullBitfield(f.pieces));
      if (f.have) {
        const set = this.wires.get(f) ?? new Set<Wire>();
        this.wires.set(f, set.add(wire));
        socket.on('close', () => set.delete(wire));
      }
    });
    wire.on('interested', () => wire.unchoke());

    // Requests are answered one at a time, each after the socket drained: a peer that asks much and reads
    // little holds one block of ours, not its whole queue.
    const queue: { index: number; offset: number; length: number; respond: (e: Error | null, d?: Uint8Array) => void }[] = [];
    let busy = false;
    const next = async () => {
      if (busy) return;
      busy = true;
      try {
        while (queue.length && !socket.destroyed && swarm) {
          const r = queue.shift()!;
          if (socket.writableNeedDrain) await new Promise((resolve) => socket.once('drain', resolve).once('close', resolve));
          await this.pace();
          const f = swarm.file;
          const data = await this.readBlock(f, r.index, r.offset, r.length).catch((err: unknown) => {
            this.log.error({ file: f.name, error: (err as Error).message }, 'cannot send a block; the file is no longer seeded');
            this.retire(f);
            socket.destroy();
            return undefined;
          });
          if (!data) return;
          // The blocks answered in one turn of the event loop (and each one's header) leave in one write,
          // not two system calls per block (socket writes were the largest cost of an uploading leecher).
          if (!socket.writableCorked) {
            socket.cork();
            setImmediate(() => socket.uncork());
          }
          r.respond(null, data);
          this.uploaded += data.length;
          f.sent = (f.sent ?? 0) + data.length;
        }
      } finally {
        busy = false;
      }
    };
    wire.on('request', (index, offset, length, respond) => {
      if (!swarm) return this.ban(socket, 'a request before the handshake');
      const f = swarm.file;
      const pieceSize = index === f.pieces - 1 && !swarm.paddedTail ? f.size - index * f.pieceLength : f.pieceLength;
      if (index >= f.pieces || length === 0 || length > this.limits.peerBlockBytes || offset + length > pieceSize) {
        return this.ban(socket, `a request for piece ${index} offset ${offset} length ${length}, outside ${f.name}`);
      }
      // A piece not verified yet: refused without blame (BEP 6 reject, when the peer speaks it).
      if (!hasPiece(f, index)) return respond(new Error(`piece ${index} not verified yet`));
      if (queue.length >= 2 * this.limits.peerRequestQueue) return this.ban(socket, `more than ${2 * this.limits.peerRequestQueue} requests waiting`);
      queue.push({ index, offset, length, respond });
      void next();
    });
    wire.on('unknownmessage', (message) => {
      if (message[0] !== HASH_REQUEST || !swarm) return; // BEP 3: unknown messages are ignored
      const req = parseHashRequest(message.subarray(1));
      if (!req) return this.ban(socket, 'a malformed hash request');
      const f = swarm.file;
      // A partial file has no whole tree yet: its hash requests are rejected.
      const hashes = req.root.equals(f.root) && f.size > 0 && !f.have ? this.tree(f).hashes(req.base, req.index, req.length, req.proofLayers, this.limits.peerHashesPerRequest) : undefined;
      // BEP 52: a request we cannot answer gets a hash reject with the same fields.
      sendMessage(wire, hashes ? HASHES : HASH_REJECT, hashMessagePayload(req, hashes));
      this.log.debug({ peer: `${who}:${socket.remotePort}`, file: f.name, base: req.base, index: req.index, length: req.length, proofLayers: req.proofLayers, answered: Boolean(hashes) }, 'hash request');
      if (hashes) this.hashesSent++;
      else this.hashesRejected++;
    });
  }

  /** Stop seeding a file (it changed on disk, or cannot be read): new peers for it are turned away. */
  private retire(f: SeededFile): void {
    for (const [k, v] of this.swarms) if (v.file === f) this.swarms.delete(k);
    for (const k of [...this.pieceCache.keys()]) if (k.endsWith(` ${f.path}`)) this.dropCached(k);
  }

  private tree(f: SeededFile): MerkleTree {
    f.tree ??= new MerkleTree(f.leaves);
    return f.tree;
  }

  private async pace(): Promise<void> {
    if (!this.bucket) return;
    for (;;) {
      const wait = this.bucket.take('all', performance.now());
      if (wait === 0) return;
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  /** The bytes of one request, from the whole 16 KiB blocks they lie in, each checked against its leaf. */
  private async readBlock(f: SeededFile, index: number, offset: number, length: number): Promise<Buffer> {
    const start = index * f.pieceLength + offset;
    // Past the end of the file (the pad of a v2 torrent's last piece): zeros, after the file's own bytes.
    if (start + length > f.size) {
      const own = start < f.size ? await this.readBlock(f, index, offset, f.size - start) : Buffer.alloc(0);
      return Buffer.concat([own, Buffer.alloc(length - own.length)]);
    }
    // Peers ask for a piece block by block, and several peers for the same pieces: the piece is read and
    // checked once, then its blocks are sent from memory (a read and a hash per block showed in profiles).
    if (f.pieceLength * 2 <= this.limits.seedPieceCacheBytes) {
      const piece = await this.cachedPiece(f, index);
      return piece.subarray(offset, offset + length);
    }
    return this.readChecked(f, start, length);
  }

  /** Piece `index` of `f`, read whole and checked block by block, from the last few pieces read (at most seedPieceCacheBytes). */
  private cachedPiece(f: SeededFile, index: number): Promise<Buffer> {
    const key = `${index} ${f.path}`;
    let got = this.pieceCache.get(key);
    if (got) {
      // Most recently used last: the Map's order is the eviction order.
      this.pieceCache.delete(key);
      this.pieceCache.set(key, got);
      return got.bytes;
    }
    const start = index * f.pieceLength;
    const length = Math.min(f.pieceLength, f.size - start);
    got = { bytes: this.readChecked(f, start, length), length };
    this.pieceCache.set(key, got);
    this.pieceCacheBytes += length;
    got.bytes.catch(() => this.pieceCache.get(key) === got && this.dropCached(key));
    for (const [k] of this.pieceCache) {
      if (this.pieceCacheBytes <= this.limits.seedPieceCacheBytes) break;
      this.dropCached(k);
    }
    return got.bytes;
  }

  private dropCached(key: string): void {
    const c = this.pieceCache.get(key);
    if (!c) return;
    this.pieceCache.delete(key);
    this.pieceCacheBytes -= c.length;
  }

  /** Bytes [start, start + length) of the file, from the whole blocks they lie in, each checked against its leaf. */
  private async readChecked(f: SeededFile, start: number, length: number): Promise<Buffer> {
    const first = Math.floor(start / BLOCK);
    const last = Math.floor((start + length - 1) / BLOCK);
    const from = first * BLOCK;
    const to = Math.min((last + 1) * BLOCK, f.size);
    const buf = Buffer.allocUnsafe(to - from);
    let fh = this.handles.get(f.path);
    if (!fh) {
      fh = open(f.path, 'r');
      this.handles.set(f.path, fh);
    }
    const h = await fh.catch((err: unknown) => {
      this.handles.delete(f.path);
      throw fromSystemError(err, `cannot open ${f.path}`);
    });
    const { bytesRead } = await h.read(buf, 0, buf.length, from);
    for (let b = first; b <= last; b++) {
      const block = buf.subarray((b - first) * BLOCK, Math.min((b - first + 1) * BLOCK, bytesRead));
      const leaf = f.leaves[b];
      if (!leaf || !hash('sha256', block, 'buffer').equals(leaf)) {
        throw new SourcemeshError('E_CHECKSUM', `${f.path}: block ${b} no longer has its verified hash; not seeding it`);
      }
    }
    return buf.subarray(start - from, start - from + length);
  }
}
