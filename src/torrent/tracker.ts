// The BitTorrent HTTP tracker protocol (BEP 3, "Trackers"), pure: the announce URL we send and the
// reading of the answer. A tracker is attacker-controlled: its answer is bounded before it is read
// (src/limits.ts), decoded strictly, and what it names is only a list of addresses to try (every byte a
// peer sends is checked against the manifest). Compact peer lists (BEP 23), IPv6 peers (BEP 7),
// announce-list tiers (BEP 12) and the re-announce schedule (`interval`, `min interval`) live here.
import net from 'node:net';
import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { BReader, decode, type BValue } from './bencode.ts';

export type AnnounceEvent = 'started' | 'completed' | 'stopped';

export interface AnnounceParams {
  /** 20 bytes: a v1 info-hash, or a v2 one cut to 20 bytes (BEP 52, "Upgrade path"). */
  infoHash: Buffer;
  /** 20 bytes, the same one our handshakes carry. */
  peerId: Buffer;
  /** Where peers reach us; 0 when we take no connections (`fetch --no-upload`). */
  port: number;
  uploaded: number;
  downloaded: number;
  left: number;
  event?: AnnounceEvent;
  numwant: number;
  /** Given back as the tracker asked (BEP 3 has it as `tracker id`). */
  trackerId?: string;
}

export interface PeerAddress {
  host: string;
  port: number;
}

export interface AnnounceResponse {
  /** Seconds until the next regular announce (BEP 3). */
  interval: number;
  /** Seconds before which we must not announce again (a field every tracker sends, outside BEP 3's text). */
  minInterval?: number;
  peers: PeerAddress[];
  warning?: string;
  trackerId?: string;
  complete?: number;
  incomplete?: number;
}

/** A URL as a tracker or peer list names it, for messages: at most 200 characters, no control characters. */
export function printable(text: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const s = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  return s.length > max ? `${s.slice(0, max)}...` : s;
}

