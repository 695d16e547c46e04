// `sourcemesh audit`: random ranges of random files compared between a mirror and upstream or another mirror.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { bytes, distfile, writeManifest } from '../helpers/distfiles.ts';
import { startOrigin, type Behaviour } from '../helpers/origin.ts';
import { runCli, tempDir } from '../helpers/run.ts';

const files = [0, 1, 2, 3].map((i) => ({ name: `p${i}.tar.gz`, body: bytes(600_000 + i * 1000, 80 + i) }));

async function setup(t: any, mirrorBehaviour?: Behaviour) {
  const dir = await tempDir(t);
  const routes: Record<string, { body: Buffer; behaviour?: Behaviour }> = {};
  for (const f of files) {
    routes[`/up/${f.name}`] = { body: f.body };
    routes[`/mirror/${f.name}`] = { body: f.body, behaviour: mirrorBehaviour };
    routes[`/other/${f.name}`] = { body: f.body };
  }
  const origin = await startOrigin(routes);
  t.after(() => origin.close());
  const manifest = await writeManifest(dir, files.map((f) => distfile(f.name, f.body, [`${origin.url}/up/${f.name}`])));
  const audit = (...args: string[]) => runCli(['audit', `${origin.url}/mirror`, '--manifest', manifest, '--json', ...args], { env: { SOURCEMESH_STORE: path.join(dir, 'store') } });
  return { origin, audit };
}

test('a faithful mirror passes, without downloading everything', async (t) => {
  const s = await setup(t);
  const r = await s.audit('--sample', '0.5', '--range', '16KiB');
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.ok(report.files >= 1 && report.ranges >= report.files);
  assert.deepEqual(report.differences, []);
  const total = files.reduce((n, f) => n + f.body.length, 0);
  assert.ok(report.bytes < total, `compared ${report.bytes} of ${total} bytes`);
});

test('a mirror that differs is caught with the file, the range and both hashes; exit 3', async (t) => {
  const s = await setup(t, { kind: 'wrong-bytes', every: 4096 });
  const r = await s.audit('--sample', '1');
  assert.equal(r.code, 3, r.stderr);
  const d = JSON.parse(r.stdout).differences[0];
  assert.match(d.problem, /^bytes \d+-\d+: sha256 [0-9a-f]{64} on the mirror, [0-9a-f]{64} on http/);
  assert.ok(Array.isArray(d.range));
});

test('against another mirror, and a mirror that lacks files is reported as skipped', async (t) => {
  const s = await setup(t, { kind: 'status', status: 404 });
  const r = await runCli(['audit', `${s.origin.url}/mirror`, '--manifest', 'x.json']);
  assert.equal(r.code, 2);
  const r2 = await s.audit('--sample', '1', '--against', `${s.origin.url}/other`);
  assert.equal(r2.code, 1, 'files the mirror cannot serve make the audit fail');
  const report = JSON.parse(r2.stdout);
  assert.equal(report.skipped.length, files.length);
  assert.match(report.skipped[0].problem, /HTTP 404/);
  assert.equal((await s.audit('--sample', '3')).code, 2);
});
