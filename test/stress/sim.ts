// Past one machine, by simulation: a discrete-event simulation that drives the real decision code of a
// fetch (plan.ts `planSources` with reputation.ts `mirrorWeight`, piece-scheduler.ts `PieceScheduler`:
// assign, end game, drop, and fetcher.ts `mirrorOutcomes` for what each client records) over simulated
// links: mirrors of varied bandwidth, latency and reliability, some of them liars, many clients. Only
// the links are modelled; every decision is the code a real fetch runs.
//
// Model (docs/BENCHMARKS.md, "Simulation"): a mirror's uplink is shared by the connections it serves
// (each attempt gets bandwidth / (connections + 1) when it starts, for its whole piece); an attempt costs
// the link's round trip plus its transfer. A failing attempt (the mirror's failure rate) is either a reset
// halfway through or a stall cut by the idle timeout; both drop the source for that file, as
// segmented.ts does with a blamed failure. A liar serves wrong bytes for every piece; the piece map
// rejects them on arrival (BEP 52 layer) and the source is dropped for the file; the client's record then
// makes it a last resort for its later files. An idle connection asks the scheduler again every 50 ms,
// as segmented.ts's connections do. Not modelled: the first piece's hedging, cross-checks, upstream.
//
//   npm run stress:sim -- [--mirrors 1000] [--liars 0.05] [--clients 10000] [--files 3] [--size 32MiB] [--seed 1] [--json]
import { parseArgs } from 'node:util';
import { mirrorOutcomes, type FileOutcome } from '../../src/fetch/fetcher.ts';
import { planSources, type Mirror } from '../../src/fetch/plan.ts';
import { PieceScheduler, type Attempt } from '../../src/fetch/piece-scheduler.ts';
import { mirrorWeight, type MirrorRecord } from '../../src/fetch/reputation.ts';
import type { Distfile } from '../../src/manifest/distfile.ts';
import { Prng } from '../helpers/prng.ts';

export interface SimOptions {
  mirrors: number;
  liarFraction: number;
  clients: number;
  filesPerClient: number;
  fileSize: number;
  pieceLength: number;
  segments: number;
  /** Clients arrive uniformly over this many ms of simulated time. */
  arrivalMs: number;
  seed: number;
  idleTimeoutMs: number;
}

export const DEFAULTS: SimOptions = {
  mirrors: 1000, liarFraction: 0.05, clients: 10_000, filesPerClient: 3, fileSize: 32 << 20, pieceLength: 1 << 20, segments: 4,
  arrivalMs: 600_000, seed: 1, idleTimeoutMs: 30_000,
};

interface SimMirror {
  index: number;
  mirror: Mirror;
  label: string;
  /** bytes per ms of its uplink. */
  bandwidth: number;
  rttMs: number;
  failRate: number;
  liar: boolean;
  connections: number;
  bytesServed: number;
  bytesRejected: number;
}

export interface SimResult {
  options: SimOptions;
  files: number;
  filesFailed: number;
  fileMs: { p50: number; p90: number; p99: number; max: number };
  /** Per file, by the client's file number (1st, 2nd, ...): median ms and liar bytes per file. */
  byFileNumber: { n: number; p50ms: number; liarBytesPerFile: number; liarHitsPerFile: number }[];
  liarBytes: number;
  /** Bytes accepted into files from honest mirrors, and from liars (never, when the code is right). */
  acceptedBytes: number;
  liarAcceptedBytes: number;
  liarBytesPerClient: { mean: number; p99: number; max: number };
  lieDetections: number;
  load: {
    gini: number;
    maxOverMean: number;
    topDecileShare: number;
    /** Share of bytes served by the tenth of honest mirrors with the widest uplinks. */
    fastestDecileShare: number;
    idleHonest: number;
    peakConnections: number;
  };
  events: number;
  wallMs: number;
}

