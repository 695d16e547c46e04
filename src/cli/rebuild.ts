// sourcemesh rebuild MANIFEST [--snapshot-generator sourcemesh|git] [--key KEYFILE] [--log URL] [-o DIR] [--state DIR] [--json]
// The rebuilder role: re-derive every git snapshot of MANIFEST from upstream, compare it with the pinned
// sha256 (a mismatch: both hashes, the other generator's, and the first differing tar entry), attest each
// result with the node key (Sigstore bundles in DIR), and submit each DSSE envelope to the log. The work is
// src/attest/rebuild.ts; clones and generators are src/mirror's. Exit 0 when every snapshot matched its pin,
// 3 when one did not, 1 when one could not be derived.
import { Command } from 'commander';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { EXIT, SourcemeshError } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import { envelopeBytes } from '../attest/bundle.ts';
import { writeBundles } from '../attest/files.ts';
import { oidHex } from '../archive/git/object-id.ts';
import { Repository } from '../archive/git/repository.ts';
import { ArchiveThreads } from '../archive/threads.ts';
import { rebuildManifest, type RebuildResult } from '../attest/rebuild.ts';
import type { Distfile } from '../manifest/distfile.ts';
import { loadManifest } from '../manifest/load.ts';
import { statIfExistsSync } from '../fs/files.ts';
import { cloneDirFor, ensureRepo } from '../mirror/git-repo.ts';
import { snapshotGenerator } from '../mirror/snapshot.ts';
import { defaultStoreRoot } from '../store/store.ts';
import { readSignerKeyFile } from '../trust/key-file.ts';
import { LogClient } from '../trust/log-client.ts';
import { formatVerifierKey, KEY_TYPE_ED25519 } from '../trust/note.ts';
import { VERSION } from '../version.ts';
import { positiveInt, printJson, table, type Io } from './output.ts';

interface Flags {
  snapshotGenerator: string;
  key?: string;
  log?: string;
  output?: string;
  state?: string;
  jobs: string;
  json?: boolean;
}

export function rebuildCommand(io: Io, setExit: (n: number) => void, signal: AbortSignal): Command {
  return new Command('rebuild')
    .description('re-derive every git snapshot of MANIFEST from upstream, compare with its pinned sha256, attest and log each result')
    .argument('<manifest>', 'a manifest, sources file or steps/ tree')
    .option('--snapshot-generator <name>', 'derive with `sourcemesh` (our archiver and deflate) or `git` (git archive | gzip -n); the other explains a mismatch', 'sourcemesh')
    .option('--key <keyfile>', 'the node key (Ed25519 note key, `key generate`): attest each result with it')
    .option('--log <url>', 'submit each attestation\'s DSSE envelope to this transparency log (needs --key)')
    .option('-o, --output <dir>', 'where the attestation bundles go (default STATE/attestations)')
    .option('--state <dir>', 'where upstream repositories are cloned (default the store: $SOURCEMESH_STORE or $XDG_CACHE_HOME/sourcemesh)')
    .option('-j, --jobs <n>', 'snapshots derived at once', String(Math.min(4, availableParallelism())))
    .option('--json', 'print the results as JSON')
    .action(async (manifestPath: string, o: Flags) => {
      const jobs = positiveInt('--jobs', o.jobs, 64);
      if (o.log !== undefined && o.key === undefined) throw new SourcemeshError('E_USAGE', '--log needs --key: the log takes signed attestations');
      const generator = snapshotGenerator(o.snapshotGenerator);
      const other = snapshotGenerator(o.snapshotGenerator === 'git' ? 'sourcemesh' : 'git');
      // Our archiver is JavaScript: a thread per job, where git archive | gzip -n are processes of their own.
      // Started first, so that the threads load their code while the key and the manifest are read.
      const threads = o.snapshotGenerator === 'sourcemesh' ? new ArchiveThreads(jobs) : undefined;
      try {
        await rebuildWith(o, io, setExit, signal, manifestPath, jobs, generator, other, threads);
      } finally {
        threads?.close();
      }
    });
}

