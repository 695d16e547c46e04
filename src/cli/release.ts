// sourcemesh release FILE --key KEYFILE [--key ...] --log URL [-o BUNDLE] [--kind manifest|mirror-list] [--chain FILE]
// sourcemesh release verify FILE --trust-policy POLICY [--bundle BUNDLE] [--state DIR] [--online] [--json]
// sourcemesh release init-chain --chain FILE --vkey VKEY... --threshold N
// sourcemesh release rotate --chain FILE --key OLD... --new-key VKEY... --threshold N --log URL
// Signing, logging and checking releases of manifests and mirror lists, and rotating release keys. The
// decisions are in src/trust/policy.ts and rotation.ts; this module reads files, talks to the log, stores
// the client's state and prints.
import { Command, Option } from 'commander';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Dispatcher } from 'undici';
import { fromSystemError, isSourcemeshError, SourcemeshError } from '../errors.ts';
import { parseMirrorList } from '../fetch/mirror-list.ts';
import { LIMITS } from '../limits.ts';
import { canonicalJson, loadManifest, type Manifest } from '../manifest/index.ts';
import { manifestDigest } from '../manifest/write.ts';
import { writeFileDurable } from '../fs/durable-file.ts';
import { defaultStoreRoot } from '../store/store.ts';
import { parseCheckpoint } from '../trust/checkpoint.ts';
import { TrustState } from '../trust/client-state.ts';
import { awaitInclusion, checkpointSize, LogClient, refreshBundle } from '../trust/log-client.ts';
import { type Hash, leafHash, proveConsistency, proveInclusion, verifyInclusion } from '../trust/merkle.ts';
import { createSigner, createVerifier, formatVerifierKey, KEY_TYPE_ED25519, openNote, parseNote, signNote, type NoteSignature, type NoteSigner } from '../trust/note.ts';
import { parsePolicy, type ReleaseSubject, type Verdict, verifyRelease } from '../trust/policy.ts';
import {
  formatReleaseBundle, formatReleaseStatement, parseReleaseBundle, RELEASE_KINDS, type ReleaseBundle, type ReleaseKind, type RotationHop,
} from '../trust/release.ts';
import {
  appendToChain, chainHops, chainIdOf, chainPositions, formatChainFile, keySetFrom, makeRotationLink, makeRotationStatement, parseChainFile,
  skipSources, type ChainFile,
} from '../trust/rotation.ts';
import { readSignerKeyFile, readVerifierKeyArg } from './key.ts';
import { positiveInt, printJson, type Io } from './output.ts';

interface ReleaseFlags {
  key: string[];
  signature: string[];
  detached?: boolean;
  log: string;
  output?: string;
  kind: ReleaseKind;
  name?: string;
  releaseVersion?: string;
  chain?: string;
  json?: boolean;
}

interface VerifyFlags {
  trustPolicy: string;
  bundle?: string;
  kind: ReleaseKind;
  state?: string;
  online?: boolean;
  json?: boolean;
}

