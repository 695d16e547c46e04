// `npm run demo`: the main job on loopback, end to end, with nothing from the internet.
// An upstream origin serves generated distfiles; one mirror is honest, one has a flipped byte in one
// file. `sourcemesh fetch` goes through the mirrors first, rejects and names the liar, takes that
// file from elsewhere, verifies everything, and `sourcemesh verify` confirms the directory.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'src/cli/main.ts');
const work = await mkdtemp(path.join(os.tmpdir(), 'sourcemesh-demo-'));
const servers: http.Server[] = [];

/** A minimal static server for the demo's upstream and mirrors (the real mirror server is `sourcemesh serve`). */
async function serveDir(dir: string): Promise<string> {
  const server = http.createServer(async (req, res) => {
    const name = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.slice(1));
    const file = path.join(dir, path.basename(name));
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': info.size });
    createReadStream(file).pipe(res);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Run the CLI as a child; asynchronously, since this process also serves the HTTP side. */
function run(args: string[]): Promise<number> {
  console.log(`\n$ sourcemesh ${args.map((a) => (a.startsWith(work) ? a.replace(work, '$DEMO') : a)).join(' ')}`);
  const child = spawn(process.execPath, [cli, ...args], { stdio: 'inherit', env: { ...process.env, SOURCEMESH_STORE: path.join(work, 'store') } });
  return new Promise((resolve) => child.on('close', (code) => resolve(code ?? 1)));
}

try {
  const upstream = path.join(work, 'upstream');
  const mirrors = [path.join(work, 'mirror-honest'), path.join(work, 'mirror-tampered')];
  for (const d of [upstream, ...mirrors]) await mkdir(d);
  const names = ['hello-2.12.tar.gz', 'make-4.4.1.tar.gz', 'tcc-0.9.27.tar.bz2', 'mes-0.27.1.tar.gz'];
  const distfiles = [];
  for (const [i, name] of names.entries()) {
    const body = createHash('sha512').update(name).digest().toString('hex').repeat(2000 + i * 500);
    await writeFile(path.join(upstream, name), body);
    for (const m of mirrors) await writeFile(path.join(m, name), body);
    distfiles.push({ name, body });
  }
  // The tampered mirror flips one byte of one file: same size, different sha256.
  const victim = path.join(mirrors[1]!, names[1]!);
  const bytes = await readFile(victim);
  bytes[1000]! ^= 0x20;
  await writeFile(victim, bytes);

  const upstreamUrl = await serveDir(upstream);
  const mirrorUrls = [await serveDir(mirrors[0]!), await serveDir(mirrors[1]!)];
  const manifest = {
    format: 'sourcemesh.manifest/v1',
    name: 'demo',
    distfiles: distfiles.map(({ name, body }) => ({
      name, sha256: createHash('sha256').update(body).digest('hex'), urls: [`${upstreamUrl}/${name}`],
    })).sort((a, b) => (a.name < b.name ? -1 : 1)),
  };
  const manifestPath = path.join(work, 'demo.json');
  await writeFile(manifestPath, JSON.stringify(manifest, null, 2));
  console.log(`upstream ${upstreamUrl}; mirrors ${mirrorUrls.join(', ')} (the second has a flipped byte in ${names[1]})`);

  const out = path.join(work, 'distfiles');
  // Put the tampered mirror alone first so that the demo always shows it being caught.
  const fetched = await run(['fetch', manifestPath, '-o', out, '--policy', 'mirrors-only', '--mirror', mirrorUrls[1]!, '--jobs', '2']);
  console.log(`(exit ${fetched}: with only the lying mirror, ${names[1]} cannot be had verified; the other files are stored)`);
  const status = await run(['fetch', manifestPath, '-o', out, '--mirror', mirrorUrls[1]!, '--mirror', mirrorUrls[0]!]);
  const verified = await run(['verify', out, '--manifest', manifestPath]);
  if (fetched !== 3 || status !== 0 || verified !== 0) throw new Error(`demo failed: exit statuses ${fetched}, ${status}, ${verified}`);
  console.log('\ndemo ok: the tampered file was rejected, its mirror named, the file taken from elsewhere, everything verified.');
} finally {
  for (const s of servers) s.close();
  await rm(work, { recursive: true, force: true });
}
