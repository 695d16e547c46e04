// Peers of a torrent learned while its files are downloading (a tracker's re-announce, BEP 3: a seeder
// that joined the swarm later), used by those same downloads. A download's sources are fixed when it
// starts (src/fetch/segmented.ts), so each file is given, besides a source per peer known then, a few
// places for peers learned later (`swarmLatePeers`, a bound: a tracker is attacker-controlled and may name
// any number). An empty place says it has no piece, so the scheduler leaves it alone as it does a peer
// with an empty bitfield; once a peer is learned, the place becomes that peer's source (connected at
// once, its bitfield then telling the scheduler what to ask it for) and stays so for the download.
import type { Source } from '../fetch/plan.ts';
import { transferError, type OpenOptions, type Opened } from '../fetch/transport.ts';

export class LatePeers {
  /** Per torrent (its info-hash): the peers known, and those learned later in the order learned. */
  private readonly torrents = new Map<string, { known: Set<string>; learned: string[] }>();
  private readonly places: number;
  /** Called once after each `learn` that took a peer (waits of `waitForMore`). */
  private readonly wakers = new Set<() => void>();

  /** `places`: peers learned later that a file's download can take on (limits.swarmLatePeers). */
  constructor(places: number) {
    this.places = places;
  }

  /** The peers of torrent `key` known from the start (not learned again). */
  known(key: string, peers: string[]): void {
    const t = this.torrent(key);
    for (const p of peers) t.known.add(p);
  }

  /** Peers named for torrent `key` now: the new ones (up to the places left) are taken; how many were. */
  learn(key: string, peers: string[]): number {
    const t = this.torrent(key);
    let added = 0;
    for (const p of peers) {
      if (t.learned.length >= this.places) break;
      if (t.known.has(p)) continue;
      t.known.add(p);
      t.learned.push(p);
      added++;
    }
    if (added > 0) for (const wake of [...this.wakers]) wake();
    return added;
  }

  /**
   * Resolves true once torrent `key` has learned more than `mark` peers (`learnedOf(key).length` when
   * its download's sources were planned), false at `deadline` (a Date.now() time), on `signal`, or at
   * once when every place is taken.
   */
  async waitForMore(key: string, mark: number, deadline: number, signal?: AbortSignal): Promise<boolean> {
    const t = this.torrent(key);
    while (t.learned.length <= mark) {
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted || t.learned.length >= this.places) return false;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.wakers.delete(done);
          signal?.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.wakers.add(done);
        signal?.addEventListener('abort', done, { once: true });
      });
    }
    return true;
  }

  /** Peers learned later for torrent `key`, in order. */
  learnedOf(key: string): readonly string[] {
    return this.torrent(key).learned;
  }

  /**
   * The places of one file's download for the peers of torrent `key` learned later: place k becomes the
   * source `sourceOf` makes for the k-th peer learned, when there is one.
   */
  sourcesFor(key: string, sourceOf: (peer: string) => Source): Source[] {
    const t = this.torrent(key);
    return Array.from({ length: this.places }, (_, k) => latePlace(k, () => t.learned[k], sourceOf));
  }

  private torrent(key: string) {
    let t = this.torrents.get(key);
    if (!t) this.torrents.set(key, (t = { known: new Set(), learned: [] }));
    return t;
  }
}

/** Place `k`: empty (no piece, asked for nothing) until `peer()` names one, then that peer's source. */
function latePlace(k: number, peer: () => string | undefined, sourceOf: (peer: string) => Source): Source {
  let bound: Source | undefined;
  const inner = (): Source | undefined => {
    if (bound) return bound;
    const p = peer();
    if (p !== undefined) bound = sourceOf(p);
    return bound;
  };
  const location = {
    type: 'opener' as const,
    open: (o: OpenOptions): Promise<Opened> => {
      const s = inner();
      // Not retried (nothing to retry until a peer is learned) and no fault (`notYet`): a download whose
      // every source failed waits for a peer (swarm-fetch.ts, `peerWait`) and plans its sources again.
      if (s?.location.type !== 'opener') return Promise.reject(transferError('E_NETWORK', `a peer learned later (place ${k + 1}): none yet`, false, { notYet: true }));
      return s.location.open(o);
    },
    has: (from: number, to: number): boolean | undefined => {
      const s = inner();
      return s?.location.type === 'opener' ? s.location.has?.(from, to) : false;
    },
    // -3 while empty (peer-source.ts uses -1 and -2 for its own fixed answers): it changes once a peer is bound.
    hasVersion: (): number => {
      const s = inner();
      return s?.location.type === 'opener' ? (s.location.hasVersion?.() ?? -3) : -3;
    },
  };
  return {
    role: 'peer',
    // The peer's own label once there is one: blame and the report name the peer.
    get label() {
      return inner()?.label ?? `a peer learned later (place ${k + 1})`;
    },
    location,
  };
}