async function rebuildWith(o: Flags, io: Io, setExit: (n: number) => void, signal: AbortSignal, manifestPath: string, jobs: number,
  generator: ReturnType<typeof snapshotGenerator>, other: ReturnType<typeof snapshotGenerator>, threads: ArchiveThreads | undefined): Promise<void> {
  const key = o.key === undefined ? undefined : await readSignerKeyFile(o.key, 'node key');
  if (key !== undefined && key.type !== KEY_TYPE_ED25519) throw new SourcemeshError('E_USAGE', `--key ${o.key}: a note key (Ed25519) is needed, not a cosignature key`);
  const log = o.log === undefined ? undefined : new LogClient(o.log);
  const manifest = await loadManifest(manifestPath);
  const state = path.resolve(o.state ?? defaultStoreRoot(io.env));
  const outDir = path.resolve(o.output ?? path.join(state, 'attestations'));
  const results = await rebuildManifest(manifest, {
    ...(threads ? {
      async deriveHash(d: Distfile, sig?: AbortSignal) {
        // Our generator resolves the ref with our own reader when the clone has it (no git process per
        // snapshot: each cost its thread some 15 ms idle, docs/BENCHMARKS.md); git clones and fetches otherwise.
        const { dir, commit } = resolveInClone(d.git!.repo, d.git!.ref, state) ?? await ensureRepo(d.git!.repo, d.git!.ref, state, sig);
        return { commit, ...(await threads.hash(dir, commit, d.git!)) };
      },
    } : {}),
    async derive(d, sig) {
      const { dir, commit } = await ensureRepo(d.git!.repo, d.git!.ref, state, sig);
      return { commit, chunks: generator.generate(dir, commit, d.git!, sig) };
    },
    reference: {
      name: other.name,
      async derive(d, commit, sig) {
        const { dir } = await ensureRepo(d.git!.repo, commit, state, sig);
        return other.generate(dir, commit, d.git!, sig);
      },
    },
    ...(key ? { key } : {}), version: VERSION, now: () => new Date(), limits: LIMITS, signal, jobs,
  });
  const attested = results.filter((r) => r.attestation !== undefined);
  const files = await writeBundles(outDir, attested.map((r) => ({ name: r.name, builder: r.claim!.builder, bundle: r.attestation! })));
  const logged: { name: string; index: number }[] = [];
  if (log) {
    for (const r of attested) {
      const entry = await log.add(envelopeBytes(r.attestation!.dsseEnvelope), { keys: [formatVerifierKey(key!)] });
      logged.push({ name: r.name, index: entry.index });
    }
  }
  let exit: number = EXIT.ok;
  if (results.some((r) => r.matches === false)) exit = EXIT.verification;
  if (results.some((r) => r.error)) exit = Math.max(exit, EXIT.operational);
  if (o.json) {
    printJson(io, {
      generator: generator.name,
      results: results.map((r, i) => ({ ...json(r), ...(r.attestation ? { attestation: files[attested.indexOf(r)] } : {}), ...(logged.find((l) => l.name === r.name) ? { logIndex: logged.find((l) => l.name === r.name)!.index } : {}), position: i })),
    });
  } else {
    io.stdout.write(table(results.map((r) => [r.name, r.error ? 'FAILED' : r.matches === false ? 'MISMATCH' : r.matches ? 'matches' : 'unpinned', r.sha256 ?? '', r.commit?.slice(0, 12) ?? ''])));
    for (const r of results) {
      if (r.error) io.stderr.write(`sourcemesh: ${r.name}: ${r.error.message} [${r.error.code}]\n`);
      if (r.matches === false) io.stderr.write(`sourcemesh: ${r.name}: derived sha256 ${r.sha256}, the manifest pins ${r.pinned}${mismatchDetail(r)} [E_CHECKSUM]\n`);
    }
    if (files.length) io.stdout.write(`${files.length} attestation(s) in ${outDir}\n`);
    if (logged.length) io.stdout.write(`logged at index ${logged.map((l) => l.index).join(', ')}\n`);
  }
  setExit(exit);
}

/**
 * The commit `ref` names in the store's clone of `repo`, read by our archiver's own reader (the one that
 * then reads the snapshot); undefined when there is no clone yet or the reader cannot resolve it (a ref
 * to fetch, a form it refuses): then ensureRepo asks git, which clones or fetches as needed.
 */
function resolveInClone(repo: string, ref: string, state: string): { dir: string; commit: string } | undefined {
  const dir = cloneDirFor(state, repo);
  if (!statIfExistsSync(dir)) return undefined;
  let r: Repository | undefined;
  try {
    r = Repository.open(dir, LIMITS);
    return { dir, commit: oidHex(r.resolveCommit(ref).oid) };
  } catch (err) {
    if (err instanceof SourcemeshError && err.code !== 'E_INTERNAL') return undefined;
    throw err;
  } finally {
    r?.close();
  }
}

function mismatchDetail(r: RebuildResult): string {
  const ref = r.reference;
  if (!ref) return '';
  const who = `${ref.generator} derives ${ref.sha256}${ref.matchesPin ? ' (the pinned bytes)' : ''}`;
  const d = ref.difference;
  if (!d) return `; ${who}, the same bytes`;
  const where = d.ours !== undefined && d.theirs !== undefined && d.ours !== d.theirs ? `${d.ours} (ours) / ${d.theirs} (${ref.generator})` : (d.ours ?? d.theirs ?? 'the end of the archive');
  return `; ${who}; the first differing tar entry is #${d.index} ${where}`;
}

function json(r: RebuildResult) {
  return {
    name: r.name, ...(r.commit ? { commit: r.commit } : {}), ...(r.sha256 ? { sha256: r.sha256, bytes: r.bytes } : {}), ...(r.pinned ? { pinned: r.pinned } : {}),
    ...(r.matches === undefined ? {} : { matches: r.matches }), ...(r.reference ? { reference: r.reference } : {}),
    ...(r.error ? { error: { code: r.error.code, message: r.error.message } } : {}),
  };
}
