// Three rebuilders of one manifest, its repository served by a real `git daemon` on loopback: two run the
// real CLI (`sourcemesh rebuild`), the third is the same rebuild code with its archiver patched here to
// flip one byte of one file in the tar. `attest verify` then decides with the builders' quorum.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { compressChunks } from '../../src/archive/compress.ts';
import { openArchive } from '../../src/archive/index.ts';
import { writeBundles } from '../../src/attest/files.ts';
import { rebuildManifest } from '../../src/attest/rebuild.ts';
import { firstDifference } from '../../src/attest/tar-diff.ts';
import { LIMITS } from '../../src/limits.ts';
import type { Distfile } from '../../src/manifest/distfile.ts';
import { ensureRepo } from '../../src/mirror/git-repo.ts';
import { formatSignerKey, formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, signerKeyFromSeed, type SignerKey } from '../../src/trust/note.ts';
import { commitFiles, gitArchiveGzip, gitIn, makeRepo } from '../helpers/git.ts';
import { runCli, tempDir, waitFor } from '../helpers/run.ts';
import { writeManifest } from '../helpers/distfiles.ts';
import { flippingDerive } from './liar.ts';

const seed = (label: string) => createHash('sha256').update(label).digest();
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const key = (name: string) => signerKeyFromSeed(name, KEY_TYPE_ED25519, seed(name));
const [A, B, C, D] = ['rebuilder-a.example', 'rebuilder-b.example', 'rebuilder-c.example', 'stranger.example'].map(key) as [SignerKey, SignerKey, SignerKey, SignerKey];

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** `git daemon` serving `base` on 127.0.0.1, read-only; stopped after the test. */
async function gitDaemon(t: { after(fn: () => unknown): void }, base: string): Promise<string> {
  const port = await freePort();
  const child: ChildProcess = spawn('git', ['daemon', '--reuseaddr', '--export-all', `--base-path=${base}`, '--listen=127.0.0.1', `--port=${port}`, base], { stdio: 'ignore' });
  t.after(() => child.kill());
  await waitFor('git daemon to listen', () => new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  }));
  return `git://127.0.0.1:${port}`;
}

interface World {
  dir: string;
  repoUrl: string;
  manifest: string;
  distfile: Distfile;
  honest: Buffer;
  policy: (threshold: number, builders: SignerKey[]) => Promise<string>;
  keyFile: (k: SignerKey) => Promise<string>;
}

async function world(t: { after(fn: () => unknown): void }): Promise<World> {
  const dir = await tempDir(t);
  const upstream = path.join(dir, 'upstream', 'demo');
  await makeRepo(upstream, { 'README': 'demo\n', 'src/main.c': 'int main(void) { return 0; }\n', 'src/util.c': 'int util(void) { return 1; }\n' });
  gitIn(upstream, ['tag', 'v1']);
  await commitFiles(upstream, { 'src/util.c': 'int util(void) { return 2; }\n' }, 'second');
  gitIn(upstream, ['tag', 'v2']);
  const repoUrl = `${await gitDaemon(t, path.join(dir, 'upstream'))}/demo`;
  const honest = gitArchiveGzip(upstream, 'demo-1/', 'v1', 6);
  const distfile: Distfile = { name: 'demo-1.tar.gz', sha256: sha256(honest), urls: [], git: { repo: repoUrl, ref: 'v1', prefix: 'demo-1/', compression: 'gzip-n', level: 6 } };
  const manifest = await writeManifest(dir, [distfile]);
  const policy = async (threshold: number, builders: SignerKey[]) => {
    const file = path.join(dir, `policy-${threshold}-${builders.map((b) => b.name[10]).join('')}.json`);
    const v = (name: string, type = KEY_TYPE_ED25519) => formatVerifierKey(signerKeyFromSeed(name, type, seed(name)));
    await writeFile(file, JSON.stringify({
      format: 'sourcemesh.policy/v1', log: { vkey: v('log.example/main') },
      witnesses: { quorum: 1, vkeys: [v('witness.example/w1', KEY_TYPE_COSIGNATURE_V1)] },
      release: { threshold: 1, vkeys: [v('release.example/k1')] }, maxCheckpointAgeSeconds: 3600,
      builders: { threshold, vkeys: builders.map(formatVerifierKey) },
    }));
    return file;
  };
  const keyFile = async (k: SignerKey) => {
    const file = path.join(dir, `${k.name}.key`);
    await writeFile(file, `${formatSignerKey(k)}\n`, { mode: 0o600 });
    return file;
  };
  return { dir, repoUrl, manifest, distfile, honest, policy, keyFile };
}

