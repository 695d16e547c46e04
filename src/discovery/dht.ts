// A BitTorrent DHT node (BEP 5) with BEP 44 mutable items, over `bittorrent-dht`: the one module that
// imports it. Used by the mirror-list pointer (discovery/pointer.ts) and by the BitTorrent code (BEP 5
// announce and lookup of info-hashes).
//
// Everything other DHT nodes send is attacker-controlled: values are checked here (Ed25519 signature by
// the key asked for, bencoded size, salt) before a caller sees them, and every operation ends within
// limits.dhtQueryTimeoutMs. The routing table survives restarts in a durable state file, so a node on a
// closed network finds its peers again without its bootstrap list (docs/OPERATIONS.md, the DHT).
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import net from 'node:net';
import DHT from 'bittorrent-dht';
import { fromSystemError, SourcemeshError } from '../errors.ts';
import { readBoundedFile } from '../fs/bounded-read.ts';
import { writeFileDurable } from '../fs/durable-file.ts';
import { statIfExists } from '../fs/files.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { SILENT, type Logger } from '../logger.ts';
import { signEd25519, verifyEd25519 } from '../trust/note.ts';

export interface DhtAddress {
  host: string;
  port: number;
}

export const DHT_STATE_FORMAT = 'sourcemesh.dht-state/v1';

/**
 * The public BitTorrent DHT's usual entry points, used only when a command is given no --dht-bootstrap
 * and its state file knows no node. Closed networks pass their own list.
 */
export const PUBLIC_BOOTSTRAP: readonly DhtAddress[] = [
  { host: 'router.bittorrent.com', port: 6881 },
  { host: 'dht.transmissionbt.com', port: 6881 },
  { host: 'router.utorrent.com', port: 6881 },
];

/** Whether the state file holds nodes to start from (so no bootstrap list is needed). */
export async function stateHasNodes(file: string, limits: DhtLimits = LIMITS): Promise<boolean> {
  return (await loadState(file, limits)).nodes.length > 0;
}

/** `HOST:PORT` or `[IPV6]:PORT`, as `--dht-bootstrap` takes them (a list separated by commas). */
export function parseDhtAddress(text: string, what = '--dht-bootstrap'): DhtAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s,]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) throw new SourcemeshError('E_USAGE', `${what} ${text}: expected HOST:PORT or [IPV6]:PORT (port 1 to 65535)`);
  if (m[1] !== undefined && !net.isIPv6(m[1])) throw new SourcemeshError('E_USAGE', `${what} ${text}: ${m[1]} is not an IPv6 address`);
  return { host: m[1] ?? m[2]!, port };
}

export function parseDhtAddressList(text: string, what = '--dht-bootstrap'): DhtAddress[] {
  return text.split(',').filter((s) => s !== '').map((s) => parseDhtAddress(s.trim(), what));
}

/** A BEP 44 mutable item as found: its value (the raw bytes of a bencoded string) and sequence number. */
export interface MutableItem {
  /** SHA-1(public key || salt), hex: where the item lives in the DHT (BEP 44). */
  target: string;
  value: Buffer;
  seq: number;
  /** The publisher's Ed25519 signature (BEP 44), so anyone holding the item can put it again unchanged. */
  sig: Buffer;
}

export interface PutMutable {
  /** The 32-byte Ed25519 seed and its public key. */
  seed: Uint8Array;
  publicKey: Uint8Array;
  /** Stored as a bencoded byte string. */
  value: Uint8Array;
  seq: number;
  salt?: Uint8Array;
  /** BEP 44 compare-and-swap: stored only where the current seq is this one. */
  cas?: number;
}

export interface DhtOptions {
  /** Nodes to join through. Empty: this node starts a new DHT (others join through it). */
  bootstrap: DhtAddress[];
  /** Address and UDP port to listen on (default 0.0.0.0, a free port). */
  host?: string;
  port?: number;
  /** Where the routing table and node id are kept between runs. */
  stateFile?: string;
  limits?: Limits;
  log?: Logger;
}

/** UDP datagrams this node sent and received, for the benchmark. */
export interface PacketCounts {
  sent: number;
  received: number;
}

