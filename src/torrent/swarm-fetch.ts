// What `fetch --bittorrent` adds to a fetch: the torrents given (each checked against the manifest, or
// refused), their peers as extra sources of the distfiles they carry, and their piece layers (checked
// against the pinned merkleRoot) so that every piece from a peer or a mirror is checked on arrival.
import { SourcemeshError } from '../errors.ts';
import type { FetchOptions } from '../fetch/fetcher.ts';
import { readBoundedBytes } from '../fs/bounded-read.ts';
import { LIMITS, type Limits } from '../limits.ts';
import type { Distfile, Manifest } from '../manifest/index.ts';
import { matchTorrent } from './check.ts';
import { readTorrent, type Torrent } from './metainfo.ts';
import { LeechUpload } from './leech-upload.ts';
import { PeerSwarm } from './peer-source.ts';
import type { Logger } from '../logger.ts';

export interface SwarmFetch {
  options: Pick<FetchOptions, 'extraSources' | 'pieceLayerFor' | 'onPieceVerified'>;
  /** Distfiles some torrent carries. */
  covered: number;
  /** Where verified pieces are offered to peers (undefined with --no-upload), and the bytes sent. */
  upload?: LeechUpload;
  close(): Promise<void>;
}

/** Where to offer verified pieces to other peers while downloading; undefined: not at all (--no-upload). */
export interface UploadOptions {
  host: string;
  port: number;
  maxPeers: number;
  uploadRate: number;
  log?: Logger;
}

/**
 * `lookup`: more peers for a torrent (its v1 info-hash, or its v2 one cut to 20 bytes), from the DHT;
 * what it returns is only a list of addresses to try (every byte they send is checked).
 */
export async function swarmFetch(manifest: Manifest, torrentFiles: string[], peers: string[], limits: Limits = LIMITS, lookup?: (infoHash: Buffer) => Promise<string[]>, upload?: UploadOptions, announce?: (infoHash: Buffer, port: number) => Promise<void>): Promise<SwarmFetch> {
  const byName = new Map<string, { t: Torrent; index: number; peers: string[] }>();
  const torrents: { t: Torrent; names: string[] }[] = [];
  for (const file of torrentFiles) {
    const what = `torrent ${file}`;
    const t = readTorrent(await readBoundedBytes(file, limits.torrentBytes, what, 'E_FORMAT'), what, limits);
    // The manifest is the only source of truth: a torrent that disagrees with it is refused whole.
    torrents.push({ t, names: matchTorrent(t, manifest, what).map((m) => m.name) });
  }
  // Leechers help each other: what we verify is offered to peers while we download (BEP 3), and, with a
  // DHT, announced there first (BEP 5) so that leechers who look the torrent up later find us.
  const up = upload ? await LeechUpload.start({ ...upload, limits }) : undefined;
  for (const { t, names } of torrents) {
    names.forEach((name, index) => up?.register(name, t, index));
    const keys = [t.infoHashV1, t.infoHashV2?.subarray(0, 20)].filter((k): k is Buffer => k !== undefined);
    if (up && announce) for (const k of keys) await announce(k, up.port).catch(() => {}); // best effort: --peer and the lookup still work
    const found = lookup ? await lookup(keys[0]!) : [];
    const all = [...new Set([...peers, ...found])];
    names.forEach((name, index) => byName.set(name, { t, index, peers: all }));
  }
  if (byName.size && [...byName.values()].every((e) => e.peers.length === 0)) {
    await up?.close();
    throw new SourcemeshError('E_NO_SOURCE', `--bittorrent: no peer for any torrent (give --peer HOST:PORT, or --dht-bootstrap to look them up in the DHT)`);
  }
  const swarm = new PeerSwarm({ limits });
  return {
    covered: byName.size,
    upload: up,
    options: {
      extraSources: (d: Distfile) => {
        const e = byName.get(d.name);
        return e ? swarm.sources(e.t, e.index, e.peers) : [];
      },
      pieceLayerFor: (d: Distfile, size: number) => {
        const e = byName.get(d.name);
        const f = e?.t.files[e.index];
        // Only a layer under the root the manifest pins (matchTorrent compared them), for this size.
        if (!e || !f || !d.merkleRoot || f.root?.toString('hex') !== d.merkleRoot || f.size !== size || f.layer.length === 0) return undefined;
        return { pieceLength: e.t.pieceLength, layer: f.layer };
      },
      ...(up && {
        onPieceVerified: (d: Distfile, index: number, path: string, pieceLength: number) => {
          // Best effort: a piece we cannot read back is not offered; the download goes on.
          void up.pieceVerified(d, index, path, pieceLength).catch(() => {});
        },
      }),
    },
    close: async () => {
      swarm.close();
      await up?.close();
    },
  };
}
