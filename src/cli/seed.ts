// sourcemesh seed --root DIR | --local [STORE] [--torrent FILE]... [--no-torrent-trackers] [--listen HOST:PORT] [--max-peers N] [--upload-rate R] [--dht] [--tracker URL]...
// Every verified file of a mirror root (as `serve` indexes it) or of the store, seeded to BitTorrent peers.
import { Command } from 'commander';
import path from 'node:path';
import { pino } from 'pino';
import { SourcemeshError, asSourcemeshError } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import type { Logger } from '../logger.ts';
import { indexRoot, indexStore } from '../mirror/file-index.ts';
import { defaultStoreRoot } from '../store/store.ts';
import { Seeder, prepareSeedFile, prepareSeedTorrent, type SeededFile, type SeededTorrent } from '../torrent/seeder.ts';
import { readBoundedBytes } from '../fs/bounded-read.ts';
import { readTorrent } from '../torrent/metainfo.ts';
import { formatBytes, nonNegativeInt, positiveInt, type Io } from './output.ts';
import { parseListen } from './listen.ts';
import { parseSize } from './units.ts';
import { addDhtOptions, type DhtFlags } from './dht-options.ts';
import { startDht } from './mirrors-dht.ts';
import { stateDirOf } from '../mirror/sync.ts';
import { addSeedDiscoveryOptions, checkSeedDiscoveryFlags, startSeedDiscovery, type SeedDiscoveryFlags } from './seed-discovery.ts';
import { createAgent } from '../fetch/http.ts';
import { Announcer, type AnnounceGroup } from '../torrent/announce.ts';
import { TrackerTiers, isHttpTracker, printable } from '../torrent/tracker.ts';

interface SeedFlags extends DhtFlags, SeedDiscoveryFlags {
  dht?: boolean;
  root?: string;
  local?: string | true;
  listen: string;
  maxPeers: string;
  uploadRate: string;
  tracker: string[];
  torrent: string[];
  torrentTrackers: boolean;
}

