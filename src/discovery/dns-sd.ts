// DNS-SD (RFC 6763) for sourcemesh nodes, as pure code: the records a node announces, the answer to a
// query, and the bounded collection of what a browser hears. No sockets here (mdns.ts has them).
//
// One service instance per node, of type _sourcemesh._tcp (docs/FORMATS.md, "Discovery: DNS-SD
// records"): PTR _sourcemesh._tcp.local -> INSTANCE._sourcemesh._tcp.local, SRV -> port and host
// sourcemesh-KEYID.local, TXT with the node's vkey, roles and the paths of what it signs, A (IPv4) or
// AAAA (IPv6) per link. Everything a browser hears is attacker-controlled: anyone on the link may announce
// anything, so names and TXT values are checked here and the node itself is checked by discover.ts.
import net from 'node:net';
import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { parseVerifierKey, type VerifierKey } from '../trust/note.ts';

export const SERVICE_TYPE = '_sourcemesh._tcp.local';
/** RFC 6763 §9: the meta-query that lists the service types present on the link. */
export const SERVICE_TYPES = '_services._dns-sd._udp.local';
/** TTLs of RFC 6762 §10: 120 s for records about a host, 75 minutes for the others. */
export const HOST_TTL = 120;
export const OTHER_TTL = 4500;
/** Version of our TXT keys (RFC 6763 §6.7). */
export const TXT_VERSION = '1';

export const ROLES = ['mirror', 'log', 'witness', 'seed'] as const;
export type Role = (typeof ROLES)[number];

export interface Announcement {
  /** The instance label (one DNS label, at most 63 bytes, no dots). */
  instance: string;
  /** The host label: the host name is HOST.local. */
  host: string;
  port: number;
  /** The vkey that signs what the node serves. */
  key: string;
  roles: Role[];
  scheme: 'http' | 'https';
  /** Path of the signed inventory (role mirror), or of the signed checkpoint (role log). */
  path?: string;
  /** Role seed: the TCP port of its BitTorrent peer wire (the SRV port answers the discovery challenge). */
  bittorrent?: number;
}

type AnnounceLimits = Pick<Limits, 'discoveryTxtBytes' | 'discoveryInstanceBytes'>;

/** The announcement of a node whose key is `key`: instance "NAME KEYID", host sourcemesh-KEYID. */
export function announcementFor(key: VerifierKey, vkey: string, options: { port: number; roles: Role[]; scheme: 'http' | 'https'; path?: string; bittorrent?: number }, limits: AnnounceLimits = LIMITS): Announcement {
  const id = key.keyId.toString(16).padStart(8, '0');
  // Dots would split the label (RFC 6763 §4.3 allows them escaped; multicast-dns does not escape).
  const name = truncateUtf8(key.name.replace(/\./g, '-'), limits.discoveryInstanceBytes - id.length - 1);
  const a: Announcement = { instance: `${name} ${id}`, host: `sourcemesh-${id}`, port: options.port, key: vkey, roles: [...new Set(options.roles)], scheme: options.scheme, ...(options.path !== undefined ? { path: options.path } : {}), ...(options.bittorrent !== undefined ? { bittorrent: options.bittorrent } : {}) };
  txtStrings(a, limits); // refuse now what could not be announced
  return a;
}

export function truncateUtf8(text: string, maxBytes: number): string {
  let out = '';
  for (const ch of text) {
    if (Buffer.byteLength(out + ch) > maxBytes) break;
    out += ch;
  }
  return out;
}

/** RFC 6763 §6: key=value strings, each at most 255 bytes. */
export function txtStrings(a: Announcement, limits: AnnounceLimits = LIMITS): Buffer[] {
  const pairs: [string, string][] = [['txtvers', TXT_VERSION], ['key', a.key], ['roles', a.roles.join(',')], ['scheme', a.scheme]];
  if (a.path !== undefined) pairs.push(['path', a.path]);
  if (a.bittorrent !== undefined) pairs.push(['bt', String(a.bittorrent)]);
  return pairs.map(([k, v]) => {
    const s = Buffer.from(`${k}=${v}`, 'utf8');
    if (s.length > limits.discoveryTxtBytes) throw new SourcemeshError('E_USAGE', `cannot announce: the TXT record ${k}= is ${s.length} bytes, over DNS-SD's ${limits.discoveryTxtBytes} (a shorter key name helps)`);
    return s;
  });
}

export const instanceName = (a: Announcement) => `${a.instance}.${SERVICE_TYPE}`;
export const hostName = (a: Announcement) => `${a.host}.local`;

