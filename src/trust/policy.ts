// Client trust policy (`sourcemesh.policy/v1`) and the decision whether a release bundle is accepted. Pure:
// the clock (POSIX seconds), what this client stored before, and any consistency proof fetched from the
// log are arguments; the caller stores what the verdict says to store. Format in docs/FORMATS.md.
//
// A release is accepted only with all of:
//   1. a checkpoint signed by the policy's log key, cosigned (cosignature/v1) by at least `quorum`
//      distinct policy witnesses with timestamps no older than `maxCheckpointAgeSeconds` (and no further
//      than LIMITS.trustClockSkewSeconds in the future);
//   2. the release statement's inclusion proof into that checkpoint;
//   3. the rotation hops from the policy's genesis key set, each checked (rotation.ts) and each statement
//      included in the checkpoint; the key set reached not older than the newest this client saw;
//   4. at least the threshold of distinct valid signatures from that key set on the release statement,
//      which names the subject's kind and canonical hash;
//   5. consistency with the newest checkpoint this client stored for this log (its origin and the policy's
//      log key): the same size needs the same root; a larger size needs a consistency proof from the stored
//      size (fetched from the log online, or carried in the bundle; offline without one the larger
//      checkpoint is accepted as unproven); a smaller size is a rollback. A fork or rollback is E_POLICY
//      with both checkpoints, and the key that signed each, as evidence. A checkpoint stored under another
//      key of the same origin is another log's history (a log re-created with a new key, which the policy
//      now names): it is not compared, or every re-created log would look forked.

import * as v from 'valibot';
import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { openCheckpoint } from './checkpoint.ts';
import { type Hash, hashesEqual, leafHash, verifyConsistency, verifyInclusion } from './merkle.ts';
import { createVerifier, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, parseVerifierKey, type VerifierKey } from './note.ts';
import { firstIssue, parseBoundedJson, parseReleaseStatement, type ReleaseBundle, type ReleaseKind, type ReleaseStatement } from './release.ts';
import { genesisPosition, keySetFrom, requireThreshold, type ChainPosition, type KeySet, type SignatureCounter, walkChain } from './rotation.ts';

export const POLICY_FORMAT = 'sourcemesh.policy/v1';

export interface TrustPolicy {
  readonly log: { readonly key: VerifierKey; readonly vkey: string; readonly url?: string };
  readonly witnesses: { readonly keys: readonly VerifierKey[]; readonly quorum: number };
  /** The genesis release key set; later sets come through rotation statements. */
  readonly release: KeySet;
  readonly maxCheckpointAgeSeconds: number;
  /**
   * The builders' quorum for git snapshots (src/attest/quorum.ts): `threshold` distinct builders of
   * `keys` must attest the same bytes. Absent: snapshots are judged by their pinned hashes alone.
   */
  readonly builders?: { readonly threshold: number; readonly keys: readonly VerifierKey[]; readonly vkeys: readonly string[] };
  /**
   * Signed time (src/time/): the policy's witnesses that answer Roughtime (RFC 10049) and where; `quorum`
   * of them must agree; the local clock may be off by `maxSkewSeconds` at most. Absent: "now" is the
   * local clock, floored by the newest cosignature timestamps seen (src/time/signed-now.ts).
   */
  readonly time?: {
    readonly roughtime: readonly { readonly name: string; readonly address: string; readonly publicKey: Uint8Array; readonly protocol: 'udp' | 'tcp'; readonly tcpFallback?: string }[];
    readonly quorum: number;
    readonly maxSkewSeconds: number;
  };
}

export type PolicyLimits = Pick<Limits, 'trustPolicyBytes' | 'rotationKeys' | 'noteKeyNameBytes'>;

const MAX_WITNESSES = 64;