/** BEP 3: binary values are URL-encoded byte by byte; only RFC 3986's unreserved characters stay as they are. */
function urlEncodeBytes(b: Buffer): string {
  let out = '';
  for (const c of b) {
    const ch = String.fromCharCode(c);
    out += /[A-Za-z0-9.\-_~]/.test(ch) ? ch : `%${c.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The announce request for tracker `base` (its own query, a passkey say, kept). compact=1 (BEP 23) asks
 * for peers as 6 bytes each (18 in `peers6`, BEP 7); most trackers send nothing else.
 */
export function announceUrl(base: string, p: AnnounceParams): string {
  if (p.infoHash.length !== 20 || p.peerId.length !== 20) throw new SourcemeshError('E_INTERNAL', 'an announce needs a 20-byte info-hash and peer id');
  const q = [
    `info_hash=${urlEncodeBytes(p.infoHash)}`, `peer_id=${urlEncodeBytes(p.peerId)}`, `port=${p.port}`,
    `uploaded=${p.uploaded}`, `downloaded=${p.downloaded}`, `left=${p.left}`, 'compact=1', `numwant=${p.numwant}`,
  ];
  if (p.event) q.push(`event=${p.event}`);
  if (p.trackerId !== undefined) q.push(`trackerid=${encodeURIComponent(p.trackerId)}`);
  const hash = base.indexOf('#');
  const url = hash >= 0 ? base.slice(0, hash) : base;
  return `${url}${url.includes('?') ? (url.endsWith('?') || url.endsWith('&') ? '' : '&') : '?'}${q.join('&')}`;
}

type ParseLimits = Pick<Limits, 'trackerPeers' | 'bencodeDepth'>;

/**
 * Read a tracker's answer (the whole body, already bounded by `trackerResponseBytes`). A `failure reason`
 * is the tracker saying no: E_HTTP with its text. Anything malformed, or more peers than `trackerPeers`
 * (we ask for `numwant`): E_FORMAT, naming `what`.
 */
export function parseAnnounceResponse(body: Buffer, what: string, limits: ParseLimits = LIMITS): AnnounceResponse {
  // A dictionary of a few fields and at most trackerPeers peers of a few values each: any more values is
  // hostile, refused before they are all built (BEP 3 answers nest two deep: dict, list, dict).
  const decodeLimits = { bencodeDepth: Math.min(limits.bencodeDepth, 4), bencodeItems: 64 + limits.trackerPeers * 8 };
  const r = new BReader(what);
  const top = r.dict(decode(body, what, decodeLimits), 'the answer');
  const text = (v: BValue | undefined, name: string) => printable(Buffer.isBuffer(v) ? v.toString('utf8') : r.fail(`${name} is not a byte string`));
  if (top.has('failure reason')) {
    throw new SourcemeshError('E_HTTP', `${what}: the tracker refused: ${text(top.get('failure reason'), 'failure reason')}`, { failureReason: text(top.get('failure reason'), 'failure reason') });
  }
  const interval = r.int(top.get('interval'), 'interval');
  const minInterval = top.has('min interval') ? r.int(top.get('min interval'), 'min interval') : undefined;
  const peers: PeerAddress[] = [];
  const add = (host: string, port: number) => {
    if (peers.length >= limits.trackerPeers) r.fail(`more than ${limits.trackerPeers} peers (we ask for fewer)`);
    // Port 0 and unspecified addresses reach nobody: dropped, not tried.
    if (port !== 0 && !/^(0\.0\.0\.0|[0:]+)$/.test(host)) peers.push({ host, port });
  };
  const v4 = top.get('peers');
  if (Buffer.isBuffer(v4)) {
    // BEP 23: 4 bytes of IPv4 address and 2 of port, network order, per peer.
    if (v4.length % 6 !== 0) r.fail(`peers of ${v4.length} bytes is not a whole number of 6-byte compact peers`);
    if (v4.length / 6 > limits.trackerPeers) r.fail(`${v4.length / 6} peers, more than ${limits.trackerPeers} (we ask for fewer)`);
    for (let i = 0; i < v4.length; i += 6) add(`${v4[i]}.${v4[i + 1]}.${v4[i + 2]}.${v4[i + 3]}`, v4.readUInt16BE(i + 4));
  } else if (v4 !== undefined) {
    // BEP 3's original form: a list of dictionaries. Addresses only: a name would have us resolve what a
    // tracker chose, so entries that are not IP literals are skipped.
    const list = r.list(v4, 'peers');
    if (list.length > limits.trackerPeers) r.fail(`${list.length} peers, more than ${limits.trackerPeers} (we ask for fewer)`);
    list.forEach((e, i) => {
      const d = r.dict(e, `peers[${i}]`);
      const ip = r.text(d.get('ip'), `peers[${i}].ip`);
      const port = r.int(d.get('port'), `peers[${i}].port`, 0, 65535);
      if (net.isIP(ip)) add(ip, port);
    });
  }
  const v6 = top.get('peers6');
  if (v6 !== undefined) {
    // BEP 7: 16 bytes of IPv6 address and 2 of port per peer.
    const b = r.bytes(v6, 'peers6');
    if (b.length % 18 !== 0) r.fail(`peers6 of ${b.length} bytes is not a whole number of 18-byte compact peers`);
    if (b.length / 18 + peers.length > limits.trackerPeers) r.fail(`more than ${limits.trackerPeers} peers (we ask for fewer)`);
    for (let i = 0; i < b.length; i += 18) {
      const groups: string[] = [];
      for (let g = 0; g < 16; g += 2) groups.push(b.readUInt16BE(i + g).toString(16));
      add(ipv6Text(groups), b.readUInt16BE(i + 16));
    }
  }
  const count = (k: string) => (top.has(k) ? r.int(top.get(k), k) : undefined);
  return {
    interval, minInterval, peers,
    warning: top.has('warning message') ? text(top.get('warning message'), 'warning message') : undefined,
    trackerId: top.has('tracker id') ? text(top.get('tracker id'), 'tracker id') : undefined,
    complete: count('complete'), incomplete: count('incomplete'),
  };
}

/** Eight hex groups as an IPv6 address text (the form net.connect and our HOST:PORT brackets take). */
function ipv6Text(groups: string[]): string {
  // An IPv4-mapped address (::ffff:a.b.c.d) is the IPv4 peer it names.
  if (groups.slice(0, 5).every((g) => g === '0') && groups[5] === 'ffff') {
    const a = parseInt(groups[6]!, 16), b = parseInt(groups[7]!, 16);
    return `${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
  }
  return groups.join(':');
}

/** A peer as HOST:PORT, brackets around an IPv6 address. */
export function peerText(p: PeerAddress): string {
  return p.host.includes(':') ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`;
}

type ScheduleLimits = Pick<Limits, 'trackerIntervalFloorMs' | 'trackerIntervalCeilingMs'>;

/**
 * Milliseconds until the next announce to a tracker. After an answer: its `interval`, never sooner than
 * its `min interval`, both held between our floor and ceiling. After `failures` failures in a row: a
 * back-off doubling from the floor, to the ceiling.
 */
export function nextAnnounceDelay(last: { interval: number; minInterval?: number } | { failures: number }, limits: ScheduleLimits = LIMITS): number {
  const { trackerIntervalFloorMs: floor, trackerIntervalCeilingMs: ceiling } = limits;
  if ('failures' in last) return Math.min(ceiling, floor * 2 ** Math.min(30, Math.max(0, last.failures - 1)));
  const asked = Math.max(last.interval, last.minInterval ?? 0) * 1000;
  return Math.min(ceiling, Math.max(floor, asked));
}

/** Only HTTP(S) trackers are spoken (BEP 3); UDP ones (BEP 15) and anything else are skipped. */
export function isHttpTracker(url: string): boolean {
  const u = URL.parse(url);
  return u !== null && (u.protocol === 'http:' || u.protocol === 'https:');
}

/**
 * BEP 12: the trackers of a torrent in tiers. Each tier is shuffled once (`random` passed in); announces
 * try tier by tier, tracker by tracker, and stop at the first that answers, which moves to the front of
 * its tier.
 */
export class TrackerTiers {
  readonly tiers: string[][];

  constructor(tiers: string[][], random: () => number) {
    this.tiers = tiers.map((tier) => {
      const t = [...new Set(tier)];
      for (let i = t.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [t[i], t[j]] = [t[j]!, t[i]!];
      }
      return t;
    }).filter((t) => t.length > 0);
  }

  /** Every tracker in the order to try them. */
  order(): string[] {
    return this.tiers.flat();
  }

  answered(url: string): void {
    for (const tier of this.tiers) {
      const i = tier.indexOf(url);
      if (i > 0) tier.unshift(...tier.splice(i, 1));
    }
  }
}
