// sourcemesh release FILE --key KEYFILE [--key ...] --log URL [-o BUNDLE] [--kind manifest|mirror-list] [--chain FILE]
// sourcemesh release verify FILE --trust-policy POLICY [--bundle BUNDLE] [--state DIR] [--online] [--tor|--proxy URL] [--json]
// sourcemesh release init-chain --chain FILE --vkey VKEY... --threshold N
// sourcemesh release rotate --chain FILE --key OLD... --new-key VKEY... --threshold N --log URL
// Signing, logging and checking releases of manifests and mirror lists, and rotating release keys. The
// work is in src/trust/ (publish-release.ts, check-release.ts, policy.ts, rotation.ts); this module parses
// the command line, reads key files and prints.
import { Command, Option } from 'commander';
import type { Dispatcher } from '../net/undici.ts';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { SourcemeshError } from '../errors.ts';
import { writeOutputFile } from '../fs/durable-file.ts';
import { Network, TOR_DEFAULT_PROXY, torLimits } from '../fetch/network.ts';
import { LIMITS } from '../limits.ts';
import type { MeasureOptions } from '../time/client.ts';
import { measureThrough } from '../time/through-proxy.ts';
import { defaultStoreRoot } from '../store/store.ts';
import { requireBuilders } from '../attest/check.ts';
import { loadManifest } from '../manifest/load.ts';
import { checkRelease, readPolicy } from '../trust/check-release.ts';
import { LogClient } from '../trust/log-client.ts';
import { createSigner, formatVerifierKey, KEY_TYPE_ED25519, parseNote, signNote, type NoteSigner } from '../trust/note.ts';
import { assembleBundle, submitToLog } from '../trust/publish-release.ts';
import { loadReleaseSubject, readBundleIfAny, readChainFile, readDetachedSignatures } from '../trust/release-files.ts';
import { formatReleaseBundle, formatReleaseStatement, RELEASE_KINDS, type ReleaseKind } from '../trust/release.ts';
import {
  appendToChain, chainIdOf, chainPositions, formatChainFile, keySetFrom, makeRotationLink, makeRotationStatement, requireThreshold, skipSources,
  type ChainPosition,
} from '../trust/rotation.ts';
import { readSignerKeyFile } from '../trust/key-file.ts';
import { readVerifierKeyArg } from './key.ts';
import { positiveInt, printJson, type Io } from './output.ts';
import { describeVerdict, verdictJson } from './verdict.ts';

interface SignFlags {
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
  attestations: string[];
  bundle?: string;
  kind: ReleaseKind;
  state?: string;
  online?: boolean;
  proxy?: string;
  tor?: boolean;
  json?: boolean;
}

interface InitChainFlags {
  chain: string;
  vkey: string[];
  threshold: string;
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
  cmd.addCommand(signCommand(io), { isDefault: true });
  cmd.addCommand(verifyCommand(io, setExit));
  cmd.addCommand(initChainCommand(io));
  cmd.addCommand(rotateCommand(io));
  return cmd;
}

// ---------------------------------------------------------------------------------------------------
// release [sign] FILE

function signCommand(io: Io): Command {
  return new Command('sign')
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
    .action(async (file: string, o: SignFlags) => {
      checkSignFlags(o);
      const note = await signedStatement(file, o);
      if (o.detached) await writeDetached(io, file, note, o);
      else await logRelease(io, file, note, o);
    });
}

function checkSignFlags(o: SignFlags): void {
  if (o.key.length === 0 && o.signature.length === 0) throw new SourcemeshError('E_USAGE', 'release: give at least one --key or --signature');
  if (o.detached && o.key.length === 0) throw new SourcemeshError('E_USAGE', 'release --detached: give the --key to sign with');
  if (o.log === undefined && !o.detached) throw new SourcemeshError('E_USAGE', 'release: --log URL is required (or --detached to only sign)');
}

/** The release statement of FILE, signed by the --key files, with the --signature notes' signatures added. */
async function signedStatement(file: string, o: SignFlags): Promise<string> {
  const released = await loadReleaseSubject(file, o.kind);
  const name = o.name ?? released.name;
  const version = o.releaseVersion ?? released.version;
  if (name === undefined) throw new SourcemeshError('E_USAGE', `${file}: a mirror list has no name; give --name`);
  if (version === undefined) throw new SourcemeshError('E_USAGE', `${file}: no version to release; give --release-version`);
  const statement = formatReleaseStatement({ kind: o.kind, name, version, sha256: released.subject.sha256 });
  return signNote(statement, await readSigners(o.key), await readDetachedSignatures(o.signature, statement));
}

async function writeDetached(io: Io, file: string, note: string, o: SignFlags): Promise<void> {
  const out = path.resolve(o.output ?? `${path.resolve(file)}.sig`);
  await writeOutputFile(out, note);
  if (o.json) printJson(io, { note: out, release: note });
  else io.stdout.write(`signed ${out}: add it with --signature ${path.relative(process.cwd(), out) || out} to the release run that logs it\n`);
}

