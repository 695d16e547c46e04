// What a chained Roughtime measurement says (RFC 10049 "Measurement Sequence", "Integration into NTP").
// Pure: the observations, the quorum and the instant to judge at are arguments.
//
// Each valid response says the true time was within MIDP +- RADI when the server processed the request,
// which happened between our send and our receive. At one local instant T that is the interval
//   (MIDP - RADI + (T - received), MIDP + RADI + (T - sent)).
// The servers that agree are the largest set of these intervals with a common point (on a line, pairwise
// overlap is enough: Marzullo's algorithm); the time we trust is their intersection. A server outside that
// set contradicts it; it is a liar with proof when the chain holds a pair that breaks causal order
// (response i before response j, yet MIDP_i - RADI_i > MIDP_j + RADI_j), which anyone can check from the
// signed responses and the chained nonces. Repeating the sequence (the RFC asks for two rounds in the same
// order) puts every server both before and after every other one, so a clock too far ahead or behind
// leaves such a pair.
import { SourcemeshError } from '../errors.ts';

export interface Observation {
  /** The server's name (its witness key name). */
  readonly server: string;
  /** Local monotonic milliseconds when the request was sent and the response received. */
  readonly sent: number;
  readonly received: number;
  /** From the verified response: POSIX seconds and seconds. */
  readonly midpoint: number;
  readonly radius: number;
}

export interface Contradiction {
  /** Index in the chain of the earlier and the later response. */
  readonly earlier: number;
  readonly later: number;
  readonly earlierServer: string;
  readonly laterServer: string;
}

export interface Judgement {
  /** POSIX milliseconds at the local instant `at`: the true time is within [earliest, latest]. */
  readonly earliest: number;
  readonly latest: number;
  /** The servers that agree (at least the quorum). */
  readonly agreed: readonly string[];
  /** Servers whose answers contradict those that agree, each with the causal-order breaks that prove it. */
  readonly liars: readonly { readonly server: string; readonly proof: readonly Contradiction[] }[];
}

/** Pairs of the chain that break causal order ("Measurement Sequence"). */
export function causalBreaks(chain: readonly Observation[]): Contradiction[] {
  const out: Contradiction[] = [];
  for (let i = 0; i < chain.length; i++) {
    for (let j = i + 1; j < chain.length; j++) {
      const a = chain[i]!;
      const b = chain[j]!;
      if (a.midpoint - a.radius > b.midpoint + b.radius) out.push({ earlier: i, later: j, earlierServer: a.server, laterServer: b.server });
    }
  }
  return out;
}

interface Span { server: string; lo: number; hi: number }

/** Each server's interval at instant `at` (its observations intersected: a server must agree with itself). */
function spans(chain: readonly Observation[], at: number): { spans: Span[]; selfContradicting: string[] } {
  const by = new Map<string, Span>();
  const bad = new Set<string>();
  for (const o of chain) {
    const lo = (o.midpoint - o.radius) * 1000 + (at - o.received);
    const hi = (o.midpoint + o.radius) * 1000 + (at - o.sent);
    const s = by.get(o.server);
    if (s === undefined) by.set(o.server, { server: o.server, lo, hi });
    else {
      s.lo = Math.max(s.lo, lo);
      s.hi = Math.min(s.hi, hi);
      if (s.lo > s.hi) bad.add(o.server);
    }
  }
  return { spans: [...by.values()].filter((s) => !bad.has(s.server)), selfContradicting: [...bad] };
}

/** The largest group of spans with a common point, and that point's region (Marzullo). */
function bestGroup(list: readonly Span[]): { members: Span[]; lo: number; hi: number } {
  const edges = list.flatMap((s) => [{ x: s.lo, d: 1 }, { x: s.hi, d: -1 }]);
  // At equal positions starts come first: closed intervals that touch agree.
  edges.sort((a, b) => a.x - b.x || b.d - a.d);
  let count = 0;
  let best = 0;
  let at = 0;
  for (const e of edges) {
    count += e.d;
    if (count > best) {
      best = count;
      at = e.x;
    }
  }
  const members = list.filter((s) => s.lo <= at && at <= s.hi);
  return { members, lo: Math.max(...members.map((s) => s.lo)), hi: Math.min(...members.map((s) => s.hi)) };
}

/**
 * Judge a chain of valid responses: the interval that `quorum` servers agree on at local instant `at`,
 * and the servers that contradict them. E_POLICY when fewer than `quorum` agree, or when the servers
 * outside the largest group could form a quorum of their own (then nothing says which group is honest).
 */
export function judge(chain: readonly Observation[], quorum: number, at: number): Judgement {
  const { spans: list, selfContradicting } = spans(chain, at);
  const servers = new Set(chain.map((o) => o.server)).size;
  if (list.length === 0) throw new SourcemeshError('E_POLICY', `no signed time: none of the witnesses gave a consistent answer (${servers} answered; the quorum is ${quorum})`);
  const group = bestGroup(list);
  if (group.members.length < quorum) {
    throw new SourcemeshError('E_POLICY', `no signed time: at most ${group.members.length} of ${servers} witnesses agree; the quorum is ${quorum}`, { agreed: group.members.map((s) => s.server) });
  }
  const outside = list.filter((s) => !group.members.includes(s));
  if (outside.length >= quorum && bestGroup(outside).members.length >= quorum) {
    throw new SourcemeshError('E_POLICY', `no signed time: two groups of at least ${quorum} witnesses disagree (${group.members.map((s) => s.server).join(', ')} against ${bestGroup(outside).members.map((s) => s.server).join(', ')})`);
  }
  const agreed = new Set(group.members.map((s) => s.server));
  const breaks = causalBreaks(chain);
  const liars = [...outside.map((s) => s.server), ...selfContradicting].sort().map((server) => ({
    server,
    proof: breaks.filter((b) => (b.earlierServer === server && agreed.has(b.laterServer)) || (b.laterServer === server && agreed.has(b.earlierServer)) || (b.earlierServer === server && b.laterServer === server)),
  }));
  return { earliest: group.lo, latest: group.hi, agreed: [...agreed].sort(), liars };
}