function policySchema(limits: PolicyLimits) {
  const vkey = v.pipe(v.string(), v.maxLength(1024));
  return v.strictObject({
    format: v.literal(POLICY_FORMAT),
    log: v.strictObject({
      vkey,
      url: v.optional(v.pipe(v.string(), v.maxLength(LIMITS.urlBytes), v.check((s) => {
        try {
          const u = new URL(s);
          return (u.protocol === 'http:' || u.protocol === 'https:') && u.search === '' && u.hash === '';
        } catch {
          return false;
        }
      }, 'must be an http(s) URL with no query'))),
    }),
    witnesses: v.strictObject({
      quorum: v.pipe(v.number(), v.safeInteger(), v.minValue(1)),
      vkeys: v.pipe(v.array(vkey), v.minLength(1), v.maxLength(MAX_WITNESSES)),
    }),
    release: v.strictObject({
      threshold: v.pipe(v.number(), v.safeInteger(), v.minValue(1)),
      vkeys: v.pipe(v.array(vkey), v.minLength(1), v.maxLength(limits.rotationKeys)),
    }),
    maxCheckpointAgeSeconds: v.pipe(v.number(), v.safeInteger(), v.minValue(1)),
    // Added with attestations (issue 19). Clients from before refuse a policy that has it (unknown field,
    // E_FORMAT): an old client never silently ignores a builders' quorum it cannot enforce.
    builders: v.optional(v.strictObject({
      threshold: v.pipe(v.number(), v.safeInteger(), v.minValue(1)),
      vkeys: v.pipe(v.array(vkey), v.minLength(1), v.maxLength(limits.rotationKeys)),
    })),
    // Added with signed time (issue 18). Clients from before refuse a policy that has it (unknown field,
    // E_FORMAT): an old client never decides on its local clock a policy meant to be decided on signed time.
    time: v.optional(v.strictObject({
      roughtime: v.pipe(v.array(v.strictObject({
        witness: v.pipe(v.string(), v.maxLength(limits.noteKeyNameBytes)),
        address: v.pipe(v.string(), v.maxLength(300), v.regex(/^(?:\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):\d{1,5}$/, 'must be HOST:PORT or [IPV6]:PORT')),
        // The transport mode, as the RFC's server lists name it ("udp" or "tcp"); UDP when absent. Added
        // after the time fields: a client from before refuses an entry that has it (unknown field, E_FORMAT).
        protocol: v.optional(v.picklist(['udp', 'tcp'])),
      })), v.minLength(1), v.maxLength(MAX_WITNESSES)),
      quorum: v.optional(v.pipe(v.number(), v.safeInteger(), v.minValue(1))),
      maxSkewSeconds: v.optional(v.pipe(v.number(), v.safeInteger(), v.minValue(1))),
    })),
  });
}

