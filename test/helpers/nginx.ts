// The real nginx for tests: one foreground nginx whose http context includes the site files given
// (what `sourcemesh mirror nginx-config` prints), with pid, logs and temporary directories in a state
// directory of the test. The binary, free ports and stopping come from the benchmarks' nginx module.
import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { findNginx, freePort, stopChild, waitForPort } from '../../bench/lib/nginx.ts';

export { freePort } from '../../bench/lib/nginx.ts';

export interface RunningNginx {
  stop(): Promise<void>;
  errorLog(): Promise<string>;
}

/**
 * Start nginx with `sites` (http-context text each, listening on `ports`) and wait until every port
 * accepts connections. `nginx -t` checks the configuration first, so a bad one fails with nginx's words.
 */
export async function startNginxWith(t: { after(fn: () => unknown): void }, stateDir: string, sites: string[], ports: number[], workers = 1): Promise<RunningNginx> {
  const found = findNginx();
  if (!found) throw new Error('nginx is not installed (scripts/test-deps.ts installs it)');
  await mkdir(stateDir, { recursive: true });
  const includes: string[] = [];
  for (const [i, site] of sites.entries()) {
    const file = path.join(stateDir, `site-${i}.conf`);
    await writeFile(file, site);
    includes.push(`  include ${file};`);
  }
  const conf = path.join(stateDir, 'nginx.conf');
  const errorLog = path.join(stateDir, 'error.log');
  await writeFile(conf, `daemon off;
master_process on;
worker_processes ${workers};
pid ${stateDir}/nginx.pid;
error_log ${errorLog} warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${stateDir}/client_body;
  proxy_temp_path ${stateDir}/proxy;
  fastcgi_temp_path ${stateDir}/fastcgi;
  uwsgi_temp_path ${stateDir}/uwsgi;
  scgi_temp_path ${stateDir}/scgi;
${includes.join('\n')}
}
`);
  const check = spawnSync(found.bin, ['-t', '-p', stateDir, '-c', conf, '-e', errorLog], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`nginx -t refused the configuration: ${check.stderr}`);
  const child = spawn(found.bin, ['-p', stateDir, '-c', conf, '-e', errorLog], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  t.after(() => stopChild(child));
  for (const port of ports) await waitForPort(port, child, () => `nginx (${stderr.trim()})`);
  return { stop: () => stopChild(child), errorLog: () => readFile(errorLog, 'utf8').catch(() => '') };
}

/**
 * nginx's workers run as an unprivileged user when the master is root: the test's directories (made
 * 0700 by mkdtemp) must be readable by others along the way.
 */
export async function openToWorkers(...dirs: string[]): Promise<void> {
  for (const dir of dirs) await chmod(dir, 0o755);
}
