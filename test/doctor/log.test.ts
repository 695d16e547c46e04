// doctor's log check against a real trust network (three `witness serve`, one `log serve` on loopback):
// the policy's log reachable, its newest checkpoint cosigned and consistent with the one `release verify`
// stored (proved from the log's tiles); a stopped log fails the check (exit 3).
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/run.ts';
import { startTrustNetwork, writeManifest } from '../trust/release/network.ts';

test('doctor: the policy\'s log reachable and consistent with the stored checkpoint; a stopped log fails', async (t) => {
  const dir = await tempDir(t);
  const net = await startTrustNetwork(t, dir);
  const manifest = await writeManifest(path.join(dir, 'manifest.json'), '1.0');
  const made = await runCli(['release', manifest, '--key', net.releaseKeys[0]!.file, '--key', net.releaseKeys[1]!.file, '--log', net.log.url]);
  assert.equal(made.code, 0, made.stderr);
  const policy = await net.policy('policy.json');
  const state = path.join(dir, 'state');
  const verified = await runCli(['release', 'verify', manifest, '--trust-policy', policy, '--state', state]);
  assert.equal(verified.code, 0, verified.stderr);
  // A second release grows the log past the stored checkpoint: the check proves consistency from the tiles.
  const second = await writeManifest(path.join(dir, 'second.json'), '2.0');
  assert.equal((await runCli(['release', second, '--key', net.releaseKeys[0]!.file, '--key', net.releaseKeys[1]!.file, '--log', net.log.url])).code, 0);

  const args = ['doctor', '--json', '--trust-policy', policy, '--state', state, '--store', path.join(dir, 'store'), '--min-free', '1'];
  let r = await runCli(args);
  let log = JSON.parse(r.stdout).checks.find((c: { check: string }) => c.check === 'log');
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(log.status, 'pass');
  assert.match(log.detail, /checkpoint of 2 entries, consistent with the stored one of 1 \(proven\)/);
  assert.equal(JSON.parse(r.stdout).checks.find((c: { check: string }) => c.check === 'clock').status, 'pass', 'the floor from the verified release');

  await net.log.stop();
  r = await runCli(args);
  assert.equal(r.code, 3);
  log = JSON.parse(r.stdout).checks.find((c: { check: string }) => c.check === 'log');
  assert.equal(log.status, 'fail');
  assert.match(log.hint, /check that the log runs/);
});
