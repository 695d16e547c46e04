// A torrent against the manifest: the manifest is the only source of truth, so a torrent (ours or
// anyone's) is used only when each of its files is a distfile of the manifest with the size and BEP 52
// pieces root the manifest pins, whatever else the torrent says.
import { SourcemeshError } from '../errors.ts';
import type { Distfile, Manifest } from '../manifest/index.ts';
import type { Torrent } from './metainfo.ts';

export interface TorrentMatch {
  name: string;
  distfile: Distfile;
  size: number;
  /** What the manifest pinned and the torrent agreed with; sha256 is always checked on the whole file later. */
  checked: ('size' | 'merkleRoot')[];
}

/** Each file of `t` matched to its distfile; E_VERIFY on the first disagreement, naming it. */
export function matchTorrent(t: Torrent, manifest: Manifest, what: string): TorrentMatch[] {
  const byName = new Map(manifest.distfiles.map((d) => [d.name, d]));
  const out: TorrentMatch[] = [];
  for (const f of t.files) {
    if (f.path.length !== 1) throw new SourcemeshError('E_VERIFY', `${what}: file ${f.path.join('/')} is in a directory; distfiles have plain names`);
    const name = f.path[0]!;
    const d = byName.get(name);
    if (!d) throw new SourcemeshError('E_VERIFY', `${what}: file ${name} is not a distfile of the manifest ${manifest.name}`);
    const checked: TorrentMatch['checked'] = [];
    if (d.size !== undefined) {
      if (d.size !== f.size) throw new SourcemeshError('E_VERIFY', `${what}: file ${name} is ${f.size} bytes, the manifest pins ${d.size}`, { name, expected: d.size, actual: f.size });
      checked.push('size');
    }
    if (d.merkleRoot !== undefined && t.version !== 'v1') {
      const root = f.root?.toString('hex') ?? '0'.repeat(64);
      if (root !== d.merkleRoot) throw new SourcemeshError('E_VERIFY', `${what}: file ${name} has pieces root ${root}, the manifest pins merkleRoot ${d.merkleRoot}`, { name, expected: d.merkleRoot, actual: root });
      checked.push('merkleRoot');
    }
    out.push({ name, distfile: d, size: f.size, checked });
  }
  return out;
}
