// `sourcemesh seed` as a child process, as an operator runs it: started on a free loopback port, its JSON
// lines read back (the first says where it listens and what it seeds; the last, after SIGTERM, what it did).
// A command prefix runs it under another program (`strace -f -o FILE`), which then starts it as its child.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { CLI, ROOT, waitFor } from '../helpers/run.ts';

export interface Seeding {
  address: string;
  /** The seed's own process (under a prefix, the prefix's child). */
  pid: number;
  first: { port: number; files: { name: string; infoHashes: { hybrid: { v1: string; v2: string }; v1: string; v2: string } }[] };
  records(): Record<string, unknown>[];
  stderr(): string;
  /** SIGTERM, then the records up to the exit. */
  stop(): Promise<Record<string, unknown>[]>;
}

export async function startSeed(t: { after(fn: () => unknown): void }, args: string[], opts: { prefix?: string[] } = {}): Promise<Seeding> {
  const command = [...(opts.prefix ?? []), process.execPath, CLI, 'seed', '--listen', '127.0.0.1:0', ...args];
  const child = spawn(command[0]!, command.slice(1), {
    cwd: ROOT, env: { ...process.env, CI: '1', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = once(child, 'exit');
  let pid = child.pid!;
  t.after(() => {
    if (pid !== child.pid) try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await waitFor('seed to listen', () => {
    if (child.exitCode !== null) throw new Error(`seed exited with ${child.exitCode}: ${err}`);
    return out.includes('\n');
  }, { timeoutMs: opts.prefix ? 90_000 : 60_000, everyMs: 20 });
  // A prefix such as strace holds SIGTERM back from what it runs: the seed itself is the one to stop.
  if (opts.prefix) pid = Number((await readFile(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8')).trim().split(/\s+/)[0]);
  const records = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const first = records()[0] as unknown as Seeding['first'];
  return {
    address: `127.0.0.1:${first.port}`, pid, first, records, stderr: () => err,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGTERM');
      await exited;
      return records();
    },
  };
}
