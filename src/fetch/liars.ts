// Blame for a segmented download whose file does not verify and that has no piece map to check pieces
// by: every piece is taken again from other sources (up to two); where opinions differ, each source that
// took part in a dispute is in turn assumed to be the liar and its bytes replaced by another's. The
// assumption under which the file verifies names the liar, with the disputed ranges and both hashes as
// evidence. Disputed bytes wait in a scratch file beside the partial, not in memory: a liar may dispute
// every piece.
//
// Pieces adopted from an earlier run's partial (piece-record.ts) were served by nobody of this run: their
// bytes are an opinion of their own, "the earlier run", which is assumed wrong wherever it is disputed
// (it can be repaired, never blamed), alone first and then together with each suspect of this run.
import { open, rm, type FileHandle } from 'node:fs/promises';
import { fromSystemError } from '../errors.ts';
import { writeFully } from '../fs/write-fully.ts';
import type { Distfile } from '../manifest/distfile.ts';
import { hashFile, sha256Hex } from '../store/digest.ts';
import type { Partial } from '../store/store.ts';
import { readBack } from './cross-check.ts';
import type { DownloadContext } from './download.ts';
import type { Blame, Piece, SourceState } from './piece-scheduler.ts';
import { readRange } from './range.ts';

export interface Opinion<S> {
  st: S;
  sha: string;
}

export interface Dispute<P, S, O extends Opinion<S> = Opinion<S>> {
  piece: P;
  opinions: O[];
}

/**
 * The sets of sources to assume lied, in the order to try them: each source of a dispute alone, then
 * (when at most `pairsUpTo` take part: limits.ts `blamePairSources`) each pair, for two liars who both served pieces of
 * the file; or, when `earlier` (the earlier run's bytes) takes part, `earlier` alone and then with
 * each other one.
 */
export function assumptions<S>(disputes: readonly Dispute<unknown, S>[], earlier?: S, pairsUpTo = 0): Set<S>[] {
  const involved = [...new Set(disputes.flatMap((x) => x.opinions.map((o) => o.st)))];
  if (earlier === undefined || !involved.includes(earlier)) {
    const singles = involved.map((s) => new Set([s]));
    if (involved.length > pairsUpTo) return singles;
    return [...singles, ...involved.flatMap((a, i) => involved.slice(i + 1).map((b) => new Set([a, b])))];
  }
  return [new Set([earlier]), ...involved.filter((s) => s !== earlier).map((s) => new Set([earlier, s]))];
}

/**
 * Under the assumption that `suspects` lied, the opinion each disputed piece takes: one from outside
 * the suspects that differs from what they served, else any from outside; the first opinion (the
 * file's bytes) when every opinion is a suspect's.
 */
export function picksUnder<P, S, O extends Opinion<S>>(disputes: readonly Dispute<P, S, O>[], suspects: ReadonlySet<S>): { piece: P; pick: O; index: number }[] {
  return disputes.map(({ piece, opinions }) => {
    const suspected = new Set(opinions.filter((o) => suspects.has(o.st)).map((o) => o.sha));
    let index = opinions.findIndex((o) => !suspects.has(o.st) && !suspected.has(o.sha));
    if (index < 0) index = opinions.findIndex((o) => !suspects.has(o.st));
    if (index < 0) index = 0;
    return { piece, pick: opinions[index]!, index };
  });
}

/**
 * Once the file verifies with the `chosen` opinions, every opinion that differs from the chosen one of
 * its piece was a lie: the pinned sha256 proves the chosen bytes. For each source that gave one, its
 * wrong opinions in dispute order (the first is the evidence). This names a second liar too, one that
 * only gave opinions while the first was found (its bytes were read, so its lie is known).
 */
export function wrongOpinions<P, S, O extends Opinion<S>>(disputes: readonly Dispute<P, S, O>[], chosen: readonly { pick: O }[]): Map<S, { piece: P; mine: O; right: O }[]> {
  const out = new Map<S, { piece: P; mine: O; right: O }[]>();
  disputes.forEach(({ piece, opinions }, i) => {
    const right = chosen[i]!.pick;
    for (const o of opinions) {
      if (o.sha === right.sha) continue;
      const list = out.get(o.st) ?? [];
      if (!list.some((x) => x.piece === piece)) list.push({ piece, mine: o, right });
      out.set(o.st, list);
    }
  });
  return out;
}

