// Benchmark: our gzip-n deflate against GNU `gzip -n` on the same generated tar, in the same run.
//
//   node bench/deflate.ts [--size MB] [--level N] [--dir DIR]
//
// Builds a deterministic tar of source-like text, binary, repetitive and random files (default 200 MB),
// compresses it with `gzip -n -LEVEL < tar` and with our stream in a child process (so that its peak RSS
// is its own), checks both outputs are identical, and prints MB/s of each, the time ratio and our RSS.
// Exits 1 when the outputs differ.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, openSync, closeSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createDeflateStream } from '../src/archive/deflate/index.ts';
import { tarStream } from '../test/archive/deflate/corpus.ts';

const SELF = fileURLToPath(import.meta.url);
const MB = 1e6;

interface Timed {
  seconds: number;
  maxRssBytes?: number;
}

/** Child mode: compress IN to OUT with our stream; report time and peak RSS as JSON on stdout. */
async function child(input: string, output: string, level: number): Promise<void> {
  const start = process.hrtime.bigint();
  // Read ahead 1 MiB so file reads overlap compression (gzip reads synchronously, in 32-64 KiB reads).
  const source = createReadStream(input, { highWaterMark: 1 << 20 });
  await pipeline(source, createDeflateStream({ flavour: 'gzip-n', level }), createWriteStream(output));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  // maxRSS is in KiB.
  process.stdout.write(JSON.stringify({ seconds, maxRssBytes: process.resourceUsage().maxRSS * 1024 }) + '\n');
}

/** Run a command with stdin and stdout redirected to files; resolve with its wall time. */
function timeCommand(cmd: string, args: string[], stdinFile: string | null, stdoutFile: string | null): Promise<{ seconds: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const inFd = stdinFile === null ? 'ignore' : openSync(stdinFile, 'r');
    const outFd = stdoutFile === null ? 'pipe' : openSync(stdoutFile, 'w');
    const start = process.hrtime.bigint();
    const proc = spawn(cmd, args, { stdio: [inFd, outFd, 'inherit'] });
    let stdout = '';
    proc.stdout?.on('data', (d) => (stdout += d));
    proc.on('error', reject);
    proc.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (typeof inFd === 'number') closeSync(inFd);
      if (typeof outFd === 'number') closeSync(outFd);
      if (code !== 0) reject(new Error(`${cmd} exited with ${code}`));
      else resolve({ seconds, stdout });
    });
  });
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '200' },
      level: { type: 'string', default: '6' },
      dir: { type: 'string' },
      child: { type: 'boolean', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  const level = Number(values.level);
  if (values.child) {
    const [input, output] = process.argv.slice(-2) as [string, string];
    await child(input, output, level);
    return;
  }

  const dir = values.dir ?? mkdtempSync(path.join(os.tmpdir(), 'sourcemesh-bench-deflate-'));
  const tar = path.join(dir, 'input.tar');
  const gzOut = path.join(dir, 'gzip.gz');
  const ourOut = path.join(dir, 'ours.gz');
  try {
    process.stdout.write(`generating a ${values.size} MB tar in ${dir} ...\n`);
    await pipeline(Readable.from(tarStream(1, Number(values.size) * MB)), createWriteStream(tar));
    const size = statSync(tar).size;

    const gzip: Timed = await timeCommand('gzip', ['-n', `-${level}`, '-c'], tar, gzOut);
    const run = await timeCommand(process.execPath, [SELF, '--child', '--level', String(level), tar, ourOut], null, null);
    const ours: Timed = { ...(JSON.parse(run.stdout) as Timed), seconds: run.seconds };

    const [gzHash, ourHash] = await Promise.all([sha256File(gzOut), sha256File(ourOut)]);
    const identical = gzHash === ourHash;
    const rate = (t: Timed) => (size / MB / t.seconds).toFixed(1);
    const rows: [string, string][] = [
      ['input', `${(size / MB).toFixed(1)} MB tar, level ${level}`],
      ['gzip -n', `${gzip.seconds.toFixed(2)} s  ${rate(gzip)} MB/s  -> ${statSync(gzOut).size} bytes`],
      ['sourcemesh gzip-n', `${ours.seconds.toFixed(2)} s  ${rate(ours)} MB/s  peak RSS ${((ours.maxRssBytes ?? 0) / 2 ** 20).toFixed(0)} MiB`],
      ['ratio (time)', `${(ours.seconds / gzip.seconds).toFixed(2)}x gzip (goal <= 2x)`],
      ['identical', identical ? `yes (sha256 ${ourHash.slice(0, 16)}...)` : `NO: gzip ${gzHash} ours ${ourHash}`],
    ];
    for (const [k, v] of rows) process.stdout.write(`${k.padEnd(18)} ${v}\n`);
    if (!identical) process.exitCode = 1;
  } finally {
    if (values.dir === undefined) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
