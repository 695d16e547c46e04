// What every server counts clients by, and the one token bucket they all use (`serve`, `log serve`,
// `witness serve`). Pure: the clock is an argument of each call, so tests pin it and a future
// coordinator of worker processes can replay the same decisions.
//
// Client addresses are attacker-chosen. An IPv6 host is routinely given a whole /64 (RFC 4291 §2.5.1
// interface identifiers; RFC 8981 temporary addresses rotate inside it), so IPv6 clients are counted by
// their /64; IPv4 clients, and IPv4-mapped IPv6 (RFC 4291 §2.5.5.2), by their address.
import net from 'node:net';

/**
 * The key a client address is counted under: an IPv4 address as it is (also when IPv4-mapped), an
 * IPv6 address as its /64 prefix in lowercase hex without leading zeros (`2001:db8:1:2::/64`), the
 * same for every way of writing it. Anything else (no address: the socket is already gone) is `?`.
 */
export function clientKey(address: string | undefined): string {
  if (address === undefined || address === '') return '?';
  let a = address;
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  if (net.isIPv4(a)) return a;
  if (!net.isIPv6(a)) return '?';
  const groups = ipv6Groups(a);
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

/** The eight 16-bit groups of an address that net.isIPv6 accepted (`::`, an IPv4 tail). */
function ipv6Groups(a: string): number[] {
  const parse = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        const [b0, b1, b2, b3] = g.split('.').map(Number) as [number, number, number, number];
        out.push((b0 << 8) | b1, (b2 << 8) | b3);
      } else {
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const gap = a.indexOf('::');
  if (gap < 0) return parse(a);
  const left = parse(a.slice(0, gap));
  const right = parse(a.slice(gap + 2));
  return [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
}

export interface TokenBucketLimit {
  /** Sustained tokens (requests) per second; 0 or less turns the limit off. */
  perSecond: number;
  /** Tokens a client may spend at once after a quiet period. */
  burst: number;
  /** Buckets kept at most (memory is bounded whatever the number of client addresses). */
  maxClients: number;
}

const TOKEN_EPSILON = 1e-6;

interface Bucket {
  tokens: number;
  /** The clock (ms) at which `tokens` was last brought up to date. */
  at: number;
}

/**
 * A token bucket per client key. `take` answers 0 (allowed) or the whole milliseconds until the
 * client's next token; `retryAfterSeconds` turns that into an HTTP `Retry-After` (RFC 9110 §10.2.3).
 * When `maxClients` buckets exist, a new client first makes the buckets that have refilled go (a full
 * bucket is what a new client gets anyway), else the least recently used eighth.
 */
export class TokenBuckets {
  // Map order is least recently used first: a bucket moves to the end when taken from.
  private readonly buckets = new Map<string, Bucket>();
  readonly limit: TokenBucketLimit;

  constructor(limit: TokenBucketLimit) {
    this.limit = { ...limit, maxClients: Math.max(1, limit.maxClients) };
  }

  get enabled(): boolean {
    return this.limit.perSecond > 0;
  }

  /** Buckets held now. */
  get clients(): number {
    return this.buckets.size;
  }

  /** Take one token for `client` at `now` (ms): 0 if allowed, else the ms (at least 1) until one is due. */
  take(client: string, now: number): number {
    const { perSecond, burst } = this.limit;
    if (perSecond <= 0) return 0;
    let b = this.buckets.get(client);
    if (b === undefined) {
      if (this.buckets.size >= this.limit.maxClients) this.evict(now);
      b = { tokens: burst, at: now };
    } else {
      this.buckets.delete(client);
      b.tokens = this.level(b, now);
      // A clock that went back (NTP step) neither refills nor drains: the bucket restarts from here.
      b.at = now;
    }
    this.buckets.set(client, b);
    // A hair under one token counts as one, so that floating-point rounding can neither make the wait
    // announced below too short nor add a millisecond to it.
    if (b.tokens >= 1 - TOKEN_EPSILON) {
      b.tokens = Math.max(0, b.tokens - 1);
      return 0;
    }
    // The first whole millisecond at which the bucket holds a token again (never 0: 0 means allowed).
    return Math.max(1, Math.ceil(((1 - TOKEN_EPSILON / 2 - b.tokens) * 1000) / perSecond));
  }

  private level(b: Bucket, now: number): number {
    return Math.min(this.limit.burst, b.tokens + (Math.max(0, now - b.at) * this.limit.perSecond) / 1000);
  }

  private evict(now: number): void {
    for (const [k, b] of this.buckets) if (this.level(b, now) >= this.limit.burst) this.buckets.delete(k);
    if (this.buckets.size < this.limit.maxClients) return;
    // Each eviction pass frees an eighth, so its cost is spread over that many new clients.
    let drop = Math.max(1, this.buckets.size >> 3);
    for (const k of this.buckets.keys()) {
      this.buckets.delete(k);
      if (--drop === 0) break;
    }
  }
}

/** A wait from `TokenBuckets.take` as whole seconds for `Retry-After`: at least 1. */
export function retryAfterSeconds(waitMs: number): number {
  return Math.max(1, Math.ceil(waitMs / 1000));
}
