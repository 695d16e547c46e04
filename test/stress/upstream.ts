// Upstream of the stress network: a plain static HTTP server (upstream is not ours) over one directory,
// which holds the distfiles and bare git repositories served with git's dumb HTTP protocol (static files
// after `git update-server-info`). Single byte ranges are honoured, so resumed downloads work.
//
//   node test/stress/upstream.ts DIR LISTEN_IP:PORT      (prints "listening" once bound)
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';

function main(): void {
  const [dir, listen] = process.argv.slice(2);
  if (!dir || !listen) throw new Error('usage: node test/stress/upstream.ts DIR LISTEN_IP:PORT');
  const root = path.resolve(dir);
  const server = http.createServer(async (req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = path.join(root, path.normalize(rel));
    if (!file.startsWith(`${root}/`)) return void res.writeHead(404).end();
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) return void res.writeHead(404).end();
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m && Number(m[1]) < info.size) {
      const start = Number(m[1]);
      const end = m[2] ? Math.min(Number(m[2]), info.size - 1) : info.size - 1;
      res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${info.size}`, 'accept-ranges': 'bytes' });
      if (req.method === 'HEAD') return void res.end();
      return void createReadStream(file, { start, end }).pipe(res);
    }
    res.writeHead(200, { 'content-length': info.size, 'accept-ranges': 'bytes' });
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file).pipe(res);
  });
  const at = listen.lastIndexOf(':');
  server.listen(Number(listen.slice(at + 1)), listen.slice(0, at), () => process.stdout.write('listening\n'));
}

if (process.argv[1] && import.meta.filename === process.argv[1]) main();
