// How an accepted release is printed by `release verify`, `fetch` and `mirror sync --trust-policy`.
import type { CheckedRelease } from '../trust/check-release.ts';
import { keyLabel } from '../trust/policy.ts';

/** One line: what was released, by which keys, into which checkpoint of which log key, and how it relates to the stored one. */
export function describeVerdict(v: CheckedRelease): string {
  const others = v.otherLogKeys.map((k) => (k === '' ? 'a key not recorded (state from before keys were)' : keyLabel(k)));
  const newKey = others.length === 0 ? '' : ` (first under this log key; the checkpoints stored for ${others.join(', ')} of this origin are kept, not compared)`;
  return `accepted: ${v.release.kind} ${v.release.name} ${v.release.version} (sha256 ${v.release.sha256}) signed by ${v.signers.join(', ')} (key set ${v.keySet.sequence}); `
    + `log index ${v.index} in a checkpoint of ${v.checkpoint.size} entries signed by ${keyLabel(v.logKey)}, cosigned by ${v.witnesses.join(', ')}; consistency ${v.consistency}${newKey}, ${v.mode}`;
}

export function verdictJson(v: CheckedRelease) {
  return {
    accepted: true, mode: v.mode, release: v.release, signers: v.signers, keySet: v.keySet, index: v.index,
    checkpoint: v.checkpoint.note, size: v.checkpoint.size, logKey: v.logKey, witnesses: v.witnesses, consistency: v.consistency,
    otherLogKeys: v.otherLogKeys,
  };
}
