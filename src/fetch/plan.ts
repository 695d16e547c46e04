// Which sources to try for a distfile, in which order. Pure: randomness comes in as an argument.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SourcemeshError } from '../errors.ts';
import type { Distfile } from '../manifest/distfile.ts';
import type { OpenOptions, Opened } from './transport.ts';

export const POLICIES = ['mirrors-first', 'upstream-first', 'upstream-only', 'mirrors-only'] as const;
export type Policy = (typeof POLICIES)[number];

/** A mirror as the user named it: an http(s) base URL or a local directory. */
export type Mirror = { kind: 'http'; base: string } | { kind: 'dir'; dir: string };

/**
 * Where bytes come from: a URL, a local file, a git snapshot we generate ourselves, or a source that opens
 * ranges its own way (`opener`: a BitTorrent peer, src/torrent/peer-source.ts), whose bytes are checked
 * like any other source's.
 */
export type Location = { type: 'http'; url: string } | { type: 'file'; path: string } | { type: 'git' } | {
  type: 'opener';
  open: (o: OpenOptions) => Promise<Opened>;
  /**
   * Whether the source says it has bytes `start`..`end` (inclusive) now: a peer's bitfield and `have`s
   * (BEP 3). Undefined: it does not say (not connected yet), so it may be asked.
   */
  has?: (start: number, end: number) => boolean | undefined;
  /**
   * Changes whenever what `has` says may have changed (a bitfield, a `have`, a new connection), so a
   * scheduler may keep its answers until then. Without it, `has` is asked afresh each time.
   */
  hasVersion?: () => number;
};

export interface Source {
  role: 'mirror' | 'upstream' | 'peer';
  /** What to call this source in messages and reports: the mirror's base or the upstream URL. */
  label: string;
  location: Location;
  /**
   * Asked only once every source without this mark has failed: a mirror with a recorded lie (its
   * weight is 0). Plans put such sources last, and the segmented scheduler neither hedges to them nor
   * gives them pieces while another source is usable (issue 11, item 9: a proven liar is never tried
   * first, not even now and then).
   */
  lastResort?: true;
}

/** Parse `--mirror` values: `http(s)://BASE`, `file:///DIR` or a plain path. */
export function parseMirror(spec: string): Mirror {
  if (/^https?:\/\//i.test(spec)) {
    let u: URL;
    try {
      u = new URL(spec);
    } catch {
      throw new SourcemeshError('E_USAGE', `--mirror ${spec}: not a valid URL`);
    }
    return { kind: 'http', base: u.href.replace(/\/+$/, '') };
  }
  if (/^file:/i.test(spec)) return { kind: 'dir', dir: fileURLToPath(spec) };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) throw new SourcemeshError('E_USAGE', `--mirror ${spec}: only http, https and file mirrors are supported`);
  return { kind: 'dir', dir: path.resolve(spec) };
}

export function mirrorLabel(m: Mirror): string {
  return m.kind === 'http' ? m.base : m.dir;
}

/** Where a mirror keeps NAME: live-bootstrap's flat layout, BASE/NAME. */
export function mirrorSource(m: Mirror, d: Distfile): Source {
  const location: Location = m.kind === 'http'
    ? { type: 'http', url: `${m.base}/${encodeURIComponent(d.name)}` }
    : { type: 'file', path: path.join(m.dir, d.name) };
  return { role: 'mirror', label: mirrorLabel(m), location };
}

export interface PlanOptions {
  mirrors: Mirror[];
  policy: Policy;
  /** No network: only local directory mirrors. */
  offline: boolean;
  /** Uniform in [0, 1): pass a seeded generator in tests. */
  random: () => number;
  /** Make git snapshots ourselves (before the forge's tarball URL): what mirrors do. */
  generateGit?: boolean;
  /**
   * Prefer mirrors by their record (reputation); absent: a uniform random order. A weight of 0 (or
   * less) marks a mirror as a last resort (`Source.lastResort`): after every other source, always.
   */
  mirrorWeight?: (m: Mirror) => number;
}

export function planSources(d: Distfile, opts: PlanOptions): Source[] {
  const weight = opts.mirrorWeight;
  const ordered0 = weight ? weightedOrder(opts.mirrors, weight, opts.random) : shuffle(opts.mirrors, opts.random);
  const mirrors = ordered0.map((m): Source => (weight && !(weight(m) > 0) ? { ...mirrorSource(m, d), lastResort: true } : mirrorSource(m, d)));
  const upstream: Source[] = d.urls.map((url) => ({ role: 'upstream', label: url, location: { type: 'http', url } }));
  if (opts.generateGit && d.git) upstream.unshift({ role: 'upstream', label: `git ${d.git.repo} ${d.git.ref}`, location: { type: 'git' } });
  const ordered =
    opts.policy === 'mirrors-first' ? [...mirrors, ...upstream]
    : opts.policy === 'upstream-first' ? [...upstream, ...mirrors]
    : opts.policy === 'upstream-only' ? upstream
    : mirrors;
  // Last resorts after everything else, upstream included, whatever the policy (stable: their own
  // order is kept).
  const usable = [...ordered.filter((s) => !s.lastResort), ...ordered.filter((s) => s.lastResort)];
  return opts.offline ? usable.filter((s) => s.location.type !== 'http') : usable;
}

/** Fisher-Yates on a copy. */
export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * Order by weight with randomness (Efraimidis-Spirakis: key = u^(1/w)), so load still spreads. Items of
 * weight 0 (or less, or NaN) come after every item of positive weight, always, in a uniform random
 * order among themselves: the limit of the same rule (u^(1/w) -> 0 as w -> 0), without leaving it to
 * floating point.
 */
export function weightedOrder<T>(items: readonly T[], weight: (t: T) => number, random: () => number): T[] {
  const keyed = items.map((t) => {
    const w = weight(t);
    return w > 0 ? { t, barred: false, key: random() ** (1 / w) } : { t, barred: true, key: random() };
  });
  return keyed.sort((a, b) => (a.barred !== b.barred ? (a.barred ? 1 : -1) : b.key - a.key)).map((x) => x.t);
}
