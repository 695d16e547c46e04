// parserWithoutTierUp: undici's llhttp stays on V8's baseline WebAssembly tier (no 23 MB optimizing
// compile at the start of a download), and WebAssembly compiled after the first response still gets the
// optimizing tier. Seen through V8's own trace (--trace-wasm-compilation-times prints each compiled
// function and its tier), in a fresh Node per case, against a real HTTP server on loopback.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/run.ts';

// A module of one exported function: (i32 n) -> counts n down to 0 in a loop (hot enough to tier up).
const LOOP_WASM = [
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f, // type: (i32) -> i32
  0x03, 0x02, 0x01, 0x00, // one function of type 0
  0x07, 0x07, 0x01, 0x03, 0x72, 0x75, 0x6e, 0x00, 0x00, // export "run"
  0x0a, 0x1a, 0x01, 0x18, 0x00, // code: one body of 24 bytes, no locals
  0x02, 0x40, 0x03, 0x40, 0x20, 0x00, 0x45, 0x0d, 0x01, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x21, 0x00, 0x0c, 0x00, 0x0b, 0x0b,
  0x20, 0x00, 0x0b,
];

interface Trace { parserTurbo: number; parserLiftoff: number; loopTurbo: number; bytes: number }

function run(withoutTierUp: boolean): Promise<Trace> {
  const script = `
    import http from 'node:http';
    import { Agent, request, parserWithoutTierUp } from ${JSON.stringify(path.join(ROOT, 'src/net/undici.ts'))};
    const block = Buffer.alloc(1 << 20, 1);
    const MIB = 256;
    const server = http.createServer((req, res) => {
      res.writeHead(200, { 'content-length': String(MIB * block.length) });
      let left = MIB;
      const more = () => { while (left > 0) { left--; if (!res.write(block)) return res.once('drain', more); } res.end(); };
      more();
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    ${withoutTierUp ? 'parserWithoutTierUp();' : ''}
    const agent = new Agent({ allowH2: false });
    const res = await request('http://127.0.0.1:' + server.address().port + '/', { dispatcher: agent });
    let bytes = 0;
    for await (const chunk of res.body) bytes += chunk.length;
    console.log('PARSER-DONE');
    const loop = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array(${JSON.stringify(LOOP_WASM)}))).exports.run;
    for (let i = 0; i < 200; i++) loop(1e6);
    console.log('BYTES ' + bytes);
    await agent.close();
    server.close();`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--trace-wasm-compilation-times', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`child exited ${code}:\n${out.slice(-2000)}`));
      const [parser = '', loop = ''] = out.split('PARSER-DONE');
      resolve({
        parserTurbo: (parser.match(/using TurboFan/g) ?? []).length,
        parserLiftoff: (parser.match(/using Liftoff/g) ?? []).length,
        loopTurbo: (loop.match(/using TurboFan/g) ?? []).length,
        bytes: Number(/BYTES (\d+)/.exec(out)?.[1]),
      });
    });
  });
}

test('undici\'s parser stays on the baseline tier after parserWithoutTierUp, later WebAssembly still tiers up', { timeout: 120_000 }, async () => {
  const asked = await run(true);
  assert.equal(asked.bytes, 256 << 20);
  assert.ok(asked.parserLiftoff > 0, 'the parser was compiled (by Liftoff)');
  assert.equal(asked.parserTurbo, 0, 'no optimizing compile of the parser');
  assert.ok(asked.loopTurbo > 0, 'a module compiled after the first response tiers up again');
});

test('without it, the same transfer recompiles the parser with the optimizing tier (what the call avoids)', { timeout: 120_000 }, async () => {
  const plain = await run(false);
  assert.equal(plain.bytes, 256 << 20);
  assert.ok(plain.parserTurbo > 0, 'V8 tiered the parser up');
});