/** Parse and check a policy file's text; E_FORMAT naming `source` and the field. */
export function parsePolicy(text: string, source: string, limits: PolicyLimits = LIMITS): TrustPolicy {
  const data = parseBoundedJson(text, source, limits.trustPolicyBytes, 'trust policy');
  const r = v.safeParse(policySchema(limits), data);
  if (!r.success) throw new SourcemeshError('E_FORMAT', `${source}: not a ${POLICY_FORMAT} policy: ${firstIssue(r.issues)}`, { source });
  const o = r.output;
  const key = (text: string, type: number, where: string): VerifierKey => {
    let k: VerifierKey;
    try {
      k = parseVerifierKey(text, limits);
    } catch (err) {
      throw new SourcemeshError('E_FORMAT', `${source}: ${where}: ${(err as Error).message}`, { source });
    }
    if (k.type !== type) throw new SourcemeshError('E_FORMAT', `${source}: ${where}: ${k.name} is a type 0x0${k.type} key, expected 0x0${type}`, { source });
    return k;
  };
  const logKey = key(o.log.vkey, KEY_TYPE_ED25519, 'log.vkey');
  const witnesses = o.witnesses.vkeys.map((w, i) => key(w, KEY_TYPE_COSIGNATURE_V1, `witnesses.vkeys.${i}`));
  const names = new Set<string>();
  for (const w of witnesses) {
    const id = Buffer.from(w.publicKey).toString('hex');
    if (names.has(w.name) || names.has(id)) throw new SourcemeshError('E_FORMAT', `${source}: witnesses.vkeys: ${w.name} is listed twice`, { source });
    names.add(w.name).add(id);
  }
  if (o.witnesses.quorum > witnesses.length) throw new SourcemeshError('E_FORMAT', `${source}: witnesses.quorum ${o.witnesses.quorum} is more than the ${witnesses.length} witnesses`, { source });
  const release = keySetFrom(o.release.vkeys, o.release.threshold, `${source}: release`, limits);
  let builders: TrustPolicy['builders'];
  if (o.builders !== undefined) {
    const keys = o.builders.vkeys.map((b, i) => key(b, KEY_TYPE_ED25519, `builders.vkeys.${i}`));
    const seen = new Set<string>();
    for (const k of keys) {
      const id = Buffer.from(k.publicKey).toString('hex');
      if (seen.has(`${k.name}+${k.keyId}`) || seen.has(id)) throw new SourcemeshError('E_FORMAT', `${source}: builders.vkeys: ${k.name} is listed twice`, { source });
      seen.add(`${k.name}+${k.keyId}`).add(id);
    }
    if (o.builders.threshold > keys.length) throw new SourcemeshError('E_FORMAT', `${source}: builders.threshold ${o.builders.threshold} is more than the ${keys.length} builders`, { source });
    builders = { threshold: o.builders.threshold, keys, vkeys: keys.map(formatVerifierKey) };
  }
  let time: TrustPolicy['time'];
  if (o.time !== undefined) {
    // A witness is listed once per transport, as the RFC's server lists give a server several addresses:
    // listed with "udp" and "tcp", it is asked over UDP and over TCP when UDP brings no answer.
    const byName = new Map<string, { name: string; address: string; publicKey: Uint8Array; protocol: 'udp' | 'tcp'; tcpFallback?: string }>();
    o.time.roughtime.forEach((r, i) => {
      const w = witnesses.find((k) => k.name === r.witness);
      if (w === undefined) throw new SourcemeshError('E_FORMAT', `${source}: time.roughtime.${i}.witness: ${JSON.stringify(r.witness)} is not one of witnesses.vkeys (its Roughtime key is the witness key)`, { source });
      const protocol = r.protocol ?? 'udp';
      const seen = byName.get(w.name);
      if (seen === undefined) byName.set(w.name, { name: w.name, address: r.address, publicKey: w.publicKey, protocol });
      else if (seen.protocol === protocol || seen.tcpFallback !== undefined) throw new SourcemeshError('E_FORMAT', `${source}: time.roughtime.${i}: the witness ${w.name} is listed twice over ${protocol}`, { source });
      else if (protocol === 'tcp') seen.tcpFallback = r.address;
      else byName.set(w.name, { ...seen, address: r.address, protocol: 'udp', tcpFallback: seen.address });
    });
    const roughtime = [...byName.values()];
    const quorum = o.time.quorum ?? Math.min(o.witnesses.quorum, roughtime.length);
    if (quorum > roughtime.length) throw new SourcemeshError('E_FORMAT', `${source}: time.quorum ${quorum} is more than the ${roughtime.length} Roughtime witnesses`, { source });
    time = { roughtime, quorum, maxSkewSeconds: o.time.maxSkewSeconds ?? LIMITS.signedTimeSkewSeconds };
  }
  return {
    log: { key: logKey, vkey: o.log.vkey, ...(o.log.url === undefined ? {} : { url: o.log.url.replace(/\/+$/, '') }) },
    witnesses: { keys: witnesses, quorum: o.witnesses.quorum },
    release,
    maxCheckpointAgeSeconds: o.maxCheckpointAgeSeconds,
    ...(builders === undefined ? {} : { builders }),
    ...(time === undefined ? {} : { time }),
  };
}

// ---------------------------------------------------------------------------------------------------
// The decision

/** The newest checkpoint a client accepted for a log, as it stores it. */
export interface StoredCheckpoint {
  readonly size: number;
  readonly root: Hash;
  readonly note: string;
  /** The vkey of the log key that signed it (client-state.ts keys the state by origin and this). */
  readonly key?: string;
}

/** The newest release key set a client reached on a chain. */
export interface StoredKeySet {
  readonly chain: string;
  readonly sequence: number;
  readonly hash: string;
}

export interface ReleaseSubject {
  readonly kind: ReleaseKind;
  /** Hex SHA-256 of the subject's canonical JSON. */
  readonly sha256: string;
  /** When set, the statement must name this. */
  readonly name?: string;
}

export interface VerifyReleaseInput {
  readonly policy: TrustPolicy;
  readonly bundle: ReleaseBundle;
  readonly subject: ReleaseSubject;
  /** POSIX seconds. */
  readonly now: number;
  readonly stored?: StoredCheckpoint;
  readonly storedKeySet?: StoredKeySet;
  /** A consistency proof from `stored.size` to the bundle's checkpoint, fetched from the log. */
  readonly consistencyProof?: readonly Hash[];
  readonly counter?: SignatureCounter;
  readonly limits?: Pick<Limits, 'trustClockSkewSeconds' | 'proofHashes' | 'noteBytes' | 'noteSignatures' | 'noteKeyNameBytes' | 'checkpointExtensionLines' | 'rotationKeys'>;
}