/** The address record's type for `address`: A for IPv4, AAAA for IPv6 (RFC 3596). */
export const addressType = (address: string): 'A' | 'AAAA' => (net.isIPv6(address.replace(/%.*$/, '')) ? 'AAAA' : 'A');

/** The records of `a` as heard on a link whose address is `address`; ttl 0 says goodbye (RFC 6762 §10.1). */
export function announcementRecords(a: Announcement, address: string, goodbye = false): { answers: DnsRecord[]; additionals: DnsRecord[] } {
  const ttl = (t: number) => (goodbye ? 0 : t);
  const ptr: DnsRecord = { name: SERVICE_TYPE, type: 'PTR', ttl: ttl(OTHER_TTL), data: instanceName(a) };
  return {
    answers: [ptr],
    additionals: [
      // Unique records carry the cache-flush bit (RFC 6762 §10.2); shared ones (PTR) do not.
      { name: instanceName(a), type: 'SRV', ttl: ttl(HOST_TTL), flush: true, data: { port: a.port, target: hostName(a), priority: 0, weight: 0 } },
      { name: instanceName(a), type: 'TXT', ttl: ttl(OTHER_TTL), flush: true, data: txtStrings(a) },
      { name: hostName(a), type: addressType(address), ttl: ttl(HOST_TTL), flush: true, data: address.replace(/%.*$/, '') },
    ],
  };
}

export interface DnsRecord {
  name: string;
  type: string;
  ttl?: number;
  flush?: boolean;
  data?: unknown;
}

export interface DnsQuestion {
  name: string;
  type: string;
}

const same = (x: string, y: string) => x.toLowerCase() === y.toLowerCase(); // DNS names are case-insensitive

/**
 * The answer to a query (RFC 6762 §6), or undefined when it asks nothing of ours: the service PTR (with
 * SRV, TXT and A as additionals, so one packet is enough), the instance's SRV or TXT, the host's A, and
 * the service-type enumeration of RFC 6763 §9.
 */
export function answerQuestions(a: Announcement, address: string, questions: readonly DnsQuestion[]): { answers: DnsRecord[]; additionals: DnsRecord[] } | undefined {
  const all = announcementRecords(a, address);
  const [srv, txt, host] = all.additionals as [DnsRecord, DnsRecord, DnsRecord];
  const answers: DnsRecord[] = [];
  const want = (q: DnsQuestion, type: string) => q.type === type || q.type === 'ANY';
  for (const q of questions) {
    if (same(q.name, SERVICE_TYPE) && want(q, 'PTR')) answers.push(all.answers[0]!);
    else if (same(q.name, SERVICE_TYPES) && want(q, 'PTR')) answers.push({ name: SERVICE_TYPES, type: 'PTR', ttl: OTHER_TTL, data: SERVICE_TYPE });
    else if (same(q.name, instanceName(a))) {
      if (want(q, 'SRV')) answers.push(srv);
      if (want(q, 'TXT')) answers.push(txt);
    } else if (same(q.name, hostName(a)) && want(q, host.type)) answers.push(host);
  }
  if (answers.length === 0) return undefined;
  const additionals = [srv, txt, host].filter((r) => !answers.includes(r));
  return { answers, additionals };
}

// ---------------------------------------------------------------------------------------------------
// Browsing: what the link says, collected within bounds

/** A node as announced (not yet checked): the address to reach it, its port and its claimed key. */
export interface Candidate {
  instance: string;
  address: string;
  port: number;
  key: string;
  roles: Role[];
  scheme: 'http' | 'https';
  path: string | undefined;
  /** TXT bt=: the BitTorrent peer-wire port of a seed. */
  bittorrent: number | undefined;
}

export interface Refusal {
  instance: string;
  address?: string;
  reason: string;
}

/** A link a packet was heard on: its interface's IPv4 or IPv6 address and netmask, and the interface's name. */
export interface Link {
  address: string;
  netmask: string;
  name?: string;
}

type BrowseLimits = Pick<Limits, 'discoveryCandidates' | 'noteKeyNameBytes'>;

/**
 * Records one source address may have kept at once, per kind (instances, TXT, hosts, candidates): one
 * host flooding the link fills its own share, never the room of the others.
 */
export const CANDIDATES_PER_SOURCE = 16;

interface Share {
  ptr: number;
  srv: number;
  txt: number;
  hosts: number;
  candidates: number;
}

/**
 * What a browser has heard. `add` takes the records of one packet (answers and additionals alike) with
 * the address it came from and the link it came in on; `candidate` fires once per distinct (address,
 * port, key), in the order heard. Memory is bounded: at most limits.discoveryCandidates entries of each
 * kind and of sources, CANDIDATES_PER_SOURCE of each kind per source; the rest is counted in `dropped`.
 */
