// Network namespaces made by a test (as root): two namespaces joined by one veth link, each with its own
// loopback, addresses in 10.216.N.0/24, and the real CLI (or any program) run inside either. Everything
// goes when the test ends: the processes started in them, then the namespaces (and with them the link).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { CLI, ROOT } from './run.ts';

export interface Side {
  ns: string;
  dev: string;
  address: string;
}

export interface Link {
  a: Side;
  b: Side;
  /** Start `cmd` in a namespace; its output is collected, and it is killed when the test ends. */
  spawn(side: Side, cmd: string, args: string[], env?: NodeJS.ProcessEnv): Started;
  /** The CLI in a namespace, run to its end. */
  run(side: Side, args: string[], opts?: { timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }>;
}

export interface Started {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once the standard error matches (or rejects when the process ends first or after `timeoutMs`). */
  waitStderr(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
}

let counter = 0;

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

export function canMakeNamespaces(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (ip netns)';
  if (spawnSync('ip', ['netns', 'list']).status !== 0) return 'ip netns does not work here';
  return undefined;
}

/** Two namespaces joined by a veth link, removed when the test ends. */
export function makeLink(t: { after(fn: () => Promise<void> | void): void }): Link {
  const n = (process.pid % 200) * 50 + (counter++ % 50);
  const tag = `sm${process.pid.toString(36)}${counter}`;
  const subnet = `10.216.${n % 250}`;
  const a: Side = { ns: `${tag}a`, dev: `${tag}a`.slice(0, 15), address: `${subnet}.1` };
  const b: Side = { ns: `${tag}b`, dev: `${tag}b`.slice(0, 15), address: `${subnet}.2` };
  const children: ChildProcess[] = [];
  t.after(async () => {
    // SIGTERM first (avahi-daemon removes its pid file), SIGKILL after 3 s.
    const live = children.filter((c) => c.exitCode === null && c.signalCode === null);
    const closed = live.map((c) => new Promise((r) => c.once('close', r)));
    for (const c of live) c.kill('SIGTERM');
    const timer = setTimeout(() => live.forEach((c) => c.kill('SIGKILL')), 3000);
    await Promise.all(closed);
    clearTimeout(timer);
    for (const s of [a, b]) spawnSync('ip', ['netns', 'del', s.ns]);
  });
  ip('netns', 'add', a.ns);
  ip('netns', 'add', b.ns);
  ip('link', 'add', a.dev, 'type', 'veth', 'peer', 'name', b.dev);
  for (const s of [a, b]) {
    ip('link', 'set', s.dev, 'netns', s.ns);
    ip('-n', s.ns, 'addr', 'add', `${s.address}/24`, 'dev', s.dev);
    ip('-n', s.ns, 'link', 'set', s.dev, 'up');
    ip('-n', s.ns, 'link', 'set', 'lo', 'up');
  }
  const startIn = (side: Side, cmd: string, args: string[], env?: NodeJS.ProcessEnv): Started => {
    const child = spawn('ip', ['netns', 'exec', side.ns, cmd, ...args], { cwd: ROOT, env: { ...process.env, CI: '1', NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    return {
      child,
      stdout: () => out,
      stderr: () => err,
      waitStderr: (re, timeoutMs = 30_000) => new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(err);
          if (m) {
            done();
            resolve(m);
          }
        };
        const onClose = () => {
          done();
          reject(new Error(`${cmd} ended before its output matched ${re}: ${err}`));
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`waited ${timeoutMs} ms for ${re} from ${cmd}: ${err}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          child.stderr!.off('data', check);
          child.off('close', onClose);
        };
        child.stderr!.on('data', check);
        child.once('close', onClose);
        check();
      }),
    };
  };
  return {
    a,
    b,
    spawn: startIn,
    run: (side, args, opts = {}) => new Promise((resolve, reject) => {
      const started = performance.now();
      const s = startIn(side, process.execPath, [CLI, ...args], opts.env);
      const timer = setTimeout(() => s.child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
      s.child.on('error', reject);
      s.child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout: s.stdout(), stderr: s.stderr(), ms: performance.now() - started });
      });
    }),
  };
}
