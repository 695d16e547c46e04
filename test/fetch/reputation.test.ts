// Mirror reputation in node:sqlite: what each mirror did is recorded, shown by `mirrors status`, and
// used to order mirrors in later runs.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { mirrorWeight } from '../../src/fetch/reputation.ts';
import { weightedOrder } from '../../src/fetch/plan.ts';
import { bytes, distfile, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin, type Behaviour } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';

test('a liar is recorded with its evidence, shown by mirrors status, and tried last afterwards', async (t) => {
  const dir = await tempDir(t);
  const files = [0, 1, 2].map((i) => ({ name: `f${i}.tar.gz`, body: bytes(50_000 + i, 70 + i) }));
  const routes: Record<string, { body: Buffer; behaviour?: Behaviour }> = {};
  for (const f of files) {
    routes[`/liar/${f.name}`] = { body: f.body, behaviour: { kind: 'wrong-bytes' } };
    routes[`/good/${f.name}`] = { body: f.body };
  }
  // The later run's good mirror is slower than the 1.5 s after which a silent source is hedged: a
  // recorded liar must not be the one hedged to (issue 11, item 9).
  routes[`/good/${files[2]!.name}`] = { body: files[2]!.body, behaviour: { kind: 'slow', chunk: 5_000, delayMs: 200 } };
  const origin = await startOrigin(routes);
  t.after(() => origin.close());
  const env = { SOURCEMESH_STORE: path.join(dir, 'store') };
  const mirrors = ['--mirror', `${origin.url}/liar`, '--mirror', `${origin.url}/good`, '--policy', 'mirrors-only', '--jobs', '1'];
  // First runs: the liar is the only mirror for f0 (the good copy comes from "upstream"); the good
  // mirror alone serves f1.
  const m0 = await writeManifest(dir, [distfile(files[0]!.name, files[0]!.body, [`${origin.url}/good/${files[0]!.name}`])]);
  assert.equal((await runCli(['fetch', m0, '-o', path.join(dir, 'out'), '--mirror', `${origin.url}/liar`, '--segments', '1'], { env })).code, 0);
  const oneDir = path.join(dir, 'one');
  await (await import('node:fs/promises')).mkdir(oneDir);
  const m1 = await writeManifest(oneDir, [distfile(files[1]!.name, files[1]!.body, [])]);
  assert.equal((await runCli(['fetch', m1, '-o', path.join(dir, 'out'), '--mirror', `${origin.url}/good`, '--policy', 'mirrors-only'], { env })).code, 0);

  const status = JSON.parse((await runCli(['mirrors', 'status', '--json'], { env })).stdout).mirrors;
  const liar = status.find((r: { mirror: string }) => r.mirror === `${origin.url}/liar`);
  const good = status.find((r: { mirror: string }) => r.mirror === `${origin.url}/good`);
  assert.ok(liar.lies >= 1, JSON.stringify(status));
  assert.match(liar.lastLie, /^f\d\.tar\.gz: .* sha256 [0-9a-f]{64}/);
  assert.equal(good.lies, 0);
  assert.ok(good.files >= 1 && good.bytes > 0);
  const human = await runCli(['mirrors', 'status'], { env });
  assert.match(human.stdout, /^MIRROR +FILES +BYTES +RATE +FAILURES +LIES/m);

  // A later run asks the good mirror first and only: the liar is not even contacted for the new file,
  // neither by the plan's order, nor by hedging a slow first piece, nor by a cross-check.
  const before = origin.log.filter((l) => l.path.startsWith('/liar/')).length;
  const m2Dir = path.join(dir, 'two');
  await (await import('node:fs/promises')).mkdir(m2Dir);
  const m2 = await writeManifest(m2Dir, [distfile(files[2]!.name, files[2]!.body, [])]);
  const r = await runCli(['fetch', m2, '-o', path.join(dir, 'out'), '--json', ...mirrors, '--cross-check', '1'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).files[0].source, `${origin.url}/good`);
  assert.equal(origin.log.filter((l) => l.path.startsWith('/liar/')).length, before);
});

test('weights: liars last, unreliable mirrors after reliable ones, in a random but weighted order', () => {
  const rec = (over: object) => ({ mirror: 'm', files: 10, bytes: 1e8, ms: 1e4, failures: 0, lies: 0, lastSeen: 0, ...over });
  assert.ok(mirrorWeight(rec({ lies: 1 })) < 0.01);
  assert.ok(mirrorWeight(rec({ failures: 30 })) < mirrorWeight(rec({})));
  let seed = 1;
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  let firstIsHeavy = 0;
  for (let i = 0; i < 1000; i++) if (weightedOrder(['heavy', 'light'], (x) => (x === 'heavy' ? 4 : 1), random)[0] === 'heavy') firstIsHeavy++;
  assert.ok(firstIsHeavy > 700 && firstIsHeavy < 900, `heavy first ${firstIsHeavy}/1000 (expected about 800)`);
});