/** A binary heap of events by time (ties by insertion order, so a run is deterministic). */
class EventQueue<T> {
  private heap: { t: number; seq: number; v: T }[] = [];
  private seq = 0;
  get size(): number {
    return this.heap.length;
  }
  push(t: number, v: T): void {
    const h = this.heap;
    h.push({ t, seq: this.seq++, v });
    for (let i = h.length - 1; i > 0;) {
      const p = (i - 1) >> 1;
      if (this.less(h[i]!, h[p]!)) {
        [h[i], h[p]] = [h[p]!, h[i]!];
        i = p;
      } else break;
    }
  }
  pop(): { t: number; v: T } | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
  private less(a: { t: number; seq: number }, b: { t: number; seq: number }): boolean {
    return a.t < b.t || (a.t === b.t && a.seq < b.seq);
  }
}

interface Download {
  client: SimClient;
  sched: PieceScheduler;
  byLabel: Map<string, SimMirror>;
  started: number;
  active: number;
  /** Attempts in flight, with their mirror and whether they were cancelled (their end is then ignored). */
  inflight: Map<Attempt, { m: SimMirror; cancelled: boolean }>;
  liarBytes: number;
  liarHits: number;
  polling: boolean;
  rejected: FileOutcome['rejected'];
  done: boolean;
}

interface SimClient {
  index: number;
  rng: Prng;
  records: Map<string, MirrorRecord>;
  fileNumber: number;
  liarBytes: number;
}

type Ev = { kind: 'arrive'; client: SimClient } | { kind: 'end'; dl: Download; a: Attempt; outcome: 'ok' | 'fail' | 'lie' } | { kind: 'poll'; dl: Download };

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function gini(values: readonly number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const n = v.length;
  const total = v.reduce((s, x) => s + x, 0);
  if (n === 0 || total === 0) return 0;
  let acc = 0;
  for (let i = 0; i < n; i++) acc += (2 * (i + 1) - n - 1) * v[i]!;
  return acc / (n * total);
}

