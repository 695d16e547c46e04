// nginx from Debian as the peer static server of the benchmarks: a foreground process with its own
// minimal configuration, on 127.0.0.1 only, sendfile on; pid, logs and temporary directories in a
// state directory of the benchmark's own.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { onCleanup } from './cleanup.ts';

export interface StaticServer {
  /** http://127.0.0.1:PORT, serving ROOT/NAME at URL/NAME. */
  url: string;
  /** What serves: "nginx 1.22.1" or "node:http (...)". */
  kind: string;
  stop(): Promise<void>;
}

const CANDIDATES = ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx'];

/** The nginx binary and its version, or undefined when nginx is not installed. */
export function findNginx(): { bin: string; version: string } | undefined {
  for (const bin of CANDIDATES) {
    const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
    if (r.status === 0) return { bin, version: /nginx\/(\S+)/.exec(r.stderr)?.[1] ?? '?' };
  }
  return undefined;
}

/** A TCP port free on HOST (a loopback address, 127.0.0.1 by default) right now. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Wait until something accepts connections on HOST:PORT (127.0.0.1 by default), or `child` died. */
export async function waitForPort(port: number, child: ChildProcess, what: () => string, timeoutMs = 10_000, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, host);
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (open) return;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what()} exited before listening`);
    if (Date.now() > deadline) throw new Error(`${what()} did not listen on ${host}:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Stop a child we started: SIGTERM, then SIGKILL if it has not ended within `graceMs`. `kill` sends a
 * signal some other way (to the child's process group, say).
 */
export function stopChild(child: ChildProcess, graceMs = 5000, kill: (s: NodeJS.Signals) => void = (s) => child.kill(s)): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => kill('SIGKILL'), graceMs);
    child.once('close', () => { clearTimeout(timer); resolve(); });
    kill('SIGTERM');
  });
}

/**
 * An nginx left running by an earlier run of this benchmark that was killed outright (its pid file in
 * our state directory, and its command line naming our configuration): stop it.
 */
async function stopLeftover(stateDir: string, conf: string): Promise<void> {
  const pid = Number((await readFile(path.join(stateDir, 'nginx.pid'), 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 1) return;
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return;
  }
  if (!cmdline.includes('nginx') || !cmdline.includes(conf)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && (await readFile(`/proc/${pid}/cmdline`, 'utf8').then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 50));
}

/** Serve ROOT with nginx on 127.0.0.1 and a free port (`workers` worker processes). Throws when nginx is not installed. */
export async function startNginx(root: string, stateDir: string, workers = 1): Promise<StaticServer> {
  const sites = await startNginxSites([root], stateDir, workers);
  return { url: sites.urls[0]!, kind: sites.kind, stop: sites.stop };
}

export interface StaticSites {
  /** http://127.0.0.1:PORT for each root, in order. */
  urls: string[];
  kind: string;
  stop(): Promise<void>;
}

/** One nginx (`workers` worker processes, one by default) with a server block per ROOT, each on a free port of 127.0.0.1. */
export async function startNginxSites(roots: string[], stateDir: string, workers = 1): Promise<StaticSites> {
  const found = findNginx();
  if (!found) throw new Error('nginx is not installed (Debian: apt-get install nginx-light)');
  await mkdir(stateDir, { recursive: true });
  const conf = path.join(stateDir, 'nginx.conf');
  await stopLeftover(stateDir, conf);
  const ports: number[] = [];
  for (let i = 0; i < roots.length; i++) ports.push(await freePort());
  await writeFile(conf, `# written by the sourcemesh benchmarks; nginx runs in the foreground with only this file
daemon off;
master_process on;
worker_processes ${workers};
pid ${stateDir}/nginx.pid;
error_log ${stateDir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 100000;
  client_body_temp_path ${stateDir}/client_body;
  proxy_temp_path ${stateDir}/proxy;
  fastcgi_temp_path ${stateDir}/fastcgi;
  uwsgi_temp_path ${stateDir}/uwsgi;
  scgi_temp_path ${stateDir}/scgi;
  types { }
  default_type application/octet-stream;
${roots.map((root, i) => `  server {
    listen 127.0.0.1:${ports[i]};
    root ${root};
    autoindex off;
  }
`).join('')}}
`);
  // -e: the error log before the configuration is read (the default, /var/log/nginx, may not be writable).
  const child = spawn(found.bin, ['-p', stateDir, '-c', conf, '-e', path.join(stateDir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  const unregister = onCleanup(() => stopChild(child), () => child.kill('SIGTERM'));
  const errorLog = () => {
    try {
      return readFileSync(path.join(stateDir, 'error.log'), 'utf8').trim().split('\n').slice(-5).join('\n');
    } catch {
      return 'no error log';
    }
  };
  try {
    for (const port of ports) await waitForPort(port, child, () => `nginx (${stderr.trim() || errorLog()})`);
  } catch (err) {
    await stopChild(child);
    unregister();
    throw err;
  }
  return {
    urls: ports.map((port) => `http://127.0.0.1:${port}`),
    kind: `nginx ${found.version}${workers > 1 ? ` (${workers} workers)` : ''}`,
    stop: async () => {
      await stopChild(child);
      unregister();
    },
  };
}
