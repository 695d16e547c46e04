// `sourcemesh serve` as a child process, as an operator runs it, and the real curl and wget as clients.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { CLI, ROOT } from '../helpers/run.ts';

export interface Served {
  url: string;
  /** The first stdout line: where it listens, the key, the file count. */
  first: Record<string, unknown>;
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Send a signal and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Wait for the exit (a second SIGTERM would force it). */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Start `sourcemesh serve ARGS --listen 127.0.0.1:0` and wait for its "listening" line. */
export async function startServe(t: { after(fn: () => unknown): void }, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'serve', '--listen', '127.0.0.1:0', ...args], {
    cwd: ROOT, env: { ...process.env, CI: '1', NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const deadline = Date.now() + 20_000;
  while (!out.includes('\n')) {
    if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}: ${err}`);
    if (Date.now() > deadline) throw new Error(`serve did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const first = JSON.parse(out.slice(0, out.indexOf('\n')));
  return {
    url: first.url, first, child,
    stdout: () => out,
    stderr: () => err,
    async exited() {
      const [code, sig] = await exited;
      return { code, signal: sig };
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const [code, sig] = await exited;
      return { code, signal: sig };
    },
  };
}

export interface ToolResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Run a real tool (curl, wget, bash) and collect its output. */
export function tool(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr });
    });
  });
}

/** curl -sS with the response head on stdout (-D -) and the body to `-o`, as given in args. */
export async function curlHead(args: string[]): Promise<{ code: number | null; status: number; headers: Record<string, string>; stderr: string }> {
  const r = await tool('curl', ['-sS', '-D', '-', ...args]);
  const text = r.stdout.toString('latin1');
  // The last response head (after any 100 Continue or redirects).
  const heads = text.split(/\r\n\r\n/).filter((h) => h.startsWith('HTTP/'));
  const head = heads.at(-1) ?? '';
  const [statusLine, ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { code: r.code, status: Number(statusLine?.split(' ')[1] ?? 0), headers, stderr: r.stderr };
}

/** Poll until `check` passes or `ms` elapse. */
export async function eventually(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}