export interface Verdict {
  readonly release: ReleaseStatement;
  /** Names of the release keys whose signatures counted. */
  readonly signers: readonly string[];
  readonly index: number;
  readonly checkpoint: StoredCheckpoint;
  /** Names of the policy witnesses whose fresh cosignatures counted. */
  readonly witnesses: readonly string[];
  /** How the checkpoint relates to the stored one. */
  readonly consistency: 'first' | 'same' | 'proven' | 'unproven';
  /** What to store: the newer of the stored checkpoint and this one. */
  readonly newest: StoredCheckpoint;
  readonly keySet: StoredKeySet;
}

const utf8 = new TextEncoder();

function policyError(message: string, details: Record<string, unknown> = {}): SourcemeshError {
  return new SourcemeshError('E_POLICY', message, details);
}

/** Check the checkpoint's log signature and witness quorum; the opened checkpoint and the witnesses counted. */
export function checkCheckpoint(note: string, policy: TrustPolicy, now: number, limits: NonNullable<VerifyReleaseInput['limits']> = LIMITS): { size: number; root: Hash; witnesses: string[] } {
  const logVerifier = createVerifier(policy.log.key);
  const opened = openCheckpoint(note, [logVerifier, ...policy.witnesses.keys.map(createVerifier)], limits);
  const { checkpoint } = opened;
  if (checkpoint.origin !== policy.log.key.name) throw policyError(`the checkpoint is of the log ${JSON.stringify(checkpoint.origin)}, not the policy's ${policy.log.key.name}`);
  if (!opened.note.verified.some((s) => s.verifier === logVerifier)) throw new SourcemeshError('E_SIGNATURE', `the checkpoint is not signed by the policy's log key ${policy.log.key.name}`);
  const cosigned = opened.note.verified.filter((s) => s.verifier !== logVerifier && s.timestamp !== undefined);
  const notFuture = cosigned.filter((s) => s.timestamp! <= now + limits.trustClockSkewSeconds);
  const fresh = notFuture.filter((s) => s.timestamp! >= now - policy.maxCheckpointAgeSeconds);
  const quorum = policy.witnesses.quorum;
  if (notFuture.length < quorum) {
    throw policyError(`the checkpoint of size ${checkpoint.size} is cosigned by ${notFuture.length} of the policy's ${policy.witnesses.keys.length} witnesses; the quorum is ${quorum}`, { cosigners: notFuture.map((s) => s.name) });
  }
  if (fresh.length < quorum) {
    const newest = Math.max(...notFuture.map((s) => s.timestamp!));
    throw policyError(`the checkpoint of size ${checkpoint.size} is stale: ${quorum} cosignatures no older than ${policy.maxCheckpointAgeSeconds} s are required, ${fresh.length} are (the newest is ${now - newest} s old)`, { newest, now });
  }
  return { size: checkpoint.size, root: checkpoint.rootHash, witnesses: fresh.map((s) => s.name) };
}

/** "name+keyid" of a vkey ("name+keyid+base64"; C2SP signed-note key names contain no "+"). */
export function keyLabel(vkey: string): string {
  return vkey.split('+', 2).join('+');
}

/**
 * Check consistency of `current` with `stored`; the verdict's consistency and what to store. A stored
 * checkpoint of another log key (both keys known and different) is not this log's history: 'first'.
 */
export function checkConsistency(stored: StoredCheckpoint | undefined, current: StoredCheckpoint, proofs: readonly { size: number; proof: readonly Hash[] }[], limits: Pick<Limits, 'proofHashes'> = LIMITS): { consistency: Verdict['consistency']; newest: StoredCheckpoint } {
  if (stored === undefined || (stored.key !== undefined && current.key !== undefined && stored.key !== current.key)) return { consistency: 'first', newest: current };
  const evidence = {
    stored: stored.note, presented: current.note,
    ...(stored.key === undefined ? {} : { storedKey: stored.key }), ...(current.key === undefined ? {} : { presentedKey: current.key }),
  };
  const signer = current.key === undefined ? 'the log' : `the log key ${keyLabel(current.key)}`;
  if (current.size < stored.size) {
    throw policyError(`rollback: the log shows a tree of ${current.size} entries, but a checkpoint of ${stored.size} was seen before`, evidence);
  }
  if (current.size === stored.size) {
    if (!hashesEqual(current.root, stored.root)) throw policyError(`fork: two different trees of ${current.size} entries, both signed by ${signer}`, evidence);
    return { consistency: 'same', newest: current };
  }
  const proof = proofs.find((p) => p.size === stored.size);
  if (proof === undefined) return { consistency: 'unproven', newest: current };
  try {
    verifyConsistency(stored.size, current.size, stored.root, current.root, proof.proof, limits);
  } catch (err) {
    if ((err as SourcemeshError).code !== 'E_PROOF') throw err;
    throw policyError(`fork: the tree of ${current.size} entries does not extend the tree of ${stored.size} seen before (the consistency proof fails)`, evidence);
  }
  return { consistency: 'proven', newest: current };
}

