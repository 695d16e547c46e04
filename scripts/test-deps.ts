// The Debian packages the tests and benchmarks run, listed once. `npm test` runs this first (the
// `pretest` script): as root it installs what is missing with apt-get (one `apt-get update` first, as on
// a fresh machine whose package lists are empty); otherwise it stops at once with the command to run.
//
//   npx node scripts/test-deps.ts            what `npm test` and `npm run test:slow` need
//   npx node scripts/test-deps.ts --bench    also what the `bench:*` scripts compare against
//
// SOURCEMESH_TEST_DEPS_EXTRA="name ..." adds package names to check (the test of this script uses a name
// that does not exist, to see the refusal without touching the machine).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface DebianPackage {
  name: string;
  /** 'test': `npm test` and `npm run test:slow` fail without it; 'bench': only the benchmarks use it. */
  for: 'test' | 'bench';
  why: string;
}

export const PACKAGES: readonly DebianPackage[] = [
  { name: 'git', for: 'test', why: 'archive conformance against git archive, git snapshots, mirror sync of repositories' },
  { name: 'gzip', for: 'test', why: 'deflate and snapshots byte for byte against gzip -n' },
  { name: 'xz-utils', for: 'test', why: 'xz snapshots and tarSha256 of .tar.xz' },
  { name: 'bzip2', for: 'test', why: 'bzip2 snapshots and tarSha256 of .tar.bz2' },
  { name: 'tar', for: 'test', why: 'pack and cleanse outputs read back by GNU tar' },
  { name: 'strace', for: 'test', why: "the archiver's system calls on loose objects (one open each, no stat); seed's socket writes (a block leaves with its header)" },
  { name: 'mount', for: 'test', why: 'tmpfs mounts for the disk-full and read-only store tests' },
  { name: 'curl', for: 'test', why: 'a real client against serve (ranges, resume, TLS)' },
  { name: 'wget', for: 'test', why: 'a real client against serve (resume with -c)' },
  { name: 'openssl', for: 'test', why: 'test certificates for HTTPS origins and serve --tls-cert' },
  { name: 'aria2', for: 'test', why: 'aria2c downloads through our Metalink and checks its hashes' },
  { name: 'python3', for: 'test', why: 'zlib 1.2.13 as the reference for the zlib flavour of our deflate' },
  { name: 'python3-libtorrent', for: 'test', why: 'libtorrent 2.0.8, the BitTorrent v2 reference: our torrents, seeds and web seeds against it' },
  { name: 'opentracker', for: 'test', why: 'a real BitTorrent HTTP tracker: seed --tracker announces to it, fetch --bittorrent finds peers through it' },
  { name: 'transmission-cli', for: 'test', why: 'Transmission 3.00 downloads a v1 torrent we made from its web seeds' },
  { name: 'dante-server', for: 'test', why: 'a real SOCKS5 proxy for --proxy and --tor' },
  { name: 'golang-go', for: 'test', why: "Go's sumdb note and tlog code checks our trust formats and log" },
  { name: 'golang-golang-x-mod-dev', for: 'test', why: 'golang.org/x/mod/sumdb for the Go interop program, without a module proxy' },
  { name: 'iproute2', for: 'test', why: 'ip netns, veth pairs and a bridge: the discovery tests and the stress harness (test/stress/) run nodes in network namespaces they create' },
  { name: 'avahi-daemon', for: 'test', why: 'a real mDNS/DNS-SD responder our announcements and discover interoperate with' },
  { name: 'avahi-utils', for: 'test', why: 'avahi-browse and avahi-publish against our announce and discover' },
  { name: 'dbus-daemon', for: 'test', why: "a system bus inside a namespace for avahi-daemon" },
  { name: 'chromium', for: 'test', why: 'the node control panel tested in a real browser (driven by playwright-core)' },
  { name: 'rsync', for: 'bench', why: 'the peer bench:node measures node clone against (an rsync daemon on loopback)' },
  { name: 'nginx', for: 'test', why: 'mirror nginx-config tested against the real nginx; the peer bench:serve and bench:fetch measure against' },
  { name: 'nftables', for: 'test', why: "partitions, packet loss and a witness's Roughtime redirected to a liar inside the stress harness's namespaces" },
  { name: 'util-linux', for: 'test', why: "fallocate fills a mirror's tmpfs for the stress harness's full-disk fault" },
  { name: 'wrk', for: 'bench', why: 'the load generator of bench:serve and bench:log' },
  { name: 'time', for: 'bench', why: 'GNU time for peak RSS in the benchmarks' },
];

