// Cross-checks take their second opinions, and read our verified pieces back to compare, into reused piece
// memory (src/fetch/cross-check.ts): a fresh piece for each made the end of a segmented fetch its peak RSS
// (docs/BENCHMARKS.md, bench:mirrors, issue 21). Every piece of a 48 MiB file is cross-checked in a fresh
// Node (the CLI's young generation), and the ArrayBuffer memory is sampled at each step: a few pieces' worth,
// where a fresh 1 MiB buffer per opinion and per read-back left tens of MiB to the collector. A piece that
// differs still names its source: reuse must not blur which bytes were compared.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { bytes } from '../helpers/distfiles.ts';
import { ROOT, tempDir } from '../helpers/run.ts';

const MiB = 1 << 20;
const PIECES = 48;

/** Cross-check every piece of `ours` against `theirs` (served over loopback); the peak ArrayBuffers (past the server's copy) and the blame. */
function crossCheckAll(ours: string, theirs: string): Promise<{ peak: number; blamed: [number, number][] }> {
  const src = (p: string) => JSON.stringify(path.join(ROOT, p));
  const script = `
    import http from 'node:http';
    import { open, readFile } from 'node:fs/promises';
    import { createAgent } from ${src('src/fetch/http.ts')};
    import { LIMITS } from ${src('src/limits.ts')};
    import { CrossChecks } from ${src('src/fetch/cross-check.ts')};
    import { PieceScheduler } from ${src('src/fetch/piece-scheduler.ts')};
    let peak = 0;
    const sample = () => { peak = Math.max(peak, process.memoryUsage().arrayBuffers); };
    const timer = setInterval(sample, 1);
    const pieces = Array.from({ length: ${PIECES} }, (_, i) => ({ index: i, start: i * ${MiB}, end: (i + 1) * ${MiB} - 1, done: true, written: true }));
    // Their bytes from a loopback server (socket reads are collected as in a fetch, src/net/socket-buffers.ts).
    const served = await readFile(${JSON.stringify(theirs)});
    const server = http.createServer((req, res) => {
      const [, a, b] = /^bytes=(\\d+)-(\\d+)$/.exec(req.headers.range);
      res.writeHead(206, { 'content-range': \`bytes \${a}-\${b}/\${served.length}\`, 'content-length': Number(b) - Number(a) + 1 });
      res.end(served.subarray(Number(a), Number(b) + 1));
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const dispatcher = createAgent(LIMITS);
    const base = process.memoryUsage().arrayBuffers; // the server's copy of their file
    peak = 0;
    const states = PieceScheduler.states([{ role: 'upstream', label: 'theirs', location: { type: 'http', url: \`http://127.0.0.1:\${server.address().port}/f\` } }]);
    const checks = new CrossChecks(pieces, states, { random: () => 0, dispatcher, limits: LIMITS }, 1);
    const fh = await open(${JSON.stringify(ours)});
    const blame = [];
    for (const p of pieces) { checks.written(p); sample(); }
    await checks.judge({ name: 'f' }, fh, blame);
    sample();
    clearInterval(timer);
    await fh.close();
    await dispatcher.close();
    server.close();
    process.stdout.write(JSON.stringify({ peak: peak - base, blamed: blame.map((b) => b.range) }));`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--max-semi-space-size=1', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d; });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`child exited ${code}`))));
  });
}

test('cross-checks compare every piece in reused memory: a few MiB of ArrayBuffers for 48 MiB, and a differing piece is still named', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t);
  const body = bytes(PIECES * MiB, 91);
  const ours = path.join(dir, 'ours');
  const same = path.join(dir, 'same');
  const other = path.join(dir, 'other');
  await writeFile(ours, body);
  await writeFile(same, body);
  const changed = Buffer.from(body);
  changed[30 * MiB + 5] ^= 1;
  await writeFile(other, changed);

  const agree = await crossCheckAll(ours, same);
  t.diagnostic(`peak ArrayBuffer memory cross-checking ${PIECES} pieces of 1 MiB: ${(agree.peak / MiB).toFixed(1)} MiB`);
  assert.deepEqual(agree.blamed, []);
  assert.ok(agree.peak < 12 * MiB, `peak ${(agree.peak / MiB).toFixed(1)} MiB of ArrayBuffers`);

  const differ = await crossCheckAll(ours, other);
  assert.deepEqual(differ.blamed, [[30 * MiB, 31 * MiB - 1]]);
});
