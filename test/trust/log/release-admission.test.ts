// `release`, `release rotate` and mirror-list releases against a log that admits only a project's keys
// (`log serve --admit-file`), as maintainers run them: they work unchanged for the admitted keys, the log
// follows the project's rotation, and what the log refuses is one line naming the reason (E_REFUSED).
// Against `--admit-any-signed`, `release` names its keys to the log itself.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { runCli, tempDir } from '../../helpers/run.ts';
import { type KeyFiles, ServerProcess, writeKey } from './servers.ts';

const running = new Set<ServerProcess>();
after(() => Promise.all([...running].map((s) => s.stop())));
const start = async (args: string[]) => {
  const s = await ServerProcess.start(args);
  running.add(s);
  return s;
};

async function manifest(file: string, version: string): Promise<string> {
  await writeFile(file, `${JSON.stringify({ format: 'sourcemesh.manifest/v1', name: 'admitted-project', version, distfiles: [] }, null, 2)}\n`);
  return file;
}

const keyFlags = (keys: KeyFiles[]) => keys.flatMap((k) => ['--key', k.file]);

test('release, release rotate and a mirror-list release work unchanged for a project\'s admitted keys; the log refuses the rest in one line', async (t) => {
  const dir = await tempDir(t);
  const logKey = await writeKey(dir, 'log.release-admission.test/main');
  const wKey = await writeKey(dir, 'w.release-admission.test', 'cosignature');
  const [r1, r2, r3, n1, n2, stranger] = await Promise.all(['r1', 'r2', 'r3', 'n1', 'n2', 'stranger'].map((n) => writeKey(dir, `${n}.release-admission.test`)));
  const witness = await start(['witness', 'serve', '--state', path.join(dir, 'witness'), '--key', wKey.file, '--listen', '127.0.0.1:0', '--log', logKey.pub]);
  const admit = path.join(dir, 'admit.json');
  await writeFile(admit, JSON.stringify({
    format: 'sourcemesh.log-admission/v1',
    projects: [{ name: 'admitted-project', threshold: 2, keys: [r1!.vkey, r2!.vkey, r3!.vkey] }],
  }));
  const log = await start(['log', 'serve', '--root', path.join(dir, 'log'), '--key', logKey.file, '--listen', '127.0.0.1:0', '--checkpoint-interval', '100ms',
    '--witness', `${wKey.pub}=${witness.url}`, '--admit-file', admit]);
  const policy = path.join(dir, 'policy.json');
  await writeFile(policy, JSON.stringify({
    format: 'sourcemesh.policy/v1',
    log: { vkey: logKey.vkey, url: log.url },
    witnesses: { quorum: 1, vkeys: [wKey.vkey] },
    release: { threshold: 2, vkeys: [r1!.vkey, r2!.vkey, r3!.vkey] },
    maxCheckpointAgeSeconds: 3600,
  }));
  const state = path.join(dir, 'state');

  const m1 = await manifest(path.join(dir, 'm1.json'), '1');
  let r = await runCli(['release', m1, ...keyFlags([r1!, r2!]), '--log', log.url]);
  assert.equal(r.code, 0, r.stderr);
  r = await runCli(['release', 'verify', m1, '--trust-policy', policy, '--state', state]);
  assert.equal(r.code, 0, r.stderr);

  // Below the threshold, or by a stranger: the log refuses, and release says why in one line.
  const m2 = await manifest(path.join(dir, 'm2.json'), '2');
  r = await runCli(['release', m2, ...keyFlags([r1!]), '--log', log.url]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^sourcemesh: error: http:\/\/\S+\/add refused the entry: release of manifest admitted-project 2: signed by 1 of the 3 keys of project admitted-project's current key set \(0\); 2 are required \(HTTP 403\) \[E_REFUSED\]\n$/);
  r = await runCli(['release', m2, ...keyFlags([stranger!, r1!]), '--log', log.url]);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);

  // Rotation: logged because a threshold of the current keys signed it; then only the new keys release.
  const chain = path.join(dir, 'chain.json');
  r = await runCli(['release', 'init-chain', '--chain', chain, '--vkey', r1!.pub, '--vkey', r2!.pub, '--vkey', r3!.pub, '--threshold', '2']);
  assert.equal(r.code, 0, r.stderr);
  r = await runCli(['release', 'rotate', '--chain', chain, ...keyFlags([r1!, r2!]), '--new-key', n1!.pub, '--new-key', n2!.pub, '--new-key', r3!.pub, '--threshold', '2', '--log', log.url]);
  assert.equal(r.code, 0, r.stderr);
  await log.waitFor((l) => l.msg === 'release keys rotated');
  r = await runCli(['release', m2, ...keyFlags([r1!, r2!]), '--log', log.url]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /current key set \(1\); 2 are required \(its signatures name r1\S+, r2\S+\) \(HTTP 403\) \[E_REFUSED\]/);
  r = await runCli(['release', m2, ...keyFlags([n1!, n2!]), '--log', log.url, '--chain', chain]);
  assert.equal(r.code, 0, r.stderr);
  r = await runCli(['release', 'verify', m2, '--trust-policy', policy, '--state', state]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\(key set 1\)/);
  // A rotation signed by retired keys: the log refuses it (the chain file would have stopped it too,
  // so the statement is made by hand from the genesis set).
  const stale = path.join(dir, 'stale-chain.json');
  r = await runCli(['release', 'init-chain', '--chain', stale, '--vkey', r1!.pub, '--vkey', r2!.pub, '--vkey', r3!.pub, '--threshold', '2']);
  r = await runCli(['release', 'rotate', '--chain', stale, ...keyFlags([r1!, r2!]), '--new-key', stranger!.pub, '--threshold', '1', '--log', log.url]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /rotation statement 1 .*does not follow key set 1 of project admitted-project.*\[E_REFUSED\]/);

  // A mirror list released under the project's name: the same keys, the same rule.
  const list = path.join(dir, 'mirrors.json');
  await writeFile(list, JSON.stringify({ format: 'sourcemesh.mirrors/v1', mirrors: [{ url: 'https://mirror.example/ap', operator: 'example' }] }));
  r = await runCli(['release', list, '--kind', 'mirror-list', '--name', 'admitted-project', '--release-version', '2026.12', ...keyFlags([n2!, r3!]), '--log', log.url]);
  assert.equal(r.code, 0, r.stderr);
  r = await runCli(['release', list, '--kind', 'mirror-list', '--name', 'admitted-project', '--release-version', '2026.13', ...keyFlags([stranger!]), '--log', log.url]);
  assert.equal(r.code, 2, r.stderr);
});

test('against --admit-any-signed, release names its keys to the log, and works for any key', async (t) => {
  const dir = await tempDir(t);
  const logKey = await writeKey(dir, 'log.release-admission.test/any');
  const [k1, k2] = await Promise.all(['k1', 'k2'].map((n) => writeKey(dir, `${n}.any.release-admission.test`)));
  const log = await start(['log', 'serve', '--root', path.join(dir, 'log'), '--key', logKey.file, '--listen', '127.0.0.1:0', '--checkpoint-interval', '100ms', '--admit-any-signed']);
  const m = await manifest(path.join(dir, 'm.json'), '1');
  const r = await runCli(['release', m, ...keyFlags([k1!, k2!]), '--log', log.url]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^index 0\n/);
});
