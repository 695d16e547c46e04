// The static server the benchmarks fetch from: nginx when installed (the peer a mirror would run),
// otherwise a small node:http server in a child process of its own (so the benchmark process itself
// serves nothing). Both serve ROOT/PATH at http://127.0.0.1:PORT/PATH with Content-Length, ETag,
// Last-Modified and single byte ranges.
//
// As a script: node bench/lib/static-server.ts ROOT PORT
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { onCleanup } from './cleanup.ts';
import { findNginx, freePort, startNginx, stopChild, waitForPort, type StaticServer } from './nginx.ts';

export type { StaticServer } from './nginx.ts';

/** nginx if installed, else the node:http fallback; `kind` says which (print it next to the figures). */
export async function startStaticServer(root: string, stateDir: string): Promise<StaticServer> {
  if (findNginx()) return startNginx(root, stateDir);
  return startNodeStaticServer(root);
}

/** The fallback: this file run as a script, in its own process. */
export async function startNodeStaticServer(root: string): Promise<StaticServer> {
  const port = await freePort();
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), root, String(port)], { stdio: ['ignore', 'ignore', 'inherit'] });
  const unregister = onCleanup(() => stopChild(child), () => child.kill('SIGTERM'));
  try {
    await waitForPort(port, child, () => 'node:http static server');
  } catch (err) {
    await stopChild(child);
    unregister();
    throw err;
  }
  return {
    url: `http://127.0.0.1:${port}`,
    kind: `node:http ${process.version} (fallback: nginx is not installed; apt-get install nginx-light)`,
    stop: async () => {
      await stopChild(child);
      unregister();
    },
  };
}

function serve(rootArg: string, port: number): void {
  const server = http.createServer(async (req, res) => {
    const fail = (status: number) => {
      res.writeHead(status, { 'content-length': 0 });
      res.end();
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405);
    let file: string;
    try {
      const root = await realpath(rootArg);
      const pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      if (pathname.includes('\0')) return fail(400);
      file = path.resolve(root, `.${pathname}`);
      if (!file.startsWith(root + path.sep)) return fail(404);
    } catch {
      return fail(400);
    }
    const fh = await open(file, 'r').catch(() => undefined);
    if (!fh) return fail(404);
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      return fail(404);
    }
    const etag = `"${Math.floor(st.mtimeMs / 1000).toString(16)}-${st.size.toString(16)}"`;
    const lastModified = st.mtime.toUTCString();
    let start = 0;
    let end = st.size - 1;
    let status = 200;
    const range = req.headers.range;
    const ifRange = req.headers['if-range'];
    if (range && (!ifRange || ifRange === etag || ifRange === lastModified)) {
      const m = /^bytes=(\d*)-(\d*)$/.exec(range);
      if (m && (m[1] || m[2])) {
        if (m[1]) {
          start = Number(m[1]);
          if (m[2]) end = Math.min(end, Number(m[2]));
        } else {
          start = Math.max(0, st.size - Number(m[2]));
        }
        if (start >= st.size || start > end) {
          await fh.close();
          res.writeHead(416, { 'content-range': `bytes */${st.size}`, 'content-length': 0 });
          return res.end();
        }
        status = 206;
      }
    }
    const headers: http.OutgoingHttpHeaders = {
      'content-type': 'application/octet-stream', 'content-length': end - start + 1, etag, 'last-modified': lastModified, 'accept-ranges': 'bytes',
    };
    if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${st.size}`;
    res.writeHead(status, headers);
    if (req.method === 'HEAD' || st.size === 0) {
      await fh.close();
      return res.end();
    }
    // 1 MiB reads: the default 64 KiB costs Node a large share of its throughput.
    const body = createReadStream('', { fd: fh, start, end, highWaterMark: 1 << 20 });
    body.pipe(res);
    body.on('error', () => res.destroy());
    res.on('close', () => body.destroy());
  });
  server.keepAliveTimeout = 65_000;
  server.listen(port, '127.0.0.1');
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (import.meta.main) {
  const [root, port] = process.argv.slice(2);
  if (!root || !port || !/^\d+$/.test(port)) {
    process.stderr.write('usage: node bench/lib/static-server.ts ROOT PORT\n');
    process.exit(2);
  }
  serve(root, Number(port));
}
