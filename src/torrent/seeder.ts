// `seed`: verified files offered to BitTorrent peers over TCP. Each file is one swarm under the torrents
// `torrent create` makes for it without a fixed piece length (v1, v2 and hybrid: web seeds and trackers
// live outside the info dictionary, so every such torrent has one of these info-hashes), and any torrent
// given whose files are all verified files (`seed --torrent`: a `--multi-file` one, another piece
// length) is one swarm over those files, laid out in its piece space (see `prepareSeedTorrent`). A peer may
// greet with a v1 info-hash or a v2 one truncated to 20 bytes (BEP 52, "Upgrade path"). Every block is
// checked against the file's BEP 52 leaf hash before it leaves, so a file changed on disk is never sent.
// Peers are attacker-controlled: messages are bounded before buffering (MessageGuard), requests
// checked, queues capped, and a peer that breaks a rule is banned for the run.
import { randomBytes } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import net from 'node:net';
import { hash } from 'node:crypto';
import { SourcemeshError, fromSystemError } from '../errors.ts';
import { digestsEqual } from '../store/digest.ts';
import { BLOCK } from '../fetch/piece-map.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { SILENT, type Logger } from '../logger.ts';
import { TokenBuckets } from '../net/rate-limit.ts';
import { autoPieceLength } from './create.ts';
import { hashTorrentFiles } from './file-hashes.ts';
import { MerkleTree } from './merkle-tree.ts';
import { makeTorrent, type Torrent, type TorrentVersion } from './metainfo.ts';
import { fileOffsets } from './peer-source.ts';
import { HASH_REJECT, HASH_REQUEST, HASHES, MessageGuard, bitSet, fullBitfield, hashMessagePayload, parseHashRequest, setBit } from './peer-wire.ts';
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
  return !f.have || bitSet(f.have, index);
}

/** The index of the first file of `l` that ends past byte `at` of its piece space (files are sorted by start). */
function firstFileAfter(l: SeedLayout, at: number): number {
  let lo = 0, hi = l.files.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (l.files[mid]!.start + l.files[mid]!.file.size <= at) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Is piece `index` of a swarm's piece space ours to send: every file piece it overlaps verified (a file
 * still downloading holds only some, src/torrent/leech-upload.ts); zeros between files always are.
 */
