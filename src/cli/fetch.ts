import path from 'node:path';
import { Command, Option } from 'commander';
import { EXIT, ERROR_CODES, SourcemeshError } from '../errors.ts';
import type { SegmentOptions } from '../fetch/segmented.ts';
import { parseSize } from './units.ts';
import { fetchManifest, mirrorOutcomes, type FetchReport, type FileOutcome } from '../fetch/fetcher.ts';
import { Reputation, mirrorWeight } from '../fetch/reputation.ts';
import { loadMirrorList } from '../fetch/mirror-list.ts';
import { Network, TOR_DEFAULT_PROXY, torLimits } from '../fetch/network.ts';
import type { MetalinkFile } from '../fetch/metalink.ts';
import { POLICIES, mirrorLabel, parseMirror, type Mirror, type Policy } from '../fetch/plan.ts';
import { LIMITS, limitsWith, type Limits } from '../limits.ts';
import { loadManifest, type Distfile, type Manifest } from '../manifest/index.ts';
import { writeOutputFile } from '../fs/durable-file.ts';
import { Store, defaultStoreRoot } from '../store/store.ts';
import { VERSION } from '../version.ts';
import { nonNegativeInt, positiveInt, printJson, type Io } from './output.ts';
import { addDhtOptions } from './dht-options.ts';
import { parseDuration } from './units.ts';
import { parseListen } from './listen.ts';
import { offlineRefusal, proxyRefusal } from './network-refusals.ts';
// Modules only some options need (trust, the DHT, mDNS, BitTorrent, attestations, Metalink) are imported
// where those options are acted on: a plain fetch then never loads them (docs/BENCHMARKS.md, peak RSS).

interface FetchFlags {
  output: string;
  mirror: string[];
  mirrorList: string[];
  policy: Policy;
  offline?: boolean;
  jobs: string;
  json?: boolean;
  store?: string;
  timeout?: string;
  retries?: string;
  metalink?: string;
  segments: string;
  minPiece: string;
  crossCheck: string;
  proxy?: string;
  tor?: boolean;
  isolatePerFile?: boolean;
  trustPolicy?: string;
  release?: string;
  attestations: string[];
  snapshotGenerator: string;
  discover?: string | true;
  dhtBootstrap: string[];
  dhtState?: string;
  bittorrent?: boolean;
  torrent: string[];
  peer: string[];
  tracker: string[];
  listen: string;
  upload: boolean;
  btWait?: string;
}

