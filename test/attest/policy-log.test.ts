// The builders' quorum in the client, end to end against a real `log serve` and three `witness serve`
// processes on loopback: three rebuilders submit their attestations to the log (two with `rebuild --log`,
// one lying, its archiver patched here), and `fetch --trust-policy` and `release verify --online` find
// them there, proven in the witnessed checkpoint, and require the quorum before any download; so does
// `mirror sync --trust-policy` before it makes any snapshot.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { envelopeBytes } from '../../src/attest/bundle.ts';
import { rebuildManifest } from '../../src/attest/rebuild.ts';
import { LIMITS } from '../../src/limits.ts';
import { LogClient } from '../../src/trust/log-client.ts';
import { formatSignerKey, formatVerifierKey, KEY_TYPE_ED25519, signerKeyFromSeed } from '../../src/trust/note.ts';
import { gitArchiveGzip, makeRepo } from '../helpers/git.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { flippingDerive } from './liar.ts';
import { startTrustNetwork } from '../trust/release/network.ts';

const key = (name: string) => signerKeyFromSeed(name, KEY_TYPE_ED25519, createHash('sha256').update(name).digest());
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('fetch --trust-policy and release verify --online require the builders\' quorum, read from the log', async (t) => {
  const dir = await tempDir(t);
  const net = await startTrustNetwork(t, dir);
  const repo = path.join(dir, 'upstream', 'demo');
  const commit = await makeRepo(repo, { 'README': 'demo\n', 'src/main.c': 'int main(void) { return 0; }\n' });
  const honest = gitArchiveGzip(repo, 'demo-1/', commit, 6);
  const manifest = path.join(dir, 'manifest.json');
  const distfile = { name: 'demo-1.tar.gz', sha256: sha256(honest), urls: [], git: { repo, ref: commit, prefix: 'demo-1/', compression: 'gzip-n', level: 6 } };
  await writeFile(manifest, `${JSON.stringify({ format: 'sourcemesh.manifest/v1', name: 'release-test', version: '1.0', distfiles: [distfile] }, null, 2)}\n`);
  const [r1, r2] = net.releaseKeys;
  const made = await runCli(['release', manifest, '--key', r1!.file, '--key', r2!.file, '--log', net.log.url]);
  assert.equal(made.code, 0, made.stderr);

  const [A, B, C] = ['rebuilder-a.test', 'rebuilder-b.test', 'rebuilder-c.test'].map(key) as [ReturnType<typeof key>, ReturnType<typeof key>, ReturnType<typeof key>];
  for (const k of [A, B]) {
    const file = path.join(dir, `${k.name}.key`);
    await writeFile(file, `${formatSignerKey(k)}\n`, { mode: 0o600 });
    const r = await runCli(['rebuild', manifest, '--key', file, '--log', net.log.url, '--state', path.join(dir, `state-${k.name}`), '-o', path.join(dir, 'att'), '--json'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(typeof JSON.parse(r.stdout).results[0].logIndex, 'number');
  }
  // C lies: one byte of src/main.c flipped in its tar; its attestation goes to the log all the same.
  const lies = await rebuildManifest({ format: 'sourcemesh.manifest/v1', name: 'x', distfiles: [distfile as never] }, {
    derive: flippingDerive(path.join(dir, 'state-c')),
    key: C, version: '0.1.0', now: () => new Date(), limits: LIMITS,
  });
  await new LogClient(net.log.url).add(envelopeBytes(lies[0]!.attestation!.dsseEnvelope));

  const withBuilders = async (name: string, threshold: number) => {
    const file = await net.policy(name);
    const p = JSON.parse(await readFile(file, 'utf8'));
    p.builders = { threshold, vkeys: [A, B, C].map(formatVerifierKey) };
    await writeFile(file, JSON.stringify(p));
    return file;
  };
  const store = path.join(dir, 'store');
  const p2 = await withBuilders('p2.json', 2);
  const out = path.join(dir, 'out');
  const fetched = await runCli(['fetch', manifest, '--trust-policy', p2, '--store', store, '-o', out], { timeoutMs: 120_000 });
  assert.equal(fetched.code, 0, fetched.stderr);
  assert.match(fetched.stderr, new RegExp(`builders: demo-1\\.tar\\.gz sha256 ${distfile.sha256} attested by 2 of 3; 1 disagreed, evidence in \\S+attest-evidence`));
  assert.deepEqual(await readFile(path.join(out, 'demo-1.tar.gz')), honest);
  const evidence = (await readdir(path.join(store, 'attest-evidence')))[0]!;
  assert.equal((await readdir(path.join(store, 'attest-evidence', evidence))).length, 3);

  const verified = await runCli(['release', 'verify', manifest, '--trust-policy', p2, '--state', path.join(dir, 'client'), '--online', '--json']);
  assert.equal(verified.code, 0, verified.stderr);
  const v = JSON.parse(verified.stdout);
  assert.deepEqual(v.builders[0].builders, [A, B].map(formatVerifierKey).sort());
  assert.deepEqual(v.builders[0].liars.map((l: { builder: string }) => l.builder), [formatVerifierKey(C)]);

  // 3 of 3: refused before any download (exit 3), nothing written under the output directory.
  const p3 = await withBuilders('p3.json', 3);
  const out3 = path.join(dir, 'out3');
  const refused = await runCli(['fetch', manifest, '--trust-policy', p3, '--store', path.join(dir, 'store3'), '-o', out3], { timeoutMs: 120_000 });
  assert.equal(refused.code, 3, refused.stderr);
  assert.match(refused.stderr, /the builders' quorum refuses the snapshot: 3 builders must agree; 2 for sha256 .*\[E_POLICY\]/);
  assert.equal(await stat(path.join(out3, 'demo-1.tar.gz')).then(() => true, () => false), false);
  // mirror sync --trust-policy applies the builders as fetch does: 2 of 3 syncs the honest bytes, 3 of 3
  // refuses before making any snapshot (exit 3).
  const root2 = path.join(dir, 'mirror2');
  const synced = await runCli(['mirror', 'sync', manifest, '--root', root2, '--trust-policy', p2], { timeoutMs: 120_000 });
  assert.equal(synced.code, 0, synced.stderr);
  assert.match(synced.stderr, new RegExp(`builders: demo-1\\.tar\\.gz sha256 ${distfile.sha256} attested by 2 of 3; 1 disagreed`));
  assert.deepEqual(await readFile(path.join(root2, 'demo-1.tar.gz')), honest);
  const root3 = path.join(dir, 'mirror3');
  const syncRefused = await runCli(['mirror', 'sync', manifest, '--root', root3, '--trust-policy', p3], { timeoutMs: 120_000 });
  assert.equal(syncRefused.code, 3, syncRefused.stderr);
  assert.match(syncRefused.stderr, /the builders' quorum refuses the snapshot: 3 builders must agree/);
  assert.equal(await stat(path.join(root3, 'demo-1.tar.gz')).then(() => true, () => false), false);
  // Offline, without the log and without files: no attestation at all, refused.
  // (another client state: this one saw the log's newer checkpoint online, and the bundle's is older)
  const offline = await runCli(['release', 'verify', manifest, '--trust-policy', p2, '--state', path.join(dir, 'client-offline')]);
  assert.equal(offline.code, 3);
  assert.match(offline.stderr, /no attestation by a policy builder/);
  // Offline with the honest bundles as files: accepted.
  const files = await runCli(['release', 'verify', manifest, '--trust-policy', p2, '--state', path.join(dir, 'client-offline'), '--attestations', path.join(dir, 'att')]);
  assert.equal(files.code, 0, files.stderr);
  assert.match(files.stdout, /git snapshots attested by the builders' quorum: demo-1\.tar\.gz \(2\)/);
});
