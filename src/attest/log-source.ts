// Attestations from a transparency log: every entry up to the log's newest checkpoint, that checkpoint
// checked against the trust policy (the log's signature and a fresh witness quorum, trust/policy.ts), and
// the entries' leaf hashes folded into the tree root (RFC 9162 §2.1) and compared with the checkpoint's: one
// comparison proves every entry read is in the witnessed tree, as an inclusion proof per entry would. DSSE
// entries signed by a policy builder become claims; everything else in the log is passed over.
// The checkpoint is also held against the newest one this client stored for the log (trust/client-state.ts),
// by the same rules as release verification (policy.ts checkConsistency): a smaller tree is a rollback, the
// same size with another root a fork. A larger tree needs no fetched consistency proof: every entry is read,
// so the root of its first `stored.size` leaves is computed here and must be the stored root (RFC 9162 §2.1.4,
// which a consistency proof only abbreviates).
// With the names of the files wanted (a manifest's), attestationsFromLogIndex asks the log's subject index
// instead (GET /attestations/name/NAME): O(matches) entries read, each proven in the witnessed checkpoint by
// its own inclusion proof, the checkpoint proven to extend the stored one by a consistency proof from the
// tiles. A log without the index (404) is read whole as above.
import { SourcemeshError } from '../errors.ts';
import type { Limits } from '../limits.ts';
import type { AttestationPage } from '../trust/log-client.ts';
import { CompactRange, hashesEqual, leafHash, proveConsistency, verifyInclusion, type HashReader } from '../trust/merkle.ts';
import type { KeyLookup } from '../trust/log/entries/types.ts';
import { entrySubjectKeys, subjectKey } from '../trust/log/subjects.ts';
import { formatVerifierKey } from '../trust/note.ts';
import { checkCheckpoint, checkConsistency, type StoredCheckpoint, type TrustPolicy, type Verdict } from '../trust/policy.ts';
import { parseEntryBundle, TILE_WIDTH, type EntryBundle } from '../trust/tiles.ts';
import { bundleOfEntry, verifyEnvelopeEntry, type AttestationLimits, type VerifiedAttestation } from './bundle.ts';
import type { Refused } from './files.ts';
import type { Attested } from './quorum.ts';

/** What is read from the log: its checkpoint and entry bundles (LogClient). */
export interface LogReader {
  readonly url: string;
  checkpoint(): Promise<string>;
  entryBundle(bundle: EntryBundle): Promise<Uint8Array>;
  /** The subject index (LogClient.attestations); absent or undefined: the log has none. */
  attestations?(kind: 'sha256' | 'name', value: string, size: number, after: number): Promise<AttestationPage | undefined>;
  /** The tree's hashes from its tiles, for a consistency proof (LogClient.reader). */
  reader?(size: number): HashReader;
}

export type LogSource = { file: string; attestation: VerifiedAttestation; index: number };

export interface LogAttestations {
  verified: Attested<LogSource>[];
  refused: Refused[];
  size: number;
  /** The checkpoint read, as the client state stores it, and how it relates to `stored`. */
  checkpoint: StoredCheckpoint;
  consistency: Verdict['consistency'];
}

/** `stored`: the newest checkpoint of this log the client accepted before (throws E_POLICY on rollback or fork). */
export async function attestationsFromLog(log: LogReader, policy: TrustPolicy, keys: KeyLookup, now: number, limits: Limits & AttestationLimits, stored?: StoredCheckpoint): Promise<LogAttestations> {
  const note = await log.checkpoint();
  const cp = checkCheckpoint(note, policy, now, limits);
  const checkpoint: StoredCheckpoint = { size: cp.size, root: cp.root, note, key: formatVerifierKey(policy.log.key) };
  // Rollback and same-size fork are refused before any entry is read; a larger tree is 'unproven' until the
  // prefix root below is compared.
  let { consistency } = checkConsistency(stored, checkpoint, [], limits);
  let prefixRoot = consistency === 'unproven' && stored!.size === 0 ? new CompactRange().root() : undefined;
  if (cp.size > limits.attestationLogEntries) {
    throw new SourcemeshError('E_UNSUPPORTED', `${log.url}: the log holds ${cp.size} entries; reading more than ${limits.attestationLogEntries} to find attestations is refused`, { size: cp.size });
  }
  const range = new CompactRange();
  const verified: Attested<LogSource>[] = [];
  const refused: Refused[] = [];
  for (let index = 0; index * TILE_WIDTH < cp.size; index++) {
    const width = Math.min(TILE_WIDTH, cp.size - index * TILE_WIDTH);
    // Attacker-controlled until the root matches: parsed bounded, judged only after the fold below.
    const entries = parseEntryBundle(await log.entryBundle({ index, width }), width, limits);
    for (const [i, entry] of entries.entries()) {
      range.append(leafHash(entry));
      if (consistency === 'unproven' && range.size === stored!.size) prefixRoot = range.root();
      if (entry[0] !== 0x7b) continue; // '{': the DSSE entry type (log entries registry)
      const at = index * TILE_WIDTH + i;
      const file = `${log.url} entry ${at}`;
      try {
        const claim = verifyEnvelopeEntry(entry, file, keys, limits);
        verified.push({ claim, source: { file, index: at, attestation: { claim, entry, bundle: bundleOfEntry(entry) } } });
      } catch (err) {
        if (!(err instanceof SourcemeshError) || err.code === 'E_INTERNAL') throw err;
        // Another signer's statement is no attestation of ours; a builder's bad signature is reported.
        if (err.code === 'E_SIGNATURE') refused.push({ file, code: err.code, message: err.message });
      }
    }
  }
  if (!hashesEqual(range.root(), cp.root)) {
    throw new SourcemeshError('E_PROOF', `${log.url}: its ${cp.size} entries do not hash to the root of its witnessed checkpoint`, { size: cp.size });
  }
  if (consistency === 'unproven') {
    // The whole tree is proven above, so its first stored.size leaves are the log's own: their root must be the stored one.
    if (prefixRoot === undefined || !hashesEqual(prefixRoot, stored!.root)) {
      throw new SourcemeshError('E_POLICY', `fork: ${log.url}: the tree of ${cp.size} entries does not extend the tree of ${stored!.size} seen before (its first ${stored!.size} entries hash to another root)`, {
        stored: stored!.note, presented: note, ...(stored!.key === undefined ? {} : { storedKey: stored!.key }), presentedKey: checkpoint.key,
      });
    }
    consistency = 'proven';
  }
  return { verified, refused, size: cp.size, checkpoint, consistency };
}

