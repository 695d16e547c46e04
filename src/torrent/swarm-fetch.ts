// What `fetch --bittorrent` adds to a fetch: the torrents given (each checked against the manifest, or
// refused), their peers as extra sources of the distfiles they carry, and their piece layers (checked
// against the pinned merkleRoot) so that every piece from a peer or a mirror is checked on arrival.
import { SourcemeshError } from '../errors.ts';
import type { FetchEvent, FetchOptions } from '../fetch/fetcher.ts';
import { readBoundedBytes } from '../fs/bounded-read.ts';
import { LIMITS, type Limits } from '../limits.ts';
import type { Distfile, Manifest } from '../manifest/index.ts';
import { matchTorrent } from './check.ts';
import { readTorrent, type Torrent } from './metainfo.ts';
import { isPieceLength } from '../fetch/piece-map.ts';
import type { PieceMap } from '../fetch/segmented.ts';
import { fileOffsets } from './peer-source.ts';
import { LatePeers } from './late-peers.ts';
import { LeechUpload } from './leech-upload.ts';
import { PeerSwarm } from './peer-source.ts';
import type { Logger } from '../logger.ts';
import { networkInterfaces } from 'node:os';
import type { Dispatcher } from '../net/undici.ts';
import { announceTiers, announceTo } from './announce.ts';
import { newPeerId } from './seeder.ts';
import { TrackerTiers, isHttpTracker, nextAnnounceDelay, peerText, printable, type AnnounceParams } from './tracker.ts';

export interface SwarmFetch {
  options: Pick<FetchOptions, 'extraSources' | 'sourceWait' | 'pieceLayerFor' | 'onPieceVerified' | 'onEvent'>;
  /** Distfiles some torrent carries. */
  covered: number;
  /** Where verified pieces are offered to peers (undefined with --no-upload), and the bytes sent. */
  upload?: LeechUpload;
  /** Trackers that did not answer (one line each), and how many peers those that did named. */
  trackers: { answered: { url: string; peers: number }[]; failed: { url: string; code: string; message: string }[]; reannounced: number; learned: number };
  /** DHT lookups made again during the fetch, and the peers they named that were taken on (late-peers.ts). */
  dht: { relookups: number; learned: number };
  close(): Promise<void>;
}

/** Trackers to announce to (BEP 3): each torrent's own (BEP 12 tiers), then these, each a tier of its own. */
export interface TrackerOptions {
  extra: string[];
  dispatcher: Dispatcher;
  /** Shuffles each tier (BEP 12); Math.random otherwise. */
  random?: () => number;
}

/** Where to offer verified pieces to other peers while downloading; undefined: not at all (--no-upload). */
export interface UploadOptions {
  host: string;
  port: number;
  maxPeers: number;
  uploadRate: number;
  log?: Logger;
  /** Where the store keeps a verified file (Store.objectPath): a file the fetch accepted whole is offered from there. */
  objectPath?: (sha256: string) => string;
}

/**
 * `lookup`: more peers for a torrent (its v1 info-hash, or its v2 one cut to 20 bytes), from the DHT;
 * what it returns is only a list of addresses to try (every byte they send is checked).
 */
