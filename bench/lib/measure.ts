// Timing a command and its peak memory, with GNU time when installed.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface Measured {
  seconds: number;
  /** Peak resident set size in MiB (GNU time's %M), when measured. */
  rssMiB?: number;
  code: number | null;
  stderr: string;
}

export async function measure(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Measured> {
  const gnuTime = existsSync('/usr/bin/time');
  const [bin, argv] = gnuTime ? ['/usr/bin/time', ['-f', 'SOURCEMESH_RSS_KIB=%M', cmd, ...args]] : [cmd, args];
  const t0 = process.hrtime.bigint();
  const child = spawn(bin, argv, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const m = /SOURCEMESH_RSS_KIB=(\d+)/.exec(stderr);
  return { seconds, rssMiB: m ? Number(m[1]) / 1024 : undefined, code, stderr: stderr.replace(/SOURCEMESH_RSS_KIB=\d+\n?/, '') };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
