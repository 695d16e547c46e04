// Checking a release as a client (`release verify`, `fetch` and `mirror sync --trust-policy`): read the
// policy and the bundle, re-prove the bundle against the log's newest checkpoint when online, decide with
// policy.ts against what this client stored before (client-state.ts), store the result by compare-and-swap
// (verifying again when another process moved the state meanwhile), and keep a fork's or rollback's
// checkpoints as evidence. The decision is policy.ts's; the clock is passed in. docs/FORMATS.md, "Releases".

import { randomBytes } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Dispatcher } from '../net/undici.ts';
import { isSourcemeshError, SourcemeshError } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import type { Manifest } from '../manifest/index.ts';
import { writeFileDurable } from '../fs/durable-file.ts';
import { TrustState } from './client-state.ts';
import { LogClient, refreshBundle } from './log-client.ts';
import type { Hash } from './merkle.ts';
import { formatVerifierKey } from './note.ts';
import { keyLabel, parsePolicy, type ReleaseSubject, type TrustPolicy, type Verdict, verifyRelease } from './policy.ts';
import { readBoundedFile } from '../fs/bounded-read.ts';
import { manifestSubject } from './release-files.ts';
import { parseReleaseBundle } from './release.ts';
import { chainIdOf } from './rotation.ts';
import type { MeasureOptions } from '../time/client.ts';
import { type NowDecision, raiseFloor, trustedNow } from '../time/signed-now.ts';

/** How many times a check is repeated when other processes keep moving the stored state. */
const STATE_ATTEMPTS = 5;

export interface CheckReleaseOptions {
  /** The released file; its bundle defaults to FILE.release. */
  readonly file: string;
  readonly subject: ReleaseSubject;
  readonly policyFile: string;
  readonly bundleFile?: string;
  /** The node's state directory: STATE/trust.sqlite holds the newest checkpoint seen. */
  readonly stateDir: string;
  /** Re-prove the bundle against the log's newest checkpoint (the policy's log URL) first. */
  readonly online: boolean;
  readonly dispatcher?: Dispatcher;
  /**
   * The local clock, in POSIX seconds (tests pin it); the system clock when absent. The decision's "now"
   * comes from signed time when the policy names Roughtime witnesses (src/time/signed-now.ts).
   */
  readonly now?: () => number;
  /** How the policy's Roughtime witnesses are asked (through the proxy under --tor: src/time/through-proxy.ts). */
  readonly time?: MeasureOptions;
}

export interface CheckedRelease extends Verdict {
  readonly mode: 'online' | 'offline';
  /** The policy's log key, which signed the checkpoint (its vkey). */
  readonly logKey: string;
  /**
   * Other keys of this log's origin with a stored checkpoint, when this is the first under the policy's
   * key (the log was re-created with a new key): their history is kept but not compared.
   */
  readonly otherLogKeys: readonly string[];
  /** The "now" the decision used and where it came from (signed time, the floor, the local clock). */
  readonly time: NowDecision;
}

export async function readPolicy(file: string): Promise<TrustPolicy> {
  return parsePolicy(await readBoundedFile(file, LIMITS.trustPolicyBytes, 'trust policy'), file);
}

