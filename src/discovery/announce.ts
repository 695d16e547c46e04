// `--announce`: a node publishes itself on the local network as a DNS-SD service over mDNS (RFC 6762,
// 6763), and answers queries for it, so that a browser started later finds it by asking. `serve`,
// `log serve`, `witness serve` and `seed` call announceNode.
//
// RFC 6762 §8.3: an announcement is sent twice, one second apart, on every link (and on a link that
// comes up later); §10.1: on close, a goodbye (TTL 0) so browsers forget the node at once. Probing
// (§8.1) is left out: the instance and host names carry the key ID, so two nodes share them only when
// they share the key.
import os from 'node:os';
import { SourcemeshError } from '../errors.ts';
import { formatVerifierKey, type VerifierKey } from '../trust/note.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { SILENT, type Logger } from '../logger.ts';
import { announcementFor, announcementRecords, answerQuestions, type Announcement, type Role } from './dns-sd.ts';
import { MdnsSockets, MDNS_PORT, type MdnsLink } from './mdns.ts';

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
  /** Interface names (default: every IPv4 interface that is up, loopback aside). */
  interfaces?: readonly string[];
  /**
   * The address the node listens on: a wildcard announces on every interface; one address, only on the
   * interface that has it (announcing an address nobody can reach helps no one).
   */
  listenHost?: string;
  limits?: Limits;
  log?: Logger;
  /** For tests: another mDNS port. */
  mdnsPort?: number;
}

export interface Announcer {
  readonly announcement: Announcement;
  /** Interfaces announced on, now. */
  links(): MdnsLink[];
  /** Say goodbye on every link and close the sockets. */
  close(): Promise<void>;
}

export async function announceNode(options: AnnounceOptions): Promise<Announcer> {
  const limits = options.limits ?? LIMITS;
  const log = options.log ?? SILENT;
  const announcement = announcementFor(options.key, formatVerifierKey(options.key), { port: options.port, roles: options.roles, scheme: options.scheme ?? 'http', ...(options.path !== undefined ? { path: options.path } : {}), ...(options.bittorrent !== undefined ? { bittorrent: options.bittorrent } : {}) }, limits);
  const interfaces = options.interfaces ?? interfacesFor(options.listenHost);
  const timers = new Set<NodeJS.Timeout>();
  let sockets: MdnsSockets | undefined;
  const announce = (link: MdnsLink) => {
    const send = () => void sockets?.respond(announcementRecords(announcement, link.address), link);
    send();
    const t = setTimeout(() => {
      timers.delete(t);
      send();
    }, 1000);
    timers.add(t);
  };
  sockets = await MdnsSockets.open({
    ...(interfaces ? { interfaces } : {}),
    ...(options.mdnsPort !== undefined ? { port: options.mdnsPort } : {}),
    limits,
    log,
    onLink: (link) => setImmediate(() => announce(link)),
    onPacket: (packet, from, link) => {
      if (packet.type !== 'query') return;
      const answer = answerQuestions(announcement, link.address, packet.questions);
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
  log.info({ instance: announcement.instance, links: open.links.map((l) => l.name) }, 'announcing on the local network');
  return {
    announcement,
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