export function layoutHasPiece(l: SeedLayout, index: number): boolean {
  const from = index * l.pieceLength;
  const to = Math.min(from + l.pieceLength, l.end);
  for (let i = firstFileAfter(l, from); i < l.files.length; i++) {
    const { file, start } = l.files[i]!;
    if (start >= to) break;
    if (!file.have || file.size === 0) continue;
    const last = Math.floor((Math.min(to, start + file.size) - 1 - start) / file.pieceLength);
    for (let p = Math.floor(Math.max(0, from - start) / file.pieceLength); p <= last; p++) if (!hasPiece(file, p)) return false;
  }
  return true;
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

/**
 * A torrent's piece space as it is seeded: its files at their offsets, sorted; bytes that no file covers
 * (BEP 47 pad files, the gaps that align each file of a v2 torrent to a piece, a v2 torrent's last piece)
 * are zeros. A file seeded on its own is a layout of one file at offset 0.
 */
export interface SeedLayout {
  files: { file: SeededFile; start: number }[];
  pieceLength: number;
  pieces: number;
  /** Where the last piece ends in the piece space. */
  end: number;
  /** Bytes of this swarm sent to peers this run (a file on its own: the file). */
  tally: { sent?: number };
}

/** A torrent given to `seed --torrent`, checked against the verified files it names. */
export interface SeededTorrent {
  name: string;
  what: string;
  layout: SeedLayout;
  infoHashV1?: string;
  infoHashV2?: string;
  sent?: number;
}

/** A file on its own. `paddedTail`: its last piece counts as whole (see `Swarm`). */
function fileLayout(f: SeededFile, paddedTail: boolean): SeedLayout {
  return { files: [{ file: f, start: 0 }], pieceLength: f.pieceLength, pieces: f.pieces, end: paddedTail ? f.pieces * f.pieceLength : f.size, tally: f };
}

/**
 * Seed torrent `t` (attacker-controlled: read by readTorrent, then checked here) from `files`, the
 * verified files by name: every file of the torrent must be one of them, of its size and, for v2 and
 * hybrid torrents, of its BEP 52 pieces root; v1 pieces (v1 and hybrid torrents) are computed again from
 * the files (hybrids: each file then its pad of zeros to the next piece, BEP 47) and must be the
 * torrent's, so that no peer is offered a piece that fails its check. E_VERIFY names the first
 * disagreement. Piece space (BEP 52 "Upgrade path"): in v2 and hybrid torrents of several files every
 * file starts on a piece boundary; a v1 torrent lays them end to end, pieces crossing file boundaries.
 */
export async function prepareSeedTorrent(t: Torrent, what: string, files: ReadonlyMap<string, SeededFile>): Promise<SeededTorrent> {
  const seeded = t.files.map((tf) => {
    const name = tf.path.join('/');
    const f = tf.path.length === 1 ? files.get(name) : undefined;
    if (!f) throw new SourcemeshError('E_VERIFY', `${what}: file ${name} is not a verified file seeded here`);
    if (f.size !== tf.size) throw new SourcemeshError('E_VERIFY', `${what}: file ${name} is ${tf.size} bytes, the verified file ${f.size}`);
    if (t.version !== 'v1' && f.size > 0 && !(tf.root && digestsEqual(tf.root.toString('hex'), f.root.toString('hex')))) {
      throw new SourcemeshError('E_VERIFY', `${what}: file ${name} has pieces root ${tf.root?.toString('hex')}, the verified file ${f.root.toString('hex')}`);
    }
    return f;
  });
  const offsets = fileOffsets(t);
  const last = seeded.length - 1;
  const filesEnd = offsets[last]! + seeded[last]!.size;
  // The v1 byte stream's length (pads included) is what its pieces cover; a v2 torrent's last piece is whole.
  const end = t.v1Size ?? Math.ceil(filesEnd / t.pieceLength) * t.pieceLength;
  if (t.v1Pieces) {
    const pads = seeded.map((f, i) => (i < last ? offsets[i + 1]! : end) - offsets[i]! - f.size);
    if (pads.some((p) => p < 0)) throw new SourcemeshError('E_VERIFY', `${what}: its files do not fit its v1 layout`);
    const { files: hashed, v1Pieces } = await hashTorrentFiles(seeded.map((f, i) => ({ path: f.path, pad: pads[i]! })), t.pieceLength, true);
    hashed.forEach((h, i) => {
      if (h.sha256 !== seeded[i]!.sha256) throw new SourcemeshError('E_CHECKSUM', `${seeded[i]!.path}: no longer the verified file (sha256 ${h.sha256}, expected ${seeded[i]!.sha256})`);
    });
    if (!v1Pieces!.equals(t.v1Pieces)) throw new SourcemeshError('E_VERIFY', `${what}: its v1 piece hashes are not those of the verified files`);
  }
  const st: SeededTorrent = {
    name: t.name, what, infoHashV1: t.infoHashV1?.toString('hex'), infoHashV2: t.infoHashV2?.toString('hex'),
    layout: { files: seeded.map((file, i) => ({ file, start: offsets[i]! })), pieceLength: t.pieceLength, pieces: Math.ceil(end / t.pieceLength), end, tally: {} },
  };
  st.layout.tally = st;
  return st;
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

/** Bytes to send; `release`, when set, once the socket has written them (they are a view of a pinned cached piece). */
interface Outgoing {
  data: Buffer;
  release?: () => void;
}

/** A piece in the seeder's cache: its bytes once read and checked, the memory they are read into, and its readers. */
interface CachedPiece {
  bytes: Promise<Buffer>;
  memory: Buffer;
  /** Callers reading it now, blocks of it not yet written to a socket included (see `cachedPiece`). */
  pins: number;
  /** Out of the cache while pinned (its read failed, its file retired): its memory counts until the last unpin. */
  dropped?: boolean;
}

interface Swarm {
  /** The file's or torrent's name (in log lines). */
  name: string;
  /**
   * For a file on its own, the v2-only torrent's last piece counts as whole, the bytes past the end of
   * the file as zeros (a pad, as libtorrent 2.0 lays out v2 torrents); v1 and hybrid single-file torrents
   * end with the file.
   */
  layout: SeedLayout;
  /** How the peer greeted: a v2 (truncated SHA-256) or a v1 info-hash. */
  greeting: 'v1' | 'v2';
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
  private readonly pieceCache = new Map<string, CachedPiece>();
  /** Bytes of the memory the cached pieces are read into, dropped ones still pinned included: at most seedPieceCacheBytes (see `pieceMemory`). */
  private pieceMemoryBytes = 0;
  /** Pieces read into the cache, and piece buffers allocated for them (the rest reused memory). */
  piecesRead = 0;
  pieceBuffers = 0;
  /** Blocks sent as copies (the rest left as views of a cached piece, see `readFile`). */
  blocksCopied = 0;
  /** Blocks read from disk on their own because every cached piece was pinned (see `readFile`). */
  blocksReadAlone = 0;
  private readonly sockets = new Set<net.Socket>();
  /** The wires that greeted for a swarm holding each partial file, told of each swarm piece it completes. */
  private readonly wires = new Map<SeededFile, Set<{ wire: Wire; layout: SeedLayout; start: number }>>();
  readonly peerId: Buffer;
  private readonly bucket?: TokenBuckets;
  private readonly limits: Limits;
  private readonly log: Logger;
  private readonly maxPeers: number;

  private constructor(server: net.Server, files: SeededFile[], opts: SeederOptions, torrents: SeededTorrent[]) {
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
      const whole = fileLayout(f, false);
      this.swarms.set(f.infoHashes.hybrid.v1, { name: f.name, layout: whole, greeting: 'v1' });
      this.swarms.set(f.infoHashes.hybrid.v2.slice(0, 40), { name: f.name, layout: whole, greeting: 'v2' });
      this.swarms.set(f.infoHashes.v1, { name: f.name, layout: whole, greeting: 'v1' });
      this.swarms.set(f.infoHashes.v2.slice(0, 40), { name: f.name, layout: fileLayout(f, true), greeting: 'v2' });
    }
    for (const t of torrents) {
      if (t.infoHashV1) this.swarms.set(t.infoHashV1, { name: t.name, layout: t.layout, greeting: 'v1' });
      if (t.infoHashV2) this.swarms.set(t.infoHashV2.slice(0, 40), { name: t.name, layout: t.layout, greeting: 'v2' });
    }
    const a = server.address() as net.AddressInfo;
    this.port = a.port;
    this.url = `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    server.on('connection', (s) => this.accept(s));
  }

  static async start(files: SeededFile[], opts: SeederOptions, torrents: SeededTorrent[] = []): Promise<Seeder> {
    const server = net.createServer({ pauseOnConnect: false, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(fromSystemError(err, `cannot listen on ${opts.host}:${opts.port}`)));
      server.listen(opts.port, opts.host, () => resolve());
    });
    return new Seeder(server, files, opts, torrents);
  }

  /** Offer one more file (a partial one, as its pieces verify) under these info-hashes. */
  offer(file: SeededFile, keys: SwarmKey[]): void {
    for (const k of keys) this.swarms.set(k.infoHash.toLowerCase(), { name: file.name, layout: fileLayout(file, k.paddedTail), greeting: k.greeting });
  }

  /** Offer one more torrent of several files (partial ones, as their pieces verify), under its v1 and v2 info-hashes. */
  offerTorrent(t: SeededTorrent): void {
    if (t.infoHashV1) this.swarms.set(t.infoHashV1, { name: t.name, layout: t.layout, greeting: 'v1' });
    if (t.infoHashV2) this.swarms.set(t.infoHashV2.slice(0, 40), { name: t.name, layout: t.layout, greeting: 'v2' });
  }

  /**
   * Piece `index` of a partial file just verified (its leaves set): mark it, and tell the peers of each
   * swarm holding the file of the swarm pieces it completes (BEP 3 `have`).
   */
  have(file: SeededFile, index: number): void {
    if (!file.have || hasPiece(file, index)) return;
    setBit(file.have, index);
    for (const { wire, layout, start } of this.wires.get(file) ?? []) {
      const from = start + index * file.pieceLength;
      const to = Math.min(from + file.pieceLength, start + file.size);
      for (let p = Math.floor(from / layout.pieceLength); p * layout.pieceLength < to; p++) if (layoutHasPiece(layout, p)) wire.have(p);
    }
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
    socket.pipe(guard).pipe(wire);
    // The wire's output goes to the socket by hand, not by pipe(): a block sent as a view of a cached
    // piece (see `readFile`) is released once the socket has written it (its write callback, called with
    // an error if the socket is destroyed first) or has closed.
    const sending = new Map<Uint8Array, () => void>();
    wire.on('data', (chunk: Uint8Array) => {
      const release = sending.get(chunk);
      if (release) sending.delete(chunk);
      if (socket.destroyed) return release?.();
      if (!socket.write(chunk, release)) wire.pause();
    });
    socket.on('drain', () => wire.resume());
    wire.on('end', () => socket.end());
    socket.on('close', () => {
      for (const release of sending.values()) release();
      sending.clear();
      wire.destroy();
    });
    wire.extendedHandshake.reqq = this.limits.peerRequestQueue;

    let swarm: Swarm | undefined;
    wire.on('handshake', (infoHashHex) => {
      clearTimeout(greeted);
      swarm = this.swarms.get(infoHashHex.toLowerCase());
      if (!swarm) {
        socket.destroy(); // not a file we seed: nothing to say
        return;
      }
      this.log.info({ peer: `${who}:${socket.remotePort}`, file: swarm.name, greeting: swarm.greeting }, 'peer');
      wire.handshake(Buffer.from(infoHashHex, 'hex'), this.peerId);
      // An uploading leecher's files are partial (src/torrent/leech-upload.ts): a swarm piece is had once
      // every file piece it overlaps is.
      const l = swarm.layout;
      const partial = l.files.filter((x) => x.file.have);
      if (!partial.length) wire.bitfield(fullBitfield(l.pieces));
      else if (l.files.length === 1 && l.pieceLength === l.files[0]!.file.pieceLength) wire.bitfield(Uint8Array.from(l.files[0]!.file.have!));
      else {
        const bits = new Uint8Array(Math.ceil(l.pieces / 8));
        for (let p = 0; p < l.pieces; p++) if (layoutHasPiece(l, p)) setBit(bits, p);
        wire.bitfield(bits);
      }
      for (const { file, start } of partial) {
        const set = this.wires.get(file) ?? new Set();
        const entry = { wire, layout: l, start };
        this.wires.set(file, set.add(entry));
        socket.on('close', () => set.delete(entry));
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
          const layout = swarm.layout;
          const out = await this.readSpace(layout, r.index * layout.pieceLength + r.offset, r.length).catch((err: unknown) => {
            const f = (err as { file?: SeededFile }).file;
            this.log.error({ file: f?.name ?? swarm!.name, error: (err as Error).message }, 'cannot send a block; the file is no longer seeded');
            if (f) this.retire(f);
            socket.destroy();
            return undefined;
          });
          if (!out) return;
          const data = out.data;
          // The blocks answered in one turn of the event loop (and each one's header) leave in one write,
          // not two system calls per block (socket writes were the largest cost of an uploading leecher).
          if (!socket.writableCorked) {
            socket.cork();
            setImmediate(() => socket.uncork());
          }
          const before = wire.uploaded;
          if (out.release) sending.set(data, out.release);
          r.respond(null, data);
          // Not sent (the peer cancelled the request meanwhile): nothing for the socket to write.
          if (out.release && wire.uploaded === before) {
            sending.delete(data);
            out.release();
            continue;
          }
          this.uploaded += data.length;
          layout.tally.sent = (layout.tally.sent ?? 0) + data.length;
        }
      } finally {
        busy = false;
      }
    };
    wire.on('request', (index, offset, length, respond) => {
      if (!swarm) return this.ban(socket, 'a request before the handshake');
      const l = swarm.layout;
      const pieceSize = Math.min(l.pieceLength, l.end - index * l.pieceLength);
      if (index >= l.pieces || length === 0 || length > this.limits.peerBlockBytes || offset + length > pieceSize) {
        return this.ban(socket, `a request for piece ${index} offset ${offset} length ${length}, outside ${swarm.name}`);
      }
      // A piece not verified yet: refused without blame (BEP 6 reject, when the peer speaks it).
      if (!layoutHasPiece(l, index)) return respond(new Error(`piece ${index} not verified yet`));
      if (queue.length >= 2 * this.limits.peerRequestQueue) return this.ban(socket, `more than ${2 * this.limits.peerRequestQueue} requests waiting`);
      queue.push({ index, offset, length, respond });
      void next();
    });
    wire.on('unknownmessage', (message) => {
      if (message[0] !== HASH_REQUEST || !swarm) return; // BEP 3: unknown messages are ignored
      const req = parseHashRequest(message.subarray(1));
      if (!req) return this.ban(socket, 'a malformed hash request');
      // BEP 52: the pieces root names the file of the torrent. A partial file has no whole tree yet: its hash requests are rejected.
      const f = swarm.layout.files.find((x) => x.file.size > 0 && x.file.root.equals(req.root))?.file;
      const hashes = f && !f.have ? this.tree(f).hashes(req.base, req.index, req.length, req.proofLayers, this.limits.peerHashesPerRequest) : undefined;
      // BEP 52: a request we cannot answer gets a hash reject with the same fields.
      sendMessage(wire, hashes ? HASHES : HASH_REJECT, hashMessagePayload(req, hashes));
      this.log.debug({ peer: `${who}:${socket.remotePort}`, file: f?.name ?? swarm.name, base: req.base, index: req.index, length: req.length, proofLayers: req.proofLayers, answered: Boolean(hashes) }, 'hash request');
      if (hashes) this.hashesSent++;
      else this.hashesRejected++;
    });
  }

  /** Stop seeding a file (it changed on disk, or cannot be read): new peers for it are turned away. */
  private retire(f: SeededFile): void {
    for (const [k, v] of this.swarms) if (v.layout.files.some((x) => x.file === f)) this.swarms.delete(k);
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

  /**
   * Bytes [at, at + length) of a swarm's piece space: each file's part from its verified blocks, zeros
   * where no file lies. A failed read carries the file it was of (`file`), to stop seeding that one.
   */
  private async readSpace(l: SeedLayout, at: number, length: number): Promise<Outgoing> {
    const to = at + length;
    const parts: Outgoing[] = [];
    // The first file that ends past `at` (a torrent may hold many).
    for (let i = firstFileAfter(l, at); i < l.files.length && at < to; i++) {
      const { file, start } = l.files[i]!;
      if (start >= to) break;
      if (file.size === 0) continue;
      if (start > at) {
        parts.push({ data: Buffer.alloc(start - at) });
        at = start;
      }
      const n = Math.min(to, start + file.size) - at;
      parts.push(await this.readFile(file, at - start, n).catch((err: unknown) => Promise.reject(Object.assign(err as Error, { file }))));
      at += n;
    }
    if (at < to) parts.push({ data: Buffer.alloc(to - at) });
    if (parts.length === 1) return parts[0]!;
    const data = Buffer.concat(parts.map((p) => p.data));
    for (const p of parts) p.release?.();
    return { data };
  }

  /** Bytes [pos, pos + length) of the file, from the whole 16 KiB blocks they lie in, each checked against its leaf. */
  private async readFile(f: SeededFile, pos: number, length: number): Promise<Outgoing> {
    // Peers ask for a piece block by block, and several peers for the same pieces: the piece (of the
    // file's own piece length) is read and checked once, then its blocks are sent from memory (a read
    // and a hash per block showed in profiles). A request of a torrent whose pieces cross the file's
    // may span two of them.
    if (f.pieceLength * 2 > this.limits.seedPieceCacheBytes) return { data: await this.readChecked(f, pos, length) };
    const parts: Buffer[] = [];
    while (length > 0) {
      const index = Math.floor(pos / f.pieceLength);
      const c = this.cachedPiece(f, index);
      if (!c) {
        // Every cached piece is pinned and the cache at its bound (peers that read slowly hold blocks of
        // them unwritten): the rest of the request is read and checked on its own, into memory that dies
        // young, rather than into piece memory past the bound (see `pieceMemory`).
        parts.push(await this.readChecked(f, pos, length));
        this.blocksReadAlone++;
        break;
      }
      let piece: Buffer;
      try {
        piece = await c.bytes;
      } catch (err) {
        this.unpin(c);
        throw err;
      }
      const from = pos - index * f.pieceLength;
      const view = piece.subarray(from, Math.min(piece.length, from + length));
      if (parts.length === 0 && view.length === length) {
        // The whole request lies in this piece: sent as a view of its memory, which stays pinned (never
        // read into) until the socket has written it. A copy per block sent was an allocation per byte
        // uploaded (docs/BENCHMARKS.md, bench:swarm). Peers that read slowly can pin at most the pieces
        // the cache holds; further blocks are then read on their own (above).
        let pinned = true;
        return {
          data: view,
          release: () => {
            if (pinned) this.unpin(c);
            pinned = false;
          },
        };
      }
      // A request across two pieces (a torrent whose pieces cross the file's): copied.
      parts.push(Buffer.from(view));
      this.blocksCopied++;
      this.unpin(c);
      pos += view.length;
      length -= view.length;
    }
    return { data: parts.length === 1 ? parts[0]! : Buffer.concat(parts) };
  }

  /**
   * Piece `index` of `f`, read whole and checked block by block, from the last few pieces read. Pinned
   * for the caller, who unpins it (`unpin`) once done reading it: a piece pinned is never evicted, so its
   * memory is never read into meanwhile. Undefined when the piece is not cached and no memory can be had
   * for it within the bound (every cached piece pinned, see `pieceMemory`).
   */
  private cachedPiece(f: SeededFile, index: number): CachedPiece | undefined {
    const key = `${index} ${f.path}`;
    let got = this.pieceCache.get(key);
    if (got) {
      // Most recently used last: the Map's order is the eviction order.
      this.pieceCache.delete(key);
      this.pieceCache.set(key, got);
      got.pins++;
      return got;
    }
    const memory = this.pieceMemory(f.pieceLength);
    if (!memory) return undefined;
    const start = index * f.pieceLength;
    this.piecesRead++;
    const c: CachedPiece = { bytes: this.readChecked(f, start, Math.min(f.pieceLength, f.size - start), memory), memory, pins: 1 };
    this.pieceCache.set(key, c);
    // A piece that failed is dropped, its memory not reused (a read may still be writing into it).
    c.bytes.catch(() => this.pieceCache.get(key) === c && this.dropCached(key));
    return c;
  }

  /**
   * Memory for a piece of `size` bytes. The bound, whatever the timing: the memory of all pieces cached,
   * pinned or not, never passes seedPieceCacheBytes (docs/OPERATIONS.md). New memory while it fits under
   * it; then that of the least recently used piece nobody reads (evicted), so with one piece length L at
   * most floor(seedPieceCacheBytes / L) piece buffers are ever allocated. None when every cached piece is
   * pinned: never more memory because readers are many or slow.
   */
  private pieceMemory(size: number): Buffer | undefined {
    for (;;) {
      if (this.pieceMemoryBytes + size <= this.limits.seedPieceCacheBytes) {
        this.pieceMemoryBytes += size;
        this.pieceBuffers++;
        return Buffer.allocUnsafeSlow(size);
      }
      let lru: string | undefined;
      for (const [k, c] of this.pieceCache) {
        if (c.pins === 0) {
          lru = k;
          break;
        }
      }
      if (lru === undefined) return undefined;
      const old = this.pieceCache.get(lru)!;
      this.pieceCache.delete(lru);
      if (old.memory.length === size) return old.memory;
      this.pieceMemoryBytes -= old.memory.length; // another file's piece length: its memory let go
    }
  }

  /** Take the piece out of the cache, its memory not reused (its read failed, or its file is retired). */
  private dropCached(key: string): void {
    const c = this.pieceCache.get(key);
    if (!c) return;
    this.pieceCache.delete(key);
    c.dropped = true;
    if (c.pins === 0) this.pieceMemoryBytes -= c.memory.length;
  }

  /** A reader of the piece is done with it; a dropped piece's memory stops counting with its last reader. */
  private unpin(c: CachedPiece): void {
    c.pins--;
    if (c.pins === 0 && c.dropped) this.pieceMemoryBytes -= c.memory.length;
  }

  /** Bytes [start, start + length) of the file, from the whole blocks they lie in, each checked against its leaf. */
  private async readChecked(f: SeededFile, start: number, length: number, memory?: Buffer): Promise<Buffer> {
    const first = Math.floor(start / BLOCK);
    const last = Math.floor((start + length - 1) / BLOCK);
    const from = first * BLOCK;
    const to = Math.min((last + 1) * BLOCK, f.size);
    const buf = memory && memory.length >= to - from ? memory.subarray(0, to - from) : Buffer.allocUnsafe(to - from);
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
