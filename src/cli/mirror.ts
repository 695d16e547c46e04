import { Command } from 'commander';
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EXIT, ERROR_CODES, SourcemeshError, type ErrorCode } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import { nginxConfig } from '../mirror/nginx-config.ts';
import { VERSION } from '../version.ts';
import { describeRejection } from '../fetch/fetcher.ts';
import { Network, TOR_DEFAULT_PROXY, torLimits } from '../fetch/network.ts';
import { loadManifest } from '../manifest/index.ts';
import { routeGitThrough } from '../mirror/git-repo.ts';
import { snapshotGenerator } from '../mirror/snapshot.ts';
import { nodeKeyFiles, resolveNodeKey } from '../mirror/inventory.ts';
import { stateDirOf, syncMirror, type SyncReport } from '../mirror/sync.ts';
import { checkManifestRelease } from '../trust/check-release.ts';
import { measureThrough } from '../time/through-proxy.ts';
import { applyBuilders } from './builders.ts';
import { fetchLimits } from './fetch.ts';
import { parseListen } from './listen.ts';
import { formatBytes, paint, positiveInt, printError, printJson, type Io } from './output.ts';
import { createProgress } from './progress.ts';
import { describeVerdict } from './verdict.ts';
import { formatDuration, parseDuration, parseSize } from './units.ts';

interface SyncFlags {
  root: string;
  interval?: string;
  maxBytes?: string;
  jobs: string;
  timeout?: string;
  retries?: string;
  proxy?: string;
  tor?: boolean;
  json?: boolean;
  key?: string;
  keyName?: string;
  trustPolicy?: string;
  release?: string;
  attestations: string[];
  snapshotGenerator: string;
  staticLinks?: boolean;
}

