// `mirror sync` attests each git snapshot it made and each file it downloaded from upstream, with its node
// key, beside the inventory; `serve` publishes them; `attest verify` accepts them under a policy naming the
// node as a builder.
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { keyLookup, verifyAttestation } from '../../src/attest/bundle.ts';
import { formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, parseVerifierKey, signerKeyFromSeed } from '../../src/trust/note.ts';
import { bytes, distfile, sha256, writeManifest } from '../helpers/distfiles.ts';
import { gitArchiveGzip, makeRepo } from '../helpers/git.ts';
import { startOrigin } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { startServe } from '../mirror/serve-process.ts';

test('mirror sync writes one attestation per file it made or downloaded; serve publishes them beside the inventory', async (t) => {
  const dir = await tempDir(t);
  const A = bytes(50_000, 7);
  const origin = await startOrigin({ '/a.tar.gz': { body: A } });
  t.after(() => origin.close());
  const repo = path.join(dir, 'upstream', 'proj');
  const commit = await makeRepo(repo, { 'README': 'hello\n' });
  const snapshot = gitArchiveGzip(repo, 'proj-1.0/', commit);
  const m = await writeManifest(dir, [
    distfile('a.tar.gz', A, [`${origin.url}/a.tar.gz`]),
    distfile('proj-1.0.tar.gz', snapshot, [], { git: { repo, ref: commit.slice(0, 10), prefix: 'proj-1.0/', compression: 'gzip-n', level: 6 } }),
  ]);
  const root = path.join(dir, 'mirror');
  const r = await runCli(['mirror', 'sync', m, '--root', root, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.attestations.length, 2);
  const vkey = (await readFile(path.join(root, '.sourcemesh', 'node.pub'), 'utf8')).trim();
  const keys = keyLookup([parseVerifierKey(vkey)]);
  const attDir = path.join(root, '.well-known', 'sourcemesh', 'attestations');
  const files = (await readdir(attDir)).sort();
  assert.equal(files.length, 2);
  const claims = await Promise.all(files.map(async (f) => verifyAttestation(await readFile(path.join(attDir, f), 'utf8'), f, keys).claim));
  const download = claims.find((c) => c.kind === 'upstream-download')!;
  assert.deepEqual(download, { kind: 'upstream-download', name: 'a.tar.gz', sha256: sha256(A), builder: vkey, url: `${origin.url}/a.tar.gz` });
  const snap = claims.find((c) => c.kind === 'git-snapshot')!;
  assert.deepEqual(snap, { kind: 'git-snapshot', name: 'proj-1.0.tar.gz', sha256: sha256(snapshot), builder: vkey, repository: repo, ref: commit.slice(0, 10), commit, prefix: 'proj-1.0/', compression: 'gzip-n', level: 6 });
  // Nothing new the second time: the attestations stay as they were.
  const again = JSON.parse((await runCli(['mirror', 'sync', m, '--root', root, '--json'])).stdout);
  assert.deepEqual(again.attestations, []);

  // serve: the bundles by name under /.well-known/sourcemesh/attestations/; nothing else there.
  const served = await startServe(t, ['--root', root]);
  for (const f of files) {
    const res = await fetch(`${served.url}/.well-known/sourcemesh/attestations/${encodeURIComponent(f)}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), await readFile(path.join(attDir, f)));
  }
  for (const bad of ['nothing.sigstore.json', '..%2Fnode.key', 'x.json', '.hidden.sigstore.json']) {
    assert.ok([400, 404].includes((await fetch(`${served.url}/.well-known/sourcemesh/attestations/${bad}`)).status), bad);
  }
  await served.stop();

  // A policy naming the node as its one builder accepts the snapshot (and pins, through the manifest).
  const v = (name: string, type = KEY_TYPE_ED25519) => formatVerifierKey(signerKeyFromSeed(name, type, Buffer.alloc(32, name.length)));
  const policy = path.join(dir, 'policy.json');
  await writeFile(policy, JSON.stringify({
    format: 'sourcemesh.policy/v1', log: { vkey: v('log.example/main') }, witnesses: { quorum: 1, vkeys: [v('witness.example/w1', KEY_TYPE_COSIGNATURE_V1)] },
    release: { threshold: 1, vkeys: [v('release.example/k1')] }, maxCheckpointAgeSeconds: 3600, builders: { threshold: 1, vkeys: [vkey] },
  }));
  const verified = await runCli(['attest', 'verify', attDir, '--trust-policy', policy, '--manifest', m, '--state', path.join(dir, 'client'), '--json']);
  assert.equal(verified.code, 0, verified.stderr);
  assert.deepEqual(JSON.parse(verified.stdout).snapshots.map((s: { name: string; accepted: boolean }) => [s.name, s.accepted]), [['proj-1.0.tar.gz', true]]);
});

test('fetch attests each git snapshot it made and each file it took from upstream, with STORE/node.key, into STORE/attestations/', async (t) => {
  const dir = await tempDir(t);
  const A = bytes(30_000, 9);
  const origin = await startOrigin({ '/a.tar.gz': { body: A } });
  t.after(() => origin.close());
  const repo = path.join(dir, 'upstream', 'proj');
  const commit = await makeRepo(repo, { 'README': 'fetched\n' });
  const snapshot = gitArchiveGzip(repo, 'proj-2.0/', commit);
  const m = await writeManifest(dir, [
    distfile('a.tar.gz', A, [`${origin.url}/a.tar.gz`]),
    distfile('proj-2.0.tar.gz', snapshot, [], { git: { repo, ref: commit, prefix: 'proj-2.0/', compression: 'gzip-n', level: 6 } }),
  ]);
  const store = path.join(dir, 'store');
  const r = await runCli(['fetch', m, '--store', store, '-o', path.join(dir, 'out'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).attestations.length, 2);
  const vkey = (await readFile(path.join(store, 'node.pub'), 'utf8')).trim();
  const keys = keyLookup([parseVerifierKey(vkey)]);
  const attDir = path.join(store, 'attestations');
  const files = (await readdir(attDir)).sort();
  const claims = await Promise.all(files.map(async (f) => verifyAttestation(await readFile(path.join(attDir, f), 'utf8'), f, keys).claim));
  assert.deepEqual(claims.find((c) => c.kind === 'upstream-download'), { kind: 'upstream-download', name: 'a.tar.gz', sha256: sha256(A), builder: vkey, url: `${origin.url}/a.tar.gz` });
  assert.deepEqual(claims.find((c) => c.kind === 'git-snapshot'), { kind: 'git-snapshot', name: 'proj-2.0.tar.gz', sha256: sha256(snapshot), builder: vkey, repository: repo, ref: commit, commit, prefix: 'proj-2.0/', compression: 'gzip-n', level: 6 });
  // Taken from the store the second time, not derived: nothing attested.
  const again = await runCli(['fetch', m, '--store', store, '-o', path.join(dir, 'out2'), '--json']);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(JSON.parse(again.stdout).attestations, []);
});
