// An attestation as it travels: the statement (statement.ts) in a DSSE envelope signed with the node's
// Ed25519 note key, packaged as a Sigstore bundle v0.3 (sigstore/protobuf-specs protos/sigstore_bundle.proto,
// media type application/vnd.dev.sigstore.bundle.v0.3+json) whose verification material is a public-key
// hint, with no Fulcio certificate and no Rekor entry: our own log (docs/FORMATS.md, "Log entry types")
// takes the envelope instead. The envelope's checks are the log's own (src/trust/log/entries/dsse.ts:
// PAE, base64, signatures by known keys), so that a bundle and the log entry it carries are judged alike.

import { SourcemeshError } from '../errors.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { encodeBase64 } from '../trust/base64.ts';
import { DSSE_PAYLOAD_TYPE, dsseEntry, pae } from '../trust/log/entries/dsse.ts';
import type { KeyLookup, KnownKey } from '../trust/log/entries/types.ts';
import { createSigner, createVerifier, formatVerifierKey, type SignerKey, type VerifierKey } from '../trust/note.ts';
import { keyLabel } from '../trust/policy.ts';
import { parseBoundedJson } from '../trust/release.ts';
import { buildStatement, parseStatement, type Claim } from './statement.ts';

export const BUNDLE_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';

export interface DsseEnvelope {
  readonly payloadType: string;
  readonly payload: string;
  readonly signatures: readonly { readonly keyid: string; readonly sig: string }[];
}

export interface AttestationBundle {
  readonly mediaType: string;
  readonly verificationMaterial: { readonly publicKey: { readonly hint: string }; readonly tlogEntries: readonly unknown[] };
  readonly dsseEnvelope: DsseEnvelope;
}

const utf8 = new TextEncoder();

/** Sign `claim` with the node key `key` (whose vkey must be the claim's builder). */
export function signAttestation(claim: Claim, key: SignerKey, meta: { version: string; finishedOn?: Date }): AttestationBundle {
  const vkey = formatVerifierKey(key);
  if (claim.builder !== vkey) throw new SourcemeshError('E_INTERNAL', `an attestation by ${keyLabel(vkey)} names the builder ${keyLabel(claim.builder)}`);
  const payload = utf8.encode(JSON.stringify(buildStatement(claim, meta)));
  const sig = createSigner(key).sign(pae(DSSE_PAYLOAD_TYPE, payload));
  // DSSE keyid and Sigstore's public-key hint: the vkey without its key (`name+keyid`), as the log reads it.
  const hint = keyLabel(vkey);
  return {
    mediaType: BUNDLE_MEDIA_TYPE,
    verificationMaterial: { publicKey: { hint }, tlogEntries: [] },
    dsseEnvelope: { payloadType: DSSE_PAYLOAD_TYPE, payload: encodeBase64(payload), signatures: [{ keyid: hint, sig: encodeBase64(sig) }] },
  };
}

/** The envelope's bytes as a log entry: one spelling, so that a bundle's entry can be found in the log. */
export function envelopeBytes(env: DsseEnvelope): Uint8Array {
  return utf8.encode(JSON.stringify({ payloadType: env.payloadType, payload: env.payload, signatures: env.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })) }));
}

/** The bundle file's text. */
export function formatBundle(bundle: AttestationBundle): string {
  return `${JSON.stringify(bundle)}\n`;
}

/** Keys by name and key ID, as the log's entry checks look them up. */
export function keyLookup(keys: readonly VerifierKey[]): KeyLookup {
  const byId = new Map<string, KnownKey>();
  for (const k of keys) byId.set(`${k.name}\n${k.keyId}`, { vkey: formatVerifierKey(k), verifier: createVerifier(k) });
  return { byId: (name, keyId) => byId.get(`${name}\n${keyId}`) };
}

export interface VerifiedAttestation {
  readonly claim: Claim;
  /** The envelope as a log entry (envelopeBytes). */
  readonly entry: Uint8Array;
  readonly bundle: AttestationBundle;
}

export type AttestationLimits = Pick<Limits, 'attestationBytes' | 'logEntryBytes' | 'noteBytes' | 'noteSignatures' | 'noteKeyNameBytes' | 'rotationKeys'>;

/**
 * Parse and verify one bundle's text (attacker-controlled) against the builders `keys` knows: one signature,
 * by a known builder, which verifies, over a statement whose builder is that key. E_FORMAT when malformed,
 * E_SIGNATURE when the signature fails, E_POLICY when the signer is no known builder or the statement names
 * another builder than the key that signed it.
 */