export class BrowseState {
  readonly #limits: BrowseLimits;
  readonly #ptr = new Map<string, string>();
  readonly #srv = new Map<string, { port: number; target: string; name: string }>();
  readonly #txt = new Map<string, Buffer[]>();
  readonly #hosts = new Map<string, Set<string>>();
  /** Candidates handed on: (address|port|key) -> the instance that made it. */
  readonly #seen = new Map<string, string>();
  /** Who put each entry here (`kind|name` -> source address): its share, and only it may take it back. */
  readonly #owner = new Map<string, string>();
  readonly #shares = new Map<string, Share>();
  readonly #refused = new Map<string, Refusal>();
  /** When each entry lapses (`kind|name` -> ms), from the TTL its owner last sent (RFC 6762 §10). */
  readonly #expires = new Map<string, number>();
  readonly #onCandidate: (c: Candidate) => void;
  dropped = 0;

  constructor(onCandidate: (c: Candidate) => void, limits: BrowseLimits = LIMITS) {
    this.#onCandidate = onCandidate;
    this.#limits = limits;
  }

  get refused(): Refusal[] {
    return [...this.#refused.values()];
  }

  /** Instances whose SRV, TXT or host address has not been heard: what to ask for next. */
  missing(): DnsQuestion[] {
    const qs: DnsQuestion[] = [];
    for (const [name, ptr] of this.#ptr) if (!this.#srv.has(name)) qs.push({ name: ptr, type: 'SRV' });
    for (const [name, srv] of this.#srv) {
      if (!this.#txt.has(name)) qs.push({ name: srv.name, type: 'TXT' });
      if (!this.#hosts.has(srv.target)) qs.push({ name: srv.target, type: 'A' }, { name: srv.target, type: 'AAAA' });
    }
    return qs;
  }

  /** Room for one more new entry `name` of `kind` from `source`: taken, or counted as dropped. */
  #room(source: string, kind: keyof Share, map: Map<string, unknown>, name: string): boolean {
    let share = this.#shares.get(source);
    if (!share) {
      if (this.#shares.size >= this.#limits.discoveryCandidates) {
        this.dropped++;
        return false;
      }
      share = { ptr: 0, srv: 0, txt: 0, hosts: 0, candidates: 0 };
      this.#shares.set(source, share);
    }
    if (share[kind] >= CANDIDATES_PER_SOURCE || map.size >= this.#limits.discoveryCandidates) {
      this.dropped++;
      return false;
    }
    share[kind]++;
    this.#owner.set(`${kind}|${name}`, source);
    return true;
  }

  /**
   * RFC 6762 §10.1: a goodbye (TTL 0) removes the entry, and gives its room back, when it comes from the
   * sender that put it here (anyone else could otherwise make us forget a genuine node).
   */
  #goodbye(source: string, kind: keyof Share, map: Map<string, unknown>, name: string): void {
    const key = `${kind}|${name}`;
    if (this.#owner.get(key) !== source || !map.has(name)) return;
    map.delete(name);
    this.#owner.delete(key);
    this.#expires.delete(key);
    const share = this.#shares.get(source);
    if (share) share[kind]--;
    if (kind === 'srv') {
      for (const [id, inst] of this.#seen) if (inst === name) this.#goodbye(source, 'candidates', this.#seen, id);
    }
  }

  /**
   * RFC 6762 §10: an entry lapses when the TTL its owner last sent runs out without a refresh (a node
   * that went away without its goodbye). Lapsed entries go as if their owner had said goodbye; a node
   * heard again later is a new candidate. Returns how many entries lapsed.
   */
  expire(now: number): number {
    const maps = { ptr: this.#ptr, srv: this.#srv, txt: this.#txt, hosts: this.#hosts } as const;
    let lapsed = 0;
    for (const [key, at] of [...this.#expires]) {
      if (at > now) continue;
      const bar = key.indexOf('|');
      const kind = key.slice(0, bar) as keyof typeof maps;
      const owner = this.#owner.get(key);
      if (owner !== undefined && maps[kind]?.has(key.slice(bar + 1))) {
        this.#goodbye(owner, kind, maps[kind], key.slice(bar + 1));
        lapsed++;
      }
      this.#expires.delete(key);
    }
    return lapsed;
  }

  /** A record's lapse time, set or pushed back only by the sender that owns the entry. */
  #refresh(kind: keyof Share, name: string, source: string, ttl: number | undefined, now: number): void {
    const key = `${kind}|${name}`;
    if (this.#owner.get(key) !== source) return;
    this.#expires.set(key, now + (typeof ttl === 'number' && ttl > 0 ? ttl : HOST_TTL) * 1000);
  }

  /** Take the records of one packet from `source`, heard at `now` (ms; for the TTLs). */
  add(records: readonly DnsRecord[], source: string, link: Link, now: number = Date.now()): void {
    const touched = new Set<string>();
    for (const r of records) {
      if (typeof r?.name !== 'string' || typeof r.type !== 'string') continue;
      const name = r.name.toLowerCase();
      if (r.ttl === 0) {
        if (r.type === 'PTR' && typeof r.data === 'string') this.#goodbye(source, 'ptr', this.#ptr, r.data.toLowerCase());
        else if (r.type === 'SRV') this.#goodbye(source, 'srv', this.#srv, name);
        else if (r.type === 'TXT') this.#goodbye(source, 'txt', this.#txt, name);
        else if (r.type === 'A' || r.type === 'AAAA') this.#goodbye(source, 'hosts', this.#hosts, name);
        continue;
      }
      if (r.type === 'PTR' && name === SERVICE_TYPE && typeof r.data === 'string' && r.data.toLowerCase().endsWith(`.${SERVICE_TYPE}`)) {
        const inst = r.data.toLowerCase();
        if (this.#ptr.has(inst) || this.#room(source, 'ptr', this.#ptr, inst)) this.#ptr.set(inst, r.data);
        this.#refresh('ptr', inst, source, r.ttl, now);
      } else if (r.type === 'SRV' && name.endsWith(`.${SERVICE_TYPE}`)) {
        const d = r.data as { port?: unknown; target?: unknown } | undefined;
        if (!Number.isInteger(d?.port) || (d!.port as number) < 1 || (d!.port as number) > 65535 || typeof d?.target !== 'string') continue;
        if (!this.#srv.has(name) && !this.#room(source, 'srv', this.#srv, name)) continue;
        this.#srv.set(name, { port: d.port as number, target: d.target.toLowerCase(), name: r.name });
        this.#refresh('srv', name, source, r.ttl, now);
        touched.add(name);
      } else if (r.type === 'TXT' && name.endsWith(`.${SERVICE_TYPE}`)) {
        if (!Array.isArray(r.data)) continue;
        if (!this.#txt.has(name) && !this.#room(source, 'txt', this.#txt, name)) continue;
        this.#txt.set(name, (r.data as unknown[]).filter((x): x is Buffer => Buffer.isBuffer(x)).slice(0, 32));
        this.#refresh('txt', name, source, r.ttl, now);
        touched.add(name);
      } else if ((r.type === 'A' && typeof r.data === 'string' && net.isIPv4(r.data)) || (r.type === 'AAAA' && typeof r.data === 'string' && net.isIPv6(r.data))) {
        // Only an address on the link it was heard on, or the sender's own: an announcement must not
        // send us to any address on the internet (RFC 6762 §11, source address check).
        if (r.data !== source.replace(/%.*$/, '') && !onLink(r.data, link)) continue;
        let set = this.#hosts.get(name);
        if (!set) {
          if (!this.#room(source, 'hosts', this.#hosts, name)) continue;
          set = new Set();
          this.#hosts.set(name, set);
        }
        if (set.size < 4) set.add(r.data);
        this.#refresh('hosts', name, source, r.ttl, now);
        for (const [inst, srv] of this.#srv) if (srv.target === name) touched.add(inst);
      }
    }
    for (const inst of touched) this.#complete(inst, source);
  }

  #complete(name: string, source: string): void {
    const srv = this.#srv.get(name);
    const txt = this.#txt.get(name);
    const addresses = srv && this.#hosts.get(srv.target);
    if (!srv || !txt || !addresses) return;
    const instance = displayName(srv.name.slice(0, -SERVICE_TYPE.length - 1));
    const parsed = parseTxt(txt, this.#limits);
    if ('problem' in parsed) {
      if (this.#refused.size < this.#limits.discoveryCandidates) this.#refused.set(name, { instance, reason: parsed.problem });
      return;
    }
    // An IPv6 link-local address needs its interface named to be reached, which a URL cannot carry.
    const reachable = [...addresses].filter((x) => !isLinkLocal6(x));
    if (reachable.length === 0) {
      if (this.#refused.size < this.#limits.discoveryCandidates) this.#refused.set(name, { instance, reason: 'only an IPv6 link-local address (fe80::/10), which a URL cannot name: give the node a unique-local or global IPv6 address, or IPv4' });
      return;
    }
    this.#refused.delete(name);
    for (const address of reachable) {
      const id = `${address}|${srv.port}|${parsed.key}`;
      if (this.#seen.has(id) || !this.#room(source, 'candidates', this.#seen, id)) continue;
      this.#seen.set(id, name);
      this.#onCandidate({ instance, address, port: srv.port, key: parsed.key, roles: parsed.roles, scheme: parsed.scheme, path: parsed.path, bittorrent: parsed.bittorrent });
    }
  }
}

/** An IPv6 link-local address (fe80::/10). */
export const isLinkLocal6 = (address: string) => /^fe[89ab][0-9a-f]:/i.test(address);

/**
 * Whether `address` is on `link`: in its IPv4 subnet, or its IPv6 prefix; an IPv6 link-local address is
 * on the link its zone names (`fe80::1%eth0`, as a sender's address comes), or without a zone on any
 * IPv6 link (as an AAAA record's data comes: it was heard on that link).
 */
export function onLink(address: string, link: Link): boolean {
  if (net.isIPv4(address) && net.isIPv4(link.address) && net.isIPv4(link.netmask)) {
    const n = (s: string) => s.split('.').reduce((acc, b) => ((acc << 8) | Number(b)) >>> 0, 0);
    const mask = n(link.netmask);
    return ((n(address) & mask) >>> 0) === ((n(link.address) & mask) >>> 0);
  }
  const [bare, zone] = address.split('%') as [string, string | undefined];
  if (!net.isIPv6(bare) || !net.isIPv6(link.address.replace(/%.*$/, ''))) return false;
  if (isLinkLocal6(bare)) return zone === undefined || zone === link.name;
  if (!net.isIPv6(link.netmask)) return false;
  const [a, l, m] = [ipv6Bytes(bare), ipv6Bytes(link.address.replace(/%.*$/, '')), ipv6Bytes(link.netmask)];
  return a.every((b, i) => (b & m[i]!) === (l[i]! & m[i]!));
}

/** The 16 bytes of an IPv6 address (RFC 4291 §2.2 text forms, `::` and a dotted IPv4 tail included). */
export function ipv6Bytes(address: string): Buffer {
  let text = address.replace(/%.*$/, '');
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text = `${text.slice(0, v4.index)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.slice(0, 8).forEach((g, i) => out.writeUInt16BE(parseInt(g, 16) & 0xffff, i * 2));
  return out;
}

/** An instance name to print: control characters escaped, at most 63 characters. */
export function displayName(name: string): string {
  return name.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).slice(0, 63 * 6);
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Our TXT keys (RFC 6763 §6.3: case-insensitive, first occurrence wins), checked; `problem` says why not. */
export function parseTxt(strings: readonly Buffer[], limits: Pick<Limits, 'noteKeyNameBytes'> = LIMITS): { key: string; roles: Role[]; scheme: 'http' | 'https'; path: string | undefined; bittorrent: number | undefined } | { problem: string } {
  const pairs = new Map<string, string>();
  for (const s of strings) {
    let text: string;
    try {
      text = fatalUtf8.decode(s);
    } catch {
      return { problem: 'a TXT string is not valid UTF-8' };
    }
    const eq = text.indexOf('=');
    const k = (eq < 0 ? text : text.slice(0, eq)).toLowerCase();
    if (!pairs.has(k)) pairs.set(k, eq < 0 ? '' : text.slice(eq + 1));
  }
  if (pairs.get('txtvers') !== TXT_VERSION) return { problem: `txtvers is not ${TXT_VERSION}` };
  const key = pairs.get('key') ?? '';
  try {
    parseVerifierKey(key, limits);
  } catch (err) {
    return { problem: `key= is not a verifier key (${(err as Error).message})` };
  }
  const roles = (pairs.get('roles') ?? '').split(',').filter((r): r is Role => (ROLES as readonly string[]).includes(r));
  if (roles.length === 0) return { problem: 'roles= names no role we know' };
  const scheme = pairs.get('scheme') ?? 'http';
  if (scheme !== 'http' && scheme !== 'https') return { problem: `scheme=${scheme.slice(0, 20)} is not http or https` };
  const p = pairs.get('path');
  if (p !== undefined && !/^\/[A-Za-z0-9._~\-/]{0,200}$/.test(p)) return { problem: 'path= is not a plain absolute path' };
  const bt = pairs.get('bt');
  if (bt !== undefined && (!/^[1-9][0-9]{0,4}$/.test(bt) || Number(bt) > 65535)) return { problem: 'bt= is not a TCP port' };
  return { key, roles, scheme, path: p, bittorrent: bt === undefined ? undefined : Number(bt) };
}