type DhtLimits = Pick<Limits, 'dhtStateBytes' | 'dhtStateNodes' | 'dhtValueBytes' | 'dhtSaltBytes' | 'dhtQueryTimeoutMs'>;

interface DhtState {
  id: Buffer | undefined;
  nodes: DhtAddress[];
}

export class DhtNode {
  readonly #dht: DHT;
  readonly #limits: DhtLimits;
  readonly #stateFile: string | undefined;
  readonly #socket: dgram.Socket;
  readonly packets: PacketCounts = { sent: 0, received: 0 };
  #closed = false;

  private constructor(dht: DHT, socket: dgram.Socket, limits: DhtLimits, stateFile: string | undefined) {
    this.#dht = dht;
    this.#socket = socket;
    this.#limits = limits;
    this.#stateFile = stateFile;
  }

  /** Join the DHT (or start one): resolves once listening and the first lookup of our own id is done. */
  static async start(options: DhtOptions): Promise<DhtNode> {
    const limits = options.limits ?? LIMITS;
    const log = options.log ?? SILENT;
    const state = options.stateFile !== undefined ? await loadState(options.stateFile, limits) : { id: undefined, nodes: [] };
    const socket = dgram.createSocket(options.host !== undefined && net.isIPv6(options.host) ? 'udp6' : 'udp4');
    const bootstrap = dedupe([...options.bootstrap, ...state.nodes]);
    const dht = new DHT({
      bootstrap: bootstrap.length > 0 ? bootstrap.map((a) => `${a.host}:${a.port}`) : false,
      nodeId: state.id,
      socket,
      host: false,
      verify: (sig, msg, k) => verifyEd25519(asBuffer(k), asBuffer(msg), asBuffer(sig)),
    });
    const node = new DhtNode(dht, socket, limits, options.stateFile);
    socket.on('message', () => node.packets.received++);
    const send = socket.send.bind(socket) as (...args: unknown[]) => void;
    (socket as unknown as { send: (...args: unknown[]) => void }).send = (...args: unknown[]) => {
      node.packets.sent++;
      send(...args);
    };
    dht.on('warning', (err: Error) => log.debug({ error: err.message }, 'dht warning'));
    try {
      await withTimeout(new Promise<void>((resolve, reject) => {
        dht.once('error', reject);
        dht.listen(options.port ?? 0, options.host ?? '0.0.0.0', () => {
          dht.off('error', reject);
          resolve();
        });
      }), limits.dhtQueryTimeoutMs, 'cannot start the DHT node');
      if (!dht.ready) await withTimeout(new Promise<void>((resolve) => dht.once('ready', () => resolve())), limits.dhtQueryTimeoutMs, 'cannot join the DHT through its bootstrap nodes');
    } catch (err) {
      dht.destroy();
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
        throw new SourcemeshError('E_NETWORK', `DHT node on ${options.host ?? '0.0.0.0'}:${options.port ?? 0}: ${code}`, {}, { cause: err });
      }
      throw err;
    }
    return node;
  }

  /** Where this node listens. */
  address(): DhtAddress {
    const a = this.#dht.address();
    return { host: a.address, port: a.port };
  }

  /** Our node id, hex. */
  get id(): string {
    return this.#dht.nodeId.toString('hex');
  }

  /** Nodes in the routing table. */
  get nodeCount(): number {
    return this.#dht.nodes.count();
  }

  /** Add a node we learned of some other way (a bootstrap list read later, a peer's PORT message). */
  addNode(address: DhtAddress): void {
    this.#dht.addNode(address);
  }

  /**
   * BEP 5 announce_peer: tell the nodes closest to `infoHash` (20 bytes: a v1 info-hash, or a v2 one cut
   * to 20 bytes as BEP 52 says) that we serve it on TCP `port`. Resolves with nothing once they answered.
   */
  announce(infoHash: Uint8Array, port: number): Promise<void> {
    const hash = checkedTarget(infoHash, 'info-hash');
    return this.#op('announce', (done) => this.#dht.announce(hash, port, (err) => done(err, undefined)));
  }

  /**
   * BEP 5 get_peers: the peers the DHT knows for `infoHash`, at most `max`, deduplicated. Peers are
   * addresses anyone may announce: callers check every byte they get from one.
   */
  lookup(infoHash: Uint8Array, max = 200): Promise<DhtAddress[]> {
    const hash = checkedTarget(infoHash, 'info-hash');
    const found = new Map<string, DhtAddress>();
    const onPeer = (peer: DhtAddress, ih: Buffer) => {
      if (ih.equals(hash) && found.size < max) found.set(`${peer.host}:${peer.port}`, { host: peer.host, port: peer.port });
    };
    this.#dht.on('peer', onPeer);
    return this.#op<void>('lookup', (done) => { this.#dht.lookup(hash, (err) => done(err, undefined)); })
      .then(() => [...found.values()])
      .finally(() => this.#dht.off('peer', onPeer));
  }

  /**
   * BEP 44 put of a mutable item, signed here. Resolves with the item's target and the number of nodes
   * that took it; none taking it is an E_NETWORK error (nobody will find the item).
   */
  async putMutable(item: PutMutable): Promise<{ target: string; nodes: number }> {
    const value = Buffer.from(item.value);
    const encoded = bencodedStringBytes(value.length);
    if (encoded > this.#limits.dhtValueBytes) throw new SourcemeshError('E_INPUT', `the DHT value is ${encoded} bytes bencoded, over BEP 44's limit of ${this.#limits.dhtValueBytes}`, { bytes: encoded });
    if (item.salt !== undefined && item.salt.length > this.#limits.dhtSaltBytes) throw new SourcemeshError('E_INPUT', `the DHT salt is ${item.salt.length} bytes, over BEP 44's limit of ${this.#limits.dhtSaltBytes}`);
    if (!Number.isSafeInteger(item.seq) || item.seq < 0) throw new SourcemeshError('E_INPUT', `the DHT sequence number ${item.seq} is not a whole number`);
    const seed = item.seed;
    const put = {
      v: value,
      k: Buffer.from(item.publicKey),
      seq: item.seq,
      ...(item.salt !== undefined && item.salt.length > 0 ? { salt: Buffer.from(item.salt) } : {}),
      ...(item.cas !== undefined ? { cas: item.cas } : {}),
      sign: (msg: Buffer) => Buffer.from(signEd25519(seed, msg)),
    };
    return this.#op<{ target: string; nodes: number }>('put', (done) => {
      this.#dht.put(put, (err, target, nodes) => {
        if (!err && nodes === 0) return done(new SourcemeshError('E_NETWORK', 'no DHT node took the item (is the DHT empty? check --dht-bootstrap)'), undefined);
        done(err, { target: target.toString('hex'), nodes });
      });
    });
  }

  /**
   * BEP 44 put of an item as it was got (`getMutable`), with its publisher's signature: anyone may store a
   * signed item again, and storing nodes check the signature (BEP 44), so this keeps a pointer alive in
   * the DHT without the publisher's key. The signature is checked here first. `nodes` 0: every node
   * asked holds this seq or a newer one already (BEP 44 error 302).
   */
  async putSigned(publicKey: Uint8Array, salt: Uint8Array | undefined, item: Pick<MutableItem, 'value' | 'seq' | 'sig'>): Promise<{ target: string; nodes: number }> {
    const k = Buffer.from(publicKey);
    const s = salt !== undefined && salt.length > 0 ? Buffer.from(salt) : undefined;
    const value = Buffer.from(item.value);
    if (bencodedStringBytes(value.length) > this.#limits.dhtValueBytes) throw new SourcemeshError('E_INPUT', `the DHT value is over BEP 44's limit of ${this.#limits.dhtValueBytes} bytes`);
    if (!verifyEd25519(k, signedPart(s, item.seq, value), Buffer.from(item.sig))) throw new SourcemeshError('E_SIGNATURE', `the DHT item ${mutableTarget(k, s).toString('hex')}: its signature does not verify; not put`);
    const put = { v: value, k, seq: item.seq, sig: Buffer.from(item.sig), ...(s ? { salt: s } : {}) };
    return this.#op<{ target: string; nodes: number }>('put', (done) => {
      this.#dht.put(put, (err, target, nodes) => {
        // BEP 44 error 302: every node asked holds this seq (or a newer one) already: nothing to refresh there.
        if (err && (err as Error & { code?: number }).code === 302) return done(null, { target: mutableTarget(k, s).toString('hex'), nodes: 0 });
        if (!err && nodes === 0) return done(new SourcemeshError('E_NETWORK', 'no DHT node took the item (is the DHT empty? check --dht-bootstrap)'), undefined);
        done(err, { target: target.toString('hex'), nodes });
      });
    });
  }

  /**
   * BEP 44 get of the mutable item of `publicKey` (32 bytes) and `salt`: the highest seq among answers
   * whose signature verifies, or undefined when no node has one. Answers with a bad signature are
   * dropped; when those are all there was, that is an E_SIGNATURE error rather than "not found".
   */
  async getMutable(publicKey: Uint8Array, salt?: Uint8Array): Promise<MutableItem | undefined> {
    if (publicKey.length !== 32) throw new SourcemeshError('E_INPUT', `an Ed25519 public key is 32 bytes, not ${publicKey.length}`);
    if (salt !== undefined && salt.length > this.#limits.dhtSaltBytes) throw new SourcemeshError('E_INPUT', `the DHT salt is ${salt.length} bytes, over BEP 44's limit of ${this.#limits.dhtSaltBytes}`);
    const k = Buffer.from(publicKey);
    const s = salt !== undefined && salt.length > 0 ? Buffer.from(salt) : undefined;
    const target = mutableTarget(k, s);
    let badSignatures = 0;
    let oversized = 0;
    const limits = this.#limits;
    // Attacker-controlled: every answer. bittorrent-dht asks this for each answer carrying a value.
    const verify = (sigIn: Uint8Array, msgIn: Uint8Array, keyIn: Uint8Array): boolean => {
      if (!(sigIn instanceof Uint8Array) || !(msgIn instanceof Uint8Array) || !(keyIn instanceof Uint8Array)) return false;
      const [sig, msg, key] = [asBuffer(sigIn), asBuffer(msgIn), asBuffer(keyIn)];
      if (!key.equals(k)) return false;
      if (!verifyEd25519(key, msg, sig)) {
        badSignatures++;
        return false;
      }
      // msg is the bencoded "[4:salt..]3:seqi..e1:v" + v: the value is what follows "1:v".
      const at = msg.lastIndexOf('1:v');
      if (at < 0 || msg.length - at - 3 > limits.dhtValueBytes) {
        oversized++;
        return false;
      }
      return true;
    };
    const reply = await this.#op<Awaited<ReturnType<typeof fromReply>>>('get', (done) => {
      this.#dht.get(target, { ...(s ? { salt: s } : {}), cache: false, verify }, (err, value) => done(err, value ? fromReply(value, target) : undefined));
    });
    if (reply === undefined) {
      if (oversized > 0) throw new SourcemeshError('E_FORMAT', `the DHT item ${target.toString('hex')} is over BEP 44's limit of ${limits.dhtValueBytes} bytes (${oversized} answers refused)`, { target: target.toString('hex') });
      if (badSignatures > 0) throw new SourcemeshError('E_SIGNATURE', `the DHT item ${target.toString('hex')}: ${badSignatures} answers with a bad signature and none with a good one`, { target: target.toString('hex') });
    }
    return reply;
  }

  /** Write the routing table and our id to the state file (durably: a crash leaves the old or the new). */
  async saveState(): Promise<void> {
    if (this.#stateFile === undefined) return;
    const nodes = this.#dht.toJSON().nodes.slice(0, this.#limits.dhtStateNodes).map((n) => ({ host: n.host, port: n.port }));
    const text = JSON.stringify({ format: DHT_STATE_FORMAT, id: this.id, nodes }) + '\n';
    await mkdir(path.dirname(this.#stateFile), { recursive: true, mode: 0o700 }).catch((err) => { throw fromSystemError(err, `${this.#stateFile}: cannot write the DHT state`); });
    await writeFileDurable(this.#stateFile, text, { what: 'cannot write the DHT state' });
  }

  /** Save the state and leave the DHT. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.saveState();
    } finally {
      await new Promise<void>((resolve) => this.#dht.destroy(() => resolve()));
    }
  }

  #op<T>(what: string, run: (done: (err: Error | null, value: T | undefined) => void) => void): Promise<T> {
    if (this.#closed) return Promise.reject(new SourcemeshError('E_INTERNAL', `DHT ${what} after close`));
    return withTimeout(new Promise<T>((resolve, reject) => {
      run((err, value) => {
        if (err) reject(err instanceof SourcemeshError ? err : new SourcemeshError('E_NETWORK', `DHT ${what}: ${err.message}`, {}, { cause: err }));
        else resolve(value as T);
      });
    }), this.#limits.dhtQueryTimeoutMs, `DHT ${what}`);
  }
}

/** BEP 44: a mutable item lives at SHA-1(public key || salt). */
export function mutableTarget(publicKey: Uint8Array, salt?: Uint8Array): Buffer {
  return createSha1(salt !== undefined && salt.length > 0 ? Buffer.concat([publicKey, salt]) : Buffer.from(publicKey));
}

function fromReply(r: { v: unknown; seq: unknown; sig?: unknown }, target: Buffer): MutableItem | undefined {
  if (!(r.v instanceof Uint8Array) || !Number.isSafeInteger(r.seq) || !(r.sig instanceof Uint8Array)) return undefined; // not a byte string: not ours
  return { target: target.toString('hex'), value: Buffer.from(r.v), seq: r.seq as number, sig: Buffer.from(r.sig) };
}

/** BEP 44: what the signature covers, the bencoded "4:salt<salt>3:seqi<seq>e1:v<value>" (salt only when there is one). */
export function signedPart(salt: Buffer | undefined, seq: number, value: Buffer): Buffer {
  return Buffer.concat([
    ...(salt ? [Buffer.from(`4:salt${salt.length}:`), salt] : []),
    Buffer.from(`3:seqi${seq}e1:v${value.length}:`), value,
  ]);
}

/** bencode hands out Uint8Arrays: a Buffer view of the same bytes. */
function asBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Bytes of a bencoded byte string of `n` bytes: `n:` then the bytes. */
function bencodedStringBytes(n: number): number {
  return String(n).length + 1 + n;
}

function checkedTarget(hash: Uint8Array, what: string): Buffer {
  if (hash.length !== 20) throw new SourcemeshError('E_INPUT', `a DHT ${what} is 20 bytes, not ${hash.length}`);
  return Buffer.from(hash);
}

function dedupe(list: DhtAddress[]): DhtAddress[] {
  const seen = new Map<string, DhtAddress>();
  for (const a of list) seen.set(`${a.host}:${a.port}`, a);
  return [...seen.values()];
}

function createSha1(data: Buffer): Buffer {
  return createHash('sha1').update(data).digest();
}

/** The state file: missing is a fresh node; anything malformed is refused (E_FORMAT), naming the file. */
async function loadState(file: string, limits: DhtLimits): Promise<DhtState> {
  if (!(await statIfExists(file))) return { id: undefined, nodes: [] };
  const text = await readBoundedFile(file, limits.dhtStateBytes, 'DHT state');
  const bad = (why: string): never => {
    throw new SourcemeshError('E_FORMAT', `${file}: malformed DHT state: ${why} (delete it to start afresh)`);
  };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    bad('not JSON');
  }
  const obj = data as { format?: unknown; id?: unknown; nodes?: unknown };
  if (typeof obj !== 'object' || obj === null || obj.format !== DHT_STATE_FORMAT) bad(`not ${DHT_STATE_FORMAT}`);
  if (typeof obj.id !== 'string' || !/^[0-9a-f]{40}$/.test(obj.id)) bad('id is not 40 hex digits');
  if (!Array.isArray(obj.nodes) || obj.nodes.length > limits.dhtStateNodes) bad(`nodes is not a list of at most ${limits.dhtStateNodes}`);
  const nodes = (obj.nodes as unknown[]).map((n, i) => {
    const a = n as DhtAddress;
    if (typeof a !== 'object' || a === null || typeof a.host !== 'string' || net.isIP(a.host) === 0 || !Number.isInteger(a.port) || a.port < 1 || a.port > 65535) bad(`nodes[${i}] is not {host: IP, port}`);
    return { host: a.host, port: a.port };
  });
  return { id: Buffer.from(obj.id as string, 'hex'), nodes };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SourcemeshError('E_NETWORK', `${what}: no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
