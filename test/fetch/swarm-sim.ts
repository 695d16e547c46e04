// A swarm of leechers driven through the very scheduler a download runs (src/fetch/piece-scheduler.ts),
// in rounds: one seeder and one web seed, each serving one piece per round to all leechers together (the
// uplink cap of bench:swarm), and leechers that serve each other without a cap. Pure: the randomness
// comes in. Used by piece-scheduler-swarm.test.ts to compare how many pieces the seeder and the web seed
// had to send.
import { PieceScheduler, type Attempt, type SwarmOptions } from '../../src/fetch/piece-scheduler.ts';
import type { Source } from '../../src/fetch/plan.ts';

export interface SwarmSimResult {
  /** Pieces the seeder and the web seed sent that were kept. */
  fromSources: number;
  rounds: number;
  complete: boolean;
  /** Most attempts any one source had in flight from one leecher at once. */
  maxPerSource: number;
}

export function simulateSwarm(opts: { pieces: number; leechers: number; segments: number; random: () => number; swarm?: Omit<SwarmOptions, 'random'> }): SwarmSimResult {
  const PL = 1000;
  const size = opts.pieces * PL;
  const scheds: PieceScheduler[] = [];
  const whole = (label: string): Source => ({ role: label === 'mirror' ? 'mirror' : 'peer', label, location: label === 'mirror' ? { type: 'http', url: 'http://127.0.0.1:1/' } : { type: 'opener', open: () => Promise.reject(new Error('simulated')), has: () => true } });
  const leecher = (j: number): Source => ({
    role: 'peer', label: `l${j}`,
    location: { type: 'opener', open: () => Promise.reject(new Error('simulated')), has: (s: number, e: number) => {
      for (let i = Math.floor(s / PL); i <= Math.floor(e / PL); i++) if (!scheds[j]!.pieces[i]!.written) return false;
      return true;
    } },
  });
  for (let j = 0; j < opts.leechers; j++) {
    const sources = [whole('seed'), whole('mirror'), ...Array.from({ length: opts.leechers }, (_, k) => k).filter((k) => k !== j).map(leecher)];
    const first = Math.floor(opts.random() * opts.pieces);
    scheds.push(new PieceScheduler(size, PL, PieceScheduler.states(sources), first, opts.swarm && { ...opts.swarm, random: opts.random }));
  }
  const inflight: { a: Attempt; leecher: number; round: number }[][] = scheds.map(() => []);
  let fromSources = 0;
  let maxPerSource = 0;
  let round = 0;
  for (; round < 50 * opts.pieces && !scheds.every((s) => s.complete()); round++) {
    const now = round * 100;
    for (let j = 0; j < scheds.length; j++) {
      const s = scheds[j]!;
      while (inflight[j]!.length < opts.segments) {
        const a = s.assign(now);
        if (!a) break;
        inflight[j]!.push({ a, leecher: j, round });
        maxPerSource = Math.max(maxPerSource, a.state.active);
      }
    }
    // The capped sources serve their oldest request each; leechers serve every request made last round.
    const served = new Set<{ a: Attempt }>();
    for (const label of ['seed', 'mirror']) {
      const queue = inflight.flat().filter((x) => x.a.state.source.label === label).sort((x, y) => x.round - y.round);
      if (queue[0]) served.add(queue[0]);
    }
    for (const x of inflight.flat()) if (x.a.state.source.label.startsWith('l') && x.round < round) served.add(x);
    for (const x of served as Set<{ a: Attempt; leecher: number }>) {
      const s = scheds[x.leecher]!;
      inflight[x.leecher] = inflight[x.leecher]!.filter((y) => y !== x);
      const owner = x.a.state.source.label.startsWith('l') ? scheds[Number(x.a.state.source.label.slice(1))]! : undefined;
      if (owner && !owner.pieces[x.a.piece.index]!.written) {
        s.failed(x.a); // asked of a peer that lacks it: it never comes (no blame: `notYet`)
        continue;
      }
      if (!s.arrived(x.a)) continue;
      if (s.accepted(x.a, PL, 100)) {
        s.written(x.a.piece);
        if (!owner) fromSources++;
      }
      s.release(x.a);
    }
  }
  return { fromSources, rounds: round, complete: scheds.every((s) => s.complete()), maxPerSource };
}
