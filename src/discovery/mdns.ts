// mDNS sockets (RFC 6762) over `multicast-dns`: the one module that imports it. One socket per interface
// that is up (libuv lists only interfaces that are up and running) and family: IPv4, joined to
// 224.0.0.251, and IPv6, joined to FF02::FB (RFC 6762 §3, an IPv6-only socket), each sending through its
// own interface: a node on a mesh with several radios is heard on all of them, not only on the default
// route's (multicast-dns alone sends on one). Interfaces are listed again every few seconds, so a link
// that comes up later is used too.
//
// On Linux every socket bound to port 5353 receives the group's packets from every interface, so each
// packet reaches every socket of its family: it is handed on once, by the socket of the link whose subnet
// holds the sender (an IPv6 link-local sender: the link its zone names), else by the first. Packets are attacker-controlled: decoding errors are dropped, and the
// packets handed on per sender address are bounded (limits.discoveryPacketsPerSecond and Burst).
import dgram from 'node:dgram';
import os from 'node:os';
import mdns from 'multicast-dns';
import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { SILENT, type Logger } from '../logger.ts';
import { TokenBuckets } from '../net/rate-limit.ts';
import { isLinkLocal6, onLink, type DnsQuestion, type DnsRecord, type Link } from './dns-sd.ts';

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
  /** The interface's name. */
  name: string;
}

export type Family = 4 | 6;

/** mDNS port and groups (RFC 6762 §3). */
export const MDNS_PORT = 5353;
const GROUP_V6 = 'ff02::fb';
const RESCAN_MS = 5_000;

/**
 * The links to use: on each interface named (else every non-loopback one that is up), one per family in
 * `families`: its IPv4 address, or its IPv6 address (a global or unique-local one before a link-local one,
 * which cannot be put in a URL).
 */
export function upLinks(names?: readonly string[], interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces(), families: readonly Family[] = [4, 6]): MdnsLink[] {
  const links: MdnsLink[] = [];
  for (const [name, addrs] of Object.entries(interfaces)) {
    if (names !== undefined && !names.includes(name)) continue;
    const usable = (addrs ?? []).filter((x) => names !== undefined || !x.internal);
    const v4 = usable.find((x) => x.family === 'IPv4');
    const v6s = usable.filter((x) => x.family === 'IPv6');
    const v6 = v6s.find((x) => !isLinkLocal6(x.address)) ?? v6s[0];
    if (v4 && families.includes(4)) links.push({ name, address: v4.address, netmask: v4.netmask });
    if (v6 && families.includes(6)) links.push({ name, address: v6.address, netmask: v6.netmask });
  }
  return links;
}

const keyOf = (l: MdnsLink) => `${l.name}/${l.address.includes(':') ? 6 : 4}`;

export interface MdnsOptions {
  /** Interface names to use (default: every interface that is up, loopback aside). */
  interfaces?: readonly string[];
  /** IP versions to use (default both). */
  families?: readonly Family[];
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
      const ip = (opts.families ?? [4, 6]).map((f) => `IPv${f}`).join(' or ');
      throw new SourcemeshError('E_NETWORK', opts.interfaces ? `no interface named ${opts.interfaces.join(', ')} with ${ip} is up` : `no network interface with ${ip} is up (loopback aside): nothing to announce on or browse`);
    }
    return s;
  }

  get links(): MdnsLink[] {
    return [...this.#open.values()].map((o) => o.link);
  }

  async #scan(): Promise<void> {
    if (this.#closed) return;
    const wanted = upLinks(this.#opts.interfaces, os.networkInterfaces(), this.#opts.families);
    for (const [key, o] of this.#open) {
      if (!wanted.some((l) => keyOf(l) === key && l.address === o.link.address)) {
        o.socket.destroy();
        this.#open.delete(key);
      }
    }
    for (const link of wanted) {
      if (this.#open.has(keyOf(link))) continue;
      try {
        const socket = await openSocket(link, this.#opts.port ?? MDNS_PORT);
        if (this.#closed) {
          socket.destroy();
          return;
        }
        this.#open.set(keyOf(link), { link, socket });
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
    // Hand each packet on once: from the socket of the link holding the sender, else from the first of
    // its family.
    const links = this.links.filter((l) => l.address.includes(':') === rinfo.address.includes(':'));
    const home = links.find((l) => onLink(rinfo.address, l)) ?? links[0];
    if (home === undefined || keyOf(home) !== keyOf(link)) return;
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
    const targets = [...this.#open.values()].filter((o) => link === undefined || keyOf(o.link) === keyOf(link));
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
    // Bound to the wildcard address (group packets are addressed to the group, not to us), joined and
    // sending on this link only: IPv4 by its address; IPv6 by the interface's name (`::%NAME`), on a
    // socket of its own that takes no IPv4 (every IPv4 packet would otherwise come twice).
    const socket = link.address.includes(':')
      ? mdns({ socket: dgram.createSocket({ type: 'udp6', reuseAddr: true, ipv6Only: true }), type: 'udp6', ip: GROUP_V6, interface: `::%${link.name}`, bind: '::', port, loopback: true })
      : mdns({ interface: link.address, bind: '0.0.0.0', port, loopback: true, reuseAddr: true });
    socket.once('ready', () => resolve(socket));
    socket.once('error', reject);
  });
}
