// `--announce`: a node publishes itself on the local network as a DNS-SD service over mDNS (RFC 6762,
// 6763), and answers queries for it, so that a browser started later finds it by asking. `serve`,
// `log serve`, `witness serve` and `seed` call announceNode.
//
// RFC 6762 §8.1-8.2: the names are probed for first, and renamed when taken (probe.ts); §8.3: an
// announcement is sent twice, one second apart, on every link (and on a link that comes up later);
// §10.1: on close, a goodbye (TTL 0) so browsers forget the node at once. Over IPv4 and IPv6 (AAAA
// records, FF02::FB), as far as the node listens on them: 0.0.0.0 is IPv4 only, :: both.
import os from 'node:os';
import { SourcemeshError } from '../errors.ts';
import { formatVerifierKey, type VerifierKey } from '../trust/note.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { SILENT, type Logger } from '../logger.ts';
import { announcementFor, announcementRecords, answerQuestions, hostName, instanceName, type Announcement, type Role } from './dns-sd.ts';
import { claimedRecords, conflictsIn, probeOrder, probeQuery, recordsOf, renamed, type Conflict } from './probe.ts';
import { MdnsSockets, MDNS_PORT, type Family, type MdnsLink } from './mdns.ts';

export interface AnnounceOptions {
  /** The key that signs what the node serves (its inventory, its checkpoints). */
  key: VerifierKey;
  /** The TCP port the node serves on. */
  port: number;
  roles: Role[];
  scheme?: 'http' | 'https';
  /** Path of the signed inventory (mirror, seed) or checkpoint (log) under the node's URL. */
  path?: string;
  /** Role seed: the BitTorrent peer-wire port (TXT bt=); the SRV `port` is then the challenge responder's. */
  bittorrent?: number;
  /** Interface names (default: every interface that is up, loopback aside). */
  interfaces?: readonly string[];
  /** IP versions to announce on (default: those `listenHost` serves, both without one). */
  families?: readonly Family[];
  /**
   * The address the node listens on: a wildcard announces on every interface; one address, only on the
   * interface that has it (announcing an address nobody can reach helps no one).
   */
  listenHost?: string;
  limits?: Limits;
  log?: Logger;
  /** For tests: another mDNS port. */
  mdnsPort?: number;
  /** In [0, 1): the random delay before the first probe (RFC 6762 §8.1). */
  random?: () => number;
  /**
   * When the node became ready to probe, on performance.now()'s clock (0: the process's start). The random
   * delay before the first probe counts from then, so that time spent starting up is part of it
   * (default: now).
   */
  since?: number;
  /**
   * The node serves once this settles: the names are claimed (probed for) meanwhile, and announced only
   * after it resolves; when it rejects, nothing is announced and announceNode rejects with its error.
   * Until then, queries naming our instance or host are answered (the names are defended, RFC 6762 §9),
   * the service's PTR is not (no browser is sent to a node not yet serving).
   */
  ready?: Promise<unknown>;
}

export interface Announcer {
  /** What is announced now: the name may have changed from the first one tried if it was taken. */
  readonly announcement: Announcement;
  /** Interfaces announced on, now. */
  links(): MdnsLink[];
  /** Say goodbye on every link and close the sockets. */
  close(): Promise<void>;
}

/** RFC 6762 §8.1: three probes 250 ms apart, after a random delay of up to 250 ms; §8.2: a loser waits 1 s. */
const PROBE_GAP_MS = 250;
const PROBES = 3;
const DEFER_MS = 1000;

type ProbeOutcome = { won: true } | { won: false; conflict: Conflict };

/**
 * Announce a node: first claim its names (RFC 6762 §8.1-8.2: probe three times; a conflicting answer
 * or a simultaneous prober that wins the tiebreak means the name is taken or contested), then announce
 * (§8.3) and answer queries. A taken name is replaced by "NAME (2)" and so on (RFC 6763 §4.1.1, RFC
 * 6762 §9), at most limits.discoveryProbeRenames times.
 */
