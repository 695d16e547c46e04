// mDNS sockets (RFC 6762) over `multicast-dns`: the one module that imports it. One socket per IPv4
// interface that is up (libuv lists only interfaces that are up and running), each joined to
// 224.0.0.251 and sending through its own interface: a node on a mesh with several radios is heard on
// all of them, not only on the default route's (multicast-dns alone sends on one). Interfaces are
// listed again every few seconds, so a link that comes up later is used too.
//
// On Linux every socket bound to port 5353 receives the group's packets from every interface, so each
// packet reaches every socket: it is handed on once, by the socket of the link whose subnet holds the
// sender (else by the first). Packets are attacker-controlled: decoding errors are dropped, and the
// packets handed on per sender address are bounded (limits.discoveryPacketsPerSecond and Burst).
import os from 'node:os';
import mdns from 'multicast-dns';
import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { SILENT, type Logger } from '../logger.ts';
import { TokenBuckets } from '../net/rate-limit.ts';
import { onLink, type DnsQuestion, type DnsRecord, type Link } from './dns-sd.ts';

export interface MdnsPacket {
  type: 'query' | 'response';
  id?: number;
  questions: DnsQuestion[];
  answers: DnsRecord[];
  additionals: DnsRecord[];
  /** A probe's proposed records (RFC 6762 §8.2); unchecked, as heard. */
  authorities?: DnsRecord[];
}

export interface Rinfo {
  address: string;
  port: number;
}

export interface MdnsLink extends Link {
  name: string;
}

/** mDNS port and group (RFC 6762 §3). */
export const MDNS_PORT = 5353;
const RESCAN_MS = 5_000;

/** The IPv4 interfaces to use: those named, else every non-loopback one that is up. */
export function upLinks(names?: readonly string[], interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces()): MdnsLink[] {
  const links: MdnsLink[] = [];
  for (const [name, addrs] of Object.entries(interfaces)) {
    if (names !== undefined && !names.includes(name)) continue;
    const a = addrs?.find((x) => x.family === 'IPv4' && (names !== undefined || !x.internal));
    if (a) links.push({ name, address: a.address, netmask: a.netmask });
  }
  return links;
}

export interface MdnsOptions {
  /** Interface names to use (default: every IPv4 interface that is up, loopback aside). */
  interfaces?: readonly string[];
  onPacket: (packet: MdnsPacket, from: Rinfo, link: MdnsLink) => void;
  /** A link came up (and on start, for each): responders announce themselves on it. */
  onLink?: (link: MdnsLink) => void;
  limits?: Pick<Limits, 'discoveryPacketsPerSecond' | 'discoveryPacketBurst'>;
  log?: Logger;
  /** For tests: another port than 5353. */
  port?: number;
}

interface Open {
  link: MdnsLink;
  socket: ReturnType<typeof mdns>;
}

export class MdnsSockets {
  readonly #opts: MdnsOptions;
  readonly #open = new Map<string, Open>();
  readonly #timer: NodeJS.Timeout;
  #closed = false;
  /** A token bucket per sender address: one host flooding the link is cut to its share. */
  readonly #rate: TokenBuckets;
  /** Packets dropped by the rate bound. */
  droppedPackets = 0;

  private constructor(opts: MdnsOptions) {
    this.#opts = opts;
    const limits = opts.limits ?? LIMITS;
    this.#rate = new TokenBuckets({ perSecond: limits.discoveryPacketsPerSecond, burst: limits.discoveryPacketBurst, maxClients: 4096 });
    this.#timer = setInterval(() => void this.#scan(), RESCAN_MS);
    this.#timer.unref();
  }