interface RotateFlags {
  chain: string;
  key: string[];
  newKey: string[];
  threshold: string;
  log: string;
  json?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function releaseCommand(io: Io, setExit: (n: number) => void): Command {
  const cmd = new Command('release')
    .description('sign releases of manifests and mirror lists into a transparency log, check them, rotate release keys');
  // `release FILE ...` is the default subcommand, so that its options never shadow the others'.
  cmd.command('sign', { isDefault: true })
    .description('sign a release of a manifest or mirror list, log it, and write its release bundle (FILE.release)')
    .argument('<file>', 'the manifest (or, with --kind mirror-list, the mirror list) to release')
    .option('--key <keyfile>', 'a release signing key (`key generate NAME -o KEYFILE`); repeatable, one signature each', collect, [])
    .option('--signature <note>', 'a signed note of the same release made elsewhere (`--detached`); its signatures are added; repeatable', collect, [])
    .option('--detached', 'only sign: write the signed release note to -o (default FILE.sig) for another maintainer to add, do not log')
    .option('--log <url>', 'the transparency log (`log serve`) to submit the release to')
    .option('-o, --output <bundle>', 'where to write the release bundle (default FILE.release; with --detached, the note, default FILE.sig)')
    .addOption(new Option('--kind <kind>', 'what FILE is').choices(RELEASE_KINDS).default('manifest'))
    .option('--name <name>', 'the name released (default the manifest\'s name; required for a mirror list)')
    .option('--release-version <version>', 'the version released (default the manifest\'s version)')
    .option('--chain <file>', 'the project\'s key rotation chain: the bundle carries the hops from the genesis keys to the current ones')
    .option('--json', 'print the index, checkpoint and bundle path as JSON')
    .action(async (file: string, o: ReleaseFlags) => {
      if (o.key.length === 0 && o.signature.length === 0) throw new SourcemeshError('E_USAGE', 'release: give at least one --key or --signature');
      if (o.detached && o.key.length === 0) throw new SourcemeshError('E_USAGE', 'release --detached: give the --key to sign with');
      if (o.log === undefined && !o.detached) throw new SourcemeshError('E_USAGE', 'release: --log URL is required (or --detached to only sign)');
      const subject = await loadSubject(file, o.kind);
      const name = o.name ?? subject.name;
      const version = o.releaseVersion ?? subject.version;
      if (name === undefined) throw new SourcemeshError('E_USAGE', `${file}: a mirror list has no name; give --name`);
      if (version === undefined) throw new SourcemeshError('E_USAGE', `${file}: no version to release; give --release-version`);
      const signers = await readSigners(o.key);
      const statement = formatReleaseStatement({ kind: o.kind, name, version, sha256: subject.sha256 });
      const note = signNote(statement, signers, await readDetachedSignatures(o.signature, statement));
      if (o.detached) {
        const out = path.resolve(o.output ?? `${path.resolve(file)}.sig`);
        await writeFileDurable(out, note);
        if (o.json) printJson(io, { note: out, release: note });
        else io.stdout.write(`signed ${out}: add it with --signature ${path.relative(process.cwd(), out) || out} to the release run that logs it\n`);
        return;
      }
      const chain = o.chain === undefined ? undefined : await readChain(o.chain);
      if (chain !== undefined) {
        const current = chainPositions(chain).at(-1)!;
        const own = openNote(note, current.keySet.keys.map(createVerifier)).verified.length;
        if (own < current.keySet.threshold) throw new SourcemeshError('E_POLICY', `${o.chain}: the current key set ${current.sequence} needs ${current.keySet.threshold} signatures; ${own} of the given keys and signatures are valid ones of it`);
      }
      const log = new LogClient(o.log);
      const out = path.resolve(o.output ?? `${path.resolve(file)}.release`);
      const previous = await readBundleIfAny(out);
      const logged = await submit(log, note);
      const bundle = await assembleBundle(log, note, logged, chain, previous);
      await writeFileDurable(out, formatReleaseBundle(bundle));
      if (o.json) printJson(io, { index: logged.index, checkpoint: bundle.checkpoint, bundle: out, release: note });
      else io.stdout.write(`index ${logged.index}\n${bundle.checkpoint}bundle ${out}\n`);
    });

  cmd.command('verify')
    .description('check FILE\'s release bundle against a trust policy, offline (exit 0 accepted, 3 refused)')
    .argument('<file>', 'the manifest (or mirror list) whose release is checked')
    .requiredOption('--trust-policy <policy>', 'a sourcemesh.policy/v1 file: log and witness keys, quorum, release keys and threshold, maximum age')
    .option('--bundle <bundle>', 'the release bundle (default FILE.release)')
    .addOption(new Option('--kind <kind>', 'what FILE is').choices(RELEASE_KINDS).default('manifest'))
    .option('--state <dir>', 'where this client keeps the newest checkpoint it saw (default the store: $SOURCEMESH_STORE or $XDG_CACHE_HOME/sourcemesh)')
    .option('--online', 'also fetch the log\'s newest checkpoint and proofs from its tiles (the policy\'s log URL)')
    .option('--json', 'print the verdict as JSON')
    .action(async (file: string, o: VerifyFlags) => {
      const subject = await loadSubject(file, o.kind);
      if (o.online && parsePolicy(await readBounded(o.trustPolicy, LIMITS.trustPolicyBytes, 'trust policy'), o.trustPolicy).log.url === undefined) {
        throw new SourcemeshError('E_USAGE', `--online: the policy ${o.trustPolicy} names no log URL (log.url)`);
      }
      const verdict = await checkRelease({
        file, subject: { kind: o.kind, sha256: subject.sha256 }, policyFile: o.trustPolicy, bundleFile: o.bundle,
        stateDir: o.state ?? defaultStoreRoot(io.env), online: Boolean(o.online),
      });
      if (o.json) printJson(io, verdictJson(verdict));
      else io.stdout.write(`${describeVerdict(verdict)}\n`);
      setExit(0);
    });

  cmd.command('init-chain')
    .description('start a key rotation chain from the genesis release keys (the keys a trust policy pins)')
    .requiredOption('--chain <file>', 'the chain file to create')
    .option('--vkey <vkey>', 'a genesis release key: vkey text or a .pub file; repeatable', collect, [])
    .requiredOption('--threshold <n>', 'how many of the keys must sign a release or a rotation')
    .action(async (o: { chain: string; vkey: string[]; threshold: string }) => {
      const vkeys = await Promise.all(o.vkey.map(async (k) => formatVerifierKey(await readVerifierKeyArg(k))));
      const genesis = keySetFrom(vkeys, positiveInt('--threshold', o.threshold, LIMITS.rotationKeys), '--vkey');
      if (await stat(o.chain).then(() => true, () => false)) throw new SourcemeshError('E_INPUT', `${o.chain} exists; refusing to start another chain over it`);
      await writeFileDurable(path.resolve(o.chain), formatChainFile({ genesis, statements: [], links: new Map() }));
      io.stdout.write(`chain ${chainIdOf(genesis)}\n`);
    });

  cmd.command('rotate')
    .description('rotate the release keys: a statement naming the new key set, signed by a threshold of the current one, with skip links, logged')
    .requiredOption('--chain <file>', 'the chain file (`release init-chain`); the statement is appended to it')
    .option('--key <keyfile>', 'a key of the current set (and of older sets, to sign skip links); repeatable', collect, [])
    .option('--new-key <vkey>', 'a key of the new set: vkey text or a .pub file; repeatable', collect, [])
    .requiredOption('--threshold <n>', 'the new set\'s threshold')
    .requiredOption('--log <url>', 'the transparency log to submit the statement to')
    .option('--json', 'print the sequence, index, checkpoint and skip links as JSON')
    .action(async (o: RotateFlags) => {
      const chain = await readChain(o.chain);
      const positions = chainPositions(chain);
      const at = positions.at(-1)!;
      const vkeys = await Promise.all(o.newKey.map(async (k) => formatVerifierKey(await readVerifierKeyArg(k))));
      const next = keySetFrom(vkeys, positiveInt('--threshold', o.threshold, LIMITS.rotationKeys), '--new-key');
      const signers = await readSigners(o.key);
      const members = new Set(at.keySet.keys.map((k) => `${k.keyId}:${k.name}`));
      const note = makeRotationStatement(at, next, signers.filter((s) => members.has(`${s.keyId}:${s.name}`)));
      const sequence = at.sequence + 1;
      const text = parseNote(note).text;
      const links: { from: number; note: string }[] = [];
      for (const i of skipSources(sequence)) {
        const link = makeRotationLink(positions[i]!, sequence, text, signers);
        if (link === undefined) io.stderr.write(`no skip link ${i} -> ${sequence}: fewer than ${positions[i]!.keySet.threshold} keys of key set ${i} given (clients walk around it)\n`);
        else links.push({ from: i, note: link });
      }
      const log = new LogClient(o.log);
      const logged = await submit(log, note);
      await writeFileDurable(path.resolve(o.chain), formatChainFile(appendToChain(chain, note, logged.index, links)));
      if (o.json) printJson(io, { sequence, index: logged.index, checkpoint: logged.checkpoint, links: links.map((l) => l.from) });
      else io.stdout.write(`rotation ${sequence} index ${logged.index} (skip links from ${links.map((l) => l.from).join(', ') || 'none'})\n${logged.checkpoint}`);
    });
  return cmd;
}

// ---------------------------------------------------------------------------------------------------
// Checking a release (release verify, fetch --trust-policy, mirror sync --trust-policy)

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
  /** POSIX seconds (tests pin it). */
  readonly now?: () => number;
}