export function seedCommand(io: Io, setExit: (n: number) => void, signal: AbortSignal): Command {
  return addSeedDiscoveryOptions(addDhtOptions(new Command('seed')))
    .description('seed every verified file of a mirror root (or the store) to BitTorrent peers (v1, v2 and hybrid torrents of `torrent create`)')
    .option('--root <dir>', 'the mirror root that `mirror sync` keeps (the files `serve --root` serves)')
    .option('--local [store]', 'seed the store instead (default $SOURCEMESH_STORE or $XDG_CACHE_HOME/sourcemesh)')
    .option('--listen <host:port>', 'address and TCP port for peers', '0.0.0.0:6881')
    .option('--max-peers <n>', 'connected peers at most', String(LIMITS.seedMaxPeers))
    .option('--upload-rate <rate>', 'bytes per second for all peers together, e.g. 10M; 0 for no limit', '0')
    .option('--dht', 'announce every seeded info-hash in the BitTorrent DHT (BEP 5); implied by --dht-bootstrap')
    .option('--tracker <url>', 'announce every seeded info-hash to this HTTP tracker (BEP 3), as its interval asks, until stopped (repeatable)', (v: string, p: string[]) => [...p, v], [])
    .option('--torrent <file>', 'also seed this torrent (a `torrent create --multi-file` one, or one of another piece length): each of its files must be a verified file seeded here, of its size, pieces root and v1 pieces (repeatable); announced to its own trackers too', (v: string, p: string[]) => [...p, v], [])
    .option('--no-torrent-trackers', 'do not announce a --torrent to the trackers it names (announce, announce-list); --tracker and the DHT still')
    .action(async (o: SeedFlags) => {
      if ((o.root === undefined) === (o.local === undefined)) throw new SourcemeshError('E_USAGE', 'seed needs exactly one of --root DIR and --local [STORE]');
      const { host, port } = parseListen(o.listen);
      checkSeedDiscoveryFlags(o, host);
      const maxPeers = positiveInt('--max-peers', o.maxPeers, 100_000);
      for (const t of o.tracker) if (!isHttpTracker(t)) throw new SourcemeshError('E_USAGE', `--tracker ${t}: not an http(s) URL (UDP trackers, BEP 15, are not spoken)`);
      const uploadRate = o.uploadRate === '0' ? 0 : parseSize('--upload-rate', o.uploadRate);
      nonNegativeInt('--upload-rate', String(uploadRate));
      const index = o.root !== undefined ? await indexRoot(path.resolve(o.root)) : await indexStore(path.resolve(o.local === true ? defaultStoreRoot(io.env) : o.local!));
      const files: SeededFile[] = [];
      for (const f of index.byName.values()) {
        if (/^[0-9a-f]{64}$/.test(f.name) && f.name === f.sha256) continue; // a store object without a name: no torrent names it
        try {
          files.push(await prepareSeedFile({ name: f.name, path: f.path, size: f.size, sha256: f.sha256 }));
        } catch (err) {
          const e = asSourcemeshError(err);
          io.stderr.write(`sourcemesh seed: not seeding ${f.name}: ${e.message} [${e.code}]\n`);
        }
      }
      // A torrent given is the operator's word: one that does not match the verified files stops the seed.
      const byName = new Map(files.map((f) => [f.name, f]));
      const torrents: SeededTorrent[] = [];
      /** Each torrent's own trackers (BEP 12 tiers; only http(s), at most trackersPerTorrent), unless --no-torrent-trackers. */
      const ownTrackers: string[][][] = [];
      for (const file of o.torrent) {
        const what = `torrent ${file}`;
        const t = readTorrent(await readBoundedBytes(file, LIMITS.torrentBytes, what, 'E_FORMAT'), what);
        torrents.push(await prepareSeedTorrent(t, what, byName));
        let room = LIMITS.trackersPerTorrent;
        // A --tracker announces every info-hash already: not twice to the same tracker.
        const tiers = o.torrentTrackers ? t.trackerTiers : [];
        for (const u of tiers.flat().filter((x) => !isHttpTracker(x)).slice(0, LIMITS.trackersPerTorrent)) io.stderr.write(`sourcemesh seed: ${what}: tracker ${printable(u)} skipped: not an http(s) tracker (UDP trackers, BEP 15, are not spoken)\n`);
        ownTrackers.push(tiers.map((tier) => tier.filter(isHttpTracker).filter((u) => !o.tracker.includes(u)).filter(() => room-- > 0)).filter((tier) => tier.length > 0));
      }
      const logger = pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } }, pino.destination({ dest: 1, sync: true }));
      const log: Logger = logger;
      const seeder = await Seeder.start(files, { host, port, maxPeers, uploadRate, log }, torrents);
      // Each info-hash a peer may greet with or look us up by (v1, and v2 cut to 20 bytes), with what was sent under it.
      const keys = [
        ...files.flatMap((f) => [f.infoHashes.hybrid.v1, f.infoHashes.hybrid.v2.slice(0, 40), f.infoHashes.v1, f.infoHashes.v2.slice(0, 40)].map((h) => ({ h, sent: () => f.sent ?? 0 }))),
        ...torrents.flatMap((t) => [t.infoHashV1, t.infoHashV2?.slice(0, 40)].filter((h): h is string => h !== undefined).map((h) => ({ h, sent: () => t.sent ?? 0 }))),
      ];
      io.stdout.write(JSON.stringify({
        level: 'info', time: new Date().toISOString(), msg: 'listening', address: seeder.url, port: seeder.port,
        files: files.map((f) => ({ name: f.name, size: f.size, pieceLength: f.pieceLength, merkleRoot: f.root.toString('hex'), infoHashes: f.infoHashes })),
        torrents: torrents.map((t) => ({ torrent: t.what.slice('torrent '.length), name: t.name, files: t.layout.files.length, pieceLength: t.layout.pieceLength, pieces: t.layout.pieces, infoHashV1: t.infoHashV1, infoHashV2: t.infoHashV2 })),
      }) + '\n');
      // BEP 5: announce each info-hash a peer may look us up by (v1, and v2 cut to 20 bytes), again every
      // limits.dhtAnnounceEveryMs (15 minutes; nodes forget peers after some 30).
      const stateDir = o.root !== undefined ? stateDirOf(path.resolve(o.root)) : path.resolve(o.local === true ? defaultStoreRoot(io.env) : o.local!);
      const dht = o.dht || o.dhtBootstrap.length > 0 || o.republish.length > 0 ? await startDht(o, stateDir) : undefined;
      const announce = async () => {
        for (const { h } of keys) {
          await dht!.announce(Buffer.from(h, 'hex'), seeder.port).catch((err: Error) => log.warn({ infoHash: h, error: err.message }, 'dht announce failed'));
        }
        log.info({ files: files.length, torrents: torrents.length, nodes: dht!.nodeCount }, 'announced in the dht');
      };
      const reannounce = dht ? setInterval(() => void announce(), LIMITS.dhtAnnounceEveryMs) : undefined;
      if (dht) await announce();
      const discovery = await startSeedDiscovery(o, { keyDir: stateDir, host, seederPort: seeder.port, dht, log, io }).catch(async (err: unknown) => {
        clearInterval(reannounce);
        await dht?.close();
        await seeder.close();
        throw err;
      });
      // BEP 3 trackers: each seeded info-hash, as complete (left 0), with what was sent of its file so far;
      // each --torrent's info-hashes also to that torrent's own trackers (BEP 12 tiers).
      const announced = (h: string, sent: () => number) => ({ infoHash: Buffer.from(h, 'hex'), counters: () => ({ uploaded: sent(), downloaded: 0, left: 0 }) });
      const groups: AnnounceGroup[] = torrents.flatMap((t, i) => (ownTrackers[i]!.length ? [{
        tiers: new TrackerTiers(ownTrackers[i]!, Math.random),
        hashes: [t.infoHashV1, t.infoHashV2?.slice(0, 40)].filter((h): h is string => h !== undefined).map((h) => announced(h, () => t.sent ?? 0)),
      }] : []));
      const dispatcher = o.tracker.length || groups.length ? createAgent(LIMITS) : undefined;
      const announcer = dispatcher && new Announcer(o.tracker, keys.map(({ h, sent }) => announced(h, sent)), { peerId: seeder.peerId, port: seeder.port, dispatcher, log }, groups);
      await announcer?.start();
      io.stderr.write(`seeding ${files.length} file(s) (${formatBytes(files.reduce((n, f) => n + f.size, 0))})${torrents.length ? ` and ${torrents.length} torrent(s) of them` : ''} to peers at ${seeder.url}\n`);
      if (!signal.aborted) await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      clearInterval(reannounce);
      await discovery.close();
      await announcer?.close();
      await dispatcher?.close();
      await dht?.close();
      await seeder.close();
      logger.info({ uploaded: seeder.uploaded, hashesSent: seeder.hashesSent, hashesRejected: seeder.hashesRejected, banned: Object.fromEntries(seeder.banned) }, 'stopped');
      io.stderr.write(`stopped: ${formatBytes(seeder.uploaded)} uploaded, ${seeder.hashesSent} hash request(s) answered, ${seeder.banned.size} peer(s) banned\n`);
      setExit(0);
    });
}
