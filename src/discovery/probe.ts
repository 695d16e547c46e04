// Claiming a name on the link, as pure code (RFC 6762 §8-9): what a probe carries, whether something
// heard conflicts with our records, who wins when two hosts probe for one name at once, and the next
// name to try. The sockets and timers are in announce.ts.
//
// An instance name ("NAME KEYID") is unique only as long as one node holds a key; two processes of one
// node (serve and seed), or two nodes sharing a key, would announce the same name with different records.
import { LIMITS, type Limits } from '../limits.ts';
import { addressType, announcementRecords, hostName, instanceName, ipv6Bytes, truncateUtf8, type Announcement, type DnsRecord } from './dns-sd.ts';

const same = (x: string, y: string) => x.toLowerCase() === y.toLowerCase();

/** The records we claim (unique, RFC 6762 §8.1): the instance's SRV and TXT, and the host's A or AAAA per address. */
export function claimedRecords(a: Announcement, addresses: readonly string[]): DnsRecord[] {
  const first = announcementRecords(a, addresses[0] ?? '0.0.0.0').additionals;
  const [srv, txt] = first as [DnsRecord, DnsRecord];
  return [srv, txt, ...addresses.map((address) => ({ name: hostName(a), type: addressType(address), ttl: 120, flush: true, data: address.replace(/%.*$/, '') }))];
}

/** A probe (RFC 6762 §8.1): a query of type ANY for each name, our proposed records in the Authority section. */
export function probeQuery(a: Announcement, addresses: readonly string[]): { questions: { name: string; type: string }[]; authorities: DnsRecord[] } {
  return { questions: [{ name: instanceName(a), type: 'ANY' }, { name: hostName(a), type: 'ANY' }], authorities: claimedRecords(a, addresses) };
}

export interface Conflict {
  instance: boolean;
  host: boolean;
}

/**
 * Whether records heard in a response conflict with ours (RFC 6762 §9): the same name and type with other
 * data. Identical records are not a conflict (they may be our own, looped back), nor is a goodbye.
 */
export function conflictsIn(a: Announcement, addresses: readonly string[], records: readonly DnsRecord[]): Conflict {
  const ours = claimedRecords(a, addresses);
  const out: Conflict = { instance: false, host: false };
  for (const r of records) {
    if (typeof r?.name !== 'string' || typeof r.type !== 'string' || r.ttl === 0) continue;
    if (same(r.name, instanceName(a)) && (r.type === 'SRV' || r.type === 'TXT')) {
      const mine = ours.find((o) => o.type === r.type)!;
      if (!rdataOf(mine).equals(rdataOf(r))) out.instance = true;
    } else if (same(r.name, hostName(a)) && (r.type === 'A' || r.type === 'AAAA')) {
      if (typeof r.data !== 'string' || !addresses.some((x) => x.replace(/%.*$/, '') === r.data)) out.host = true;
    }
  }
  return out;
}

/**
 * RFC 6762 §8.2, simultaneous probe tiebreaking, for the records of one name: both sets sorted by class,
 * type and raw rdata, compared in turn; the first difference decides, and a set with records left when
 * the other has run out wins. > 0: ours win (the other host defers); < 0: theirs win (we wait one second
 * and probe again); 0: the same records (our own probe heard back).
 */
export function probeOrder(ours: readonly DnsRecord[], theirs: readonly DnsRecord[]): number {
  const sorted = (rs: readonly DnsRecord[]) => rs.map(recordKey).sort(Buffer.compare);
  const [x, y] = [sorted(ours), sorted(theirs)];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const c = Buffer.compare(x[i]!, y[i]!);
    if (c !== 0) return c;
  }
  return x.length - y.length;
}

/** The records of `name` among `records` (case-insensitive). */
export function recordsOf(name: string, records: readonly DnsRecord[]): DnsRecord[] {
  return records.filter((r) => typeof r?.name === 'string' && same(r.name, name));
}

/**
 * The next name after a conflict (RFC 6763 §4.1.1 and RFC 6762 §9, "a new name... e.g. by appending
 * (2)"): the instance "NAME KEYID" becomes "NAME KEYID (2)", then (3); the host "sourcemesh-KEYID"
 * becomes "sourcemesh-KEYID-2". Labels stay within limits.discoveryInstanceBytes.
 */
export function renamed(a: Announcement, what: Conflict, limits: Pick<Limits, 'discoveryInstanceBytes'> = LIMITS): Announcement {
  let { instance, host } = a;
  if (what.instance) {
    const m = / \((\d+)\)$/.exec(instance);
    const base = m ? instance.slice(0, m.index) : instance;
    const suffix = ` (${m ? Number(m[1]) + 1 : 2})`;
    instance = truncateUtf8(base, limits.discoveryInstanceBytes - suffix.length) + suffix;
  }
  if (what.host) {
    const m = /-(\d+)$/.exec(host.replace(/^sourcemesh-[0-9a-f]{8}/, ''));
    const base = m ? host.slice(0, host.length - m[0].length) : host;
    host = `${base}-${m ? Number(m[1]) + 1 : 2}`;
  }
  return { ...a, instance, host };
}

const TYPE = { A: 1, TXT: 16, AAAA: 28, SRV: 33 } as Record<string, number>;

/** class (IN, cache-flush bit clear), type, then the raw uncompressed rdata: the tiebreak's order. */
function recordKey(r: DnsRecord): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16BE(1, 0);
  head.writeUInt16BE(TYPE[r.type] ?? 0xffff, 2);
  return Buffer.concat([head, rdataOf(r)]);
}

/** The rdata of an A, AAAA, SRV or TXT record as on the wire (RFC 1035 §3.3, RFC 3596, RFC 2782); anything else empty. */
export function rdataOf(r: DnsRecord): Buffer {
  try {
    if (r.type === 'A' && typeof r.data === 'string') return Buffer.from(r.data.split('.').map(Number));
    if (r.type === 'AAAA' && typeof r.data === 'string') return ipv6Bytes(r.data);
    if (r.type === 'SRV' && typeof r.data === 'object' && r.data !== null) {
      const d = r.data as { priority?: number; weight?: number; port?: number; target?: string };
      const head = Buffer.alloc(6);
      head.writeUInt16BE((d.priority ?? 0) & 0xffff, 0);
      head.writeUInt16BE((d.weight ?? 0) & 0xffff, 2);
      head.writeUInt16BE((d.port ?? 0) & 0xffff, 4);
      return Buffer.concat([head, nameBytes(String(d.target ?? ''))]);
    }
    if (r.type === 'TXT') {
      const strings = Array.isArray(r.data) ? r.data : [r.data];
      return Buffer.concat(strings.map((s) => {
        const b = Buffer.isBuffer(s) ? s : Buffer.from(String(s ?? ''));
        return Buffer.concat([Buffer.of(Math.min(b.length, 255)), b.subarray(0, 255)]);
      }));
    }
  } catch {
    // attacker-controlled data of an unexpected shape: compared as empty
  }
  return Buffer.alloc(0);
}

function nameBytes(name: string): Buffer {
  const labels = name.split('.').filter((l) => l !== '').map((l) => Buffer.from(l, 'utf8').subarray(0, 63));
  return Buffer.concat([...labels.flatMap((l) => [Buffer.of(l.length), l]), Buffer.of(0)]);
}
