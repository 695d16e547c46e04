// Releases end to end through the CLI, against real `log serve` and `witness serve` processes on loopback:
// a release accepted by a 2-of-3 witness policy (offline, online, by fetch and mirror sync before any
// download), and refused when a check fails: too few release signatures, too few witnesses, a stale
// checkpoint (the clock passed in: no waiting), another manifest, a rollback to an older checkpoint (with both
// checkpoints as evidence), and releases by rotated or compromised keys.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { checkRelease } from '../../../src/trust/check-release.ts';
import { loadReleaseSubject } from '../../../src/trust/release-files.ts';
import { parseReleaseBundle } from '../../../src/trust/release.ts';
import { startOrigin } from '../../helpers/origin.ts';
import { runCli, tempDir } from '../../helpers/run.ts';
import { writeKey } from '../log/servers.ts';
import { startTrustNetwork, writeManifest } from './network.ts';

const exitCode = (r: { code: number | null }) => r.code;

test('a release made with the CLI is accepted by a 2-of-3 witness policy; fetch and mirror sync refuse an unreleased manifest before any download', async (t) => {
  const dir = await tempDir(t);
  const net = await startTrustNetwork(t, dir);
  const [r1, r2] = net.releaseKeys;
  const manifest = await writeManifest(path.join(dir, 'manifest.json'), '1.0');
  const made = await runCli(['release', manifest, '--key', r1!.file, '--key', r2!.file, '--log', net.log.url]);
  assert.equal(exitCode(made), 0, made.stderr);
  assert.match(made.stdout, /^index 0\nlog\.release\.test\/main\n1\n/);
  const bundle = parseReleaseBundle(await readFile(`${manifest}.release`, 'utf8'), 'bundle');
  assert.equal(bundle.index, 0);
  assert.ok(bundle.release.startsWith('sourcemesh.release/v1\nname release-test\nversion 1.0\nmanifest sha256 '));
  assert.equal(bundle.checkpoint.split('\n').filter((l) => l.startsWith('\u2014 w')).length >= 2, true, 'the checkpoint carries the quorum');

  const policy = await net.policy('policy.json');
  const state = path.join(dir, 'state');
  const offline = await runCli(['release', 'verify', manifest, '--trust-policy', policy, '--state', state]);
  assert.equal(exitCode(offline), 0, offline.stderr);
  assert.match(offline.stdout, /^accepted: manifest release-test 1\.0 .* signed by release1\.release\.test, release2\.release\.test .*consistency first, offline\n$/);
  const online = await runCli(['release', 'verify', manifest, '--trust-policy', policy, '--state', state, '--online', '--json']);
  assert.equal(exitCode(online), 0, online.stderr);
  const verdict = JSON.parse(online.stdout);
  assert.equal(verdict.accepted, true);
  assert.equal(verdict.mode, 'online');
  assert.ok(['same', 'proven'].includes(verdict.consistency));

  // fetch and mirror sync: accepted, then refused (another manifest, no bundle; the right manifest's
  // bundle given for a changed manifest), with no request to the distfile's origin.
  const fetched = await runCli(['fetch', manifest, '--trust-policy', policy, '--store', path.join(dir, 'store'), '-o', path.join(dir, 'out')]);
  assert.equal(exitCode(fetched), 0, fetched.stderr);
  assert.match(fetched.stderr, /release accepted: manifest release-test 1\.0/);
  const body = Buffer.from('a distfile nobody may download\n');
  const origin = await startOrigin({ '/f.tar.gz': { body } });
  t.after(() => origin.close());
  const other = await writeManifest(path.join(dir, 'other.json'), '1.0', [{ name: 'f.tar.gz', sha256: createHash('sha256').update(body).digest('hex'), urls: [`${origin.url}/f.tar.gz`] }]);
  for (const args of [
    ['fetch', other, '--trust-policy', policy, '--store', path.join(dir, 'store'), '-o', path.join(dir, 'out')],
    ['fetch', other, '--trust-policy', policy, '--release', `${manifest}.release`, '--store', path.join(dir, 'store'), '-o', path.join(dir, 'out'), '--offline'],
    ['mirror', 'sync', other, '--root', path.join(dir, 'mirror'), '--trust-policy', policy, '--release', `${manifest}.release`],
  ]) {
    const r = await runCli(args);
    assert.equal(exitCode(r), 3, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /\[E_POLICY\]/);
  }
  assert.equal(origin.hits('/f.tar.gz'), 0, 'nothing was downloaded for a refused manifest');
  const synced = await runCli(['mirror', 'sync', manifest, '--root', path.join(dir, 'mirror'), '--trust-policy', policy]);
  assert.equal(exitCode(synced), 0, synced.stderr);
});

