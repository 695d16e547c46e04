// Request rate per client for the mirror server: a token bucket per client address. Pure: the clock is
// passed to each call. Client addresses are attacker-chosen (an IPv6 client holds a whole /64), so
// IPv6 clients share one bucket per /64 and the number of buckets is bounded.
import net from 'node:net';

export interface RateLimit {
  /** Sustained requests per second; 0 turns the limit off. */
  perSecond: number;
  /** Requests allowed at once after a quiet period. */
  burst: number;
  /** Buckets kept at most. */
  maxClients: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly limit: RateLimit;

  constructor(limit: RateLimit) {
    this.limit = limit;
  }

  get enabled(): boolean {
    return this.limit.perSecond > 0;
  }

  get clients(): number {
    return this.buckets.size;
  }

  /** Take one token for `client` at time `now` (ms): 0 when allowed, else the ms until a token is due. */
  take(client: string, now: number): number {
    const { perSecond, burst } = this.limit;
    if (perSecond <= 0) return 0;
    let b = this.buckets.get(client);
    if (b === undefined) {
      if (this.buckets.size >= this.limit.maxClients) this.evict(now);
      b = { tokens: burst, at: now };
      this.buckets.set(client, b);
    } else {
      b.tokens = Math.min(burst, b.tokens + ((now - b.at) * perSecond) / 1000);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - b.tokens) * 1000) / perSecond - 1e-6));
  }

  /** Forget buckets that have refilled (they are as good as new); if none has, the oldest ones. */
  private evict(now: number): void {
    const { perSecond, burst } = this.limit;
    for (const [k, b] of this.buckets) if (b.tokens + ((now - b.at) * perSecond) / 1000 >= burst) this.buckets.delete(k);
    if (this.buckets.size < this.limit.maxClients) return;
    let drop = Math.max(1, this.buckets.size >> 3);
    for (const k of this.buckets.keys()) {
      this.buckets.delete(k);
      if (--drop === 0) break;
    }
  }
}

/**
 * The bucket a client address belongs to: IPv4 addresses (also IPv4-mapped IPv6) as they are, IPv6
 * addresses by their /64 prefix, since a single host is routinely given a whole /64.
 */
export function clientKey(address: string | undefined): string {
  if (address === undefined) return '?';
  let a = address;
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  if (a.toLowerCase().startsWith('::ffff:') && net.isIPv4(a.slice(7))) return a.slice(7);
  if (!net.isIPv6(a)) return a;
  const [head, tail] = a.includes('::') ? a.split('::') as [string, string] : [a, undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  // An embedded IPv4 tail counts as two groups; it only ever sits in the low 64 bits we drop.
  const groups = (g: string[]) => g.reduce((n, x) => n + (x.includes('.') ? 2 : 1), 0);
  const full = [...left, ...Array(Math.max(0, 8 - groups(left) - groups(right))).fill('0'), ...right];
  return full.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(':') + '::/64';
}