// Debian policy 5.6.1: lower case letters, digits, + - and ., at least two characters, alphanumeric first.
const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+$/;

export type Decision =
  | { kind: 'ok' }
  | { kind: 'install'; packages: string[] }
  | { kind: 'stop'; message: string };

/** What to do, given the packages still missing and whether we run as root (pure: tested in-process). */
export function decide(missing: readonly string[], isRoot: boolean): Decision {
  if (missing.length === 0) return { kind: 'ok' };
  if (isRoot) return { kind: 'install', packages: [...missing] };
  return {
    kind: 'stop',
    message: `test-deps: missing Debian packages needed by the tests: ${missing.join(' ')}; run: ${installCommand(missing, true)}`,
  };
}

export function installCommand(packages: readonly string[], sudo: boolean): string {
  const s = sudo ? 'sudo ' : '';
  return `${s}apt-get update && ${s}apt-get install -y --no-install-recommends ${packages.join(' ')}`;
}

/** The names of `wanted` that dpkg does not report as installed; undefined when there is no dpkg-query. */
export function missingPackages(wanted: readonly string[]): string[] | undefined {
  // One query for all: known packages print a line each, unknown ones only a complaint on stderr.
  const r = spawnSync('dpkg-query', ['-W', '-f', '${Package} ${db:Status-Status}\\n', ...wanted], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  if (r.error) return undefined;
  const installed = new Set(r.stdout.split('\n').filter((l) => l.endsWith(' installed')).map((l) => l.split(' ')[0]!.split(':')[0]!));
  return wanted.filter((p) => !installed.has(p));
}

export function wantedPackages(bench: boolean, env: NodeJS.ProcessEnv = process.env): string[] {
  const extra = (env.SOURCEMESH_TEST_DEPS_EXTRA ?? '').split(/[\s,]+/).filter((n) => n !== '');
  for (const n of extra) if (!PACKAGE_NAME.test(n)) throw new Error(`test-deps: SOURCEMESH_TEST_DEPS_EXTRA: ${JSON.stringify(n)} is not a Debian package name`);
  return [...PACKAGES.filter((p) => bench || p.for === 'test').map((p) => p.name), ...extra];
}

function apt(args: string[]): void {
  const r = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.error || r.status !== 0) throw new Error(`test-deps: apt-get ${args.filter((a) => !a.startsWith('-')).join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})`);
}

function main(argv: string[]): number {
  const bench = argv.includes('--bench');
  const unknown = argv.filter((a) => a !== '--bench');
  if (unknown.length > 0) throw new Error(`test-deps: unknown argument ${unknown[0]} (usage: npx node scripts/test-deps.ts [--bench])`);
  const wanted = wantedPackages(bench);
  const missing = missingPackages(wanted);
  if (missing === undefined) {
    throw new Error(`test-deps: dpkg-query not found: the tests run on Debian (12 or later) and need the packages ${wanted.join(' ')}`);
  }
  const d = decide(missing, process.getuid?.() === 0);
  if (d.kind === 'stop') throw new Error(d.message);
  if (d.kind === 'install') {
    process.stderr.write(`test-deps: installing ${d.packages.join(' ')} with apt-get\n`);
    apt(['update', '-qq']);
    apt(['install', '-y', '-qq', '--no-install-recommends', ...d.packages]);
    const still = missingPackages(d.packages) ?? d.packages;
    if (still.length > 0) throw new Error(`test-deps: still missing after apt-get install: ${still.join(' ')}`);
  }
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
