// A replaying node for the discovery tests, run inside a network namespace: an HTTP server on LISTEN
// that answers every GET with what TARGET (a genuine `serve`) answers for the same path and query, so it
// serves the genuine node's signed inventory as its own. With "challenge": false it replays only the
// inventory and answers the challenge with 404.
//
//   node test/discovery/relay.ts '{"host":"10.0.0.1","port":8083,"target":"http://10.0.0.1:8082","challenge":true}'
import http from 'node:http';

const o = JSON.parse(process.argv[2]!) as { host: string; port: number; target: string; challenge: boolean };
const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  if (!o.challenge && url.startsWith('/.well-known/sourcemesh/challenge')) {
    res.writeHead(404).end('not found\n');
    return;
  }
  http.get(`${o.target}${url}`, (up) => {
    res.writeHead(up.statusCode ?? 502, { 'content-type': up.headers['content-type'] ?? 'text/plain' });
    up.pipe(res);
  }).on('error', () => res.writeHead(502).end());
});
server.listen(o.port, o.host, () => process.stderr.write(`relaying ${o.host}:${o.port} to ${o.target}\n`));
