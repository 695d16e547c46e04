// Timing a command (wall clock, from spawn to exit) and its peak resident set size. The peak RSS comes
// from GNU time (`/usr/bin/time -f %M`, Debian package `time`) when it is installed; otherwise, for a
// Node.js command only, from process.resourceUsage().maxRSS that a preloaded snippet writes to a file at
// exit. Children still running when the benchmark is interrupted are stopped.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { onCleanup } from './cleanup.ts';
import { stopChild } from './nginx.ts';

export interface Measured {
  seconds: number;
  /** Peak RSS in bytes, when it could be measured. */
  maxRssBytes?: number;
  /** CPU time (user + system) of the command, when it could be measured: steadier than wall time on a busy machine. */
  cpuSeconds?: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface MeasureOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Keep at most this much of stdout and of stderr (the tail of stderr, the head of stdout). */
  captureBytes?: number;
}

let gnuTime: boolean | undefined;

/** Whether /usr/bin/time is GNU time (BusyBox and BSD time have no -f %M). */
export function hasGnuTime(): boolean {
  if (gnuTime === undefined) {
    const r = spawnSync('/usr/bin/time', ['--version'], { encoding: 'utf8' });
    gnuTime = /GNU/.test(`${r.stdout ?? ''}${r.stderr ?? ''}`);
  }
  return gnuTime;
}

/** How peak RSS is measured in this environment, for the report. */
export function rssMethod(): string {
  return hasGnuTime() ? 'GNU time %M' : 'process.resourceUsage().maxRSS (node commands only; apt-get install time for all)';
}

const MARK = 'BENCH_MAX_RSS_KIB=';
let seq = 0;

export async function measure(cmd: string, args: string[], opts: MeasureOptions = {}): Promise<Measured> {
  const env = { ...(opts.env ?? process.env) };
  let argv = [cmd, ...args];
  let rssFile: string | undefined;
  if (hasGnuTime()) {
    argv = ['/usr/bin/time', '-f', `${MARK}%M %U %S`, ...argv];
  } else if (cmd === process.execPath) {
    // The snippet is plain JavaScript in a data: URL, so that the child loads no TypeScript support
    // (which would add to its footprint).
    rssFile = path.join(os.tmpdir(), `bench-maxrss-${process.pid}-${seq++}`);
    env.BENCH_MAX_RSS_FILE = rssFile;
    const snippet = "import{writeFileSync}from'node:fs';process.on('exit',()=>{try{const u=process.resourceUsage();writeFileSync(process.env.BENCH_MAX_RSS_FILE,`${u.maxRSS} ${u.userCPUTime} ${u.systemCPUTime}`)}catch{}})";
    argv = [cmd, '--import', `data:text/javascript,${encodeURIComponent(snippet)}`, ...args];
  }
  const cap = opts.captureBytes ?? 1 << 20;
  const t0 = process.hrtime.bigint();
  // A process group of its own, so that a stop reaches the command too and not only GNU time (which
  // would leave it running).
  const child = spawn(argv[0]!, argv.slice(1), { env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // already gone
    }
  };
  const unregister = onCleanup(() => stopChild(child, 2000, killGroup), () => killGroup('SIGTERM'));
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    if (stdout.length < cap) stdout += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-cap);
  });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, s) => resolve([c, s]));
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  unregister();
  let maxRssBytes: number | undefined;
  let cpuSeconds: number | undefined;
  const m = new RegExp(`${MARK}(\\d+) ([\\d.]+) ([\\d.]+)\\n?`).exec(stderr);
  if (m) {
    maxRssBytes = Number(m[1]) * 1024; // GNU time 1.9 reports KiB
    cpuSeconds = Number(m[2]) + Number(m[3]);
    stderr = stderr.replace(m[0], '');
  } else if (rssFile) {
    const [kib, user, system] = (await readFile(rssFile, 'utf8').catch(() => '')).split(' ').map(Number);
    if (Number.isFinite(kib)) maxRssBytes = kib! * 1024; // maxRSS is in KiB too
    if (Number.isFinite(user) && Number.isFinite(system)) cpuSeconds = (user! + system!) / 1e6; // microseconds
    await rm(rssFile, { force: true });
  }
  // GNU time reports a failing command as "Command exited with non-zero status N" on stderr.
  stderr = stderr.replace(/^Command (exited with non-zero status \d+|terminated by signal \d+)\n/m, '');
  return { seconds, maxRssBytes, cpuSeconds, code, signal, stdout, stderr };
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** One run of a command whose output is compared, not kept: its stdout's SHA-256 with the timing. */
export interface Timed {
  seconds: number;
  sha256: string;
  cpuSeconds?: number;
  maxRssBytes?: number;
}

/**
 * Run a command with its stdout hashed here as it arrives (node:crypto, faster than any command in a
 * pipe, so the consumer never holds either side back); wall time from spawn to exit, CPU time and peak
 * RSS from GNU time when installed. `stdin` names a file to read from.
 */
export function timeHashed(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; stdin?: string } = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const argv = hasGnuTime() ? ['/usr/bin/time', '-f', 'BENCH %M %U %S', cmd, ...args] : [cmd, ...args];
    const stdin = opts.stdin ? openSync(opts.stdin, 'r') : 'ignore';
    const t0 = process.hrtime.bigint();
    const p = spawn(argv[0]!, argv.slice(1), { cwd: opts.cwd, env: opts.env, stdio: [stdin, 'pipe', 'pipe'] });
    if (typeof stdin === 'number') closeSync(stdin);
    const hash = createHash('sha256');
    let stderr = '';
    p.stdout!.on('data', (d: Buffer) => hash.update(d));
    p.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8192)));
    p.on('error', reject);
    p.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0) return reject(new Error(`${cmd} exited with ${code}: ${stderr.trim().split('\n').at(-1)}`));
      const m = /BENCH (\d+) ([\d.]+) ([\d.]+)/.exec(stderr);
      resolve({ seconds, sha256: hash.digest('hex'), ...(m ? { maxRssBytes: Number(m[1]) * 1024, cpuSeconds: Number(m[2]) + Number(m[3]) } : {}) });
    });
  });
}
