// The info-hash a mirror-list pointer names (docs/FORMATS.md, "Mirror-list pointer", btih): taken from a
// torrent of the list only after the list's own bytes were hashed as the torrent lays them out and found
// to be what it describes, so a publisher cannot point clients at a torrent of something else by mistake.
import { SourcemeshError } from '../errors.ts';
import { readBoundedBytes } from '../fs/bounded-read.ts';
import type { Limits } from '../limits.ts';
import { hashTorrentFiles } from '../torrent/file-hashes.ts';
import { readTorrent } from '../torrent/metainfo.ts';

/**
 * The hex info-hash of the torrent in `torrentFile`, which must hold exactly the list at `listFile`: the
 * v2 one (BEP 52, 64 hex digits) when the torrent is v2 or hybrid, else the v1 one (40).
 */
export async function listTorrentHash(torrentFile: string, listFile: string, limits: Limits): Promise<string> {
  const what = `--torrent ${torrentFile}`;
  const t = readTorrent(await readBoundedBytes(torrentFile, limits.torrentBytes, what, 'E_FORMAT'), what, limits);
  if (t.files.length !== 1) throw new SourcemeshError('E_INPUT', `${what}: holds ${t.files.length} files, not the mirror list alone`);
  const [f] = t.files as [typeof t.files[0]];
  const hashed = await hashTorrentFiles([{ path: listFile, pad: 0 }], t.pieceLength, t.v1Pieces !== undefined);
  const mine = hashed.files[0]!;
  const same = mine.size === f.size
    && (f.root === undefined || mine.root.equals(f.root))
    && (t.v1Pieces === undefined || hashed.v1Pieces!.equals(t.v1Pieces));
  if (!same) throw new SourcemeshError('E_CHECKSUM', `${what}: not a torrent of ${listFile} (its ${f.size} bytes or their hashes differ)`);
  return (t.infoHashV2 ?? t.infoHashV1)!.toString('hex');
}