/** Decide whether `bundle` releases `subject` under `policy`. Throws E_POLICY, E_SIGNATURE, E_PROOF or E_FORMAT when not. */
export function verifyRelease(input: VerifyReleaseInput): Verdict {
  const { policy, bundle, subject, now } = input;
  const limits = input.limits ?? LIMITS;
  if (!Number.isSafeInteger(now) || now < 0) throw new SourcemeshError('E_INTERNAL', `the clock gave ${now}, not POSIX seconds`);

  // 1. The checkpoint: the log's signature and a fresh witness quorum.
  const cp = checkCheckpoint(bundle.checkpoint, policy, now, limits);
  const included = (entry: string, index: number, proof: readonly Hash[], what: string) => {
    try {
      verifyInclusion(index, cp.size, leafHash(utf8.encode(entry)), proof, cp.root, limits);
    } catch (err) {
      if ((err as SourcemeshError).code === 'E_PROOF') throw new SourcemeshError('E_PROOF', `${what} at index ${index} is not in the checkpoint's tree of ${cp.size} entries (the inclusion proof fails)`, { index, size: cp.size });
      throw err;
    }
  };

  // 2. The release entry is in that tree.
  included(bundle.release, bundle.index, bundle.inclusionProof, 'the release');

  // 3. The key set: from the policy's genesis through the rotation hops, each statement logged.
  const start = genesisPosition(policy.release);
  const visited: ChainPosition[] = [start];
  const keys = walkChain(start, bundle.rotations, {
    counter: input.counter,
    limits,
    onHop: (hop, i, at) => {
      included(hop.statement, bundle.rotations[i]!.index, bundle.rotations[i]!.inclusionProof, `rotation statement ${at.sequence}`);
      visited.push(at);
    },
  });
  const seen = input.storedKeySet;
  if (seen !== undefined && seen.chain === keys.chain) {
    if (keys.sequence < seen.sequence) {
      throw policyError(`the release is signed by key set ${keys.sequence}, but key set ${seen.sequence} was seen before (rotated keys can't sign releases)`, { sequence: keys.sequence, seen: seen.sequence });
    }
    const same = visited.find((p) => p.sequence === seen.sequence);
    if (same !== undefined && same.hash !== seen.hash) throw policyError(`fork of the key rotation chain: statement ${seen.sequence} differs from the one seen before`, { sequence: seen.sequence });
  }

  // 4. The release statement: the threshold of the current key set, naming this subject.
  const signed = requireThreshold(bundle.release, keys.keySet, 'the release', input.counter);
  const release = parseReleaseStatement(signed.text);
  if (release.kind !== subject.kind || release.sha256 !== subject.sha256) {
    throw policyError(`the release is of ${release.kind} sha256 ${release.sha256}, not of this ${subject.kind} (sha256 ${subject.sha256})`, { released: release.sha256, actual: subject.sha256 });
  }
  if (subject.name !== undefined && release.name !== subject.name) throw policyError(`the release names ${JSON.stringify(release.name)}, not ${JSON.stringify(subject.name)}`);

  // 5. Consistency with what this client saw before.
  const current: StoredCheckpoint = { size: cp.size, root: cp.root, note: bundle.checkpoint, key: formatVerifierKey(policy.log.key) };
  const proofs = [...bundle.consistency, ...(input.consistencyProof && input.stored ? [{ size: input.stored.size, proof: input.consistencyProof }] : [])];
  // An online proof comes first: it was fetched for exactly this stored size.
  proofs.reverse();
  const { consistency, newest } = checkConsistency(input.stored, current, proofs, limits);

  return {
    release, signers: signed.signers, index: bundle.index, checkpoint: current, witnesses: cp.witnesses, consistency, newest,
    keySet: { chain: keys.chain, sequence: keys.sequence, hash: keys.hash },
  };
}
