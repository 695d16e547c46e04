// Upstream replacement: two nodes' first-download attestations for one URL that record different bytes
// are reported by `attest verify` (exit 3, both versions and who saw each); the same bytes are not.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { formatBundle, signAttestation } from '../../src/attest/bundle.ts';
import { upstreamChanges } from '../../src/attest/upstream.ts';
import { formatVerifierKey, KEY_TYPE_COSIGNATURE_V1, KEY_TYPE_ED25519, signerKeyFromSeed, type SignerKey } from '../../src/trust/note.ts';
import { runCli, tempDir } from '../helpers/run.ts';

const key = (name: string, type = KEY_TYPE_ED25519) => signerKeyFromSeed(name, type, createHash('sha256').update(name).digest());
const [A, B] = [key('mirror-a.test'), key('mirror-b.test')];
const URL = 'https://ftp.example.org/gnu/bash/bash-5.2.tar.gz';
const download = (k: SignerKey, sha: string) => signAttestation({ kind: 'upstream-download', name: 'bash-5.2.tar.gz', sha256: sha, builder: formatVerifierKey(k), url: URL }, k, { version: '0.1.0' });

test('upstreamChanges: one URL, two recorded sha256, named with their builders; agreeing records are no change', () => {
  const claim = (k: SignerKey, sha: string, url = URL) => ({ claim: { kind: 'upstream-download' as const, name: 'b', sha256: sha, builder: formatVerifierKey(k), url }, source: k.name });
  assert.deepEqual(upstreamChanges([claim(A, 'aa'), claim(B, 'aa'), claim(A, 'cc', 'https://other/')]), []);
  assert.deepEqual(upstreamChanges([claim(A, 'aa'), claim(B, 'bb')]), [{ url: URL, versions: [{ sha256: 'aa', builders: [formatVerifierKey(A)], sources: [A.name] }, { sha256: 'bb', builders: [formatVerifierKey(B)], sources: [B.name] }] }]);
});

test('attest verify reports an upstream that served other bytes under the same URL (exit 3)', async (t) => {
  const dir = await tempDir(t);
  const policy = path.join(dir, 'policy.json');
  await writeFile(policy, JSON.stringify({
    format: 'sourcemesh.policy/v1', log: { vkey: formatVerifierKey(key('log.test/main')) }, witnesses: { quorum: 1, vkeys: [formatVerifierKey(key('w.test', KEY_TYPE_COSIGNATURE_V1))] },
    release: { threshold: 1, vkeys: [formatVerifierKey(key('r.test'))] }, maxCheckpointAgeSeconds: 3600, builders: { threshold: 1, vkeys: [A, B].map(formatVerifierKey) },
  }));
  const same = path.join(dir, 'same');
  const changed = path.join(dir, 'changed');
  await mkdir(same);
  await mkdir(changed);
  await writeFile(path.join(same, 'a.json'), formatBundle(download(A, '1'.repeat(64))));
  await writeFile(path.join(same, 'b.json'), formatBundle(download(B, '1'.repeat(64))));
  const ok = await runCli(['attest', 'verify', same, '--trust-policy', policy, '--state', dir, '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(JSON.parse(ok.stdout).upstreamChanges, []);
  await writeFile(path.join(changed, 'a.json'), formatBundle(download(A, '1'.repeat(64))));
  await writeFile(path.join(changed, 'b.json'), formatBundle(download(B, '2'.repeat(64))));
  const r = await runCli(['attest', 'verify', changed, '--trust-policy', policy, '--state', dir]);
  assert.equal(r.code, 3);
  assert.match(r.stderr, new RegExp(`upstream changed: ${URL.replace(/\./g, '\\.')} was downloaded as sha256 1{64} \\(by mirror-a\\.test\\+[0-9a-f]{8}\\) and as sha256 2{64} \\(by mirror-b\\.test\\+[0-9a-f]{8}\\)`));
});