export function simulate(opts: SimOptions): SimResult {
  const wall0 = performance.now();
  const rng = new Prng(opts.seed);
  const uniform = (r: Prng) => r.next() / 0x1_0000_0000;
  // Mirrors: uplinks log-uniform in 1-100 MB/s, round trips 10-300 ms, failure rates log-uniform in
  // 0.1%-20% of attempts; liars chosen at random.
  const mirrors: SimMirror[] = Array.from({ length: opts.mirrors }, (_, i) => {
    const base = `http://mirror${i}.sim.invalid`;
    return {
      index: i, mirror: { kind: 'http', base }, label: base, bandwidth: 1000 * 10 ** (2 * uniform(rng)), rttMs: 10 + 290 * uniform(rng),
      failRate: 0.001 * 200 ** uniform(rng), liar: false, connections: 0, bytesServed: 0, bytesRejected: 0,
    };
  });
  const liarCount = Math.round(opts.mirrors * opts.liarFraction);
  for (const i of shuffleIndices(opts.mirrors, rng).slice(0, liarCount)) mirrors[i]!.liar = true;
  const byLabel = new Map(mirrors.map((m) => [m.label, m]));
  const mirrorList = mirrors.map((m) => m.mirror);

  const q = new EventQueue<Ev>();
  const clients: SimClient[] = [];
  for (let c = 0; c < opts.clients; c++) {
    const client: SimClient = { index: c, rng: new Prng(opts.seed * 7919 + c), records: new Map(), fileNumber: 0, liarBytes: 0 };
    clients.push(client);
    q.push(Math.floor(uniform(rng) * opts.arrivalMs), { kind: 'arrive', client });
  }
  const fileTimes: number[] = [];
  const perNumber = new Map<number, { ms: number[]; liarBytes: number; liarHits: number }>();
  let filesFailed = 0;
  let lieDetections = 0;
  let events = 0;
  let peak = 0;

  const startFile = (client: SimClient, now: number) => {
    client.fileNumber++;
    const d: Distfile = { name: `file-${client.fileNumber}.tar.gz`, sha256: '0'.repeat(64), size: opts.fileSize, urls: [] } as Distfile;
    const random = () => uniform(client.rng);
    const sources = planSources(d, { mirrors: mirrorList, policy: 'mirrors-only', offline: false, random, mirrorWeight: (m) => mirrorWeight(client.records.get(m.kind === 'http' ? m.base : m.dir)) });
    const sched = new PieceScheduler(opts.fileSize, opts.pieceLength, PieceScheduler.states(sources));
    const dl: Download = { client, sched, byLabel, started: now, active: 0, inflight: new Map(), liarBytes: 0, liarHits: 0, polling: false, rejected: [], done: false };
    fill(dl, now);
  };

  const finish = (dl: Download, now: number, ok: boolean) => {
    dl.done = true;
    const c = dl.client;
    const slot = perNumber.get(c.fileNumber) ?? { ms: [], liarBytes: 0, liarHits: 0 };
    perNumber.set(c.fileNumber, slot);
    slot.liarBytes += dl.liarBytes;
    slot.liarHits += dl.liarHits;
    if (ok) {
      fileTimes.push(now - dl.started);
      slot.ms.push(now - dl.started);
    } else filesFailed++;
    // What the client records, through the same mirrorOutcomes a real fetch feeds its reputation with.
    const contributors = dl.sched.states.filter((s) => s.bytes > 0).map((s) => ({ source: s.source.label, bytes: s.bytes }));
    const outcome: FileOutcome = { name: 'f', sha256: '0'.repeat(64), status: ok ? 'fetched' : 'failed', size: opts.fileSize, ms: now - dl.started, via: 'mirror', contributors, rejected: dl.rejected };
    for (const o of mirrorOutcomes({ files: [outcome], fetched: 1, present: 0, failed: 0 })) {
      const r = c.records.get(o.mirror) ?? { mirror: o.mirror, files: 0, bytes: 0, ms: 0, failures: 0, lies: 0, lastSeen: 0 };
      // The same arithmetic as Reputation.record's upsert.
      r.files += o.bytes ? 1 : 0;
      r.bytes += o.bytes ?? 0;
      r.ms += o.ms ?? 0;
      r.failures += o.failed ? 1 : 0;
      r.lies += o.lie ? 1 : 0;
      c.records.set(o.mirror, r);
    }
    if (c.fileNumber < opts.filesPerClient) startFile(c, now);
  };

  const fill = (dl: Download, now: number) => {
    if (dl.done) return;
    while (dl.active < opts.segments) {
      const a = dl.sched.assign(now);
      if (!a) break;
      const m = dl.byLabel.get(a.state.source.label)!;
      dl.active++;
      m.connections++;
      if (m.connections > peak) peak = m.connections;
      dl.inflight.set(a, { m, cancelled: false });
      const bytes = a.piece.end - a.piece.start + 1;
      const transfer = bytes / (m.bandwidth / m.connections);
      const r = uniform(dl.client.rng);
      if (r < m.failRate) {
        // Half the failures reset halfway, half stall until the idle timeout.
        q.push(now + m.rttMs + (r < m.failRate / 2 ? transfer / 2 : opts.idleTimeoutMs), { kind: 'end', dl, a, outcome: 'fail' });
      } else q.push(now + m.rttMs + transfer, { kind: 'end', dl, a, outcome: m.liar ? 'lie' : 'ok' });
    }
    if (dl.sched.complete()) return finish(dl, now, true);
    if (dl.sched.stuck(false)) return finish(dl, now, false);
    // Free connections with nothing to ask for now: ask again in 50 ms (segmented.ts's connections).
    if (dl.active < opts.segments && !dl.polling) {
      dl.polling = true;
      q.push(now + 50, { kind: 'poll', dl });
    }
  };

  for (let ev = q.pop(); ev; ev = q.pop()) {
    events++;
    const now = ev.t;
    const e = ev.v;
    if (e.kind === 'arrive') {
      startFile(e.client, now);
      continue;
    }
    if (e.kind === 'poll') {
      e.dl.polling = false;
      fill(e.dl, now);
      continue;
    }
    const { dl, a } = e;
    const info = dl.inflight.get(a);
    if (!info) continue;
    dl.inflight.delete(a);
    info.m.connections--;
    dl.active--;
    if (info.cancelled || dl.done) {
      if (!dl.done) fill(dl, now);
      continue;
    }
    const bytes = a.piece.end - a.piece.start + 1;
    const label = a.state.source.label;
    if (e.outcome === 'fail') {
      const blame = { source: label, code: 'E_NETWORK' as const, message: `${label}: connection reset` };
      if (dl.sched.failed(a, blame)) dl.rejected.push({ source: label, role: 'mirror', code: 'E_NETWORK', message: blame.message });
    } else if (!dl.sched.arrived(a)) {
      // A lost end-game race: released by the scheduler.
    } else if (e.outcome === 'lie') {
      info.m.bytesRejected += bytes;
      dl.liarBytes += bytes;
      dl.liarHits++;
      dl.client.liarBytes += bytes;
      const blame = { source: label, code: 'E_CHECKSUM' as const, message: `${label}: piece ${a.piece.index} does not match the piece layer` };
      if (dl.sched.rejected(a, blame)) {
        lieDetections++;
        dl.rejected.push({ source: label, role: 'mirror', code: 'E_CHECKSUM', message: blame.message });
      }
      dl.sched.release(a);
    } else {
      const others = dl.sched.accepted(a, bytes, now - (dl.sched.pieces[a.piece.index]!.startedAt ?? now));
      if (others) {
        info.m.bytesServed += bytes;
        // The losers of an end-game race are cancelled at once (their connections free, nothing held against them).
        for (const [other, oi] of dl.inflight) {
          if (other.piece === a.piece && others.includes(other.state) && !oi.cancelled) {
            oi.cancelled = true;
            dl.sched.failed(other);
          }
        }
        dl.sched.written(a.piece);
      }
      dl.sched.release(a);
    }
    fill(dl, now);
  }

  const honest = mirrors.filter((m) => !m.liar);
  const served = honest.map((m) => m.bytesServed);
  const total = served.reduce((s, x) => s + x, 0);
  const sortedServed = [...served].sort((a, b) => b - a);
  const decile = Math.max(1, Math.round(honest.length / 10));
  const fastest = [...honest].sort((a, b) => b.bandwidth - a.bandwidth).slice(0, decile);
  const times = fileTimes.sort((a, b) => a - b);
  const lp = clients.map((c) => c.liarBytes).sort((a, b) => a - b);
  return {
    options: opts,
    files: times.length + filesFailed,
    filesFailed,
    fileMs: { p50: percentile(times, 50), p90: percentile(times, 90), p99: percentile(times, 99), max: times.at(-1) ?? 0 },
    byFileNumber: [...perNumber.entries()].sort((a, b) => a[0] - b[0]).map(([n, s]) => {
      const ms = s.ms.sort((a, b) => a - b);
      const count = ms.length || 1;
      return { n, p50ms: percentile(ms, 50), liarBytesPerFile: s.liarBytes / count, liarHitsPerFile: s.liarHits / count };
    }),
    liarBytes: mirrors.reduce((s, m) => s + m.bytesRejected, 0),
    acceptedBytes: honest.reduce((s, m) => s + m.bytesServed, 0),
    liarAcceptedBytes: mirrors.filter((m) => m.liar).reduce((s, m) => s + m.bytesServed, 0),
    liarBytesPerClient: { mean: lp.reduce((s, x) => s + x, 0) / (lp.length || 1), p99: percentile(lp, 99), max: lp.at(-1) ?? 0 },
    lieDetections,
    load: {
      gini: gini(served),
      maxOverMean: total ? sortedServed[0]! / (total / honest.length) : 0,
      topDecileShare: total ? sortedServed.slice(0, decile).reduce((s, x) => s + x, 0) / total : 0,
      fastestDecileShare: total ? fastest.reduce((s, m) => s + m.bytesServed, 0) / total : 0,
      idleHonest: served.filter((x) => x === 0).length,
      peakConnections: peak,
    },
    events,
    wallMs: Math.round(performance.now() - wall0),
  };
}

