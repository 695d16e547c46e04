// Which sources to try for a distfile, in which order. Pure: randomness comes in as an argument.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SourcemeshError } from '../errors.ts';
import type { Distfile } from '../manifest/distfile.ts';

export const POLICIES = ['mirrors-first', 'upstream-first', 'upstream-only', 'mirrors-only'] as const;
export type Policy = (typeof POLICIES)[number];

/** A mirror as the user named it: an http(s) base URL or a local directory. */
export type Mirror = { kind: 'http'; base: string } | { kind: 'dir'; dir: string };

/** Where bytes come from: a URL, a local file, or a git snapshot we generate ourselves. */
export type Location = { type: 'http'; url: string } | { type: 'file'; path: string } | { type: 'git' };

export interface Source {
  role: 'mirror' | 'upstream';
  /** What to call this source in messages and reports: the mirror's base or the upstream URL. */
  label: string;
  location: Location;
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
  /** Prefer mirrors by their record (reputation); absent: a uniform random order. */
  mirrorWeight?: (m: Mirror) => number;
}

export function planSources(d: Distfile, opts: PlanOptions): Source[] {
  const ordered0 = opts.mirrorWeight ? weightedOrder(opts.mirrors, opts.mirrorWeight, opts.random) : shuffle(opts.mirrors, opts.random);
  const mirrors = ordered0.map((m) => mirrorSource(m, d));
  const upstream: Source[] = d.urls.map((url) => ({ role: 'upstream', label: url, location: { type: 'http', url } }));
  if (opts.generateGit && d.git) upstream.unshift({ role: 'upstream', label: `git ${d.git.repo} ${d.git.ref}`, location: { type: 'git' } });
  const ordered =
    opts.policy === 'mirrors-first' ? [...mirrors, ...upstream]
    : opts.policy === 'upstream-first' ? [...upstream, ...mirrors]
    : opts.policy === 'upstream-only' ? upstream
    : mirrors;
  return opts.offline ? ordered.filter((s) => s.location.type !== 'http') : ordered;
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

/** Order by weight with randomness (Efraimidis-Spirakis: key = u^(1/w)), so load still spreads. */
export function weightedOrder<T>(items: T[], weight: (t: T) => number, random: () => number): T[] {
  return items.map((t) => ({ t, key: random() ** (1 / Math.max(weight(t), 1e-9)) })).sort((a, b) => b.key - a.key).map((x) => x.t);
}