/**
 * The attestations of the files named `names`, through the log's subject index; the full read
 * (attestationsFromLog) when the log has no index. Every entry answered is proven in the witnessed tree by its
 * inclusion proof (E_PROOF otherwise) and must attest one of the names asked for (E_PROOF: a damaged or lying
 * index); the index can leave entries out, which only withholds attestations (docs/FORMATS.md).
 */
export async function attestationsFromLogIndex(log: LogReader, policy: TrustPolicy, keys: KeyLookup, now: number, limits: Limits & AttestationLimits, stored: StoredCheckpoint | undefined, names: readonly string[]): Promise<LogAttestations> {
  if (!log.attestations || !log.reader) return attestationsFromLog(log, policy, keys, now, limits, stored);
  const note = await log.checkpoint();
  const cp = checkCheckpoint(note, policy, now, limits);
  const checkpoint: StoredCheckpoint = { size: cp.size, root: cp.root, note, key: formatVerifierKey(policy.log.key) };
  // Rollback and same-size fork refused; a larger tree must extend the stored one (RFC 9162 §2.1.4).
  const proofs = stored !== undefined && stored.size > 0 && stored.size < cp.size ? [{ size: stored.size, proof: await proveConsistency(stored.size, cp.size, log.reader(cp.size)) }] : [];
  let { consistency } = checkConsistency(stored, checkpoint, proofs, limits);
  if (consistency === 'unproven' && stored!.size === 0) consistency = 'proven'; // every tree extends the empty one
  let read = 0;
  /** One name's attestations, every page; undefined when the log has no index. */
  const lookup = async (name: string) => {
    const found: { index: number; verified?: Attested<LogSource>; refused?: Refused }[] = [];
    const key = subjectKey('name', name)!;
    for (let after = -1; ;) {
      const page = await log.attestations!('name', name, cp.size, after);
      if (page === undefined) return undefined;
      for (const { index, entry, inclusionProof } of page.entries) {
        if (++read > limits.attestationLogEntries) {
          throw new SourcemeshError('E_UNSUPPORTED', `${log.url}: its index answers more than ${limits.attestationLogEntries} entries for the files asked`, { size: cp.size });
        }
        const file = `${log.url} entry ${index}`;
        try {
          verifyInclusion(index, cp.size, leafHash(entry), inclusionProof, cp.root, limits);
        } catch (err) {
          if (err instanceof SourcemeshError && err.code === 'E_PROOF') throw new SourcemeshError('E_PROOF', `${file}: not in the tree of its witnessed checkpoint (the inclusion proof fails)`, { index, size: cp.size });
          throw err;
        }
        if (!entrySubjectKeys(entry).some((k) => k.equals(key))) {
          throw new SourcemeshError('E_PROOF', `${file}: the log's index answered it for ${JSON.stringify(name)}, but it has no such subject`, { index });
        }
        try {
          const claim = verifyEnvelopeEntry(entry, file, keys, limits);
          if (claim.name !== name) throw new SourcemeshError('E_PROOF', `${file}: the log's index answered it for ${JSON.stringify(name)}, but it attests ${JSON.stringify(claim.name)}`, { index });
          found.push({ index, verified: { claim, source: { file, index, attestation: { claim, entry, bundle: bundleOfEntry(entry) } } } });
        } catch (err) {
          if (!(err instanceof SourcemeshError) || err.code === 'E_INTERNAL' || err.code === 'E_PROOF') throw err;
          // As in the full read: another signer's statement is passed over, a builder's bad signature reported.
          if (err.code === 'E_SIGNATURE') found.push({ index, refused: { file, code: err.code, message: err.message } });
        }
      }
      if (!page.more) break;
      after = page.entries.at(-1)!.index;
    }
    return found;
  };
  // A few names at a time (a manifest names hundreds of files; a log may be far, or behind Tor); the
  // results are then taken in the order of the names, each entry once.
  const unique = [...new Set(names)];
  const results: (Awaited<ReturnType<typeof lookup>>)[] = new Array(unique.length);
  let next = 0;
  const worker = async () => {
    while (next < unique.length) {
      const i = next++;
      results[i] = await lookup(unique[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limits.attestationLookupsAtOnce, unique.length) }, worker));
  if (results.some((r) => r === undefined)) return attestationsFromLog(log, policy, keys, now, limits, stored);
  const verified: Attested<LogSource>[] = [];
  const refused: Refused[] = [];
  const seen = new Set<number>();
  for (const f of results.flatMap((r) => r!)) {
    if (seen.has(f.index)) continue;
    seen.add(f.index);
    if (f.verified) verified.push(f.verified);
    if (f.refused) refused.push(f.refused);
  }
  return { verified, refused, size: cp.size, checkpoint, consistency };
}
