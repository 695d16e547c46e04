// Benchmark `npm run bench:deflate`: our gzip-n deflate against GNU `gzip -n` on the same files, in the
// same run.
//
//   node bench/deflate.ts [--input FILE]... [--size MB] [--level N] [--runs N] [--dir DIR] [--cli build|src|dist]
//
// Inputs: every --input FILE (a tar of a real tree is the case that matters: `git archive` of gnulib
// 8e128e, or a tar of binaries; docs/BENCHMARKS.md, bench:archive, issue 14), else a deterministic tar of
// source-like text, binary, repetitive and random files (--size MB, default 200) built in DIR. Each run
// is a whole process on both sides, start-up counted: `gzip -n -LEVEL -c FILE` against `sourcemesh
// compress FILE --level LEVEL -o -` (the CLI as users run it, bench/lib/cli.ts), alternating which goes
// first, every stdout hashed and compared. Prints per input the median wall time with its range, CPU
// time (user + system), the ratio and our peak RSS. Exits 1 when any output differs.

import { createWriteStream, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { tarStream } from '../test/archive/deflate/corpus.ts';
import { benchArgs } from './lib/args.ts';
import { prepareCli, type CliMode } from './lib/cli.ts';
import { cpuPressureMicros, describeMachine, formatMachine } from './lib/machine.ts';
import { median, rssMethod, timeHashed, type Timed } from './lib/measure.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MB = 1e6;
const MiB = 2 ** 20;

async function main(): Promise<void> {
  const { values, count, usage } = benchArgs('deflate', {
    input: { type: 'string', multiple: true },
    size: { type: 'string', default: '200' },
    level: { type: 'string', default: '6' },
    runs: { type: 'string', default: '5' },
    dir: { type: 'string' },
    cli: { type: 'string', default: 'build' },
  });
  const level = count('level', values.level);
  if (level > 9) usage(`--level ${level}: expected 1 to 9`);
  const runs = count('runs', values.runs);
  const ownDir = values.dir === undefined;
  const dir = values.dir ?? path.join(os.tmpdir(), `sourcemesh-bench-deflate-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  try {
    const inputs = values.input ?? [];
    for (const f of inputs) if (!existsSync(f)) usage(`--input ${f}: no such file`);
    if (inputs.length === 0) {
      const tar = path.join(dir, `generated-${values.size}MB.tar`);
      if (!existsSync(tar)) {
        console.log(`generating a ${values.size} MB tar in ${tar} ...`);
        await pipeline(Readable.from(tarStream(1, Number(values.size) * MB)), createWriteStream(tar));
      }
      inputs.push(tar);
    }
    const cli = await prepareCli(ROOT, dir, values.cli as CliMode);
    console.log(formatMachine(describeMachine()));
    console.log(`sourcemesh: ${cli.describe}`);
    for (const w of cli.warnings) console.log(`warning: ${w}`);
    console.log(`peak RSS and CPU: ${rssMethod()}; ${runs} runs each, alternating, medians (range)`);
    const p0 = cpuPressureMicros();
    const t0 = process.hrtime.bigint();

    let allIdentical = true;
    const lines: string[] = [];
    for (const input of inputs) {
      const gzip: Timed[] = [];
      const ours: Timed[] = [];
      const gzipRun = async () => gzip.push(await timeHashed('gzip', ['-n', `-${level}`, '-c', input]));
      const ourRun = async () => ours.push(await timeHashed(cli.argv[0]!, [...cli.argv.slice(1), 'compress', input, '--level', String(level), '-o', '-']));
      for (let i = 0; i < runs; i++) {
        if (i % 2 === 0) await gzipRun().then(ourRun);
        else await ourRun().then(gzipRun);
      }
      const identical = new Set([...gzip, ...ours].map((t) => t.sha256)).size === 1;
      allIdentical &&= identical;
      const range = (ts: Timed[]) => `${median(ts.map((t) => t.seconds)).toFixed(3)} s (${Math.min(...ts.map((t) => t.seconds)).toFixed(3)}-${Math.max(...ts.map((t) => t.seconds)).toFixed(3)})`;
      const cpu = (ts: Timed[]) => median(ts.map((t) => t.cpuSeconds ?? NaN)).toFixed(2);
      const ratios = ours.map((t, i) => t.seconds / gzip[i]!.seconds);
      const g = median(gzip.map((t) => t.seconds));
      const o = median(ours.map((t) => t.seconds));
      const rss = Math.max(...ours.map((t) => t.maxRssBytes ?? 0));
      lines.push(`${path.basename(input)}, ${(statSync(input).size / MB).toFixed(1)} MB, level ${level}`);
      lines.push(`  gzip -n        ${range(gzip)}  CPU ${cpu(gzip)} s`);
      lines.push(`  sourcemesh     ${range(ours)}  CPU ${cpu(ours)} s  peak RSS ${(rss / MiB).toFixed(0)} MiB`);
      lines.push(`  ratio          ${(o / g).toFixed(2)}x (pairs ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}x), CPU ${(median(ours.map((t) => t.cpuSeconds ?? NaN)) / median(gzip.map((t) => t.cpuSeconds ?? NaN))).toFixed(2)}x; identical ${identical ? `yes (sha256 ${ours[0]!.sha256.slice(0, 16)}...)` : 'NO'}`);
    }
    const p1 = cpuPressureMicros();
    const wall = Number(process.hrtime.bigint() - t0) / 1e3;
    console.log('');
    for (const l of lines) console.log(l);
    if (p0 !== undefined && p1 !== undefined) console.log(`CPU pressure during the runs: ${((100 * (p1 - p0)) / wall).toFixed(1)}% (some)`);
    if (!allIdentical) process.exitCode = 1;
  } finally {
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
