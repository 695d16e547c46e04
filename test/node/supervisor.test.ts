// The supervisor with real child processes (a small script in place of our CLI): a service's output
// bounded per line and in what is kept, a crashing service restarted with a growing backoff, a service
// that ignores SIGTERM killed at the stop deadline; and the reader of mirror sync's JSON reports.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { defaultConfig, type NodeConfig } from '../../src/node/config.ts';
import { SyncReportReader } from '../../src/node/state.ts';
import { listeningUrl, Supervisor } from '../../src/node/supervisor.ts';
import type { Logger } from '../../src/logger.ts';
import { ROOT, tempDir, waitFor } from '../helpers/run.ts';

const FAKE = path.join(ROOT, 'test/node/fake-service.ts');

function recorder(): Logger & { records: { level: string; fields: Record<string, unknown>; msg: string }[] } {
  const records: { level: string; fields: Record<string, unknown>; msg: string }[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => void records.push({ level, fields, msg });
  return { records, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** A config with serve on whose "root" names what the fake service does (serviceArgs puts it after --root). */
function withServe(dir: string, what: string): NodeConfig {
  const c = defaultConfig('t');
  c.services.serve.enabled = true;
  c.services.serve.root = path.join(dir, what);
  return c;
}

// The fake in place of our CLI: the supervisor passes it `serve --root DIR/WHAT ...`.
const SHIM = [FAKE];

test('a line of 1 MB is cut at the limit, later lines still come, and only the last 20 are kept', async (t) => {
  const dir = await tempDir(t);
  const log = recorder();
  const sup = new Supervisor({ dir, cli: [process.execPath, ...SHIM], logger: log, limits: { nodeRestartBaseMs: 50, nodeRestartMaxMs: 400, nodeRestartResetMs: 60_000, nodeStopMs: 2000, nodeServiceLineBytes: 4096 } });
  t.after(() => sup.close());
  await sup.apply(withServe(dir, 'long-line'));
  await waitFor('line 49', () => log.records.some((r) => r.fields.line === 'line 49'), { timeoutMs: 20_000 });
  const lines = log.records.filter((r) => r.msg === 'service output').map((r) => String(r.fields.line));
  assert.equal(lines.find((l) => l.startsWith('xxx'))!.length, 4096, 'cut at nodeServiceLineBytes');
  assert.ok(lines.includes('after'), 'the line after the long one arrives whole');
  const st = sup.status().find((s) => s.name === 'serve')!;
  assert.equal(st.state, 'running');
  assert.equal(st.url, 'http://127.0.0.1:1');
  assert.equal(st.recent.length, 20);
  assert.equal(st.recent.at(-1), 'line 49');
});

test('a service that keeps crashing is restarted after growing delays; switched off, it stays off', async (t) => {
  const dir = await tempDir(t);
  const log = recorder();
  const sup = new Supervisor({ dir, cli: [process.execPath, ...SHIM], logger: log, random: () => 0.999, limits: { nodeRestartBaseMs: 100, nodeRestartMaxMs: 400, nodeRestartResetMs: 60_000, nodeStopMs: 2000, nodeServiceLineBytes: 4096 } });
  t.after(() => sup.close());
  await sup.apply(withServe(dir, 'crash'));
  await waitFor('four restarts', () => log.records.filter((r) => r.msg.startsWith('service exited')).length >= 4, { timeoutMs: 30_000 });
  const delays = log.records.filter((r) => r.msg.startsWith('service exited')).map((r) => Number(r.fields.restartInMs));
  assert.deepEqual(delays.slice(0, 4), [100, 200, 400, 400], 'doubling, capped');
  assert.ok(sup.status()[0]!.restarts >= 4);
  await sup.apply(defaultConfig('t'));
  const started = log.records.filter((r) => r.msg === 'service started').length;
  await new Promise((r) => setTimeout(r, 600)); // longer than the longest backoff: no start may follow
  assert.equal(log.records.filter((r) => r.msg === 'service started').length, started);
  assert.equal(sup.status()[0]!.state, 'off');
});

test('a service that ignores SIGTERM is killed at the stop deadline', async (t) => {
  const dir = await tempDir(t);
  const log = recorder();
  const sup = new Supervisor({ dir, cli: [process.execPath, ...SHIM], logger: log, limits: { nodeRestartBaseMs: 100, nodeRestartMaxMs: 400, nodeRestartResetMs: 60_000, nodeStopMs: 500, nodeServiceLineBytes: 4096 } });
  t.after(() => sup.close());
  await sup.apply(withServe(dir, 'stubborn'));
  await waitFor('running', () => sup.status()[0]!.state === 'running', { timeoutMs: 20_000 });
  await sup.close();
  const stopped = log.records.find((r) => r.msg === 'service stopped')!;
  assert.equal(stopped.fields.signal, 'SIGKILL');
  assert.ok(log.records.some((r) => r.fields.line === 'ignoring SIGTERM'), 'it was asked first');
});

test('listeningUrl and the sync report reader take what the services print, and nothing else', () => {
  assert.equal(listeningUrl('listening on http://127.0.0.1:7'), 'http://127.0.0.1:7');
  assert.equal(listeningUrl(JSON.stringify({ msg: 'listening', url: 'http://[::1]:8' })), 'http://[::1]:8');
  assert.equal(listeningUrl('{"msg":"listening","url":5}'), undefined);
  assert.equal(listeningUrl('{not json'), undefined);
  const report = { root: '/m', seconds: 2.5, generator: 'sourcemesh', added: [{ name: 'a', size: 10 }, { name: 'b', size: 5 }], unchanged: ['c'], quarantined: [], failed: [{ name: 'd' }] };
  fc.assert(fc.property(fc.array(fc.string().filter((s) => s !== '{' && s !== '}'), { maxLength: 5 }), (noise) => {
    const r = new SyncReportReader();
    const lines = [...noise, ...JSON.stringify(report, null, 2).split('\n'), ...noise];
    const got = lines.map((l) => r.push(l, 42)).filter((x) => x !== undefined);
    assert.deepEqual(got, [{ at: 42, seconds: 2.5, added: 2, addedBytes: 15, unchanged: 1, quarantined: 0, failed: 1 }]);
  }), { seed: 17, numRuns: 200 });
  // A report that never closes is dropped once it passes the line bound; the next one is read.
  const r = new SyncReportReader(40);
  r.push('{', 1);
  for (let i = 0; i < 50; i++) assert.equal(r.push(`  "x${i}": 1,`, 1), undefined);
  assert.equal(r.push('}', 1), undefined);
  const next = JSON.stringify(report, null, 2).split('\n').map((l) => r.push(l, 2)).filter(Boolean);
  assert.equal(next.length, 1);
});