/** Log the signed release and write its bundle (with the chain's hops when --chain is given). */
async function logRelease(io: Io, file: string, note: string, o: SignFlags): Promise<void> {
  const chain = o.chain === undefined ? undefined : await readChainFile(o.chain);
  // Refuse before logging what no client would accept: the chain's current key set must have signed it.
  if (chain !== undefined) {
    const current = chainPositions(chain).at(-1)!;
    requireThreshold(note, current.keySet, `${o.chain}: the release, for the current key set ${current.sequence},`);
  }
  const log = new LogClient(o.log);
  const out = path.resolve(o.output ?? `${path.resolve(file)}.release`);
  const previous = await readBundleIfAny(out);
  const logged = await submitToLog(log, note, (await readSigners(o.key)).map((s) => formatVerifierKey(s)));
  const bundle = await assembleBundle(log, note, logged, chain, previous);
  await writeOutputFile(out, formatReleaseBundle(bundle));
  if (o.json) printJson(io, { index: logged.index, checkpoint: bundle.checkpoint, bundle: out, release: note });
  else io.stdout.write(`index ${logged.index}\n${bundle.checkpoint}bundle ${out}\n`);
}

// ---------------------------------------------------------------------------------------------------
// release verify FILE

function verifyCommand(io: Io, setExit: (n: number) => void): Command {
  return new Command('verify')
    .description('check FILE\'s release bundle against a trust policy, offline (exit 0 accepted, 3 refused)')
    .argument('<file>', 'the manifest (or mirror list) whose release is checked')
    .requiredOption('--trust-policy <policy>', 'a sourcemesh.policy/v1 file: log and witness keys, quorum, release keys and threshold, maximum age')
    .option('--bundle <bundle>', 'the release bundle (default FILE.release)')
    .addOption(new Option('--kind <kind>', 'what FILE is').choices(RELEASE_KINDS).default('manifest'))
    .option('--state <dir>', 'where this client keeps the newest checkpoint it saw (default the store: $SOURCEMESH_STORE or $XDG_CACHE_HOME/sourcemesh)')
    .option('--online', 'also fetch the log\'s newest checkpoint and proofs from its tiles (the policy\'s log URL)')
    .option('--attestations <path>', 'with a policy naming builders: attestation bundles (files or directories); --online also reads the log\'s', (v: string, prev: string[]) => [...prev, v], [])
    .option('--proxy <url>', 'the --online log reads and the signed time through this SOCKS5 proxy (socks5h://HOST:PORT: names resolved by the proxy; Roughtime over TCP only)')
    .option('--tor', `through Tor (default proxy ${TOR_DEFAULT_PROXY}), each host on its own circuit; longer timeouts`)
    .option('--json', 'print the verdict as JSON')
    .action(async (file: string, o: VerifyFlags) => {
      const { subject } = await loadReleaseSubject(file, o.kind);
      if (o.online && (await readPolicy(o.trustPolicy)).log.url === undefined) {
        throw new SourcemeshError('E_USAGE', `--online: the policy ${o.trustPolicy} names no log URL (log.url)`);
      }
      // --tor/--proxy as for fetch (src/fetch/network.ts): the log's tiles and the witnesses' Roughtime
      // (over TCP, no datagram: src/time/through-proxy.ts) both go through the proxy; without them, direct.
      const limits = o.tor ? torLimits(LIMITS) : LIMITS;
      const network = o.proxy !== undefined || o.tor ? new Network({ proxy: o.proxy, tor: o.tor }, limits) : undefined;
      try {
        await verifyRelease(io, file, subject, o, network ? { dispatcher: network.byOrigin(), time: measureThrough(network, limits) } : {});
      } finally {
        await network?.close();
      }
      setExit(0);
    });
}