function shuffleIndices(n: number, rng: Prng): number[] {
  const out = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const MiB = 1 << 20;

/** The result as a Markdown table row set (docs/BENCHMARKS.md). */
export function formatResult(r: SimResult): string {
  const o = r.options;
  const s = (ms: number) => (ms / 1000).toFixed(1);
  const lines = [
    `${o.mirrors} mirrors (${Math.round(o.mirrors * o.liarFraction)} liars), ${o.clients} clients x ${o.filesPerClient} files of ${o.fileSize / MiB} MiB, pieces of ${o.pieceLength / MiB} MiB, ${o.segments} connections, seed ${o.seed}`,
    `files: ${r.files} (${r.filesFailed} failed); time per file p50 ${s(r.fileMs.p50)} s, p90 ${s(r.fileMs.p90)} s, p99 ${s(r.fileMs.p99)} s, max ${s(r.fileMs.max)} s`,
    ...r.byFileNumber.map((b) => `  file ${b.n} of each client: p50 ${s(b.p50ms)} s, liar pieces ${b.liarHitsPerFile.toFixed(3)} per file (${(b.liarBytesPerFile / MiB).toFixed(3)} MiB)`),
    `liars: ${(r.liarBytes / MiB).toFixed(0)} MiB rejected in all (${r.lieDetections} detections); per client mean ${(r.liarBytesPerClient.mean / MiB).toFixed(3)} MiB, p99 ${(r.liarBytesPerClient.p99 / MiB).toFixed(0)} MiB, max ${(r.liarBytesPerClient.max / MiB).toFixed(0)} MiB`,
    `load over honest mirrors: Gini ${r.load.gini.toFixed(3)}, busiest ${r.load.maxOverMean.toFixed(1)}x the mean, busiest tenth ${(100 * r.load.topDecileShare).toFixed(1)}% of bytes, widest-uplink tenth ${(100 * r.load.fastestDecileShare).toFixed(1)}%, ${r.load.idleHonest} served nothing, peak ${r.load.peakConnections} connections on one mirror`,
    `${r.events} events in ${(r.wallMs / 1000).toFixed(1)} s`,
  ];
  return `${lines.join('\n')}\n`;
}

function sizeArg(v: string): number {
  const m = /^(\d+)(KiB|MiB)?$/.exec(v);
  if (!m) throw new Error(`not a size: ${v}`);
  return Number(m[1]) * (m[2] === 'MiB' ? MiB : m[2] === 'KiB' ? 1024 : 1);
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const { values } = parseArgs({
    options: {
      mirrors: { type: 'string' }, liars: { type: 'string' }, clients: { type: 'string' }, files: { type: 'string' }, size: { type: 'string' },
      piece: { type: 'string' }, segments: { type: 'string' }, arrival: { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' },
    },
    strict: true,
  });
  const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));
  const opts: SimOptions = {
    ...DEFAULTS,
    mirrors: num(values.mirrors, DEFAULTS.mirrors), liarFraction: num(values.liars, DEFAULTS.liarFraction), clients: num(values.clients, DEFAULTS.clients),
    filesPerClient: num(values.files, DEFAULTS.filesPerClient), fileSize: values.size ? sizeArg(values.size) : DEFAULTS.fileSize,
    pieceLength: values.piece ? sizeArg(values.piece) : DEFAULTS.pieceLength, segments: num(values.segments, DEFAULTS.segments),
    arrivalMs: num(values.arrival, DEFAULTS.arrivalMs / 1000) * 1000, seed: num(values.seed, DEFAULTS.seed),
  };
  for (const [k, v] of Object.entries(opts)) if (!Number.isFinite(v) || v < 0) throw new Error(`--${k}: not a number >= 0`);
  const r = simulate(opts);
  process.stdout.write(values.json ? `${JSON.stringify(r, null, 2)}\n` : formatResult(r));
}