export function verifyAttestation(text: string, source: string, keys: KeyLookup, limits: AttestationLimits = LIMITS): VerifiedAttestation {
  const data = parseBoundedJson(text, source, limits.attestationBytes, 'Sigstore bundle');
  const bundle = bundleShape(data, source);
  const sig = bundle.dsseEnvelope.signatures[0]!;
  if (sig.keyid !== bundle.verificationMaterial.publicKey.hint) {
    throw new SourcemeshError('E_FORMAT', `${source}: the public-key hint ${JSON.stringify(bundle.verificationMaterial.publicKey.hint.slice(0, 80))} is not the signature's keyid`, { source });
  }
  const entry = envelopeBytes(bundle.dsseEnvelope);
  return { claim: verifyEnvelopeEntry(entry, source, keys, limits, bundle.dsseEnvelope), entry, bundle };
}

/**
 * The claim of a DSSE envelope as the log holds it (envelopeBytes), signed by one builder `keys` knows;
 * the same refusals as verifyAttestation. The bundle of a log entry is rebuilt by bundleOfEntry.
 */
export function verifyEnvelopeEntry(entry: Uint8Array, source: string, keys: KeyLookup, limits: AttestationLimits = LIMITS, parsed?: DsseEnvelope): Claim {
  let checked;
  try {
    checked = dsseEntry.check(entry, keys, limits);
  } catch (err) {
    if (err instanceof SourcemeshError) throw new SourcemeshError(err.code, `${source}: ${err.message}`, { source, ...err.details });
    throw err;
  }
  // `parsed`: the envelope `entry` was made from (envelopeBytes), when the caller has it.
  const env = parsed ?? JSON.parse(Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength).toString('utf8')) as DsseEnvelope;
  if (env.signatures.length !== 1) throw new SourcemeshError('E_FORMAT', `${source}: an attestation carries exactly one signature`, { source });
  const signer = checked.signers[0];
  if (signer === undefined) throw new SourcemeshError('E_POLICY', `${source}: signed by ${env.signatures[0]!.keyid.slice(0, 80)}, which is not a builder the policy names`, { source, builder: env.signatures[0]!.keyid.slice(0, 300) });
  // dsseEntry.check parsed the payload already; it is parsed again here for the fields it leaves alone.
  const statement: unknown = JSON.parse(Buffer.from(env.payload.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8'));
  const claim = parseStatement(statement, source);
  if (claim.builder !== signer) {
    throw new SourcemeshError('E_POLICY', `${source}: signed by the builder ${keyLabel(signer)}, but its statement names the builder ${keyLabel(claim.builder).slice(0, 80)}`, { source });
  }
  return claim;
}

/** The Sigstore bundle of a verified log entry (for evidence: the same envelope, with its hint). */
export function bundleOfEntry(entry: Uint8Array): AttestationBundle {
  const env = JSON.parse(Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength).toString('utf8')) as DsseEnvelope;
  return { mediaType: BUNDLE_MEDIA_TYPE, verificationMaterial: { publicKey: { hint: env.signatures[0]!.keyid }, tlogEntries: [] }, dsseEnvelope: env };
}

/** The bundle's fields we read; anything else in a v0.3 bundle with a public key is refused. */
function bundleShape(data: unknown, source: string): AttestationBundle {
  const bad = (why: string): never => {
    throw new SourcemeshError('E_FORMAT', `${source}: not a Sigstore bundle v0.3 with a DSSE envelope and a public-key hint: ${why}`, { source });
  };
  const obj = (x: unknown, what: string): Record<string, unknown> => (typeof x === 'object' && x !== null && !Array.isArray(x) ? x as Record<string, unknown> : bad(`${what} is not an object`));
  const b = obj(data, 'the bundle');
  if (b.mediaType !== BUNDLE_MEDIA_TYPE) bad(`mediaType is ${JSON.stringify(String(b.mediaType).slice(0, 80))}, not ${BUNDLE_MEDIA_TYPE}`);
  const vm = obj(b.verificationMaterial, 'verificationMaterial');
  const pk = obj(vm.publicKey, 'verificationMaterial.publicKey');
  if (typeof pk.hint !== 'string' || pk.hint.length === 0 || pk.hint.length > 1024) bad('verificationMaterial.publicKey.hint is not a short string');
  const tlog = vm.tlogEntries ?? [];
  // Our bundles carry no Rekor entries: their log is ours, found by the envelope itself.
  if (!Array.isArray(tlog) || tlog.length !== 0) bad('verificationMaterial.tlogEntries must be empty (no Rekor)');
  const env = obj(b.dsseEnvelope, 'dsseEnvelope');
  if (!Array.isArray(env.signatures) || env.signatures.length !== 1) bad('the DSSE envelope must carry exactly one signature');
  const s = obj((env.signatures as unknown[])[0], 'the signature');
  if (typeof env.payloadType !== 'string' || typeof env.payload !== 'string' || typeof s.keyid !== 'string' || typeof s.sig !== 'string') bad('payloadType, payload, keyid and sig must be strings');
  return {
    mediaType: BUNDLE_MEDIA_TYPE,
    verificationMaterial: { publicKey: { hint: pk.hint as string }, tlogEntries: [] },
    dsseEnvelope: { payloadType: env.payloadType as string, payload: env.payload as string, signatures: [{ keyid: s.keyid as string, sig: s.sig as string }] },
  };
}