/**
 * Find the liar among `states` (see the top of this file) and repair the file; returns the file's
 * digest afterwards (the pinned one when the repair worked). `earlier` stands for the bytes of adopted
 * pieces.
 */
export async function findLiars(d: Distfile, pieces: Piece[], states: SourceState[], fh: FileHandle, partial: Partial, ctx: DownloadContext, blame: Blame[], earlier: SourceState): Promise<string> {
  type Kept = Opinion<SourceState> & { at: number };
  const disputes: Dispute<Piece, SourceState, Kept>[] = [];
  const scratchPath = `${partial.path}.disputed`;
  const scratch = await open(scratchPath, 'w+').catch((err) => { throw fromSystemError(err, scratchPath); });
  let scratchSize = 0;
  const keep = async (body: Buffer) => {
    const at = scratchSize;
    await scratch.write(body, 0, body.length, at);
    scratchSize += body.length;
    return at;
  };
  const kept = async (piece: Piece, o: Kept) => {
    const buf = Buffer.allocUnsafe(piece.end - piece.start + 1);
    await scratch.read(buf, 0, buf.length, o.at);
    return buf;
  };
  const putBack = async (piece: Piece, o: Kept) => {
    const body = await kept(piece, o);
    await writeFully(fh, [body], piece.start);
  };
  // Opinions are asked of sources that may still serve ranges, last resorts last.
  const askable = states.filter((s) => !s.dropped && !s.noRanges).sort((a, b) => Number(Boolean(a.source.lastResort)) - Number(Boolean(b.source.lastResort)));
  try {
    for (const piece of pieces) {
      const mine = await readBack(fh, piece);
      const from = piece.from ?? earlier;
      const opinions: { st: SourceState; sha: string; body: Buffer }[] = [{ st: from, sha: sha256Hex(mine), body: mine }];
      for (const other of askable.filter((s) => s !== from).slice(0, 2)) {
        try {
          const got = await readRange(other.source, piece.start, piece.end, ctx, ctx.signal ?? new AbortController().signal, piece.end + 1);
          if (got !== 'no-ranges') opinions.push({ st: other, sha: sha256Hex(got.body), body: got.body });
        } catch {
          // a source that cannot answer gives no opinion
        }
      }
      if (new Set(opinions.map((o) => o.sha)).size > 1) {
        // Every opinion is kept, the file's own first: to undo a wrong assumption.
        const keptOpinions: Kept[] = [];
        for (const o of opinions) keptOpinions.push({ st: o.st, sha: o.sha, at: await keep(o.body) });
        disputes.push({ piece, opinions: keptOpinions });
      }
    }
    for (const suspects of assumptions(disputes, earlier, ctx.limits.blamePairSources)) {
      const chosen = picksUnder(disputes, suspects);
      for (const { piece, pick } of chosen) await putBack(piece, pick);
      const digest = (await hashFile(partial.path)).digest('hex');
      if (digest === d.sha256) {
        // The suspects, and any other source whose opinion differs from the verified bytes.
        for (const [suspect, lies] of wrongOpinions(disputes, chosen)) {
          if (suspect === earlier) continue; // repaired; an earlier run's bytes name nobody
          const first = lies[0]!;
          const b: Blame = {
            source: suspect.source.label, code: 'E_CHECKSUM', range: [first.piece.start, first.piece.end], served: first.mine!.sha, expected: first.right.sha,
            message: `${suspect.source.label} served bytes ${first.piece.start}-${first.piece.end} of ${d.name} with sha256 ${first.mine!.sha}; ${first.right.st.source.label} served ${first.right.sha}, and only that makes the file verify${lies.length > 1 ? ` (${lies.length} pieces in all)` : ''}`,
          };
          suspect.dropped = b;
          blame.push(b);
        }
        for (const { piece, pick } of chosen) {
          if (pick.st === earlier) continue;
          piece.from = pick.st;
          piece.adopted = undefined;
        }
        return digest;
      }
      // Put back the original bytes before trying the next assumption.
      for (const { piece, opinions } of disputes) await putBack(piece, opinions[0]!);
    }
    return (await hashFile(partial.path)).digest('hex');
  } finally {
    await scratch.close();
    await rm(scratchPath, { force: true });
  }
}