  /** Open a socket on every link; refuses (E_NETWORK) when there is none to use. */
  static async open(opts: MdnsOptions): Promise<MdnsSockets> {
    const s = new MdnsSockets(opts);
    await s.#scan();
    if (s.#open.size === 0) {
      await s.close();
      throw new SourcemeshError('E_NETWORK', opts.interfaces ? `no IPv4 interface named ${opts.interfaces.join(', ')} is up` : 'no network interface with IPv4 is up (loopback aside): nothing to announce on or browse');
    }
    return s;
  }

  get links(): MdnsLink[] {
    return [...this.#open.values()].map((o) => o.link);
  }

  async #scan(): Promise<void> {
    if (this.#closed) return;
    const wanted = upLinks(this.#opts.interfaces);
    for (const [name, o] of this.#open) {
      if (!wanted.some((l) => l.name === name && l.address === o.link.address)) {
        o.socket.destroy();
        this.#open.delete(name);
      }
    }
    for (const link of wanted) {
      if (this.#open.has(link.name)) continue;
      try {
        const socket = await openSocket(link, this.#opts.port ?? MDNS_PORT);
        if (this.#closed) {
          socket.destroy();
          return;
        }
        this.#open.set(link.name, { link, socket });
        socket.on('packet', (p: MdnsPacket, rinfo: Rinfo) => this.#receive(p, rinfo, link));
        socket.on('warning', (err: Error) => (this.#opts.log ?? SILENT).debug({ link: link.name, error: err.message }, 'mdns warning'));
        socket.on('error', (err: Error) => (this.#opts.log ?? SILENT).warn({ link: link.name, error: err.message }, 'mdns socket error'));
        this.#opts.onLink?.(link);
      } catch (err) {
        (this.#opts.log ?? SILENT).warn({ link: link.name, error: (err as Error).message }, 'cannot open an mDNS socket on this interface');
      }
    }
  }

  #receive(packet: MdnsPacket, rinfo: Rinfo, link: MdnsLink): void {
    // Hand each packet on once: from the socket of the link holding the sender, else from the first.
    const links = this.links;
    const home = links.find((l) => onLink(rinfo.address, l)) ?? links[0];
    if (home?.name !== link.name) return;
    if (this.#rate.take(rinfo.address, Date.now()) !== 0) {
      this.droppedPackets++;
      return;
    }
    if (!packet || !Array.isArray(packet.questions) || !Array.isArray(packet.answers)) return;
    this.#opts.onPacket({ ...packet, additionals: Array.isArray(packet.additionals) ? packet.additionals : [] }, rinfo, link);
  }

  /** Send a query on every link (RFC 6762 §5.2: a continuous querier's packets); with `authorities`, a probe (§8.1). */
  query(q: DnsQuestion[] | { questions: DnsQuestion[]; authorities: DnsRecord[] }): void {
    const packet = Array.isArray(q) ? { questions: q } : q;
    for (const o of this.#open.values()) o.socket.query(packet);
  }

  /** Send a response on `link` (all links when absent): multicast, or unicast to `to`. */
  respond(response: { answers: DnsRecord[]; additionals: DnsRecord[]; id?: number; questions?: DnsQuestion[] }, link?: MdnsLink, to?: Rinfo): Promise<void> {
    const targets = [...this.#open.values()].filter((o) => link === undefined || o.link.name === link.name);
    return Promise.all(targets.map((o) => new Promise<void>((resolve) => o.socket.respond(response, to, () => resolve())))).then(() => undefined);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await Promise.all([...this.#open.values()].map((o) => new Promise<void>((resolve) => o.socket.destroy(() => resolve()))));
    this.#open.clear();
  }
}

function openSocket(link: MdnsLink, port: number): Promise<ReturnType<typeof mdns>> {
  return new Promise((resolve, reject) => {
    // Bound to the wildcard address (group packets are addressed to 224.0.0.251, not to us), joined and
    // sending on this link's address only.
    const socket = mdns({ interface: link.address, bind: '0.0.0.0', port, loopback: true, reuseAddr: true });
    socket.once('ready', () => resolve(socket));
    socket.once('error', reject);
  });
}
