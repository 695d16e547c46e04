// The checker of a stress run: reads the history and asserts the promises, Jepsen style (pure: a list of
// records in, violations and figures out).
//
//   exports      no client ever exports a byte that does not verify (every exported file hashes to its pin)
//   completion   every fetch finishes when one honest mirror with every file stayed up and unfaulted for
//                the whole operation
//   attribution  every lie a client read is named by that client's fetch, and nothing else is ever
//                blamed for wrong bytes: no honest mirror, no upstream that served what was pinned (a
//                lie is known to be read when the client sent its next request on that connection;
//                others, such as a cancelled end-game duplicate, are counted but may go unread)
//   witnesses    no witness cosigns two different trees of one size (from the log's published checkpoints
//                and from each witness asked directly for the last one it cosigned)
//   log          no acknowledged log entry is lost: each release the log acknowledged is still included
//                in its newest checkpoint at the end (`release verify --online`), and verifies offline
//   mirrors      a mirror never publishes an unverified file (every scan of a mirror root matches the pins)
//   time         `sourcemesh time` never names an honest witness a Roughtime liar, never counts a lying one
//                among those that agree, names one that lied for its whole query (unless it gave no valid
//                answer), and succeeds whenever a quorum (2) of witnesses stayed free of faults
//   attest       `attest verify` never accepts a snapshot's bytes other than the pin, never names an honest
//                builder a liar, names the builder of a forged attestation it was given, and accepts when
//                it was given a threshold of honest builders' attestations
//
// Bytes over BitTorrent are labelled `peer HOST:PORT` (node `mN:seed`), and a mirror reached on its own
// port rather than through the harness's proxy (found by discovery) `mN:PORT`. Each is a source of its
// own: a mirror's own port never lies and a seed only once its own proxy lies (seed-liar), whatever the
// mirror's HTTP proxy does. A seed's lies are never known to be read, so they need not be named.
import type { Exported, Rec } from './history.ts';
import { BESIDE_SERVING, type FaultKind } from './schedule.ts';

export interface Violation {
  invariant: 'exports' | 'completion' | 'attribution' | 'witnesses' | 'log' | 'mirrors' | 'time' | 'attest';
  message: string;
}

export interface Figures {
  fetches: number;
  fetchesOk: number;
  fetchesExcused: number;
  p50ms: number | undefined;
  p99ms: number | undefined;
  bytesBySource: Record<string, number>;
  faults: Record<string, number>;
  liesServed: number;
  liedResponses: number;
  liedResponsesRead: number;
  liesCaught: number;
  seedLiesServed: number;
  seedLiesCaught: number;
  releases: number;
  releasesAcknowledged: number;
  releaseVerifies: number;
  releaseVerifiesOk: number;
  checkpoints: number;
  witnessReads: number;
  mirrorScans: number;
  fetchesByTransport: Record<string, number>;
  timeQueries: number;
  timeOk: number;
  roughtimeLiarsNamed: number;
  attestChecks: number;
  attestOk: number;
  forgedNamed: number;
  /** Roles the harness could not start (the program under test failed them): their invariants went unexercised. */
  rolesFailed: string[];
}

export interface CheckResult {
  ok: boolean;
  violations: Violation[];
  figures: Figures;
}

type Run = Extract<Rec, { type: 'run' }>;
type Fetch = Extract<Rec, { type: 'fetch' }>;

interface Interval {
  target: string;
  kind: string;
  from: number;
  to: number;
}

export function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/**
 * The node a source label names: a URL's host is a node's address (`NODE:PORT` when not the proxy's
 * port 80); `git REPO REF` is upstream's; `peer HOST:PORT` is that node's BitTorrent seed (`NODE:seed`).
 */
export function nodeOf(label: string, byIp: Map<string, string>): string {
  const peer = /^peer (\d+\.\d+\.\d+\.\d+):\d+$/.exec(label);
  if (peer) return byIp.has(peer[1]!) ? `${byIp.get(peer[1]!)}:seed` : label;
  const url = label.startsWith('git ') ? label.split(' ')[1]! : label;
  try {
    const u = new URL(url);
    const node = byIp.get(u.hostname);
    if (node === undefined) return label;
    return u.port === '' || u.port === '80' ? node : `${node}:${u.port}`;
  } catch {
    return label;
  }
}