/** Accept `subject`'s release or throw (E_POLICY, E_SIGNATURE, E_PROOF: exit 3; E_FORMAT, E_INPUT: exit 2). */
export async function checkRelease(o: CheckReleaseOptions): Promise<Verdict & { mode: 'online' | 'offline' }> {
  const policy = parsePolicy(await readBounded(o.policyFile, LIMITS.trustPolicyBytes, 'trust policy'), o.policyFile);
  const bundleFile = o.bundleFile ?? `${path.resolve(o.file)}.release`;
  if (!(await stat(bundleFile).then((s) => s.isFile(), () => false))) {
    throw new SourcemeshError('E_POLICY', `${o.file}: refused by the trust policy: no release bundle at ${bundleFile}`, { bundle: bundleFile });
  }
  const bundle = parseReleaseBundle(await readBounded(bundleFile, LIMITS.releaseBundleBytes, 'release bundle'), bundleFile);
  const online = o.online && policy.log.url !== undefined;
  const log = online ? new LogClient(policy.log.url!, { ...(o.dispatcher ? { dispatcher: o.dispatcher } : {}) }) : undefined;
  const origin = policy.log.key.name;
  const chain = chainIdOf(policy.release);
  const state = TrustState.open(o.stateDir);
  try {
    for (let attempt = 0; ; attempt++) {
      const stored = state.checkpoint(origin);
      const storedKeySet = state.keySet(chain);
      let checked = bundle;
      let consistencyProof: Hash[] | undefined;
      if (log !== undefined) {
        const refreshed = await refreshBundle(bundle, log, stored?.size);
        checked = refreshed.bundle;
        consistencyProof = refreshed.consistencyProof;
      }
      let verdict: Verdict;
      try {
        verdict = verifyRelease({
          policy, bundle: checked, subject: o.subject, now: Math.floor(o.now?.() ?? Date.now() / 1000), stored, storedKeySet,
          ...(consistencyProof ? { consistencyProof } : {}),
        });
      } catch (err) {
        throw await withEvidence(err, o.stateDir);
      }
      if (state.update(origin, { checkpoint: stored, keySet: storedKeySet }, verdict.newest, verdict.keySet)) return { ...verdict, mode: online ? 'online' : 'offline' };
      if (attempt >= 4) throw new SourcemeshError('E_LOCKED', `${state.file}: the stored checkpoint kept changing while this release was checked`);
    }
  } finally {
    state.close();
  }
}