export async function swarmFetch(manifest: Manifest, torrentFiles: string[], peers: string[], limits: Limits = LIMITS, lookup?: (infoHash: Buffer) => Promise<string[]>, upload?: UploadOptions, announce?: (infoHash: Buffer, port: number) => Promise<void>, trackers?: TrackerOptions): Promise<SwarmFetch> {
  const byName = new Map<string, { t: Torrent; index: number; peers: string[]; key: string }>();
  const torrents: { t: Torrent; names: string[] }[] = [];
  for (const file of torrentFiles) {
    const what = `torrent ${file}`;
    const t = readTorrent(await readBoundedBytes(file, limits.torrentBytes, what, 'E_FORMAT'), what, limits);
    // The manifest is the only source of truth: a torrent that disagrees with it is refused whole.
    torrents.push({ t, names: matchTorrent(t, manifest, what).map((m) => m.name) });
  }
  // Leechers help each other: what we verify is offered to peers while we download (BEP 3), and, with a
  // DHT, announced there first (BEP 5) so that leechers who look the torrent up later find us.
  // One peer id for our handshakes, our uploads and our announces: a peer that greets with it is us.
  const peerId = newPeerId();
  const up = upload ? await LeechUpload.start({ ...upload, limits, peerId }) : undefined;
  const self = up ? ownAddresses(up.port) : new Set<string>();
  const tracked: SwarmFetch['trackers'] = { answered: [], failed: [], reannounced: 0, learned: 0 };
  const looked: SwarmFetch['dht'] = { relookups: 0, learned: 0 };
  // Peers a re-announce names that the downloads did not know: taken on by them (late-peers.ts).
  const late = new LatePeers(limits.swarmLatePeers);
  /** Torrents a tracker re-announces for (info-hash hex). */
  const watched = new Set<string>();
  const goodbyes: { url: string; params: () => AnnounceParams }[] = [];
  /** Some torrent has http trackers announced to during the fetch. */
  let announcing = false;
  const ending = new AbortController();
  const timers = new Set<NodeJS.Timeout>();
  // `url`: the tracker that answered last; undefined: none of `tiers` did yet (each failed at the start),
  // so they are tried again in order, with `started`, backing off from trackerIntervalFloorMs.
  const reannounce = (url: string | undefined, tiers: TrackerTiers, params: (event?: 'started' | 'stopped') => AnnounceParams, last: { interval: number; minInterval?: number } | { failures: number }, dispatcher: Dispatcher, key: string) => {
    const timer = setTimeout(async () => {
      timers.delete(timer);
      let next: typeof last = { failures: 'failures' in last ? last.failures + 1 : 1 };
      let answered = url;
      try {
        const io = { dispatcher, limits, signal: ending.signal };
        const r = url ? await announceTo(url, params(), io) : await announceTiers(tiers, params('started'), io);
        const response = 'response' in r ? r.response : 'peers' in r ? r : undefined;
        if (!url && 'url' in r && r.url && response) {
          answered = r.url;
          goodbyes.push({ url: r.url, params: () => params('stopped') });
        }
        if (response) {
          tracked.reannounced++;
          tracked.learned += late.learn(key, response.peers.map(peerText).filter((p) => !self.has(p)));
          next = response;
        }
      } catch {
        // A tracker that failed: asked again later, backing off.
      }
      if (!ending.signal.aborted) reannounce(answered, tiers, params, next, dispatcher, key);
    }, nextAnnounceDelay(last, limits));
    timer.unref(); // never what keeps the process alive
    timers.add(timer);
  };
  // BEP 5: the DHT is asked again during the fetch, as trackers are re-announced to, so a peer that
  // announced itself after our first lookup (a seeder that joined, another leecher) serves the same
  // downloads: soon after a lookup that named someone new, then less and less often (doubling from
  // swarmDhtLookupFloorMs to swarmDhtLookupCeilingMs); one lookup per torrent at a time, each bounded by
  // dhtQueryTimeoutMs. Our own announce (we upload) is made again with it, every dhtAnnounceEveryMs at most.
  const relookup = (key: string, keys: Buffer[], delay: number, announced: number) => {
    const timer = setTimeout(async () => {
      timers.delete(timer);
      let added = 0;
      try {
        if (up && announce && Date.now() - announced >= limits.dhtAnnounceEveryMs) {
          announced = Date.now();
          for (const k of keys) await announce(k, up.port).catch(() => {});
        }
        const found = await lookup!(keys[0]!);
        looked.relookups++;
        added = late.learn(key, found.filter((p) => !self.has(p)));
        looked.learned += added;
      } catch {
        // A lookup that failed (no DHT node answered): tried again later, as one that found nobody new.
      }
      if (!ending.signal.aborted) relookup(key, keys, added > 0 ? limits.swarmDhtLookupFloorMs : Math.min(limits.swarmDhtLookupCeilingMs, delay * 2), announced);
    }, delay);
    timer.unref();
    timers.add(timer);
  };
  for (const { t, names } of torrents) {
    up?.register(t, names, names.map((name) => manifest.distfiles.find((d) => d.name === name)?.sha256));
    const keys = [t.infoHashV1, t.infoHashV2?.subarray(0, 20)].filter((k): k is Buffer => k !== undefined);
    const key = keys[0]!.toString('hex');
    if (up && announce) for (const k of keys) await announce(k, up.port).catch(() => {}); // best effort: --peer and the lookup still work
    const found = lookup ? await lookup(keys[0]!) : [];
    if (lookup) {
      relookup(key, keys, limits.swarmDhtLookupFloorMs, Date.now());
      watched.add(key);
    }
    const fromTrackers: string[] = [];
    if (trackers) {
      const size = t.files.reduce((n, f) => n + f.size, 0);
      const counters = () => {
        const p = up?.progress(t) ?? { sent: 0, verified: 0 };
        return { uploaded: p.sent, downloaded: p.verified, left: Math.max(0, size - p.verified) };
      };
      // BEP 12 tiers, then --tracker; only http(s) ones, at most trackersPerTorrent of them.
      const all = [...t.trackerTiers, ...trackers.extra.map((u) => [u])];
      const skipped = all.flat().filter((u) => !isHttpTracker(u));
      for (const u of skipped.slice(0, limits.trackersPerTorrent)) tracked.failed.push({ url: printable(u), code: 'E_UNSUPPORTED', message: `tracker ${printable(u)}: not an http(s) tracker (UDP trackers, BEP 15, are not spoken)` });
      let room = limits.trackersPerTorrent;
      const tiers = new TrackerTiers(all.map((tier) => tier.filter(isHttpTracker).filter(() => room-- > 0)), trackers.random ?? Math.random);
      // BEP 52: a hybrid's swarm is found under both info-hashes (v1, and v2 cut to 20 bytes).
      for (const infoHash of keys) {
        const params = (event?: 'started' | 'stopped'): AnnounceParams => ({ infoHash, peerId, port: up?.port ?? 0, ...counters(), event, numwant: event === 'stopped' ? 0 : limits.trackerNumwant });
        const r = await announceTiers(tiers, params('started'), { dispatcher: trackers.dispatcher, limits });
        for (const e of r.errors) if (!tracked.failed.some((f) => f.message === e.message)) tracked.failed.push(e);
        if (r.url && r.response) {
          tracked.answered.push({ url: printable(r.url), peers: r.response.peers.length });
          fromTrackers.push(...r.response.peers.map(peerText));
          goodbyes.push({ url: r.url, params: () => params('stopped') });
        }
        if (tiers.order().length === 0) continue;
        // BEP 3: announce again as the tracker's interval says (held between our floor and ceiling), so a
        // long download stays listed and its counters current, and peers that joined later are learned;
        // trackers that all failed are tried again (a tracker down at the start); until the fetch ends.
        reannounce(r.url && r.response ? r.url : undefined, tiers, params, r.response ?? { failures: 1 }, trackers.dispatcher, key);
        watched.add(key);
        announcing = true;
      }
    }
    const all = [...new Set([...peers, ...found, ...fromTrackers])].filter((p) => !self.has(p));
    late.known(key, all);
    names.forEach((name, index) => byName.set(name, { t, index, peers: all, key }));
  }
  const trackerTrouble = () => (tracked.failed.length ? `; ${tracked.failed.map((f) => `${f.message} [${f.code}]`).join('; ')}` : '');
  // No peer, and no way to find one (no DHT, no http tracker): nothing to wait for.
  if (byName.size && [...byName.values()].every((e) => e.peers.length === 0 && !watched.has(e.key))) {
    ending.abort();
    for (const t of timers) clearTimeout(t);
    await up?.close();
    throw new SourcemeshError('E_NO_SOURCE', `--bittorrent: no peer for any torrent (give --peer HOST:PORT, --dht-bootstrap to look them up in the DHT, or a torrent or --tracker with a tracker)${trackerTrouble()}`);
  }
  // A file that no source served (no peer answered, none known yet) waits for peers the DHT or a tracker
  // names later, up to swarmPeerWaitMs (--bt-wait) from now, then fails saying so (aria2c's
  // --bt-stop-timeout; libtorrent keeps waiting). Mirrors and upstream are asked as ever meanwhile.
  const waitStart = Date.now();
  const waitUntil = waitStart + limits.swarmPeerWaitMs;
  const swarm = new PeerSwarm({ limits, peerId });
  return {
    covered: byName.size,
    upload: up,
    options: {
      extraSources: (d: Distfile) => {
        const e = byName.get(d.name);
        if (!e) return [];
        // A torrent a tracker re-announces for, or the DHT is asked again for: a few places for the peers
        // they name later (one connection per peer, as for any other).
        const later = watched.has(e.key) ? late.sourcesFor(e.key, (p) => swarm.sources(e.t, e.index, [p])[0]!) : [];
        return [...swarm.sources(e.t, e.index, e.peers), ...later];
      },
      sourceWait: {
        mark: (d: Distfile) => {
          const e = byName.get(d.name);
          return e ? late.learnedOf(e.key).length : 0;
        },
        wait: async (d: Distfile, mark: number, signal?: AbortSignal) => {
          const e = byName.get(d.name);
          if (!e || !watched.has(e.key)) return undefined;
          if (await late.waitForMore(e.key, mark, waitUntil, signal)) return true;
          const some = e.peers.length > 0 || late.learnedOf(e.key).length > 0;
          const how = [lookup && `DHT lookups: ${looked.relookups + 1}`, announcing && `tracker announces answered: ${tracked.answered.length + tracked.reannounced}`].filter(Boolean).join(', ');
          return `${some ? 'no other peer' : 'no peer'} found in ${Math.round((Date.now() - waitStart) / 1000)} s (--bt-wait ${limits.swarmPeerWaitMs / 1000}${how ? `; ${how}` : ''})${trackerTrouble()}`;
        },
      },
      pieceLayerFor: (d: Distfile, size: number) => {
        const e = byName.get(d.name);
        const f = e?.t.files[e.index];
        if (!e || !f || f.size !== size) return undefined;
        // A layer under the root the manifest pins (matchTorrent compared them) checks every source.
        if (d.merkleRoot && f.root?.toString('hex') === d.merkleRoot && f.layer.length > 0) return { pieceLength: e.t.pieceLength, layer: f.layer };
        // Else the v1 pieces, which check this torrent's peers only (src/fetch/segmented.ts, PieceMap).
        return v1PieceMap(e.t, e.index);
      },
      ...(up && {
        onPieceVerified: (d: Distfile, index: number, path: string, pieceLength: number, leaves?: Buffer) => {
          // Best effort: a piece we cannot read back is not offered; the download goes on.
          void up.pieceVerified(d, index, path, pieceLength, leaves).catch(() => {});
        },
      }),
      ...(up && upload?.objectPath && {
        onEvent: (e: FetchEvent) => {
          // A file accepted whole (fetched, or already in the store): offered from the store. Best effort too.
          if (e.type === 'done' && e.outcome.status !== 'failed' && e.outcome.sha256) void up.fileVerified(e.outcome.name, upload.objectPath!(e.outcome.sha256)).catch(() => {});
        },
      }),
    },
    trackers: tracked,
    dht: looked,
    close: async () => {
      ending.abort();
      for (const t of timers) clearTimeout(t);
      swarm.close();
      // BEP 3 `stopped` to the trackers that listed us, all within one trackerTimeoutMs, before the port closes.
      if (trackers && goodbyes.length) {
        const signal = AbortSignal.timeout(limits.trackerTimeoutMs);
        await Promise.allSettled(goodbyes.map((g) => announceTo(g.url, g.params(), { dispatcher: trackers.dispatcher, limits, signal })));
      }
      await up?.close();
    },
  };
}