/** A builder's or witness's key name (`m3.stress.test+1a2b3c4d+...`, `w2.stress.test`) as its node (`m3`, `w2`). */
export function nodeOfKeyName(name: string): string {
  return name.split('+')[0]!.replace(/\.stress\.test$/, '');
}

export function check(history: readonly Rec[]): CheckResult {
  const violations: Violation[] = [];
  const fail = (invariant: Violation['invariant'], message: string) => violations.push({ invariant, message });
  const run = history.find((r): r is Run => r.type === 'run');
  if (!run) throw new Error('the history has no run record');
  const end = history.at(-1)!.t;
  const byIp = new Map(Object.entries(run.nodes).map(([name, ip]) => [ip, name]));
  const pinned = new Map<string, string>(); // name -> sha256, across versions (a name is never re-pinned)
  for (const files of Object.values(run.pins)) for (const [n, sha] of Object.entries(files)) pinned.set(n, sha);

  // Fault intervals, from the start and end records (a fault never ended lasts to the end of the run).
  // Faults that leave a mirror's HTTP service alone (a seed killed, a forged attestation) are kept apart:
  // the completion rule still counts the mirror as up during them.
  const intervals: Interval[] = [];
  const besides: Interval[] = [];
  const open = new Map<string, Interval>();
  const faults: Record<string, number> = {};
  for (const r of history) {
    if (r.type !== 'fault') continue;
    const key = `${r.kind} ${r.target}`;
    if (r.phase === 'start') {
      faults[r.kind] = (faults[r.kind] ?? 0) + 1;
      const iv = { target: r.target, kind: r.kind, from: r.t, to: end };
      open.set(key, iv);
      (BESIDE_SERVING.has(r.kind as FaultKind) ? besides : intervals).push(iv);
    } else {
      const iv = open.get(key);
      if (iv) iv.to = r.t;
      open.delete(key);
    }
  }
  // Who lies from when, by source node: a mirror's proxy (`mN`), a mirror's seed (`mN:seed`).
  const liarSince = new Map<string, number>();
  for (const iv of [...intervals, ...besides]) {
    const node = iv.kind === 'liar' ? iv.target : iv.kind === 'seed-liar' ? `${iv.target}:seed` : undefined;
    if (node !== undefined && !liarSince.has(node)) liarSince.set(node, iv.from);
  }
  const replacedSince = intervals.filter((iv) => iv.kind === 'replace').reduce((m, iv) => Math.min(m, iv.from), Infinity);

  // mirrors: every scan of a published root matches the pins.
  const scans = history.filter((r): r is Extract<Rec, { type: 'mirror-files' }> => r.type === 'mirror-files');
  for (const s of scans) {
    for (const f of s.files) {
      const want = pinned.get(f.name);
      if (want === undefined) fail('mirrors', `${s.mirror} publishes ${f.name}, which no manifest pins (at ${s.t} ms)`);
      else if (f.sha256 !== want) fail('mirrors', `${s.mirror} publishes ${f.name} with sha256 ${f.sha256}, pinned ${want} (at ${s.t} ms)`);
    }
  }
  /** The mirror's root at time t (its last scan before t) holds every file of `version`, verified. */
  const hasAll = (mirror: string, version: string, t: number): boolean => {
    const last = scans.filter((s) => s.mirror === mirror && s.t <= t).at(-1);
    if (!last) return false;
    const have = new Map(last.files.map((f: Exported) => [f.name, f.sha256]));
    return Object.entries(run.pins[version] ?? {}).every(([n, sha]) => have.get(n) === sha);
  };

  const fetches = history.filter((r): r is Fetch => r.type === 'fetch');
  const durations: number[] = [];
  const bytesBySource: Record<string, number> = {};
  let liesCaught = 0;
  let seedLiesCaught = 0;
  let excused = 0;
  for (const f of fetches) {
    // exports
    for (const e of f.exported) {
      const want = run.pins[f.version]?.[e.name];
      if (want === undefined) fail('exports', `${f.client} op ${f.op} exported ${e.name}, which manifest ${f.version} does not pin`);
      else if (e.sha256 !== want) fail('exports', `${f.client} op ${f.op} exported ${e.name} with sha256 ${e.sha256}, pinned ${want}`);
    }
    // completion
    if (f.exit === 0) durations.push(f.t - f.start);
    else {
      const honest = run.mirrors.filter((m) => {
        if ((liarSince.get(m) ?? Infinity) <= f.t) return false;
        if (intervals.some((iv) => iv.target === m && iv.from < f.t && iv.to > f.start)) return false;
        return hasAll(m, f.version, f.start);
      });
      if (honest.length > 0) fail('completion', `${f.client} op ${f.op} (${f.start}-${f.t} ms) exited ${f.exit} although ${honest.join(', ')} stayed honest and up with every file`);
      else excused++;
    }
    // attribution: what was blamed for wrong bytes must have served wrong bytes.
    for (const file of f.files) {
      for (const c of file.contributors ?? (file.source && file.size ? [{ source: file.source, bytes: file.size }] : [])) {
        const node = nodeOf(c.source, byIp);
        bytesBySource[node] = (bytesBySource[node] ?? 0) + c.bytes;
      }
      for (const rej of file.rejected) {
        if (rej.code !== 'E_CHECKSUM') continue;
        const node = nodeOf(rej.source, byIp);
        const lying = (liarSince.get(node) ?? Infinity) <= f.t || (node === 'up' && replacedSince <= f.t);
        if (!lying) fail('attribution', `${f.client} op ${f.op} blamed ${node} (${rej.source}) for wrong bytes of ${file.name}, which it never served`);
        else if (node !== 'up') {
          liesCaught++;
          if (node.endsWith(':seed')) seedLiesCaught++;
        }
      }
    }
  }
  // attribution: every lie served is named by the fetch it was served to.
  const lies = history.filter((r): r is Extract<Rec, { type: 'lie' }> => r.type === 'lie');
  for (const lie of lies) {
    if (!lie.read) continue;
    const client = byIp.get(lie.client) ?? lie.client;
    const op = fetches.find((f) => f.client === client && f.start <= lie.t && lie.t <= f.t);
    if (!op) continue; // the client was killed with its fetch at the end of the run: nothing was exported from it
    const named = op.files.some((file) => file.rejected.some((rej) => nodeOf(rej.source, byIp) === lie.mirror));
    if (!named) fail('attribution', `${lie.mirror} served ${lie.flipped} flipped byte(s) of ${lie.path} to ${client}, which read them (op ${op.op}, at ${lie.t} ms), and that fetch did not name it`);
  }

  // witnesses: one root per (witness, size).
  const seen = new Map<string, string>();
  const checkpoints = history.filter((r): r is Extract<Rec, { type: 'checkpoint' }> => r.type === 'checkpoint');
  for (const c of checkpoints) {
    for (const w of c.cosigners) {
      const key = `${w} ${c.size}`;
      const prev = seen.get(key);
      if (prev !== undefined && prev !== c.root) fail('witnesses', `${w} cosigned two trees of size ${c.size}: ${prev} and ${c.root} (the second ${c.from ? `read from ${c.from} directly` : 'in a checkpoint the log published'} at ${c.t} ms)`);
      seen.set(key, c.root);
    }
  }

  // log: every acknowledged release is still in the log at the end, and verifies.
  const releases = history.filter((r): r is Extract<Rec, { type: 'release' }> => r.type === 'release');
  const acked = releases.filter((r) => r.exit === 0 && r.index !== undefined);
  const entryChecks = history.filter((r): r is Extract<Rec, { type: 'entry-check' }> => r.type === 'entry-check');
  for (const r of acked) {
    const c = entryChecks.find((e) => e.index === r.index && e.version === r.version);
    if (!c) fail('log', `release ${r.version} (entry ${r.index}) was acknowledged but never checked at the end`);
    else if (c.exit !== 0) fail('log', `release ${r.version} (entry ${r.index}) was acknowledged, but at the end release verify --online exited ${c.exit}`);
  }
  const verifies = history.filter((r): r is Extract<Rec, { type: 'release-verify' }> => r.type === 'release-verify');
  for (const v of verifies) if (v.exit !== 0 && acked.some((r) => r.version === v.version)) fail('log', `${v.client}: release verify of acknowledged release ${v.version} exited ${v.exit} (at ${v.t} ms)`);

  // time: Roughtime liars named, and only liars; a quorum of witnesses free of faults gives signed time.
  const witnessNodes = Object.keys(run.nodes).filter((n) => /^w\d+$/.test(n));
  const overlaps = (iv: Interval, from: number, to: number) => iv.from < to && iv.to > from;
  const times = history.filter((r): r is Extract<Rec, { type: 'time' }> => r.type === 'time');
  let roughtimeLiarsNamed = 0;
  for (const q of times) {
    const lied = (w: string) => intervals.some((iv) => iv.kind === 'time-liar' && iv.target === w && overlaps(iv, q.start, q.t));
    const liedThroughout = (w: string) => intervals.some((iv) => iv.kind === 'time-liar' && iv.target === w && iv.from <= q.start && iv.to >= q.t);
    const clean = witnessNodes.filter((w) => !intervals.some((iv) => iv.target === w && overlaps(iv, q.start, q.t)));
    for (const w of q.liars) {
      if (!lied(w)) fail('time', `${q.client} named ${w} a Roughtime liar (${q.start}-${q.t} ms), and ${w} never lied`);
      else roughtimeLiarsNamed++;
    }
    for (const w of q.agreed) if (liedThroughout(w)) fail('time', `${q.client} counted ${w} among the witnesses that agree (${q.start}-${q.t} ms) while ${w} signed a lying time`);
    for (const w of witnessNodes) {
      if (liedThroughout(w) && q.exit === 0 && !q.liars.includes(w) && !q.failed.includes(w)) fail('time', `${q.client} did not name ${w}, which lied for its whole query (${q.start}-${q.t} ms)`);
    }
    if (q.exit !== 0 && clean.length >= 2) fail('time', `${q.client}'s sourcemesh time exited ${q.exit} (${q.start}-${q.t} ms) although ${clean.join(', ')} stayed free of faults`);
  }

  // attest: the pin wins, honest builders are never liars, a forged attestation's builder is named.
  const attests = history.filter((r): r is Extract<Rec, { type: 'attest' }> => r.type === 'attest');
  let forgedNamed = 0;
  for (const a of attests) {
    for (const snap of a.snapshots) {
      const pin = run.pins[a.version]?.[snap.name];
      if (snap.accepted && snap.sha256 !== pin) fail('attest', `${a.client}: attest verify accepted ${snap.name} as ${snap.sha256}, pinned ${pin} (at ${a.t} ms)`);
      for (const l of snap.liars) {
        if (l !== a.bogus) fail('attest', `${a.client}: attest verify named ${l} a liar about ${snap.name}, and ${l}'s attestation was genuine (at ${a.t} ms)`);
        else forgedNamed++;
      }
      if (a.bogus !== undefined && snap.accepted && !snap.liars.includes(a.bogus)) fail('attest', `${a.client}: attest verify accepted ${snap.name} without naming ${a.bogus}, whose forged attestation of other bytes it was given (at ${a.t} ms)`);
    }
    if (a.exit !== 0 && a.honestBuilders >= a.threshold) fail('attest', `${a.client}: attest verify exited ${a.exit} although it had ${a.honestBuilders} honest builders' attestations, threshold ${a.threshold} (at ${a.t} ms)`);
  }

  const byTransport: Record<string, number> = {};
  for (const f of fetches) byTransport[f.transport ?? 'mirrors'] = (byTransport[f.transport ?? 'mirrors'] ?? 0) + 1;
  const sorted = durations.sort((a, b) => a - b);
  return {
    ok: violations.length === 0,
    violations,
    figures: {
      fetches: fetches.length,
      fetchesOk: sorted.length,
      fetchesExcused: excused,
      p50ms: percentile(sorted, 50),
      p99ms: percentile(sorted, 99),
      bytesBySource,
      faults,
      liesServed: lies.reduce((n, l) => n + l.flipped, 0),
      liedResponses: lies.length,
      liedResponsesRead: lies.filter((l) => l.read).length,
      liesCaught,
      seedLiesServed: lies.filter((l) => l.mirror.endsWith(':seed')).reduce((n, l) => n + l.flipped, 0),
      seedLiesCaught,
      releases: releases.length,
      releasesAcknowledged: acked.length,
      releaseVerifies: verifies.length,
      releaseVerifiesOk: verifies.filter((v) => v.exit === 0).length,
      checkpoints: checkpoints.filter((c) => c.from === undefined).length,
      witnessReads: checkpoints.filter((c) => c.from !== undefined).length,
      mirrorScans: scans.length,
      fetchesByTransport: byTransport,
      timeQueries: times.length,
      timeOk: times.filter((q) => q.exit === 0).length,
      roughtimeLiarsNamed,
      attestChecks: attests.length,
      attestOk: attests.filter((a) => a.exit === 0).length,
      forgedNamed,
      rolesFailed: history.filter((r): r is Extract<Rec, { type: 'role-failed' }> => r.type === 'role-failed').map((r) => `${r.role} on ${r.node}: ${r.message}`),
    },
  };
}

