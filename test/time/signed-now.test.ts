// "Now" from signed time, on a real trust network (three `witness serve` and one `log serve` processes on
// loopback): a release cosigned now is judged by a client whose clock is a day behind the witnesses' time.
// The witnesses' Roughtime servers run in-process on real UDP with their own witness keys and a clock a
// day ahead of this machine's, which the client's injected clock (this machine's) then trails by a day:
// the situation of a machine whose clock was set back a day, shown a checkpoint replayed from a day ago.
//   - without signed time the replay is accepted (the local clock finds it fresh): the check matters;
//   - with the policy's Roughtime witnesses it is refused: the clock's skew beyond the bound, or, with a
//     bound wide enough, the checkpoint's staleness against signed time;
//   - without Roughtime, the floor kept from the cosignatures already seen refuses a clock set back.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { isSourcemeshError } from '../../src/errors.ts';
import { decideNow, readFloor } from '../../src/time/signed-now.ts';
import { checkRelease, readPolicy } from '../../src/trust/check-release.ts';
import { loadReleaseSubject } from '../../src/trust/release-files.ts';
import { runCli, tempDir } from '../helpers/run.ts';
import { startTimedNetwork } from './timed-network.ts';

const DAY = 86_400;

test('a clock set back a day: a replayed checkpoint is accepted on the local clock, refused with signed time and by the floor', async (t) => {
  const dir = await tempDir(t);
  const { manifest, plain, timedPolicy: timed } = await startTimedNetwork(t, dir, DAY);
  const { subject } = await loadReleaseSubject(manifest, 'manifest');
  let states = 0;
  const local = () => Date.now() / 1000;
  const check = (policyFile: string, o: { state?: string; clock?: () => number } = {}) => checkRelease({ file: manifest, subject, policyFile, stateDir: o.state ?? path.join(dir, `state-${states++}`), online: false, now: o.clock ?? local });

  // The local clock alone: accepted.
  const state = path.join(dir, 'state');
  const accepted = await check(plain, { state });
  assert.equal(accepted.time.source, 'local');

  // Signed time a day ahead of the local clock: refused for the skew.
  await assert.rejects(check(await timed('timed.json')), (e) => isSourcemeshError(e, 'E_POLICY') && /the local clock is 86[34]\d\d s behind the time the witnesses signed .* the bound is 300 s/.test(e.message));
  // A bound wide enough to pass the skew: the checkpoint is judged at signed time, and is stale.
  await assert.rejects(check(await timed('wide.json', 2 * DAY)), (e) => isSourcemeshError(e, 'E_POLICY') && /is stale/.test(e.message));

  // The floor: the accepted release's cosignatures raised it; a clock set back a day is refused by it.
  const floor = readFloor(state, await readPolicy(plain));
  assert.ok(floor !== undefined && Math.abs(floor - local()) < 120, `floor ${floor}`);
  await assert.rejects(check(plain, { state, clock: () => local() - DAY }), (e) => isSourcemeshError(e, 'E_POLICY') && /behind the time the witnesses already signed/.test(e.message));
  // The CLI says the same in one line, exit 3, when the policy's witnesses give signed time.
  const r = await runCli(['release', 'verify', manifest, '--trust-policy', await timed('cli.json'), '--state', path.join(dir, 'state-cli')]);
  assert.equal(r.code, 3, r.stdout);
  assert.match(r.stderr, /the local clock is \d+ s behind the time the witnesses signed.*\[E_POLICY\]\n$/);
});

test('decideNow: never before signed time or the floor, skew beyond the bound refused', () => {
  fc.assert(fc.property(fc.integer({ min: 1e9, max: 2e9 }), fc.integer({ min: 0, max: 100 }), fc.integer({ min: -1000, max: 1000 }), fc.option(fc.integer({ min: 1e9, max: 2e9 }), { nil: undefined }), fc.integer({ min: 1, max: 500 }), (earliest, width, offset, floor, bound) => {
    const local = earliest + offset;
    const signed = { earliest, latest: earliest + width };
    try {
      const d = decideNow(local, signed, floor, bound);
      assert.ok(d.now >= Math.floor(earliest) && (floor === undefined || d.now >= floor));
      assert.ok(local >= earliest - bound && local <= earliest + width + bound);
    } catch (err) {
      assert.ok(isSourcemeshError(err, 'E_POLICY'));
      assert.ok(local < earliest - bound || local > earliest + width + bound);
    }
    if (floor !== undefined) {
      try {
        assert.ok(decideNow(local, undefined, floor, bound).now >= floor);
      } catch (err) {
        assert.ok(isSourcemeshError(err, 'E_POLICY') && floor - local > bound);
      }
    }
  }), { numRuns: 500 });
});