/** HOST:PORT of each address of this machine at `port`: our own upload listener, as a tracker may name it back to us. */
function ownAddresses(port: number): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(peerText({ host: a.address.replace(/%.*$/, ''), port }));
  return out;
}

/**
 * The v1 piece hashes (BEP 3: SHA-1 of each piece of the files laid end to end) of file `index`, when its
 * pieces are its own: it starts on a piece boundary and ends on one or at the end of the torrent, in a v1
 * torrent or a single-file hybrid (a multi-file hybrid's last piece of a file hashes its pad too).
 */
export function v1PieceMap(t: Torrent, index: number): PieceMap | undefined {
  const f = t.files[index];
  if (!t.v1Pieces || !f || f.size === 0 || !isPieceLength(t.pieceLength) || (t.version === 'hybrid' && t.multiFile) || t.version === 'v2') return undefined;
  const start = fileOffsets(t)[index]!;
  const total = t.v1Size ?? t.files.reduce((n, x) => n + x.size, 0);
  const end = start + f.size;
  if (start % t.pieceLength !== 0 || (end !== total && end % t.pieceLength !== 0)) return undefined;
  const first = start / t.pieceLength;
  const count = Math.ceil(f.size / t.pieceLength);
  const layer = Array.from({ length: count }, (_, i) => t.v1Pieces!.subarray((first + i) * 20, (first + i + 1) * 20));
  return { pieceLength: t.pieceLength, layer, hash: 'sha1' };
}
