// Announcing to HTTP trackers (BEP 3), over the project's HTTP client (src/fetch/http.ts): one announce
// bounded in bytes and time, a torrent's tiers tried in order (BEP 12), and the announcer that `seed`
// keeps running (started, then again as each tracker's interval says, stopped at the end). The protocol
// itself, pure, is in tracker.ts.
import type { Dispatcher } from '../net/undici.ts';
import { SourcemeshError, asSourcemeshError } from '../errors.ts';
import { openHttp, readBoundedBody } from '../fetch/http.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { SILENT, type Logger } from '../logger.ts';
import { announceUrl, isHttpTracker, nextAnnounceDelay, parseAnnounceResponse, printable, type AnnounceParams, type AnnounceResponse, TrackerTiers } from './tracker.ts';

export interface AnnounceIo {
  dispatcher: Dispatcher;
  limits?: Limits;
  signal?: AbortSignal;
}

/** One announce to tracker `url`; E_NETWORK, E_HTTP (including a `failure reason`) or E_FORMAT naming it. */
export async function announceTo(url: string, p: AnnounceParams, io: AnnounceIo): Promise<AnnounceResponse> {
  const limits = io.limits ?? LIMITS;
  const what = `tracker ${printable(url)}`;
  if (!isHttpTracker(url)) throw new SourcemeshError('E_UNSUPPORTED', `${what}: not an http(s) tracker (UDP trackers, BEP 15, are not spoken)`);
  // The whole exchange, body included, within trackerTimeoutMs: a tracker that drips bytes is cut.
  const timer = AbortSignal.timeout(limits.trackerTimeoutMs);
  const signal = io.signal ? AbortSignal.any([io.signal, timer]) : timer;
  let body: Buffer;
  try {
    const opened = await openHttp(announceUrl(url, p), { offset: 0, dispatcher: io.dispatcher, limits, signal });
    body = await readBoundedBody(opened.body as Parameters<typeof readBoundedBody>[0], limits.trackerResponseBytes,
      () => new SourcemeshError('E_FORMAT', `${what}: an answer of more than ${limits.trackerResponseBytes} bytes`, { url }));
  } catch (err) {
    if (timer.aborted && !io.signal?.aborted) throw new SourcemeshError('E_NETWORK', `${what}: no whole answer within ${limits.trackerTimeoutMs / 1000} s`, { url });
    if (err instanceof SourcemeshError) throw new SourcemeshError(err.code, err.message.startsWith(what) ? err.message : `${what}: ${err.message}`, err.details);
    throw err;
  }
  return parseAnnounceResponse(body, what, limits);
}

export interface TierResult {
  /** The tracker that answered, and its answer; undefined when none did. */
  url?: string;
  response?: AnnounceResponse;
  /** One line per tracker that did not answer (or was skipped), in the order tried. */
  errors: { url: string; code: string; message: string }[];
}

/** BEP 12: the trackers in order until one answers; that one moves to the front of its tier. */
export async function announceTiers(tiers: TrackerTiers, p: AnnounceParams, io: AnnounceIo): Promise<TierResult> {
  const errors: TierResult['errors'] = [];
  for (const url of tiers.order()) {
    if (io.signal?.aborted) break;
    try {
      const response = await announceTo(url, p, io);
      tiers.answered(url);
      return { url, response, errors };
    } catch (err) {
      if (io.signal?.aborted) break;
      const e = asSourcemeshError(err);
      errors.push({ url, code: e.code, message: e.message });
    }
  }
  return { errors };
}

/** What one info-hash says in its announces: the counters as they are at each announce. */
export interface Announced {
  infoHash: Buffer;
  counters(): { uploaded: number; downloaded: number; left: number };
}

export interface AnnouncerOptions {
  peerId: Buffer;
  port: number;
  dispatcher: Dispatcher;
  limits?: Limits;
  log?: Logger;
}

/**
 * Info-hashes announced to the trackers of some tiers (BEP 12): each announce goes to the first tracker
 * that answers, tier by tier, which then moves to the front of its tier. A torrent's own `announce` /
 * `announce-list`; a `--tracker URL` is a tier of one.
 */
export interface AnnounceGroup {
  tiers: TrackerTiers;
  hashes: Announced[];
}

interface Group extends AnnounceGroup {
  /** The tracker that last answered for each info-hash: the one told `stopped`. */
  answeredBy: Map<Announced, string>;
}

/**
 * `seed`: every info-hash announced to each tracker given (`--tracker`, with every seeded info-hash) and
 * each group's tiers (`seed --torrent`: a torrent's own trackers, with its info-hashes), `started` first,
 * again after the delay its last answers ask for (the longest of them, tracker.ts nextAnnounceDelay),
 * `stopped` on close. Announces of one group go one at a time; each is bounded by trackerTimeoutMs.
 */