async function verifyRelease(io: Io, file: string, subject: Awaited<ReturnType<typeof loadReleaseSubject>>['subject'], o: VerifyFlags, net: { dispatcher?: Dispatcher; time?: MeasureOptions | undefined }): Promise<void> {
  const verdict = await checkRelease({
    file, subject, policyFile: o.trustPolicy, bundleFile: o.bundle, stateDir: o.state ?? defaultStoreRoot(io.env), online: Boolean(o.online),
    ...(net.dispatcher ? { dispatcher: net.dispatcher } : {}), ...(net.time ? { time: net.time } : {}),
  });
  // The builders' quorum for the manifest's git snapshots (docs/FORMATS.md, "Builders' quorum").
  const policy = await readPolicy(o.trustPolicy);
  let builders: { name: string; sha256: string; builders: readonly string[]; liars: readonly { builder: string; sha256: string }[]; evidence?: string }[] | undefined;
  if (policy.builders && o.kind === 'manifest') {
    const log = o.online && policy.log.url !== undefined ? new LogClient(policy.log.url, net.dispatcher ? { dispatcher: net.dispatcher } : {}) : undefined;
    const r = await requireBuilders({ manifest: await loadManifest(file), policy, paths: o.attestations, ...(log ? { log } : {}), stateDir: o.state ?? defaultStoreRoot(io.env), now: new Date(), limits: LIMITS });
    builders = (r.report?.snapshots ?? []).map((s) => ({ name: s.name, sha256: s.verdict!.sha256, builders: s.verdict!.builders, liars: s.verdict!.liars, ...(s.evidenceDir ? { evidence: s.evidenceDir } : {}) }));
  }
  if (o.json) printJson(io, { ...verdictJson(verdict), ...(builders ? { builders } : {}) });
  else io.stdout.write(`${describeVerdict(verdict)}${builders?.length ? `; git snapshots attested by the builders' quorum: ${builders.map((b) => `${b.name} (${b.builders.length})`).join(', ')}` : ''}\n`);
}

// ---------------------------------------------------------------------------------------------------
// release init-chain, release rotate

function initChainCommand(io: Io): Command {
  return new Command('init-chain')
    .description('start a key rotation chain from the genesis release keys (the keys a trust policy pins)')
    .requiredOption('--chain <file>', 'the chain file to create')
    .option('--vkey <vkey>', 'a genesis release key: vkey text or a .pub file; repeatable', collect, [])
    .requiredOption('--threshold <n>', 'how many of the keys must sign a release or a rotation')
    .action(async (o: InitChainFlags) => {
      const genesis = keySetFrom(await readVkeys(o.vkey), positiveInt('--threshold', o.threshold, LIMITS.rotationKeys), '--vkey');
      if (await stat(o.chain).then(() => true, () => false)) throw new SourcemeshError('E_INPUT', `${o.chain} exists; refusing to start another chain over it`);
      await writeOutputFile(path.resolve(o.chain), formatChainFile({ genesis, statements: [], links: new Map() }));
      io.stdout.write(`chain ${chainIdOf(genesis)}\n`);
    });
}

function rotateCommand(io: Io): Command {
  return new Command('rotate')
    .description('rotate the release keys: a statement naming the new key set, signed by a threshold of the current one, with skip links, logged')
    .requiredOption('--chain <file>', 'the chain file (`release init-chain`); the statement is appended to it')
    .option('--key <keyfile>', 'a key of the current set (and of older sets, to sign skip links); repeatable', collect, [])
    .option('--new-key <vkey>', 'a key of the new set: vkey text or a .pub file; repeatable', collect, [])
    .requiredOption('--threshold <n>', 'the new set\'s threshold')
    .requiredOption('--log <url>', 'the transparency log to submit the statement to')
    .option('--json', 'print the sequence, index, checkpoint and skip links as JSON')
    .action(async (o: RotateFlags) => rotate(io, o));
}

async function rotate(io: Io, o: RotateFlags): Promise<void> {
  const chain = await readChainFile(o.chain);
  const positions = chainPositions(chain);
  const at = positions.at(-1)!;
  const next = keySetFrom(await readVkeys(o.newKey), positiveInt('--threshold', o.threshold, LIMITS.rotationKeys), '--new-key');
  const signers = await readSigners(o.key);
  const members = new Set(at.keySet.keys.map((k) => `${k.keyId}:${k.name}`));
  const note = makeRotationStatement(at, next, signers.filter((s) => members.has(`${s.keyId}:${s.name}`)));
  const sequence = at.sequence + 1;
  const links = skipLinks(io, positions, sequence, parseNote(note).text, signers);
  const logged = await submitToLog(new LogClient(o.log), note, signers.map((s) => formatVerifierKey(s)));
  await writeOutputFile(path.resolve(o.chain), formatChainFile(appendToChain(chain, note, logged.index, links)));
  if (o.json) printJson(io, { sequence, index: logged.index, checkpoint: logged.checkpoint, links: links.map((l) => l.from) });
  else io.stdout.write(`rotation ${sequence} index ${logged.index} (skip links from ${links.map((l) => l.from).join(', ') || 'none'})\n${logged.checkpoint}`);
}

/** The skip links to statement `sequence` that the given keys can sign; says which ones they can't. */
function skipLinks(io: Io, positions: readonly ChainPosition[], sequence: number, text: string, signers: readonly NoteSigner[]): { from: number; note: string }[] {
  const links: { from: number; note: string }[] = [];
  for (const i of skipSources(sequence)) {
    const link = makeRotationLink(positions[i]!, sequence, text, signers);
    if (link === undefined) io.stderr.write(`no skip link ${i} -> ${sequence}: fewer than ${positions[i]!.keySet.threshold} keys of key set ${i} given (clients walk around it)\n`);
    else links.push({ from: i, note: link });
  }
  return links;
}

// ---------------------------------------------------------------------------------------------------
// Key files

async function readSigners(files: readonly string[]): Promise<NoteSigner[]> {
  const signers: NoteSigner[] = [];
  for (const f of files) {
    const key = await readSignerKeyFile(f);
    if (key.type !== KEY_TYPE_ED25519) throw new SourcemeshError('E_USAGE', `--key ${f}: ${key.name} is a cosignature key; release keys are note keys (key generate --type note)`);
    signers.push(createSigner(key));
  }
  return signers;
}

async function readVkeys(args: readonly string[]): Promise<string[]> {
  return Promise.all(args.map(async (k) => formatVerifierKey(await readVerifierKeyArg(k))));
}