test('refused: too few release signatures, too few witnesses, a stale checkpoint, another manifest', async (t) => {
  const dir = await tempDir(t);
  const net = await startTrustNetwork(t, dir);
  const [r1, r2] = net.releaseKeys;
  const manifest = await writeManifest(path.join(dir, 'manifest.json'), '2.0');
  const policy = await net.policy('policy.json', { url: false });
  let states = 0;
  const verify = (bundle: string, p = policy, state = path.join(dir, `state-${states++}`)) => runCli(['release', 'verify', manifest, '--trust-policy', p, '--bundle', bundle, '--state', state]);

  // One signature where the policy wants two (a single compromised key can't release).
  const one = await runCli(['release', manifest, '--key', r1!.file, '--log', net.log.url, '-o', path.join(dir, 'one.release')]);
  assert.equal(exitCode(one), 0, one.stderr);
  let r = await verify(path.join(dir, 'one.release'));
  assert.equal(exitCode(r), 3);
  assert.match(r.stderr, /signed by 1 of the key set's 3 keys; 2 are required \[E_POLICY\]/);
  // Signatures by keys outside the policy don't count.
  const stranger = await writeKey(dir, 'stranger.release.test');
  await runCli(['release', manifest, '--key', r1!.file, '--key', stranger.file, '--log', net.log.url, '-o', path.join(dir, 'stranger.release')]);
  r = await verify(path.join(dir, 'stranger.release'));
  assert.equal(exitCode(r), 3);
  assert.match(r.stderr, /\[E_POLICY\]/);

  const cosignedFrom = Math.floor(Date.now() / 1000); // the witnesses' cosignatures are from this second on
  const good = await runCli(['release', manifest, '--key', r1!.file, '--key', r2!.file, '--log', net.log.url, '-o', path.join(dir, 'good.release')]);
  assert.equal(exitCode(good), 0, good.stderr);
  const cosignedBy = Math.ceil(Date.now() / 1000); // ... and no later than this
  assert.equal(exitCode(await verify(path.join(dir, 'good.release'))), 0);

  // The checkpoint with all but one cosignature removed: below the quorum of 2.
  const bundle = JSON.parse(await readFile(path.join(dir, 'good.release'), 'utf8'));
  const lines: string[] = bundle.checkpoint.split('\n');
  let kept = 0;
  bundle.checkpoint = lines.filter((l) => !l.startsWith('\u2014 w') || kept++ < 1).join('\n');
  await writeFile(path.join(dir, 'thin.release'), JSON.stringify(bundle));
  r = await verify(path.join(dir, 'thin.release'));
  assert.equal(exitCode(r), 3);
  assert.match(r.stderr, /cosigned by 1 of the policy's 3 witnesses; the quorum is 2 \[E_POLICY\]/);
  // A policy that trusts only one of the witnesses that cosigned, with quorum 2.
  const narrow = await net.policy('narrow.json', { witnesses: [net.witnessKeys[0]!], quorum: 1, url: false });
  const wide = JSON.parse(await readFile(narrow, 'utf8'));
  wide.witnesses.quorum = 2;
  await writeFile(narrow, JSON.stringify(wide));
  r = await verify(path.join(dir, 'good.release'), narrow);
  assert.equal(exitCode(r), 2, 'a quorum above the witness count is a malformed policy');
  assert.match(r.stderr, /\[E_FORMAT\]/);

  // Stale: cosignatures older than the policy's maximum age, with the clock passed in (no waiting). At the
  // edge of the age the same bundle is still accepted: the refusal is the clock's doing.
  const maxAge = 600;
  const aged = await net.policy('aged.json', { maxCheckpointAgeSeconds: maxAge, url: false });
  const { subject } = await loadReleaseSubject(manifest, 'manifest');
  const checkAt = (now: number) => checkRelease({ file: manifest, subject, policyFile: aged, bundleFile: path.join(dir, 'good.release'), stateDir: path.join(dir, `state-${states++}`), online: false, now: () => now });
  assert.equal((await checkAt(cosignedFrom + maxAge)).consistency, 'first');
  await assert.rejects(checkAt(cosignedBy + maxAge + 1), (e: { code: string; message: string }) => e.code === 'E_POLICY' && /is stale: .* no older than 600 s are required, 0 are/.test(e.message));

  // The bundle of this manifest for a changed manifest.
  await writeManifest(manifest, '2.0', [{ name: 'x.tar.gz', sha256: '0'.repeat(64), urls: [] }]);
  r = await verify(path.join(dir, 'good.release'));
  assert.equal(exitCode(r), 3);
  assert.match(r.stderr, /not of this manifest/);
});

test('a rollback to an older checkpoint is caught offline with both checkpoints as evidence; online the old release is re-proved', async (t) => {
  const dir = await tempDir(t);
  const net = await startTrustNetwork(t, dir);
  const keys = net.releaseKeys.slice(0, 2).flatMap((k) => ['--key', k.file]);
  const m1 = await writeManifest(path.join(dir, 'm1.json'), '1');
  const m2 = await writeManifest(path.join(dir, 'm2.json'), '2');
  assert.equal(exitCode(await runCli(['release', m1, ...keys, '--log', net.log.url])), 0);
  assert.equal(exitCode(await runCli(['release', m2, ...keys, '--log', net.log.url])), 0);
  const policy = await net.policy('policy.json');
  const state = path.join(dir, 'state');
  const newer = await runCli(['release', 'verify', m2, '--trust-policy', policy, '--state', state]);
  assert.equal(exitCode(newer), 0, newer.stderr);
  const old = await runCli(['release', 'verify', m1, '--trust-policy', policy, '--state', state]);
  assert.equal(exitCode(old), 3);
  assert.match(old.stderr, /rollback: the log shows a tree of 1 entries, but a checkpoint of 2 was seen before; both checkpoints are in (\S+) \[E_POLICY\]/);
  const evidenceDir = path.join(state, 'trust-evidence');
  const [file] = await readdir(evidenceDir);
  const evidence = await readFile(path.join(evidenceDir, file!), 'utf8');
  assert.ok(evidence.includes(parseReleaseBundle(await readFile(`${m2}.release`, 'utf8'), 'b').checkpoint));
  assert.ok(evidence.includes(parseReleaseBundle(await readFile(`${m1}.release`, 'utf8'), 'b').checkpoint));
  // Online, the old release is proved into the log's newest checkpoint, consistent with the stored one.
  const online = await runCli(['release', 'verify', m1, '--trust-policy', policy, '--state', state, '--online']);
  assert.equal(exitCode(online), 0, online.stderr);

  // A mirror list is released and checked the same way (its canonical JSON hash; key order is free).
  const list = path.join(dir, 'mirrors.json');
  await writeFile(list, JSON.stringify({ format: 'sourcemesh.mirrors/v1', mirrors: [{ url: 'https://mirror.example/lb', operator: 'example' }] }));
  const made = await runCli(['release', list, '--kind', 'mirror-list', '--name', 'release-test-mirrors', '--release-version', '2026.11', ...keys, '--log', net.log.url]);
  assert.equal(exitCode(made), 0, made.stderr);
  await writeFile(list, JSON.stringify({ mirrors: [{ operator: 'example', url: 'https://mirror.example/lb' }], format: 'sourcemesh.mirrors/v1' }, null, 2));
  const listOk = await runCli(['release', 'verify', list, '--kind', 'mirror-list', '--trust-policy', policy, '--state', state]);
  assert.equal(exitCode(listOk), 0, listOk.stderr);
  assert.match(listOk.stdout, /^accepted: mirror-list release-test-mirrors 2026\.11 /);
  await writeFile(list, JSON.stringify({ format: 'sourcemesh.mirrors/v1', mirrors: [{ url: 'https://evil.example/lb' }] }));
  const listBad = await runCli(['release', 'verify', list, '--kind', 'mirror-list', '--trust-policy', policy, '--state', state]);
  assert.equal(exitCode(listBad), 3);
  // As a manifest, the mirror list's bundle is refused (another kind).
  const asManifest = await runCli(['release', 'verify', m1, '--trust-policy', policy, '--state', state, '--bundle', `${list}.release`, '--online']);
  assert.equal(exitCode(asManifest), 3);
});

test('key rotation through the CLI: releases by the new keys are accepted through the chain; rotated and single compromised keys are refused', async (t) => {
  const dir = await tempDir(t);
  const net = await startTrustNetwork(t, dir);
  const [r1, r2, r3] = net.releaseKeys;
  const n1 = await writeKey(dir, 'new1.release.test');
  const n2 = await writeKey(dir, 'new2.release.test');
  const chain = path.join(dir, 'chain.json');
  let r = await runCli(['release', 'init-chain', '--chain', chain, '--vkey', r1!.pub, '--vkey', r2!.pub, '--vkey', r3!.vkey, '--threshold', '2']);
  assert.equal(exitCode(r), 0, r.stderr);
  // One old key alone can't rotate.
  r = await runCli(['release', 'rotate', '--chain', chain, '--key', r1!.file, '--new-key', n1.pub, '--threshold', '1', '--log', net.log.url]);
  assert.equal(exitCode(r), 3);
  assert.match(r.stderr, /\[E_POLICY\]/);
  r = await runCli(['release', 'rotate', '--chain', chain, '--key', r1!.file, '--key', r2!.file, '--new-key', r1!.pub, '--new-key', n1.pub, '--new-key', n2.pub, '--threshold', '2', '--log', net.log.url]);
  assert.equal(exitCode(r), 0, r.stderr);
  r = await runCli(['release', 'rotate', '--chain', chain, '--key', r1!.file, '--key', r2!.file, '--key', n1.file, '--new-key', n1.pub, '--new-key', n2.pub, '--threshold', '2', '--log', net.log.url]);
  assert.equal(exitCode(r), 0, r.stderr);
  assert.match(r.stdout, /^rotation 2 index \d+ \(skip links from 0\)/);

  const manifest = await writeManifest(path.join(dir, 'm.json'), '3');
  r = await runCli(['release', manifest, '--key', n1.file, '--key', n2.file, '--log', net.log.url, '--chain', chain]);
  assert.equal(exitCode(r), 0, r.stderr);
  const bundle = parseReleaseBundle(await readFile(`${manifest}.release`, 'utf8'), 'b');
  assert.equal(bundle.rotations.length, 1, 'one hop 0 -> 2 through the skip link');
  assert.ok(bundle.rotations[0]!.link !== undefined);
  const policy = await net.policy('policy.json');
  const state = path.join(dir, 'state');
  r = await runCli(['release', 'verify', manifest, '--trust-policy', policy, '--state', state]);
  assert.equal(exitCode(r), 0, r.stderr);
  assert.match(r.stdout, /signed by new1\.release\.test, new2\.release\.test \(key set 2\)/);

  // The old genesis keys (a threshold of them) after the client saw key set 2: refused.
  r = await runCli(['release', manifest, '--key', r1!.file, '--key', r2!.file, '--log', net.log.url, '-o', path.join(dir, 'old.release')]);
  assert.equal(exitCode(r), 0, r.stderr);
  r = await runCli(['release', 'verify', manifest, '--trust-policy', policy, '--state', state, '--bundle', path.join(dir, 'old.release')]);
  assert.equal(exitCode(r), 3);
  assert.match(r.stderr, /key set 0, but key set 2 was seen before/);
  // A release by one new key (a compromised one) with the chain: refused by the CLI, and by the client.
  r = await runCli(['release', manifest, '--key', n1.file, '--log', net.log.url, '--chain', chain, '-o', path.join(dir, 'x.release')]);
  assert.equal(exitCode(r), 3);
});

test('maintainers sign on their own machines: detached signatures are combined into one logged release', async (t) => {
  const dir = await tempDir(t);
  const net = await startTrustNetwork(t, dir);
  const [r1, r2] = net.releaseKeys;
  const manifest = await writeManifest(path.join(dir, 'manifest.json'), '3.0');
  const policy = await net.policy('policy.json', { url: false });
  // Maintainer 2 signs alone, offline: no log is contacted, the note goes to a file.
  const sig = path.join(dir, 'r2.sig');
  const detached = await runCli(['release', manifest, '--key', r2!.file, '--detached', '-o', sig]);
  assert.equal(exitCode(detached), 0, detached.stderr);
  assert.match(await readFile(sig, 'utf8'), /^sourcemesh\.release\/v1\n[^]*\n\n\u2014 release2\.release\.test \S+\n$/);
  // A note of another version is refused, not mixed in.
  const other = await writeManifest(path.join(dir, 'other.json'), '3.1');
  const otherSig = path.join(dir, 'other.sig');
  assert.equal(exitCode(await runCli(['release', other, '--key', r2!.file, '--detached', '-o', otherSig])), 0);
  const mixed = await runCli(['release', manifest, '--key', r1!.file, '--signature', otherSig, '--log', net.log.url]);
  assert.equal(exitCode(mixed), 2);
  assert.match(mixed.stderr, /--signature .*other\.sig: signs another release statement/);
  // Maintainer 1 adds theirs and logs it: two signatures, accepted by the 2-of-3 release key policy.
  const made = await runCli(['release', manifest, '--key', r1!.file, '--signature', sig, '--log', net.log.url]);
  assert.equal(exitCode(made), 0, made.stderr);
  const bundle = parseReleaseBundle(await readFile(`${manifest}.release`, 'utf8'), 'bundle');
  assert.equal(bundle.release.split('\n').filter((l) => l.startsWith('\u2014 release')).length, 2);
  const verified = await runCli(['release', 'verify', manifest, '--trust-policy', policy, '--state', path.join(dir, 'state')]);
  assert.equal(exitCode(verified), 0, verified.stderr);
  // One maintainer's signature alone is still one: refused.
  const alone = await runCli(['release', manifest, '--signature', sig, '--log', net.log.url, '-o', path.join(dir, 'alone.release')]);
  assert.equal(exitCode(alone), 0, alone.stderr);
  const refused = await runCli(['release', 'verify', manifest, '--trust-policy', policy, '--bundle', path.join(dir, 'alone.release'), '--state', path.join(dir, 'state2')]);
  assert.equal(exitCode(refused), 3);
});
