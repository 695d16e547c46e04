// npm run bench:attest: the two figures of issue 19.
//   1. Attestations verified per second (the signature and the statement checks of verifyAttestation),
//      against the Sigstore project's verifier (@sigstore/verify, bundles read by @sigstore/bundle) on the
//      same bundles in the same process, alternating order; and `attest verify DIR` as users run it (the
//      CLI, start-up counted) over the same bundles as files, with the quorum decided. Goal: 5,000/s.
//   2. One rebuilder re-deriving and attesting every git snapshot of a manifest of 20 generated
//      repositories: `rebuild --snapshot-generator sourcemesh` against `--snapshot-generator git`
//      (git archive | gzip -n), the CLI as users run it, alternating order, clones made beforehand (both
//      sides then only derive, hash, compare and attest). Goal: ours within 1.5x of git's time.
// Every run is checked: exit status 0 and, for rebuild, every snapshot matching its pin; a failed run
// stops the benchmark. Prints medians with ranges, the ratios, the machine and the CPU pressure.
//
//   node bench/attest.ts [--bundles N] [--reps N] [--repos N] [--files N] [--cli build|src|dist] [--dir DIR]
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleFromJSON } from '@sigstore/bundle';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';
import { formatBundle, keyLookup, signAttestation, verifyAttestation } from '../src/attest/bundle.ts';
import type { SnapshotClaim } from '../src/attest/statement.ts';
import { formatSignerKey, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, signerKeyFromSeed } from '../src/trust/note.ts';
import { keyLabel } from '../src/trust/policy.ts';
import { benchArgs } from './lib/args.ts';
import { cleanup } from './lib/cleanup.ts';
import { prepareCli, type CliMode } from './lib/cli.ts';
import { ensureOwnDir } from './lib/files.ts';
import { cpuPressureMicros, describeMachine, formatMachine } from './lib/machine.ts';
import { measure, median, type Measured } from './lib/measure.ts';

const GOAL_VERIFY = 5000;
const GOAL_REBUILD = 1.5;

const options = {
  bundles: { type: 'string', default: '3000' },
  reps: { type: 'string', default: '5' },
  repos: { type: 'string', default: '20' },
  files: { type: 'string', default: '300' },
  jobs: { type: 'string', default: '' },
  cli: { type: 'string', default: process.env.BENCH_CLI ?? 'build' },
  dir: { type: 'string', default: path.join(os.tmpdir(), 'sourcemesh-bench-attest') },
} as const;
const { values: flags, usage, count } = benchArgs('attest', options);
const nBundles = count('bundles', flags.bundles);
const reps = count('reps', flags.reps);
const nRepos = count('repos', flags.repos);
const nFiles = count('files', flags.files);
const jobsArgs = flags.jobs ? ['--jobs', String(count('jobs', flags.jobs))] : [];
if (!['build', 'src', 'dist'].includes(flags.cli)) usage(`--cli ${flags.cli}: expected build, src or dist`);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = path.resolve(flags.dir);
await ensureOwnDir(work);

const seed = (s: string) => createHash('sha256').update(s).digest();
const builders = ['a', 'b', 'c'].map((n) => signerKeyFromSeed(`rebuilder-${n}.bench`, KEY_TYPE_ED25519, seed(n)));
const range = (xs: number[]) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;
const psi0 = cpuPressureMicros();
const t0 = Date.now();
console.log(formatMachine(describeMachine()));
const cli = await prepareCli(root, work, flags.cli as CliMode);
console.log(`cli: ${cli.describe}`);
for (const w of cli.warnings) console.log(`warning: ${w}`);

// ---------------------------------------------------------------------------------------------------
// 1. Verifications per second