export function mirrorCommand(io: Io, setExit: (n: number) => void, signal: AbortSignal): Command {
  const cmd = new Command('mirror').description('run a mirror node');
  cmd.command('sync')
    .description('bring a mirror root up to date with a manifest, from upstream only (git snapshots generated locally)')
    .argument('<manifest>', 'a sourcemesh manifest, live-bootstrap sources file or steps/ directory')
    .requiredOption('--root <dir>', 'the mirror root, served by `sourcemesh serve --root`')
    .option('--interval <duration>', 'sync again every DURATION (e.g. 6h), with ±20% random jitter, until interrupted')
    .option('--max-bytes <size>', 'refuse, before writing, when the mirror would hold more than SIZE (e.g. 50G)')
    .option('-j, --jobs <n>', 'parallel downloads', '4')
    .option('--timeout <seconds>', 'connect and idle timeout')
    .option('--retries <n>', 'retries per source after a transient failure')
    .option('--proxy <url>', 'every connection, git\'s included, through this SOCKS5 proxy (socks5h://HOST:PORT: names resolved by the proxy)')
    .option('--tor', `through Tor (default proxy ${TOR_DEFAULT_PROXY}), each upstream host on its own circuit; longer timeouts, more retries`)
    .option('--json', 'print each run\'s report as JSON')
    .option('--snapshot-generator <name>', 'make git snapshots with `sourcemesh` (our archiver and deflate) or `git` (git archive | gzip -n, for comparison)', 'sourcemesh')
    .option('--key <file>', 'the node key signing the inventory (default ROOT/.sourcemesh/node.key, created when missing)')
    .option('--key-name <name>', 'the name of a node key created now (default this host\'s name)')
    .option('--trust-policy <policy>', 'refuse the manifest, before any download, unless its release bundle passes this sourcemesh.policy/v1')
    .option('--release <bundle>', 'with --trust-policy: the release bundle (default MANIFEST.release)')
    .option('--attestations <path>', 'with --trust-policy naming builders: attestation bundles (files or directories), besides those in the policy\'s log', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--static-links', 'also write ROOT/sha256/HEX as hard links, for a static web server in front (see `mirror nginx-config`)')
    .action(async (input: string, o: SyncFlags) => {
      if (o.attestations.length && !o.trustPolicy) throw new SourcemeshError('E_USAGE', '--attestations needs --trust-policy (with builders)');
      const jobs = positiveInt('--jobs', o.jobs, 64);
      const generator = snapshotGenerator(o.snapshotGenerator);
      const interval = o.interval !== undefined ? parseDuration('--interval', o.interval) : undefined;
      const maxBytes = o.maxBytes !== undefined ? parseSize('--max-bytes', o.maxBytes) : undefined;
      const limits = o.tor ? torLimits(fetchLimits(o)) : fetchLimits(o);
      const keyDir = stateDirOf(path.resolve(o.root));
      const { key, file: keyFile, created } = await resolveNodeKey(keyDir, o.key, o.keyName);
      if (created) io.stderr.write(`created the node key ${keyFile} (public key in ${nodeKeyFiles(keyDir).pub})\n`);
      for (;;) {
        const manifest = await loadManifest(input); // re-read each run: the manifest may have been updated
        const network = new Network({ proxy: o.proxy, tor: o.tor }, limits);
        const dispatcher = network.byOrigin();
        routeGitThrough(o.proxy || o.tor ? (repo) => network.proxyUrlFor(repo) : undefined);
        const view = o.json ? undefined : createProgress(io, manifest.distfiles.length, undefined);
        const t0 = performance.now();
        let status: number;
        try {
          let synced = manifest;
          if (o.trustPolicy) {
            io.stderr.write(`release ${describeVerdict(await checkManifestRelease(input, manifest, { trustPolicy: o.trustPolicy, release: o.release, stateDir: keyDir, dispatcher: network.dispatcher, time: measureThrough(network, limits) }))}\n`);
            // The builders' quorum, as fetch applies it: each snapshot this mirror makes must be the accepted bytes.
            synced = await applyBuilders(io, manifest, { trustPolicy: o.trustPolicy, attestations: o.attestations, dispatcher: network.dispatcher, stateDir: keyDir, limits });
          }
          const report = await syncMirror(synced, { root: o.root, maxBytes, limits, dispatcher, generator, jobs, signal, key, keyFile, staticLinks: o.staticLinks, onEvent: (e) => view?.onEvent(e) });
          view?.stop();
          status = printReport(io, report, o, (performance.now() - t0) / 1000);
        } catch (err) {
          view?.stop();
          if (interval === undefined || signal.aborted) throw err;
          status = printError(io, err); // keep serving the schedule: the next run may succeed
        } finally {
          await network.close();
        }
        setExit(status);
        if (interval === undefined) return;
        // Unpredictable sync times: an observer cannot time an attack to just before a sync.
        const delay = Math.round(interval * (0.8 + 0.4 * Math.random()));
        io.stderr.write(`next sync in ${formatDuration(delay)}\n`);
        try {
          await sleep(delay, undefined, { signal });
        } catch {
          return setExit(EXIT.ok);
        }
      }
    });
  cmd.command('nginx-config')
    .description('print an nginx configuration (http context) that serves a mirror root as `serve` does')
    .argument('<root>', 'the mirror root that `mirror sync --static-links` keeps')
    .option('--listen <host:port>', 'address and port nginx listens on', '127.0.0.1:8080')
    .option('--server-name <name>', 'the server_name (default: any)')
    .action(async (rootArg: string, o: { listen: string; serverName?: string }) => {
      const { host, port } = parseListen(o.listen);
      const root = await realpath(path.resolve(rootArg)).catch(() => undefined);
      const st = root === undefined ? undefined : await stat(root).catch(() => undefined);
      if (root === undefined || !st?.isDirectory()) throw new SourcemeshError('E_INPUT', `mirror root ${rootArg}: not a directory`);
      io.stdout.write(nginxConfig({ root, host, port, serverName: o.serverName, limits: LIMITS, version: VERSION }));
      const links = await readdir(path.join(root, 'sha256')).catch(() => [] as string[]);
      if (!links.some((n) => /^[0-9a-f]{64}$/.test(n))) io.stderr.write(`note: ${root}/sha256/ has no HEX links yet: run \`sourcemesh mirror sync --static-links\` for /sha256/HEX\n`);
      setExit(EXIT.ok);
    });
  return cmd;
}

function printReport(io: Io, r: SyncReport, o: SyncFlags, seconds: number): number {
  let worst: ErrorCode | undefined;
  for (const f of r.failed) if (f.error && (worst === undefined || ERROR_CODES[f.error.code] > ERROR_CODES[worst])) worst = f.error.code;
  if (o.json) {
    printJson(io, { root: o.root, seconds, ...r });
  } else {
    for (const q of r.quarantined) io.stderr.write(`${paint(io, io.stderr, 'yellow', 'QUARANTINED')} ${q.name}: sha256 ${q.actual}, expected ${q.expected}; moved to ${q.movedTo}\n`);
    for (const f of r.failed) {
      io.stderr.write(`${paint(io, io.stderr, 'red', 'FAILED')} ${f.error?.message ?? f.name}\n`);
      for (const rej of f.rejected) io.stderr.write(`  ${describeRejection(rej)}\n`);
    }
    const bytes = r.added.reduce((n, f) => n + (f.size ?? 0), 0);
    io.stderr.write(`sync ${o.root}: ${r.added.length} added (${formatBytes(bytes)}), ${r.unchanged.length} unchanged, ${r.quarantined.length} quarantined, ${r.failed.length} failed in ${seconds.toFixed(1)} s\n`);
    if (r.inventory) io.stderr.write(`inventory of ${r.inventory.files} file(s) signed in ${r.inventory.path}\n`);
    if (r.hashLinks) io.stderr.write(`sha256/ links: ${r.hashLinks.linked} made, ${r.hashLinks.removed} removed${r.hashLinks.skipped.length ? `, ${r.hashLinks.skipped.length} not linkable: ${r.hashLinks.skipped.map((s) => s.why).join('; ')}` : ''}\n`);
  }
  return worst ? ERROR_CODES[worst] : EXIT.ok;
}
