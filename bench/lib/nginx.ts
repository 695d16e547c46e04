// nginx from Debian as the peer static server of the benchmarks: foreground, its own minimal
// configuration, loopback only, sendfile on.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

export interface Nginx {
  url: string;
  version: string;
  stop(): Promise<void>;
}

export function nginxBinary(): string | undefined {
  for (const p of ['/usr/sbin/nginx', '/usr/bin/nginx']) if (spawnSync(p, ['-v']).status === 0) return p;
  return undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** Serve `root` on 127.0.0.1 with nginx; state (pid, logs, temp) under `work`. */
export async function startNginx(root: string, work: string): Promise<Nginx> {
  const bin = nginxBinary();
  if (!bin) throw new Error('nginx is not installed: apt-get install nginx-light');
  const port = await freePort();
  await mkdir(work, { recursive: true });
  const conf = path.join(work, 'nginx.conf');
  await writeFile(conf, `daemon off;
worker_processes 1;
pid ${work}/nginx.pid;
error_log ${work}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path ${work}/body;
  proxy_temp_path ${work}/proxy;
  fastcgi_temp_path ${work}/fastcgi;
  uwsgi_temp_path ${work}/uwsgi;
  scgi_temp_path ${work}/scgi;
  types { application/octet-stream bin; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`);
  const child: ChildProcess = spawn(bin, ['-c', conf, '-p', work], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (await new Promise<boolean>((r) => net.connect(port, '127.0.0.1').on('connect', function (this: net.Socket) { this.destroy(); r(true); }).on('error', () => r(false)))) break;
    if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const version = (spawnSync(bin, ['-v']).stderr.toString().trim().split('/')[1] ?? '?');
  return {
    url,
    version,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.on('close', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}