/** Accept `subject`'s release or throw (E_POLICY, E_SIGNATURE, E_PROOF: exit 3; E_FORMAT, E_INPUT: exit 2). */
export async function checkRelease(o: CheckReleaseOptions): Promise<CheckedRelease> {
  const policy = await readPolicy(o.policyFile);
  const bundleFile = o.bundleFile ?? `${path.resolve(o.file)}.release`;
  if (!(await stat(bundleFile).then((s) => s.isFile(), () => false))) {
    throw new SourcemeshError('E_POLICY', `${o.file}: refused by the trust policy: no release bundle at ${bundleFile}`, { bundle: bundleFile });
  }
  const bundle = parseReleaseBundle(await readBoundedFile(bundleFile, LIMITS.releaseBundleBytes, 'release bundle'), bundleFile);
  const online = o.online && policy.log.url !== undefined;
  const log = online ? new LogClient(policy.log.url!, { ...(o.dispatcher ? { dispatcher: o.dispatcher } : {}) }) : undefined;
  const origin = policy.log.key.name;
  const logKey = formatVerifierKey(policy.log.key);
  const chain = chainIdOf(policy.release);
  const clock = o.now ?? (() => Date.now() / 1000);
  const { signed: _signed, ...time } = await trustedNow(policy, { stateDir: o.stateDir, local: clock, ...(o.time ? { measure: o.time } : {}) });
  const state = TrustState.open(o.stateDir);
  try {
    for (let attempt = 1; ; attempt++) {
      const stored = state.checkpoint(origin, policy.log.key);
      const storedKeySet = state.keySet(chain);
      let checked = bundle;
      let consistencyProof: Hash[] | undefined;
      if (log !== undefined) {
        const refreshed = await refreshBundle(bundle, log, stored?.size);
        checked = refreshed.bundle;
        consistencyProof = refreshed.consistencyProof;
      }
      const now = time.now;
      let verdict: Verdict;
      try {
        verdict = verifyRelease({ policy, bundle: checked, subject: o.subject, now, stored, storedKeySet, ...(consistencyProof ? { consistencyProof } : {}) });
      } catch (err) {
        throw await withEvidence(err, o.stateDir, now);
      }
      if (state.update(origin, policy.log.key, { checkpoint: stored, keySet: storedKeySet }, verdict.newest, verdict.keySet)) {
        const otherLogKeys = stored === undefined ? state.keysOf(origin).filter((k) => k !== logKey) : [];
        raiseFloor(o.stateDir, policy, verdict.checkpoint.note);
        return { ...verdict, mode: online ? 'online' : 'offline', logKey, otherLogKeys, time };
      }
      if (attempt >= STATE_ATTEMPTS) throw new SourcemeshError('E_LOCKED', `${state.file}: the stored checkpoint kept changing while this release was checked`);
    }
  } finally {
    state.close();
  }
}

/**
 * For `fetch` and `mirror sync --trust-policy`: accept the manifest's release or throw, before any download.
 * Online when the policy names the log's URL and the command is not --offline.
 */
export function checkManifestRelease(file: string, manifest: Manifest, o: { trustPolicy: string; release?: string; stateDir: string; offline?: boolean; dispatcher?: Dispatcher; now?: () => number; time?: MeasureOptions }): Promise<CheckedRelease> {
  return checkRelease({
    file, subject: manifestSubject(manifest), policyFile: o.trustPolicy, bundleFile: o.release, stateDir: o.stateDir, online: !o.offline,
    ...(o.dispatcher ? { dispatcher: o.dispatcher } : {}), ...(o.now ? { now: o.now } : {}), ...(o.time ? { time: o.time } : {}),
  });
}

/**
 * A fork or rollback: keep both checkpoints, each with the log key that signed it, in STATE/trust-evidence/
 * and name the file in the message (release checks here, attestations read from the log in attest/check.ts). `now` (POSIX seconds) names the file.
 */
export async function withEvidence(err: unknown, stateDir: string, now: number): Promise<unknown> {
  if (!isSourcemeshError(err, 'E_POLICY') || typeof err.details.stored !== 'string' || typeof err.details.presented !== 'string') return err;
  const dir = path.join(path.resolve(stateDir), 'trust-evidence');
  const file = path.join(dir, `${new Date(now * 1000).toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}.txt`);
  const signer = (key: unknown) => (typeof key === 'string' ? `, signed by the log key ${keyLabel(key)} (vkey ${key})` : '');
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileDurable(file, `# ${err.message}\n# the checkpoint seen before${signer(err.details.storedKey)}:\n${err.details.stored}\n`
      + `# the checkpoint presented now${signer(err.details.presentedKey)}:\n${err.details.presented}`);
  } catch {
    return err; // the evidence stays in the error's details
  }
  return new SourcemeshError('E_POLICY', `${err.message}; both checkpoints are in ${file}`, { ...err.details, evidence: file });
}
