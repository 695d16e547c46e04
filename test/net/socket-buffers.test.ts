// socketBytesRead keeps the dead buffers of socket reads bounded: 256 MiB from a loopback server, each read
// counted as the HTTP body path counts it, against the same transfer without counting (where the dead
// buffers pile up until V8's own schedule, which is what the count exists to cut). And reads held long
// enough to be promoted (as a write batch or a piece queue holds them) are freed by the full collections,
// against the same transfer with young collections only.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/run.ts';

const MiB = 1 << 20;

/** Peak of process.memoryUsage().arrayBuffers in a fresh Node that receives `mib` MiB over loopback. */
function peakArrayBuffers(counted: boolean, mib: number, opts: { holdEvery?: number; fullEvery?: number } = {}): Promise<number> {
  const script = `
    import net from 'node:net';
    import { socketBytesRead } from ${JSON.stringify(path.join(ROOT, 'src/net/socket-buffers.ts'))};
    const block = Buffer.alloc(1 << 20, 7);
    const server = net.createServer((s) => {
      let left = ${mib};
      const more = () => { while (left > 0) { left--; if (!s.write(block)) return s.once('drain', more); } s.end(); };
      more();
    });
    server.listen(0, '127.0.0.1', () => {
      let peak = 0, got = 0, n = 0;
      const held = [];
      const c = net.connect(server.address().port, '127.0.0.1');
      c.on('data', (chunk) => {
        got += chunk.length;
        // Every holdEvery-th read is kept until 10 MiB more have come: past two young collections.
        if (${opts.holdEvery ?? 0} && ++n % ${opts.holdEvery ?? 1} === 0) held.push([chunk, got + (10 << 20)]);
        while (held.length && held[0][1] <= got) held.shift();
        ${counted ? `socketBytesRead(chunk.length, undefined, ${opts.fullEvery ?? 'undefined'});` : ''}
        peak = Math.max(peak, process.memoryUsage().arrayBuffers);
      });
      c.on('end', () => { server.close(); process.stdout.write(JSON.stringify({ peak, got })); });
    });`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--max-semi-space-size=1', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`child exited ${code}`));
      const r = JSON.parse(out) as { peak: number; got: number };
      assert.equal(r.got, mib * MiB);
      resolve(r.peak);
    });
  });
}

test('counting socket reads keeps their dead buffers near the collection interval; without it they pile up', { timeout: 120_000 }, async (t) => {
  const without = await peakArrayBuffers(false, 256);
  const counted = await peakArrayBuffers(true, 256);
  t.diagnostic(`peak ArrayBuffer memory: ${(without / MiB).toFixed(1)} MiB without counting, ${(counted / MiB).toFixed(1)} MiB with`);
  // Every 4 MiB: the dead reads, the live one and the server's 1 MiB block stay well under 24 MiB.
  assert.ok(counted < 24 * MiB, `peak ${(counted / MiB).toFixed(1)} MiB with counting`);
  // V8 alone lets tens of MiB of dead reads wait (its external-memory trigger is 64 MiB).
  assert.ok(without > 2 * counted, `peak ${(without / MiB).toFixed(1)} MiB without counting, ${(counted / MiB).toFixed(1)} MiB with`);
});

test('reads held past two young collections (promoted) are freed by the full collections; with young ones only they pile up', { timeout: 120_000 }, async (t) => {
  const youngOnly = await peakArrayBuffers(true, 384, { holdEvery: 16, fullEvery: Infinity });
  const withFull = await peakArrayBuffers(true, 384, { holdEvery: 16 });
  t.diagnostic(`peak ArrayBuffer memory with one read in 16 held for 10 MiB: ${(youngOnly / MiB).toFixed(1)} MiB with young collections only, ${(withFull / MiB).toFixed(1)} MiB with a full one every 96 MiB`);
  // Held: 0.7 MiB at a time; dead and promoted between two full collections: a sixteenth of 96 MiB.
  assert.ok(withFull < 20 * MiB, `peak ${(withFull / MiB).toFixed(1)} MiB with full collections`);
  assert.ok(youngOnly > 1.8 * withFull, `peak ${(youngOnly / MiB).toFixed(1)} MiB with young collections only, ${(withFull / MiB).toFixed(1)} MiB with full ones`);
});
