// `sourcemesh seed` as a child process, as an operator runs it: started on a free loopback port, its JSON
// lines read back (the first says where it listens and what it seeds; the last, after SIGTERM, what it did).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { CLI, ROOT, waitFor } from '../helpers/run.ts';

export interface Seeding {
  address: string;
  first: { port: number; files: { name: string; infoHashes: { hybrid: { v1: string; v2: string }; v1: string; v2: string } }[] };
  records(): Record<string, unknown>[];
  stderr(): string;
  /** SIGTERM, then the records up to the exit. */
  stop(): Promise<Record<string, unknown>[]>;
}

export async function startSeed(t: { after(fn: () => unknown): void }, args: string[]): Promise<Seeding> {
  const child = spawn(process.execPath, [CLI, 'seed', '--listen', '127.0.0.1:0', ...args], {
    cwd: ROOT, env: { ...process.env, CI: '1', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = once(child, 'exit');
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await waitFor('seed to listen', () => {
    if (child.exitCode !== null) throw new Error(`seed exited with ${child.exitCode}: ${err}`);
    return out.includes('\n');
  }, { timeoutMs: 60_000, everyMs: 20 });
  const records = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const first = records()[0] as unknown as Seeding['first'];
  return {
    address: `127.0.0.1:${first.port}`, first, records, stderr: () => err,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      return records();
    },
  };
}