const texts: string[] = [];
for (let i = 0; i < nBundles; i++) {
  const k = builders[i % 3]!;
  const claim: SnapshotClaim = {
    kind: 'git-snapshot', name: `pkg-${Math.floor(i / 3)}.tar.gz`, sha256: createHash('sha256').update(`bytes ${Math.floor(i / 3)}`).digest('hex'), builder: formatVerifierKey(k),
    repository: `https://git.example.org/pkg-${Math.floor(i / 3)}.git`, ref: `v${i}`, commit: createHash('sha1').update(String(i)).digest('hex'), prefix: `pkg-${i}/`, compression: 'gzip-n', level: 6,
  };
  texts.push(formatBundle(signAttestation(claim, k, { version: '0.1.0', finishedOn: new Date('2026-01-01T00:00:00Z') })));
}
const keys = keyLookup(builders);
const ours = () => {
  const t = performance.now();
  for (let i = 0; i < texts.length; i++) verifyAttestation(texts[i]!, `b${i}`, keys);
  return texts.length / ((performance.now() - t) / 1000);
};
const spki = Buffer.from('302a300506032b6570032100', 'hex');
const { createPublicKey } = await import('node:crypto');
const byHint = new Map(builders.map((k) => [keyLabel(formatVerifierKey(k)), createPublicKey({ key: Buffer.concat([spki, k.publicKey]), format: 'der', type: 'spki' })]));
const sigstore = new Verifier(toTrustMaterial({ mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1', tlogs: [], ctlogs: [], certificateAuthorities: [], timestampAuthorities: [] }, (hint) => ({ publicKey: byHint.get(hint)!, validFor: () => true })), { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
const theirs = () => {
  const t = performance.now();
  // What a Sigstore client does with a bundle file: parse, check the bundle, verify; the statement is
  // then read for its subject.
  for (const text of texts) {
    const b = bundleFromJSON(JSON.parse(text));
    sigstore.verify(toSignedEntity(b));
    if (b.content.$case === 'dsseEnvelope') JSON.parse(b.content.dsseEnvelope.payload.toString('utf8'));
  }
  return texts.length / ((performance.now() - t) / 1000);
};
ours();
theirs(); // warm-up
const oursRates: number[] = [];
const theirRates: number[] = [];
for (let r = 0; r < reps; r++) {
  if (r % 2 === 0) {
    oursRates.push(ours());
    theirRates.push(theirs());
  } else {
    theirRates.push(theirs());
    oursRates.push(ours());
  }
}
console.log(`\nverify (in process, ${nBundles} bundles by 3 builders, ${reps} rounds):`);
console.log(`  sourcemesh        ${median(oursRates).toFixed(0)}/s (range ${oursRates.map((x) => x.toFixed(0)).sort().join(', ')})`);
console.log(`  @sigstore/verify  ${median(theirRates).toFixed(0)}/s (range ${theirRates.map((x) => x.toFixed(0)).sort().join(', ')})`);
console.log(`  ratio ours/sigstore ${(median(oursRates) / median(theirRates)).toFixed(2)}x; goal ${GOAL_VERIFY}/s: ${median(oursRates) >= GOAL_VERIFY ? 'met' : 'missed'}`);

// The CLI over the same bundles as files (start-up, reading, the quorum and the report included).
const bundleDir = path.join(work, 'bundles');
await rm(bundleDir, { recursive: true, force: true });
await mkdir(bundleDir, { recursive: true });
await Promise.all(texts.map((t, i) => writeFile(path.join(bundleDir, `${String(i).padStart(6, '0')}.json`), t)));
const v = (name: string, type = KEY_TYPE_ED25519) => formatVerifierKey(signerKeyFromSeed(name, type, seed(name)));
const policy = path.join(work, 'policy.json');
await writeFile(policy, JSON.stringify({
  format: 'sourcemesh.policy/v1', log: { vkey: v('log.bench/main') }, witnesses: { quorum: 1, vkeys: [v('w.bench', KEY_TYPE_COSIGNATURE_V1)] },
  release: { threshold: 1, vkeys: [v('r.bench')] }, maxCheckpointAgeSeconds: 3600, builders: { threshold: 1, vkeys: builders.map(formatVerifierKey) },
}));
const cliRuns: Measured[] = [];
for (let r = 0; r < reps; r++) {
  const m = await measure(cli.argv[0]!, [...cli.argv.slice(1), 'attest', 'verify', bundleDir, '--trust-policy', policy, '--state', path.join(work, 'client'), '--json'], { captureBytes: 256 << 20 });
  if (m.code !== 0) throw new Error(`attest verify exited ${m.code}: ${m.stderr.slice(-500)}`);
  if (JSON.parse(m.stdout).attestations.length !== nBundles) throw new Error('attest verify did not verify every bundle');
  cliRuns.push(m);
}
const cliRates = cliRuns.map((m) => nBundles / m.seconds);
console.log(`  attest verify DIR (CLI, start-up counted): ${median(cliRates).toFixed(0)}/s, ${median(cliRuns.map((m) => m.seconds)).toFixed(2)} s (range ${range(cliRuns.map((m) => m.seconds))} s)`);

// ---------------------------------------------------------------------------------------------------
// 2. Rebuild of a manifest of generated repositories: ours against git archive | gzip -n

const reposDir = path.join(work, 'repos');
await rm(reposDir, { recursive: true, force: true });
await mkdir(reposDir, { recursive: true });
const gitEnv = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'B', GIT_AUTHOR_EMAIL: 'b@bench', GIT_COMMITTER_NAME: 'B', GIT_COMMITTER_EMAIL: 'b@bench', GIT_AUTHOR_DATE: '1700000000 +0000', GIT_COMMITTER_DATE: '1700000000 +0000' };
const git = (cwd: string, args: string[], input?: Buffer) => execFileSync('git', args, { cwd, env: gitEnv, input, maxBuffer: 1 << 30 });
const distfiles = [];
let treeBytes = 0;
for (let r = 0; r < nRepos; r++) {
  const dir = path.join(reposDir, `repo-${r}`);
  await mkdir(path.join(dir, 'src', 'sub'), { recursive: true });
  for (let f = 0; f < nFiles; f++) {
    // Source-like text: words from a hash stream, a few KiB a file.
    const lines: string[] = [];
    let h = seed(`${r}/${f}`);
    for (let l = 0; l < 40 + (f % 60); l++) {
      h = createHash('sha256').update(h).digest();
      lines.push(`static int f_${h.toString('hex', 0, 4)}(int x) { return x * ${h[5]} + ${h[6]}; } /* ${h.toString('base64').slice(0, 20)} */`);
    }
    const body = `${lines.join('\n')}\n`;
    treeBytes += body.length;
    await writeFile(path.join(dir, f % 3 === 0 ? 'src/sub' : 'src', `file-${f}.c`), body);
  }
  git(dir, ['init', '-q', '-b', 'main']);
  git(dir, ['add', '-A']);
  git(dir, ['commit', '-q', '-m', 'bench']);
  const tar = git(dir, ['archive', '--format=tar', `--prefix=repo-${r}/`, 'HEAD']);
  const gz = execFileSync('gzip', ['-n', '-6'], { input: tar, maxBuffer: 1 << 30 });
  distfiles.push({ name: `repo-${r}.tar.gz`, sha256: createHash('sha256').update(gz).digest('hex'), urls: [], git: { repo: dir, ref: 'main', prefix: `repo-${r}/`, compression: 'gzip-n', level: 6 } });
}
const manifest = path.join(work, 'manifest.json');
await writeFile(manifest, `${JSON.stringify({ format: 'sourcemesh.manifest/v1', name: 'bench-attest', distfiles }, null, 2)}\n`);
const keyFile = path.join(work, 'rebuilder.key');
await writeFile(keyFile, `${formatSignerKey(builders[0]!)}\n`, { mode: 0o600 });
const state = path.join(work, 'state');
await rm(state, { recursive: true, force: true });
const rebuild = async (generator: string) => {
  const out = path.join(work, `out-${generator}`);
  await rm(out, { recursive: true, force: true });
  const m = await measure(cli.argv[0]!, [...cli.argv.slice(1), 'rebuild', manifest, '--snapshot-generator', generator, ...jobsArgs, '--key', keyFile, '--state', state, '-o', out, '--json']);
  if (m.code !== 0) throw new Error(`rebuild --snapshot-generator ${generator} exited ${m.code}: ${m.stderr.slice(-500)}`);
  const results = JSON.parse(m.stdout).results as { matches: boolean }[];
  if (results.length !== nRepos || !results.every((x) => x.matches)) throw new Error(`rebuild --snapshot-generator ${generator}: not every snapshot matched its pin`);
  return m;
};
await rebuild('git'); // clones every repository into STATE: not timed
const runs: Record<string, Measured[]> = { sourcemesh: [], git: [] };
for (let r = 0; r < reps; r++) {
  for (const g of r % 2 === 0 ? ['sourcemesh', 'git'] : ['git', 'sourcemesh']) runs[g]!.push(await rebuild(g));
}
const secs = (g: string) => runs[g]!.map((m) => m.seconds);
const cpu = (g: string) => runs[g]!.map((m) => m.cpuSeconds ?? NaN);
const ratio = median(secs('sourcemesh')) / median(secs('git'));
console.log(`\nrebuild (CLI, ${nRepos} repositories of ${nFiles} files, ${(treeBytes / 2 ** 20).toFixed(1)} MiB of sources, ${reps} runs each, alternating; ${flags.jobs ? `--jobs ${flags.jobs}` : `rebuild's default --jobs, min(4, ${os.availableParallelism()} CPUs)`}, the same for both):`);
console.log(`  --snapshot-generator sourcemesh  ${median(secs('sourcemesh')).toFixed(2)} s (range ${range(secs('sourcemesh'))}), CPU ${median(cpu('sourcemesh')).toFixed(2)} s`);
console.log(`  --snapshot-generator git         ${median(secs('git')).toFixed(2)} s (range ${range(secs('git'))}), CPU ${median(cpu('git')).toFixed(2)} s (git and gzip processes included)`);
console.log(`  ratio ours/git ${ratio.toFixed(2)}x; goal <= ${GOAL_REBUILD}x: ${ratio <= GOAL_REBUILD ? 'met' : 'missed'}`);
const psi1 = cpuPressureMicros();
if (psi0 !== undefined && psi1 !== undefined) console.log(`\nCPU pressure: some task waited for a CPU ${(((psi1 - psi0) / 1e6) / ((Date.now() - t0) / 1000) * 100).toFixed(1)}% of the run`);
await cleanup();