/** The report as people read it: violations first, then the figures. */
export function formatReport(r: CheckResult): string {
  const f = r.figures;
  const lines = [
    r.ok ? 'checker: every invariant holds' : `checker: ${r.violations.length} violation(s)`,
    ...f.rolesFailed.map((x) => `  WARNING role not running, its invariants unexercised: ${x}`),
    ...r.violations.slice(0, 50).map((v) => `  VIOLATION ${v.invariant}: ${v.message}`),
    ...(r.violations.length > 50 ? [`  ... and ${r.violations.length - 50} more (the history has them all)`] : []),
    `fetches: ${f.fetches} (${f.fetchesOk} ok, ${f.fetchesExcused} failed with no honest mirror up); by transport: ${Object.entries(f.fetchesByTransport).map(([k, n]) => `${k} ${n}`).join(', ')}`,
    `completion: p50 ${f.p50ms ?? '-'} ms, p99 ${f.p99ms ?? '-'} ms`,
    `faults injected: ${Object.entries(f.faults).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`,
    `lies: ${f.liesServed} flipped bytes in ${f.liedResponses} responses served (${f.liedResponsesRead} known read), ${f.liesCaught} rejections naming a liar; of them by seeds: ${f.seedLiesServed} flipped pieces, ${f.seedLiesCaught} rejections`,
    `log: ${f.releasesAcknowledged} of ${f.releases} releases acknowledged, ${f.checkpoints} checkpoints seen, ${f.witnessReads} read from witnesses directly; release verify ${f.releaseVerifiesOk}/${f.releaseVerifies} accepted`,
    `time: ${f.timeOk}/${f.timeQueries} signed-time queries reached a quorum, ${f.roughtimeLiarsNamed} lying witness answers named`,
    `attestations: ${f.attestOk}/${f.attestChecks} builders' quorum checks accepted, ${f.forgedNamed} forged attestations named`,
    `mirror scans: ${f.mirrorScans}`,
    'bytes by source:',
    ...Object.entries(f.bytesBySource).sort((a, b) => b[1] - a[1]).map(([s, n]) => `  ${s.padEnd(8)} ${(n / 1048576).toFixed(1).padStart(8)} MiB`),
  ];
  return `${lines.join('\n')}\n`;
}