/** A fork or rollback: keep both checkpoints in STATE/trust-evidence/ and name the file in the message. */
async function withEvidence(err: unknown, stateDir: string): Promise<unknown> {
  if (!isSourcemeshError(err, 'E_POLICY') || typeof err.details.stored !== 'string' || typeof err.details.presented !== 'string') return err;
  const dir = path.join(path.resolve(stateDir), 'trust-evidence');
  const file = path.join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}.txt`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileDurable(file, `# ${err.message}\n# the checkpoint seen before:\n${err.details.stored}\n# the checkpoint presented now:\n${err.details.presented}`);
  } catch {
    return err; // the evidence stays in the error's details
  }
  return new SourcemeshError('E_POLICY', `${err.message}; both checkpoints are in ${file}`, { ...err.details, evidence: file });
}

export function describeVerdict(v: Verdict & { mode?: string }): string {
  return `accepted: ${v.release.kind} ${v.release.name} ${v.release.version} (sha256 ${v.release.sha256}) signed by ${v.signers.join(', ')} (key set ${v.keySet.sequence}); `
    + `log index ${v.index} in a checkpoint of ${v.checkpoint.size} entries cosigned by ${v.witnesses.join(', ')}; consistency ${v.consistency}${v.mode ? `, ${v.mode}` : ''}`;
}

function verdictJson(v: Verdict & { mode: string }) {
  return {
    accepted: true, mode: v.mode, release: v.release, signers: v.signers, keySet: v.keySet, index: v.index,
    checkpoint: v.checkpoint.note, size: v.checkpoint.size, witnesses: v.witnesses, consistency: v.consistency,
  };
}

/**
 * For `fetch` and `mirror sync --trust-policy`: refuse the manifest before any download unless its release
 * bundle passes. Online when the policy names the log's URL and the command is not --offline.
 */
export async function requireManifestRelease(io: Io, input: string, manifest: Manifest, o: { trustPolicy: string; release?: string; stateDir: string; offline?: boolean; dispatcher?: Dispatcher }): Promise<void> {
  const verdict = await checkRelease({
    file: input, subject: { kind: 'manifest', sha256: manifestDigest(manifest) }, policyFile: o.trustPolicy, bundleFile: o.release,
    stateDir: o.stateDir, online: !o.offline, ...(o.dispatcher ? { dispatcher: o.dispatcher } : {}),
  });
  io.stderr.write(`release ${describeVerdict(verdict)}\n`);
}

