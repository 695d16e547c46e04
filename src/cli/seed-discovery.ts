// What `seed` does for discovery (issue 16), kept out of seed.ts: `--announce` publishes the seed on the
// local network (DNS-SD over mDNS, role seed; TXT bt= its peer-wire port) and answers the discovery
// challenge on an HTTP port of its own, the SRV port, since the peer-wire port speaks only BitTorrent;
// `--republish dht:HEXKEY?salt=NAME` keeps mirror-list pointers alive in the DHT (src/discovery/republish.ts).
import type { Command } from 'commander';
import { SourcemeshError } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import type { Logger } from '../logger.ts';
import { announceNode, interfacesFor, type Announcer } from '../discovery/announce.ts';
import { startChallengeServer, type ChallengeServer } from '../discovery/challenge-server.ts';
import type { DhtNode } from '../discovery/dht.ts';
import { parsePointerAddress, type PointerAddress } from '../discovery/pointer.ts';
import { PointerRepublisher } from '../discovery/republish.ts';
import { nodeKeyFiles, resolveNodeKey } from '../mirror/inventory.ts';
import type { Io } from './output.ts';
import { formatDuration, parseDuration } from './units.ts';

export interface SeedDiscoveryFlags {
  announce?: boolean;
  announceInterface?: string[];
  key?: string;
  keyName?: string;
  republish: string[];
  republishEvery: string;
}

export function addSeedDiscoveryOptions(cmd: Command): Command {
  return cmd
    .option('--announce', 'announce the seed on the local network (DNS-SD over mDNS, _sourcemesh._tcp, role seed) for `sourcemesh discover`, which checks it by a challenge signed with the node key')
    .option('--announce-interface <name...>', 'interfaces to announce on (default: every interface that is up, loopback aside; IPv4, IPv6 or both as the listen address serves)')
    .option('--key <file>', 'the node key the announcement names and the challenge is signed with (default ROOT/.sourcemesh/node.key or STORE/node.key, as serve\'s; created when missing)')
    .option('--key-name <name>', 'the name of a node key created now (default this host\'s name)')
    .option('--republish <dht:HEXKEY?salt=NAME>', 'keep this mirror-list pointer alive in the DHT: get it and put it again, unchanged, on a schedule (repeatable; joins the DHT)', (v: string, p: string[]) => [...p, v], [])
    .option('--republish-every <duration>', 'how often --republish puts the pointers again (BEP 44 nodes drop items after some 2 hours)', `${LIMITS.dhtRepublishMs / 60_000}m`);
}

/** The flags checked before anything starts: the pointer addresses and the schedule. */
export function checkSeedDiscoveryFlags(o: SeedDiscoveryFlags, listenHost: string): { pointers: PointerAddress[]; everyMs: number } {
  if (o.announce && !o.announceInterface) interfacesFor(listenHost); // a loopback address: refused now, before anything starts
  const pointers = o.republish.map((a) => parsePointerAddress(a, '--republish'));
  const everyMs = parseDuration('--republish-every', o.republishEvery);
  if (everyMs < 1000 || everyMs > 2 * 60 * 60_000) throw new SourcemeshError('E_USAGE', `--republish-every ${o.republishEvery}: must be from 1s to 2h (BEP 44 items live about 2 hours)`);
  return { pointers, everyMs };
}

export interface SeedDiscovery {
  close(): Promise<void>;
}

export async function startSeedDiscovery(o: SeedDiscoveryFlags, at: { keyDir: string; host: string; seederPort: number; dht: DhtNode | undefined; log: Logger; io: Io }): Promise<SeedDiscovery> {
  const { pointers, everyMs } = checkSeedDiscoveryFlags(o, at.host);
  let challenge: ChallengeServer | undefined;
  let announcer: Announcer | undefined;
  let republisher: PointerRepublisher | undefined;
  const close = async () => {
    await announcer?.close(); // goodbye first
    await challenge?.close();
    await republisher?.close();
  };
  try {
    if (o.announce || o.announceInterface) {
      const { key, file, created } = await resolveNodeKey(at.keyDir, o.key, o.keyName);
      if (created) at.io.stderr.write(`created the node key ${file} (public key in ${nodeKeyFiles(at.keyDir).pub})\n`);
      challenge = await startChallengeServer({ key, host: at.host, port: 0 });
      announcer = await announceNode({
        key, port: challenge.port, roles: ['seed'], bittorrent: at.seederPort, listenHost: at.host, log: at.log,
        ...(o.announceInterface ? { interfaces: o.announceInterface } : {}),
      });
      at.io.stderr.write(`announcing ${JSON.stringify(announcer.announcement.instance)} on ${announcer.links().map((l) => `${l.name} (${l.address})`).join(', ')} (challenge on port ${challenge.port})\n`);
    }
    if (pointers.length > 0) {
      if (at.dht === undefined) throw new SourcemeshError('E_INTERNAL', '--republish without a DHT node');
      republisher = new PointerRepublisher(at.dht, pointers, { everyMs, log: at.log });
      const first = await republisher.start();
      const where = `DHT node on udp port ${at.dht.address().port}`;
      for (const r of first) at.io.stderr.write(r.error ? `not republishing yet (${where}): ${r.error}\n` : `republishing ${r.address} (seq ${r.seq}, ${r.nodes ? `put to ${r.nodes} DHT nodes` : 'held already by the DHT nodes closest to it'}) every ${formatDuration(everyMs)} (${where})\n`);
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { close };
}