export async function announceNode(options: AnnounceOptions): Promise<Announcer> {
  const limits = options.limits ?? LIMITS;
  const log = options.log ?? SILENT;
  const random = options.random ?? Math.random;
  const since = options.since ?? performance.now();
  // The node failing to start ends the claim at once (the rejection is handled here, and again below).
  const failed = new Promise<{ failed: unknown }>((resolve) => options.ready?.catch((err: unknown) => resolve({ failed: err })));
  let announcement = announcementFor(options.key, formatVerifierKey(options.key), { port: options.port, roles: options.roles, scheme: options.scheme ?? 'http', ...(options.path !== undefined ? { path: options.path } : {}), ...(options.bittorrent !== undefined ? { bittorrent: options.bittorrent } : {}) }, limits);
  const interfaces = options.interfaces ?? interfacesFor(options.listenHost);
  const families = options.families ?? familiesFor(options.listenHost);
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  let sockets: MdnsSockets | undefined;
  let claimed = false;
  let announced = false;
  /** While probing: called with what a packet says about our names. */
  let onProbeNews: ((outcome: ProbeOutcome) => void) | undefined;
  const addresses = () => (sockets?.links ?? []).map((l) => l.address);
  const announce = (link: MdnsLink) => {
    const send = () => void sockets?.respond(announcementRecords(announcement, link.address), link);
    send();
    later(1000, send);
  };
  sockets = await MdnsSockets.open({
    ...(interfaces ? { interfaces } : {}),
    families,
    ...(options.mdnsPort !== undefined ? { port: options.mdnsPort } : {}),
    limits,
    log,
    // A link that comes up after the names are claimed is announced on at once.
    onLink: (link) => setImmediate(() => announced && announce(link)),
    onPacket: (packet, from, link) => {
      if (!claimed) {
        if (packet.type === 'response') {
          const conflict = conflictsIn(announcement, addresses(), [...packet.answers, ...packet.additionals]);
          if (conflict.instance || conflict.host) onProbeNews?.({ won: false, conflict });
        } else {
          // Another host probing for one of our names at the same moment (RFC 6762 §8.2).
          const theirs = Array.isArray(packet.authorities) ? packet.authorities : [];
          const ours = claimedRecords(announcement, addresses());
          for (const name of [instanceName(announcement), hostName(announcement)]) {
            const t = recordsOf(name, theirs);
            if (t.length > 0 && probeOrder(recordsOf(name, ours), t) < 0) onProbeNews?.({ won: false, conflict: { instance: false, host: false } });
          }
        }
        return;
      }
      if (packet.type !== 'query') return;
      // Claimed but not serving yet: only questions about our own names are answered (defended).
      const questions = announced ? packet.questions : packet.questions.filter((q) => typeof q?.name === 'string' && [instanceName(announcement), hostName(announcement)].some((n) => n.toLowerCase() === q.name.toLowerCase()));
      const answer = answerQuestions(announcement, link.address, questions);
      if (!answer) return;
      if (from.port !== (options.mdnsPort ?? MDNS_PORT)) {
        // RFC 6762 §6.7: a legacy (one-shot) querier gets a unicast answer repeating its ID and question.
        void sockets?.respond({ ...answer, id: packet.id ?? 0, questions: packet.questions }, link, from);
      } else {
        void sockets?.respond(answer, link);
      }
    },
  });
  const open = sockets;
  let closed = false;

  const probeOnce = (delayMs: number) => new Promise<ProbeOutcome>((resolve) => {
    let done = false;
    const finish = (o: ProbeOutcome) => {
      if (done) return;
      done = true;
      onProbeNews = undefined;
      resolve(o);
    };
    onProbeNews = finish;
    // Each probe 250 ms after the previous one was sent (not after when it was due: a busy event loop
    // must not bring two probes closer), and the win 250 ms after the third.
    const probe = (i: number) => {
      if (done) return;
      if (i === PROBES) return finish({ won: true });
      open.query(probeQuery(announcement, addresses()));
      later(PROBE_GAP_MS, () => probe(i + 1));
    };
    later(delayMs, () => probe(0));
  });

  try {
    let renames = 0;
    // RFC 6762 §8.1: a random delay of 0-250 ms before the first probe, so that hosts made ready by one
    // event do not probe in step; counted from when this node became ready (its start), not from when
    // its sockets opened, so start-up time is not added to it.
    let delay = Math.max(0, Math.floor(since + random() * PROBE_GAP_MS - performance.now()));
    for (;;) {
      if (closed) break;
      const outcome = await Promise.race([probeOnce(delay), failed]);
      if ('failed' in outcome) throw outcome.failed;
      if (outcome.won) break;
      const { conflict } = outcome;
      if (!conflict.instance && !conflict.host) {
        delay = DEFER_MS; // lost a tiebreak: the other host goes first; probe the same names again
        continue;
      }
      if (++renames > limits.discoveryProbeRenames) {
        throw new SourcemeshError('E_NETWORK', `--announce: ${JSON.stringify(announcement.instance)} is taken on the link, and so were ${limits.discoveryProbeRenames} other names tried after it`);
      }
      const before = announcement.instance;
      announcement = renamed(announcement, conflict, limits);
      log.warn({ was: before, now: announcement.instance, host: announcement.host }, 'the name is taken on the local network: announcing under a new one');
      delay = 0;
    }
  } catch (err) {
    for (const t of timers) clearTimeout(t);
    await open.close();
    throw err;
  }
  claimed = true;
  if (options.ready) {
    try {
      await options.ready;
    } catch (err) {
      for (const t of timers) clearTimeout(t);
      await open.close();
      throw err;
    }
  }
  announced = true;
  for (const link of open.links) announce(link);
  log.info({ instance: announcement.instance, links: open.links.map((l) => l.name) }, 'announcing on the local network');
  return {
    get announcement() {
      return announcement;
    },
    links: () => open.links,
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await Promise.all(open.links.map((link) => open.respond(announcementRecords(announcement, link.address, true), link)));
      await open.close();
    },
  };
}

/** The IP versions a node listening on `host` serves: 0.0.0.0 or an IPv4 address IPv4 only, an IPv6 one IPv6 only, :: (dual-stack) and no host both. */
export function familiesFor(host: string | undefined): Family[] {
  if (host === undefined || host === '' || host === '::') return [4, 6];
  return host.includes(':') ? [6] : [4];
}

/** The interfaces to announce on for a node listening on `host`: undefined for all. */
export function interfacesFor(host: string | undefined, all: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces()): string[] | undefined {
  if (host === undefined || host === '0.0.0.0' || host === '::' || host === '') return undefined;
  const bare = host.replace(/%.*$/, '');
  for (const [name, addrs] of Object.entries(all)) {
    const a = addrs?.find((x) => x.address === bare);
    if (!a) continue;
    if (a.internal) throw new SourcemeshError('E_USAGE', `--announce: the node listens on ${host}, a loopback address nobody else can reach (listen on 0.0.0.0 or an interface)`);
    return [name];
  }
  throw new SourcemeshError('E_USAGE', `--announce: no network interface has the address ${host} the node listens on`);
}
