// The project's side of a release (`release`, `release rotate`): submit a signed note to the log, wait for
// the cosigned checkpoint that includes it, and assemble the release bundle (docs/FORMATS.md, "Releases").
// What the log answers is checked here before it goes into a bundle; clients check everything again.

import { LIMITS } from '../limits.ts';
import { parseCheckpoint } from './checkpoint.ts';
import { awaitInclusion, checkpointSize, type LogClient } from './log-client.ts';
import { type Hash, leafHash, proveConsistency, proveInclusion, verifyInclusion } from './merkle.ts';
import { parseNote } from './note.ts';
import type { ReleaseBundle, RotationHop } from './release.ts';
import { chainHops, type ChainFile } from './rotation.ts';

export interface LoggedEntry {
  readonly index: number;
  readonly checkpoint: string;
  readonly inclusionProof: Hash[];
}

/**
 * Submit a signed note; the index, and the cosigned checkpoint with the entry's inclusion proof (verified).
 * `keys`: the signers' vkeys, for a log that admits any signed statement (LogClient.add).
 */
export async function submitToLog(log: LogClient, note: string, keys: readonly string[] = []): Promise<LoggedEntry> {
  const entry = new TextEncoder().encode(note);
  const added = await log.add(entry, { keys });
  if (added.checkpoint !== undefined && added.inclusionProof !== undefined) {
    const size = checkpointSize(added.checkpoint);
    const root = parseCheckpoint(parseNote(added.checkpoint).text).rootHash;
    verifyInclusion(added.index, size, leafHash(entry), added.inclusionProof, root);
    return { index: added.index, checkpoint: added.checkpoint, inclusionProof: added.inclusionProof };
  }
  return { index: added.index, ...(await awaitInclusion(log, entry, added.index, LIMITS.logCheckpointWaitMs)) };
}

/**
 * The bundle: the release, the rotation hops of `chain` proved into the same checkpoint, and a consistency
 * proof from the previous bundle's checkpoint (of the same log) so offline clients can prove this one extends it.
 */
export async function assembleBundle(log: LogClient, note: string, logged: LoggedEntry, chain: ChainFile | undefined, previous: ReleaseBundle | undefined): Promise<ReleaseBundle> {
  const size = checkpointSize(logged.checkpoint);
  const reader = log.reader(size);
  const rotations: RotationHop[] = [];
  for (const hop of chain === undefined ? [] : chainHops(chain)) rotations.push({ ...hop, inclusionProof: await proveInclusion(hop.index, size, reader) });
  const consistency = [];
  // Only a previous bundle of the same log: a proof from another log's size would be a false alarm.
  const sameLog = previous !== undefined && originOf(previous.checkpoint) === originOf(logged.checkpoint);
  const before = sameLog ? checkpointSize(previous.checkpoint) : undefined;
  if (before !== undefined && before > 0 && before < size) consistency.push({ size: before, proof: await proveConsistency(before, size, reader) });
  return { release: note, index: logged.index, checkpoint: logged.checkpoint, inclusionProof: logged.inclusionProof, rotations, consistency };
}

function originOf(note: string): string | undefined {
  try {
    return parseCheckpoint(parseNote(note).text).origin;
  } catch {
    return undefined;
  }
}