/** An honest rebuilder: the real CLI, its own state and output directory. */
async function honestRebuild(w: World, k: SignerKey, out: string) {
  const r = await runCli(['rebuild', w.manifest, '--key', await w.keyFile(k), '--state', path.join(w.dir, `state-${k.name}`), '-o', out, '--json'], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** The lying rebuilder: our rebuild with the archiver patched to flip one byte of src/main.c's data. */
async function lyingRebuild(w: World, k: SignerKey, out: string) {
  const state = path.join(w.dir, `state-${k.name}`);
  const results = await rebuildManifest({ format: 'sourcemesh.manifest/v1', name: 'test', distfiles: [w.distfile] }, {
    async derive(d) {
      const { dir, commit } = await ensureRepo(d.git!.repo, d.git!.ref, state);
      const archive = openArchive({ repoPath: dir, ref: commit, prefix: d.git!.prefix });
      const flipped = (async function* () {
        let seen = 0;
        for await (const chunk of archive.chunks()) {
          const b = Buffer.from(chunk);
          // 'int main' is in src/main.c's data block: flip its first byte.
          const at = b.indexOf('int main');
          if (at >= 0 && seen === 0) { b[at] ^= 0x20; seen++; }
          yield b;
        }
        archive.close();
      })();
      return { commit, chunks: compressChunks(flipped, d.git!.compression, d.git!.level) };
    },
    key: k, version: '0.1.0', now: () => new Date(), limits: LIMITS,
  });
  await writeBundles(out, results.map((r) => ({ name: r.name, builder: r.claim!.builder, bundle: r.attestation! })));
  return results;
}

async function verify(w: World, paths: string[], policy: string, extra: string[] = []) {
  const r = await runCli(['attest', 'verify', ...paths, '--trust-policy', policy, '--state', path.join(w.dir, 'client'), '--json', ...extra]);
  return { code: r.code, stderr: r.stderr, report: r.stdout ? JSON.parse(r.stdout) : undefined };
}

test('three rebuilders on loopback, one lying: a 2-of-3 policy accepts the honest bytes, names the liar and keeps the evidence', async (t) => {
  const w = await world(t);
  const out = path.join(w.dir, 'attestations');
  const a = await honestRebuild(w, A, out);
  assert.equal(a.results[0].matches, true);
  assert.equal(a.results[0].sha256, w.distfile.sha256);
  await honestRebuild(w, B, out);
  const lies = await lyingRebuild(w, C, out);
  assert.notEqual(lies[0]!.sha256, w.distfile.sha256);
  assert.equal(lies[0]!.matches, false);
  assert.equal((await readdir(out)).length, 3);

  const { code, report } = await verify(w, [out], await w.policy(2, [A, B, C]), ['--manifest', w.manifest]);
  assert.equal(code, 0);
  const snap = report.snapshots[0];
  assert.equal(snap.accepted, true);
  assert.equal(snap.sha256, w.distfile.sha256);
  assert.deepEqual(snap.builders, [formatVerifierKey(A), formatVerifierKey(B)]);
  assert.deepEqual(snap.liars.map((l: { builder: string }) => l.builder), [formatVerifierKey(C)]);
  const evidence = await readdir(snap.evidence);
  assert.equal(evidence.length, 3, 'both sides\' bundles are kept');
  // A 3-of-3 policy refuses: the liar breaks unanimity (exit 3), and the evidence is kept too.
  const strict = await verify(w, [out], await w.policy(3, [A, B, C]), ['--manifest', w.manifest]);
  assert.equal(strict.code, 3);
  assert.equal(strict.report.snapshots[0].code, 'E_POLICY');
  assert.ok(strict.report.snapshots[0].evidenceDir);
});

test('two liars agreeing: without a pin 2-of-3 takes their bytes; the pinned sha256 always wins', async (t) => {
  const w = await world(t);
  const out = path.join(w.dir, 'attestations');
  await honestRebuild(w, A, out);
  const b = await lyingRebuild(w, B, out);
  const c = await lyingRebuild(w, C, out);
  assert.equal(b[0]!.sha256, c[0]!.sha256);
  const policy = await w.policy(2, [A, B, C]);
  // Without the manifest (no pin), the quorum is all there is: the two agreeing liars win.
  const loose = await verify(w, [out], policy);
  assert.equal(loose.code, 0);
  assert.equal(loose.report.snapshots[0].sha256, b[0]!.sha256);
  // With the manifest's pinned sha256: refused, exit 3, whatever the quorum says.
  const pinned = await verify(w, [out], policy, ['--manifest', w.manifest]);
  assert.equal(pinned.code, 3);
  assert.equal(pinned.report.snapshots[0].code, 'E_POLICY');
  assert.match(pinned.report.snapshots[0].message, /pins sha256 .* always wins/);
});

test('refused: an unknown builder, a replayed attestation for another ref, a bad signature', async (t) => {
  const w = await world(t);
  const out = path.join(w.dir, 'attestations');
  await honestRebuild(w, A, out);
  // D is no builder of the policy.
  const stranger = path.join(w.dir, 'stranger');
  await honestRebuild(w, D, stranger);
  const policy = await w.policy(2, [A, B, C]);
  const unknown = await verify(w, [out, stranger], policy, ['--manifest', w.manifest]);
  assert.equal(unknown.code, 3);
  assert.deepEqual(unknown.report.refused.map((r: { code: string }) => r.code), ['E_POLICY']);
  assert.match(unknown.report.refused[0].message, /not a builder the policy names/);
  // B's genuine attestation of ref v2 (same file name), replayed as if it were about v1: not counted.
  const v2 = path.join(w.dir, 'v2');
  await mkdir(v2);
  const m2 = await writeManifest(v2, [{ ...w.distfile, sha256: sha256(gitArchiveGzip(path.join(w.dir, 'upstream', 'demo'), 'demo-1/', 'v2', 6)), git: { ...w.distfile.git!, ref: 'v2' } }]);
  const replayDir = path.join(w.dir, 'replay');
  const r = await runCli(['rebuild', m2, '--key', await w.keyFile(B), '--state', path.join(w.dir, 'state-b2'), '-o', replayDir, '--json'], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  const r2 = await runCli(['rebuild', m2, '--key', await w.keyFile(C), '--state', path.join(w.dir, 'state-c2'), '-o', replayDir, '--json'], { timeoutMs: 120_000 });
  assert.equal(r2.code, 0, r2.stderr);
  const replay = await verify(w, [out, replayDir], policy, ['--manifest', w.manifest]);
  assert.equal(replay.code, 3);
  assert.match(replay.report.snapshots[0].message, /2 builders must agree; 1 for sha256/);
  // The same with no sha256 pinned (tarSha256 only): B's and C's v2 attestations agree with each other,
  // and would make a quorum for v1's entry if the ref they attest were not compared.
  const tarOnly = path.join(w.dir, 'tar-only');
  await mkdir(tarOnly);
  const { sha256: _pinned, ...unpinned } = w.distfile;
  const m3 = await writeManifest(tarOnly, [{ ...unpinned, tarSha256: sha256(gitIn(path.join(w.dir, 'upstream', 'demo'), ['archive', '--format=tar', '--prefix=demo-1/', 'v1'])) }]);
  const replay2 = await verify(w, [out, replayDir], policy, ['--manifest', m3]);
  assert.equal(replay2.code, 3);
  assert.match(replay2.report.snapshots[0].message, /2 builders must agree; 1 for sha256/);
  assert.deepEqual(replay2.report.snapshots[0].groups.map((g: { builders: string[] }) => g.builders), [[formatVerifierKey(A)]]);
  // Counted when it is about v1: B rebuilding v1 makes the quorum (the check above could fail).
  await honestRebuild(w, B, out);
  assert.equal((await verify(w, [out], policy, ['--manifest', w.manifest])).code, 0);
  // A bundle whose signature was altered: E_SIGNATURE, exit 3.
  const file = path.join(out, (await readdir(out))[0]!);
  const bundle = JSON.parse(await readFile(file, 'utf8'));
  const sig = Buffer.from(bundle.dsseEnvelope.signatures[0].sig, 'base64');
  sig[0]! ^= 1;
  bundle.dsseEnvelope.signatures[0].sig = sig.toString('base64');
  const bad = path.join(w.dir, 'bad.json');
  await writeFile(bad, JSON.stringify(bundle));
  const badSig = await verify(w, [bad], policy);
  assert.equal(badSig.code, 3);
  assert.deepEqual(badSig.report.refused.map((x: { code: string }) => x.code), ['E_SIGNATURE']);
});

test('rebuild: a mismatch with the pin names both hashes; the other generator and the first differing tar entry explain it', async (t) => {
  const w = await world(t);
  const upstream = path.join(w.dir, 'upstream', 'demo');
  // Pin v2's bytes for the v1 entry: what upstream "should" have given differs in src/util.c.
  const wrong = await writeManifest(path.join(w.dir), [{ ...w.distfile, sha256: sha256(gitArchiveGzip(upstream, 'demo-1/', 'v2', 6)) }], 'wrong');
  const r = await runCli(['rebuild', wrong, '--state', path.join(w.dir, 'state-m')], { timeoutMs: 120_000 });
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`derived sha256 ${w.distfile.sha256}, the manifest pins ${sha256(gitArchiveGzip(upstream, 'demo-1/', 'v2', 6))}`));
  assert.match(r.stderr, /git archive derives [0-9a-f]{64}, the same bytes \[E_CHECKSUM\]/);
  // The tar differ on the real tars of v1 and v2: the first differing entry is src/util.c.
  const tar = (ref: string) => (async function* () { yield gitIn(upstream, ['archive', '--format=tar', '--prefix=demo-1/', ref]); })();
  const diff = await firstDifference(tar('v1'), tar('v2'), LIMITS);
  // Entry 0 is git's pax global header (the commit id): it differs first.
  assert.deepEqual(diff, { index: 0, ours: 'pax_global_header', theirs: 'pax_global_header' });
  const noPax = (ref: string) => (async function* () { yield gitIn(upstream, ['-c', 'tar.umask=0022', 'archive', '--format=tar', '--prefix=demo-1/', `${ref}^{tree}`]); })();
  assert.deepEqual(await firstDifference(noPax('v1'), noPax('v2'), LIMITS), { index: 4, ours: 'demo-1/src/util.c', theirs: 'demo-1/src/util.c' });
  assert.equal(await firstDifference(noPax('v1'), noPax('v1'), LIMITS), undefined);
  // The liar's rebuild, explained by the honest generator: the flipped file is named.
  const state = path.join(w.dir, 'state-liar');
  const results = await rebuildManifest({ format: 'sourcemesh.manifest/v1', name: 'test', distfiles: [w.distfile] }, {
    derive: flippingDerive(state),
    reference: {
      name: 'git archive',
      async derive(_d, commit) {
        const { dir } = await ensureRepo(w.repoUrl, commit, state);
        return (async function* () { yield gitArchiveGzip(dir, 'demo-1/', commit, 6); })();
      },
    },
    version: '0.1.0', now: () => new Date(), limits: LIMITS,
  });
  const ref = results[0]!.reference!;
  assert.equal(ref.sha256, w.distfile.sha256);
  assert.equal(ref.matchesPin, true);
  assert.deepEqual(ref.difference, { index: 4, ours: 'demo-1/src/main.c', theirs: 'demo-1/src/main.c' });
});
