// fetch --trust-policy and mirror sync --trust-policy take "now" from the policy's Roughtime witnesses, as
// release verify does (test/time/signed-now.test.ts): on a real trust network whose witnesses sign a time a
// day ahead of this machine's clock (this machine's clock set back a day), both commands refuse in one
// line with exit 3 before anything is fetched or synced; with the same policy naming witnesses whose
// time agrees with the clock, both accept the release: the refusal is the clock's skew and nothing else.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers/run.ts';
import { startTimedNetwork } from './timed-network.ts';

const DAY = 86_400;

/** Every path under `root` (none when it was never made). */
async function listed(root: string): Promise<string[]> {
  return (await readdir(root, { recursive: true }).catch(() => [] as string[])).sort();
}

test('fetch and mirror sync with a time policy: a clock a day behind signed time refused (exit 3), an honest clock accepted', async (t) => {
  const dir = await tempDir(t);
  const timed = await startTimedNetwork(t, dir, DAY);
  const skewed = await timed.timedPolicy('skewed.json');
  const honest = await timed.timedPolicy('honest.json', undefined, await timed.startServers(0));
  let n = 0;
  const fetch = (policy: string) => runCli(['fetch', timed.manifest, '--trust-policy', policy, '--store', path.join(dir, `store-${n++}`), '-o', path.join(dir, `out-${n}`), '--offline']);
  const sync = (policy: string, root: string) => runCli(['mirror', 'sync', timed.manifest, '--root', root, '--trust-policy', policy]);

  for (const [what, r] of [['fetch', await fetch(skewed)], ['mirror sync', await sync(skewed, path.join(dir, 'mirror-skewed'))]] as const) {
    assert.equal(r.code, 3, `${what}: ${r.stdout}${r.stderr}`);
    // One line: the error, its cause and code, nothing after.
    assert.match(r.stderr, /^[^\n]*the local clock is 86[34]\d\d s behind the time the witnesses signed[^\n]*\[E_POLICY\]\n$/m, what);
    assert.equal(r.stderr.trim().split('\n').filter((l) => /E_POLICY/.test(l)).length, 1, `${what}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /release accepted|accepted: manifest/, what);
  }
  const skewedFiles = await listed(path.join(dir, 'mirror-skewed'));

  const fetched = await fetch(honest);
  assert.equal(fetched.code, 0, fetched.stderr);
  assert.match(fetched.stderr, /release accepted: manifest release-test 1\.0/);
  const synced = await sync(honest, path.join(dir, 'mirror-honest'));
  assert.equal(synced.code, 0, synced.stderr);
  assert.match(synced.stderr, /release accepted: manifest release-test 1\.0/);
  // The refused sync made its node key and time state, and nothing else: no store, no trust state, no
  // inventory, all of which the accepted one made.
  const honestFiles = await listed(path.join(dir, 'mirror-honest'));
  for (const p of ['.sourcemesh/store', '.sourcemesh/trust.sqlite', '.well-known/sourcemesh/inventory']) {
    assert.ok(honestFiles.includes(p), `the accepted sync made ${p}`);
    assert.ok(!skewedFiles.includes(p), `the refused sync made ${p}`);
  }
  // Without time in the policy the local clock alone decides, and the same release is accepted: only the
  // signed time saw the skew (the clock here is right; the witnesses a day ahead play a clock set back).
  assert.equal((await fetch(timed.plain)).code, 0);
});