export class Announcer {
  private readonly abort = new AbortController();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly running = new Set<Promise<void>>();
  private readonly groups: Group[];
  private readonly opts: AnnouncerOptions;
  private readonly log: Logger;
  private readonly trackerIds = new Map<string, string>();
  /** Announces answered, and refused or failed, since the start. */
  answered = 0;
  failed = 0;

  constructor(trackers: string[], hashes: Announced[], opts: AnnouncerOptions, groups: AnnounceGroup[] = []) {
    this.groups = [...[...new Set(trackers)].map((url) => ({ tiers: new TrackerTiers([[url]], Math.random), hashes })), ...groups]
      .filter((g) => g.hashes.length > 0 && g.tiers.order().length > 0)
      .map((g) => ({ ...g, answeredBy: new Map() }));
    this.opts = opts;
    this.log = opts.log ?? SILENT;
  }

  /** Announces `started` everywhere once (resolves when each group had its first round), then keeps going. */
  async start(): Promise<void> {
    await Promise.all(this.groups.map((g) => this.round(g, 'started', 1)));
  }

  private async round(g: Group, event: 'started' | undefined, failuresBefore: number): Promise<void> {
    let longest: { interval: number; minInterval?: number } | undefined;
    let failures = 0;
    for (const h of g.hashes) {
      if (this.abort.signal.aborted) return;
      const r = await this.tiered(g, h, event);
      if (!r) {
        failures++;
        continue;
      }
      const asked = Math.max(r.interval, r.minInterval ?? 0);
      if (!longest || asked > Math.max(longest.interval, longest.minInterval ?? 0)) longest = r;
    }
    if (this.abort.signal.aborted) return;
    // A round where nothing answered backs off; one where something did follows the tracker's interval.
    const delay = longest ? nextAnnounceDelay(longest, this.limits()) : nextAnnounceDelay({ failures: failuresBefore }, this.limits());
    const next = longest ? 1 : failuresBefore + 1;
    const tracker = g.tiers.order()[0]!;
    this.log.info({ tracker: printable(tracker), ...(g.tiers.order().length > 1 && { tiers: g.tiers.tiers.length }), announced: g.hashes.length - failures, failed: failures, nextInSeconds: Math.round(delay / 1000) }, 'announced to the tracker');
    // A round that had failures announces `started` again next time: the tracker may not know us yet.
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      const p = this.round(g, failures ? 'started' : undefined, next);
      this.running.add(p);
      void p.finally(() => this.running.delete(p));
    }, delay);
    timer.unref();
    this.timers.add(timer);
  }

  /** BEP 12: the group's trackers in order until one answers. */
  private async tiered(g: Group, h: Announced, event: 'started' | undefined): Promise<AnnounceResponse | undefined> {
    for (const url of g.tiers.order()) {
      if (this.abort.signal.aborted) return undefined;
      const r = await this.one(url, h, event);
      if (!r) continue;
      g.tiers.answered(url);
      g.answeredBy.set(h, url);
      return r;
    }
    return undefined;
  }

  private limits(): Limits {
    return this.opts.limits ?? LIMITS;
  }

  private async one(url: string, h: Announced, event: 'started' | 'stopped' | undefined, signal = this.abort.signal): Promise<AnnounceResponse | undefined> {
    const key = `${url} ${h.infoHash.toString('hex')}`;
    try {
      const r = await announceTo(url, {
        infoHash: h.infoHash, peerId: this.opts.peerId, port: this.opts.port, ...h.counters(), event, numwant: event === 'stopped' ? 0 : this.limits().trackerNumwant, trackerId: this.trackerIds.get(key),
      }, { dispatcher: this.opts.dispatcher, limits: this.limits(), signal });
      if (r.trackerId !== undefined) this.trackerIds.set(key, r.trackerId);
      if (r.warning) this.log.warn({ tracker: printable(url), infoHash: h.infoHash.toString('hex'), warning: r.warning }, 'tracker warning');
      this.answered++;
      return r;
    } catch (err) {
      if (signal.aborted) return undefined;
      const e = asSourcemeshError(err);
      this.failed++;
      this.log.warn({ tracker: printable(url), infoHash: h.infoHash.toString('hex'), code: e.code, error: e.message }, 'tracker announce failed');
      return undefined;
    }
  }

  /** No more announces; `stopped` to each tracker (BEP 3). */
  async close(): Promise<void> {
    this.abort.abort();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.allSettled([...this.running]);
    // All the goodbyes together within one trackerTimeoutMs: a tracker that is down does not hold up the exit.
    // Each info-hash's to the tracker that last answered for it (a group's first one if none did).
    const stop = AbortSignal.timeout(this.limits().trackerTimeoutMs);
    await Promise.all(this.groups.map(async (g) => {
      for (const h of g.hashes) await this.one(g.answeredBy.get(h) ?? g.tiers.order()[0]!, h, 'stopped', stop);
    }));
  }
}