export function fetchCommand(io: Io, setExit: (n: number) => void, signal: AbortSignal): Command {
  return addDhtOptions(new Command('fetch'))
    .description('get every distfile of a manifest, verified, into the store and a distfiles directory')
    .argument('<manifest>', 'a sourcemesh manifest (JSON), a live-bootstrap sources file, or a steps/ directory')
    .option('-o, --output <dir>', 'export verified files here by name', 'distfiles')
    .option('--mirror <url>', 'a mirror: http(s)://BASE serving BASE/NAME, file:///DIR or a directory (repeatable)', collect, [])
    .option('--mirror-list <file|url|dht:HEXKEY?salt=NAME>', 'a sourcemesh.mirrors/v1 JSON list of mirrors (repeatable); dht: looks up the signed pointer to the newest list in the DHT', collect, [])
    .option('--discover [seconds]', 'also use the mirrors found on the local network (DNS-SD over mDNS), each checked by its signed inventory; listen this long (default 2)')
    .addOption(new Option('--policy <policy>', 'source order').choices(POLICIES).default('mirrors-first'))
    .option('--offline', 'no network: only the store and local directory mirrors')
    .option('--bittorrent', 'also take pieces from the BitTorrent peers (--peer) of the torrents given (--torrent), each checked against the manifest')
    .option('--torrent <file>', 'with --bittorrent: a .torrent of some distfiles of the manifest, ours or any client\'s (repeatable)', collect, [])
    .option('--peer <host:port>', 'with --bittorrent: a peer to ask for pieces (repeatable); with --dht-bootstrap, peers are also looked up in that DHT', collect, [])
    .option('--tracker <url>', 'with --bittorrent: also announce to this HTTP tracker (BEP 3) for peers, after the torrents\' own (repeatable)', collect, [])
    .option('--listen <host:port>', 'with --bittorrent: where other peers may take the pieces verified so far (port 0: any free port)', '0.0.0.0:0')
    .option('--no-upload', 'with --bittorrent: do not offer verified pieces to other peers while downloading')
    .option('--bt-wait <seconds>', `with --bittorrent: how long a file no source served waits for peers the DHT or a tracker names later (default ${LIMITS.swarmPeerWaitMs / 1000})`)
    .option('--proxy <url>', 'send every connection through this SOCKS5 proxy (socks5h://HOST:PORT: names resolved by the proxy)')
    .option('--tor', `through Tor (default proxy ${TOR_DEFAULT_PROXY}) with stream isolation: each mirror on its own circuit; longer timeouts, more retries`)
    .option('--isolate-per-file', 'with --tor: a circuit per mirror and file')
    .option('--segments <n>', 'take a large file in pieces from up to N sources at once (1: one source at a time)', '4')
    .option('--min-piece <size>', 'piece size for segmented downloads', '1MiB')
    .option('--cross-check <fraction>', 'fraction of pieces also taken from a second source and compared', '0.02')
    .option('-j, --jobs <n>', 'parallel downloads', '4')
    .option('--timeout <seconds>', `connect and idle timeout (default ${LIMITS.idleTimeoutMs / 1000})`)
    .option('--retries <n>', `retries per source after a transient failure (default ${LIMITS.attemptsPerSource - 1})`)
    .option('--store <dir>', 'content-addressed store (default $SOURCEMESH_STORE or $XDG_CACHE_HOME/sourcemesh)')
    .option('--metalink <file>', 'also write a Metalink v4 (RFC 5854) file for the fetched files and the mirrors, for aria2 and other clients')
    .option('--json', 'print a JSON report on stdout instead of progress and a summary')
    .addOption(new Option('--snapshot-generator <name>', 'make git entries\' snapshots from upstream\'s repository (cloned under the store) with `sourcemesh` (our archiver), `git` (git archive | gzip -n) or `none` (only download them)').choices(['sourcemesh', 'git', 'none']).default('sourcemesh'))
    .option('--trust-policy <policy>', 'refuse the manifest, before any download, unless its release bundle passes this sourcemesh.policy/v1')
    .option('--release <bundle>', 'with --trust-policy: the release bundle (default MANIFEST.release)')
    .option('--attestations <path>', 'with --trust-policy naming builders: attestation bundles (files or directories), besides those in the policy\'s log', collect, [])
    .action(async (input: string, o: FetchFlags) => {
      // Before anything starts: nothing may go around the proxy, nothing may touch the network offline.
      const refused = proxyRefusal(o) ?? offlineRefusal(o);
      if (refused) throw new SourcemeshError('E_USAGE', refused);
      const jobs = positiveInt('--jobs', o.jobs, 64);
      const segments = segmentOptions(o);
      const mirrors = o.mirror.map(parseMirror);
      if (o.attestations.length && !o.trustPolicy) throw new SourcemeshError('E_USAGE', '--attestations needs --trust-policy (with builders)');
      let manifest = await loadManifest(input);
      const store = await Store.open(o.store ?? defaultStoreRoot(io.env));
      if (o.btWait !== undefined && !o.bittorrent) throw new SourcemeshError('E_USAGE', '--bt-wait goes with --bittorrent');
      const btWait = o.btWait !== undefined ? { swarmPeerWaitMs: nonNegativeInt('--bt-wait', o.btWait, 86_400) * 1000 } : {};
      const limits = { ...(o.tor ? torLimits(fetchLimits(o)) : fetchLimits(o)), ...btWait };
      const network = new Network({ proxy: o.proxy, tor: o.tor, isolatePerFile: o.isolatePerFile }, limits);
      const dispatcher = network.dispatcher;
      if (o.trustPolicy) {
        const [{ checkManifestRelease }, { measureThrough }, { applyBuilders }, { describeVerdict }] = await Promise.all([import('../trust/check-release.ts'), import('../time/through-proxy.ts'), import('./builders.ts'), import('./verdict.ts')]);
        const verdict = await checkManifestRelease(input, manifest, { trustPolicy: o.trustPolicy, release: o.release, stateDir: store.root, offline: o.offline, dispatcher, time: measureThrough(network, limits) }).catch(async (err: unknown) => { await network.close(); throw err; });
        io.stderr.write(`release ${describeVerdict(verdict)}\n`);
        // The builders' quorum for git snapshots, before any download (cli/builders.ts).
        manifest = await applyBuilders(io, manifest, { trustPolicy: o.trustPolicy, attestations: o.attestations, offline: o.offline, dispatcher, stateDir: store.root, limits }).catch(async (err: unknown) => { await network.close(); throw err; });
      }
      for (const list of o.mirrorList) {
        if (!list.startsWith('dht:')) {
          mirrors.push(...(await loadMirrorList(list, dispatcher, limits)));
          continue;
        }
        // The pointer in the DHT, the list from its URLs checked against it, rollbacks refused; with a
        // trust policy, the list's own release in the log too (docs/OPERATIONS.md, publishing the pointer).
        const { resolveDhtList } = await import('./mirrors-dht.ts');
        const resolved = await resolveDhtList(list, o, store.root, limits).catch(async (err: unknown) => { await network.close(); throw err; });
        io.stderr.write(`mirror list ${resolved.address}: seq ${resolved.seq}, ${resolved.mirrors.length} mirrors, from ${resolved.url}${resolved.pointer.btih ? ` (btih ${resolved.pointer.btih})` : ''}\n`);
        if (o.trustPolicy) {
          const [{ checkListRelease }, { measureThrough }, { describeVerdict }] = await Promise.all([import('../discovery/pointer.ts'), import('../time/through-proxy.ts'), import('./verdict.ts')]);
          const verdict = await checkListRelease(resolved, { trustPolicy: o.trustPolicy, stateDir: store.root, dispatcher, limits, time: measureThrough(network, limits), ...(o.offline ? { offline: true } : {}) }).catch(async (err: unknown) => { await network.close(); throw err; });
          io.stderr.write(`mirror list release ${describeVerdict(verdict)}\n`);
        }
        mirrors.push(...resolved.mirrors.map((m) => parseMirror(m.url)));
      }
      // Mirrors on the local network: untrusted like any other, remembered by key, not by address (a
      // mesh renumbers), so their reputation follows them.
      const byKey = new Map<string, string>();
      if (o.discover !== undefined) {
        const seconds = o.discover === true ? '2' : o.discover;
        const timeoutMs = parseDuration('--discover', /^\d+(\.\d+)?$/.test(seconds) ? `${seconds}s` : seconds);
        const { discoverNodes } = await import('../discovery/discover.ts');
        const found = await discoverNodes({ timeoutMs, signal }).catch(async (err: unknown) => { await network.close(); throw err; });
        for (const n of found.nodes.filter((x) => x.roles.includes('mirror'))) {
          const m = parseMirror(n.url);
          mirrors.push(m);
          byKey.set(mirrorLabel(m), `key:${n.key}`);
        }
        io.stderr.write(`discovered ${byKey.size} mirrors on the local network${found.refused.length ? ` (${found.refused.length} refused)` : ''}\n`);
      }
      const repKey = (label: string) => byKey.get(label) ?? label;
      if ((o.torrent.length > 0 || o.peer.length > 0 || o.tracker.length > 0) && !o.bittorrent) throw new SourcemeshError('E_USAGE', '--torrent, --peer and --tracker go with --bittorrent');
      // Peers from --peer, and from the DHT when --dht-bootstrap names a (closed) DHT to join.
      const dht = o.bittorrent && o.dhtBootstrap.length > 0 ? await (await import('./mirrors-dht.ts')).startDht(o, store.root, limits) : undefined;
      const lookup = dht && (async (h: Buffer) => (await dht.lookup(h)).map((a) => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`)));
      const upload = o.bittorrent && o.upload ? { ...parseListen(o.listen), maxPeers: LIMITS.seedMaxPeers, uploadRate: 0, objectPath: (h: string) => store.objectPath(h) } : undefined;
      // With a DHT, it stays open through the download: our own announce (we upload) must be answerable.
      const announce = dht && ((h: Buffer, port: number) => dht.announce(h, port));
      const swarm = o.bittorrent ? await (await import('../torrent/swarm-fetch.ts')).swarmFetch(manifest, o.torrent, o.peer, limits, lookup, upload, announce, { extra: o.tracker, dispatcher }).catch(async (err: unknown) => { await dht?.close(); throw err; }) : undefined;
      if (swarm?.upload) io.stderr.write(`offering verified pieces to peers at ${swarm.upload.address}\n`);
      for (const t of swarm?.trackers.failed ?? []) io.stderr.write(`${t.message} [${t.code}]\n`);
      const knownSizes = manifest.distfiles.every((d) => d.size !== undefined);
      const progress = o.json ? undefined : await import('./progress.ts'); // cli-progress only for a terminal's view
      const reputation = Reputation.open(store.root);
      const records = new Map(reputation.all().map((r) => [r.mirror, r]));
      const view = progress?.createProgress(io, manifest.distfiles.length, knownSizes ? manifest.distfiles.reduce((n, d) => n + d.size!, 0) : undefined);
      const t0 = performance.now();
      let report;
      let uploaded: number | undefined;
      // git and the archiver (about 10 MB of start-up memory) load only for a manifest with git entries
      // (docs/BENCHMARKS.md, issue 21: fetch start-up memory).
      const snapshots = manifest.distfiles.some((d) => d.git) ? await import('../mirror/snapshot.ts') : undefined;
      if (snapshots || o.proxy || o.tor) (await import('../mirror/git-repo.ts')).routeGitThrough(o.proxy || o.tor ? (repo) => network.proxyUrlFor(repo) : undefined); // git snapshots' clones too
      const generator = snapshots && o.snapshotGenerator !== 'none' ? snapshots.snapshotGenerator(o.snapshotGenerator) : undefined;
      try {
        report = await fetchManifest(manifest, {
          store, outDir: path.resolve(o.output), mirrors, policy: o.policy, offline: Boolean(o.offline), jobs, limits, dispatcher, signal, segments, dispatcherFor: (src, file) => network.for(src, file),
          openSnapshot: generator ? snapshots!.snapshotOpener(store.root, generator, { offline: o.offline }) : undefined,
          mirrorWeight: (m) => mirrorWeight(records.get(repKey(mirrorLabel(m)))),
          ...swarm?.options,
          onEvent: (e) => { view?.onEvent(e); swarm?.options.onEvent?.(e); },
        });
        reputation.record(mirrorOutcomes(report).map((r) => ({ ...r, mirror: repKey(r.mirror) })));
      } finally {
        view?.stop();
        uploaded = swarm?.upload?.uploaded;
        await swarm?.close();
        await dht?.close();
        if (uploaded !== undefined) io.stderr.write(`uploaded ${uploaded} bytes to peers\n`);
        reputation.close();
        await network.close();
      }
      const seconds = (performance.now() - t0) / 1000;
      if (o.metalink) await writeMetalink(o.metalink, manifest.distfiles, report, store, mirrors);
      const attestations = await attestFetched(io, store.root, manifest, report.files, signal);
      if (o.json) printJson(io, { manifest: manifest.name, output: path.resolve(o.output), store: store.root, seconds, ...report, ...(uploaded !== undefined && { uploaded }), ...(swarm && { trackers: swarm.trackers }), ...(swarm && dht && { dht: swarm.dht }), attestations });
      else io.stderr.write(progress!.summaryLines(io, report, seconds));
      setExit(report.worst ? ERROR_CODES[report.worst] : EXIT.ok);
    });
}

/**
 * What this run derived (git snapshots it made, files it took from upstream), attested with the store's node
 * key, STORE/node.key (the key `serve --local` signs with; created when missing), into STORE/attestations/
 * (docs/FORMATS.md, "Attestations"). Bytes from mirrors or peers are not attested: this node did not derive them.
 */
async function attestFetched(io: Io, storeRoot: string, manifest: Manifest, files: readonly FileOutcome[], signal: AbortSignal): Promise<string[]> {
  if (!files.some((f) => f.status === 'fetched' && (f.via === undefined || f.via === 'upstream'))) return [];
  const [{ nodeKeyFiles, resolveNodeKey }, { writeDerivedAttestations }, { ensureRepo }] = await Promise.all([import('../mirror/inventory.ts'), import('../attest/derived.ts'), import('../mirror/git-repo.ts')]);
  const { key, file, created } = await resolveNodeKey(storeRoot);
  if (created) io.stderr.write(`created the node key ${file} (public key in ${nodeKeyFiles(storeRoot).pub})\n`);
  return writeDerivedAttestations(path.join(storeRoot, ATTESTATIONS_STORE_DIR), manifest, files, key, {
    resolveCommit: async (d) => (await ensureRepo(d.git!.repo, d.git!.ref, storeRoot, signal, { offline: true })).commit, now: new Date(),
  });
}

/** Where `fetch` keeps its attestations, under the store. */
export const ATTESTATIONS_STORE_DIR = 'attestations';

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** --timeout and --retries, shared by every command that downloads. */
export function fetchLimits(o: { timeout?: string; retries?: string }): Limits {
  const timeoutMs = o.timeout !== undefined ? positiveInt('--timeout', o.timeout, 3600) * 1000 : undefined;
  return limitsWith({
    ...(timeoutMs !== undefined ? { connectTimeoutMs: timeoutMs, headersTimeoutMs: timeoutMs, idleTimeoutMs: timeoutMs } : {}),
    ...(o.retries !== undefined ? { attemptsPerSource: nonNegativeInt('--retries', o.retries, 100) + 1 } : {}),
  });
}

async function writeMetalink(out: string, distfiles: Distfile[], report: FetchReport, store: Store, mirrors: Mirror[]): Promise<void> {
  const { METALINK_PIECE, formatMetalink, pieceHashes } = await import('../fetch/metalink.ts');
  const files: MetalinkFile[] = [];
  for (const [i, d] of distfiles.entries()) {
    if (report.files[i]!.status === 'failed') continue;
    const obj = await store.get(report.files[i]!.sha256);
    if (!obj) continue;
    const { size, pieces } = await pieceHashes(obj.path);
    files.push({ distfile: { ...d, sha256: obj.sha256 }, size, pieces, pieceLength: METALINK_PIECE });
  }
  await writeOutputFile(out, formatMetalink(files, mirrors, `sourcemesh/${VERSION}`));
}

function segmentOptions(o: FetchFlags): SegmentOptions | undefined {
  const segments = positiveInt('--segments', o.segments, 64);
  const pieceLength = parseSize('--min-piece', o.minPiece);
  // Pieces are held in memory until complete: bound them, and keep them whole 16 KiB blocks (BEP 52).
  if (pieceLength < 16 << 10 || pieceLength > 64 << 20 || pieceLength % (16 << 10) !== 0) {
    throw new SourcemeshError('E_USAGE', `--min-piece ${o.minPiece}: expected a multiple of 16 KiB from 16KiB to 64MiB`);
  }
  const crossCheck = Number(o.crossCheck);
  if (!/^\d*\.?\d+$/.test(o.crossCheck) || crossCheck > 1) throw new SourcemeshError('E_USAGE', `--cross-check ${o.crossCheck}: expected a fraction from 0 to 1`);
  return segments > 1 ? { segments, pieceLength, crossCheck } : undefined;
}