// ---------------------------------------------------------------------------------------------------
// Helpers of the project's side

interface Subject {
  sha256: string;
  name?: string;
  version?: string;
}

async function loadSubject(file: string, kind: ReleaseKind): Promise<Subject> {
  if (kind === 'manifest') {
    const m = await loadManifest(file);
    return { sha256: manifestDigest(m), name: m.name, ...(m.version === undefined ? {} : { version: m.version }) };
  }
  const text = await readBounded(file, LIMITS.manifestBytes, 'mirror list');
  parseMirrorList(text, file);
  return { sha256: createHash('sha256').update(canonicalJson(JSON.parse(text))).digest('hex') };
}

async function readSigners(files: readonly string[]): Promise<NoteSigner[]> {
  const signers: NoteSigner[] = [];
  for (const f of files) {
    const key = await readSignerKeyFile(f);
    if (key.type !== KEY_TYPE_ED25519) throw new SourcemeshError('E_USAGE', `--key ${f}: ${key.name} is a cosignature key; release keys are note keys (key generate --type note)`);
    signers.push(createSigner(key));
  }
  return signers;
}

/**
 * The signatures of release notes signed elsewhere (`release --detached`). Each must sign exactly
 * `statement`: a note of another file, name or version is refused rather than mixed in. Their validity
 * is for the verifier (the policy's keys) to judge; with --chain they are checked against the chain.
 */
async function readDetachedSignatures(files: readonly string[], statement: string): Promise<NoteSignature[]> {
  const all: NoteSignature[] = [];
  for (const f of files) {
    let note: ReturnType<typeof parseNote>;
    try {
      note = parseNote(await readBounded(f, LIMITS.noteBytes, 'signed note'));
    } catch (err) {
      if (isSourcemeshError(err, 'E_FORMAT')) throw new SourcemeshError('E_FORMAT', `--signature ${f}: ${err.message}`, { file: f });
      throw err;
    }
    if (note.text !== statement) throw new SourcemeshError('E_INPUT', `--signature ${f}: signs another release statement than this one (a different file, name, version or kind)`, { file: f });
    all.push(...note.signatures);
  }
  return all;
}

async function readChain(file: string): Promise<ChainFile> {
  return parseChainFile(await readBounded(file, LIMITS.rotationChainBytes, 'rotation chain'), file);
}

async function readBounded(file: string, max: number, what: string): Promise<string> {
  try {
    const fh = await open(file, 'r');
    try {
      const { size } = await fh.stat();
      if (size > max) throw new SourcemeshError('E_FORMAT', `${file}: ${size} bytes, larger than a ${what} may be (${max})`, { file });
      return await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (isSourcemeshError(err)) throw err;
    const e = fromSystemError(err, `${file}: cannot read the ${what}`);
    throw e.code === 'E_IO' ? new SourcemeshError('E_INPUT', e.message, e.details) : e;
  }
}

async function readBundleIfAny(file: string): Promise<ReleaseBundle | undefined> {
  try {
    return parseReleaseBundle(await readBounded(file, LIMITS.releaseBundleBytes, 'release bundle'), file);
  } catch {
    return undefined;
  }
}

/** Submit a signed note; the index, and the cosigned checkpoint with the entry's inclusion proof (verified). */
async function submit(log: LogClient, note: string): Promise<{ index: number; checkpoint: string; inclusionProof: Hash[] }> {
  const entry = new TextEncoder().encode(note);
  const added = await log.add(entry);
  if (added.checkpoint !== undefined && added.inclusionProof !== undefined) {
    const size = checkpointSize(added.checkpoint);
    const root = parseCheckpoint(parseNote(added.checkpoint).text).rootHash;
    verifyInclusion(added.index, size, leafHash(entry), added.inclusionProof, root);
    return { index: added.index, checkpoint: added.checkpoint, inclusionProof: added.inclusionProof };
  }
  return { index: added.index, ...(await awaitInclusion(log, entry, added.index, LIMITS.logCheckpointWaitMs)) };
}

/** The bundle: the release, the rotation hops into the same checkpoint, and a consistency proof from the previous bundle. */
async function assembleBundle(log: LogClient, note: string, logged: { index: number; checkpoint: string; inclusionProof: Hash[] }, chain: ChainFile | undefined, previous: ReleaseBundle | undefined): Promise<ReleaseBundle> {
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


