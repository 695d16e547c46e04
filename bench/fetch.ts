// npm run bench:fetch — sourcemesh fetch against curl (sequential and --parallel), in the same run,
// from one nginx on loopback: 20 files of 50 MiB, then one of 1 GiB. Prints throughput, the ratio to
// curl and our peak RSS. Goals: at least 0.9x curl's throughput, peak RSS under 150 MB.
import { spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureFile } from './lib/files.ts';
import { measure, median } from './lib/measure.ts';
import { startNginx } from './lib/nginx.ts';

const MiB = 1 << 20;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = process.env.BENCH_DIR ?? path.join(os.tmpdir(), 'sourcemesh-bench-fetch');
const reps = Number(process.env.BENCH_REPS ?? 3);
const smallCount = Number(process.env.BENCH_FILES ?? 20);
const smallSize = Number(process.env.BENCH_FILE_MIB ?? 50) * MiB;
const bigSize = Number(process.env.BENCH_BIG_MIB ?? 1024) * MiB;

const sets = [
  { label: `${smallCount} x ${smallSize / MiB} MiB`, files: Array.from({ length: smallCount }, (_, i) => ({ name: `file-${String(i).padStart(2, '0')}.bin`, size: smallSize, seed: i + 1 })) },
  { label: `1 x ${bigSize / MiB} MiB`, files: [{ name: 'big.bin', size: bigSize, seed: 999 }] },
];

// Measure what users run: the compiled CLI (`npx sourcemesh`), built fresh from the sources.
const build = spawnSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (build.status !== 0) throw new Error('build failed');
console.log(`bench:fetch on ${os.cpus().length} CPUs (${os.cpus()[0]?.model}), node ${process.version}; files in ${work}`);
const served = path.join(work, 'served');
const nginx = await startNginx(served, path.join(work, 'nginx'));
const cleanup = async () => nginx.stop();
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

try {
  const rows: string[][] = [];
  for (const set of sets) {
    const files = [];
    for (const f of set.files) files.push({ ...f, ...(await ensureFile(served, f.name, f.size, f.seed)) });
    const total = files.reduce((n, f) => n + f.size, 0);
    const manifest = path.join(work, `manifest-${files.length}.json`);
    await writeFile(manifest, JSON.stringify({
      format: 'sourcemesh.manifest/v1', name: 'bench',
      distfiles: files.map((f) => ({ name: f.name, sha256: f.sha256, size: f.size, urls: [`${nginx.url}/${f.name}`] })).sort((a, b) => (a.name < b.name ? -1 : 1)),
    }));
    const out = path.join(work, 'out');
    const fresh = async () => {
      await rm(out, { recursive: true, force: true });
      await rm(path.join(work, 'store'), { recursive: true, force: true });
      await mkdir(out, { recursive: true });
    };
    const curlArgs = files.flatMap((f) => ['-o', path.join(out, f.name), `${nginx.url}/${f.name}`]);
    const contenders: { name: string; run: () => ReturnType<typeof measure> }[] = [
      { name: 'sourcemesh fetch --jobs 4', run: () => measure(process.execPath, [path.join(root, 'bin/sourcemesh.js'), 'fetch', manifest, '-o', out, '--store', path.join(work, 'store'), '--policy', 'upstream-only', '--jobs', '4', '--json'], { env: { ...process.env, CI: '1' } }) },
      { name: 'curl (sequential)', run: () => measure('curl', ['-sS', '--fail', ...curlArgs]) },
      { name: 'curl --parallel --parallel-max 4', run: () => measure('curl', ['-sS', '--fail', '--parallel', '--parallel-max', '4', ...curlArgs]) },
      // sourcemesh fsyncs every file before giving it its name; curl does not. The same durability:
      { name: 'curl --parallel 4, then sync', run: () => measure('sh', ['-c', 'curl -sS --fail --parallel --parallel-max 4 "$@" && sync "$OUT"/*', 'sh', ...curlArgs], { env: { ...process.env, OUT: out } }) },
    ];
    const results = new Map<string, { seconds: number[]; rss: number[] }>();
    for (let rep = 0; rep < reps; rep++) {
      for (const c of contenders) {
        await fresh();
        const m = await c.run();
        if (m.code !== 0) throw new Error(`${c.name} failed (${m.code}): ${m.stderr.slice(-500)}`);
        const r = results.get(c.name) ?? { seconds: [], rss: [] };
        r.seconds.push(m.seconds);
        if (m.rssMiB !== undefined) r.rss.push(m.rssMiB);
        results.set(c.name, r);
      }
    }
    await fresh();
    const rate = (name: string) => total / MiB / median(results.get(name)!.seconds);
    const ours = rate(contenders[0]!.name);
    for (const c of contenders) {
      const r = results.get(c.name)!;
      rows.push([set.label, c.name, `${median(r.seconds).toFixed(2)} s`, `${rate(c.name).toFixed(0)} MiB/s`,
        c === contenders[0] ? '' : `${(ours / rate(c.name)).toFixed(2)}x`, r.rss.length ? `${Math.max(...r.rss).toFixed(0)} MiB` : '-']);
    }
  }
  const header = ['set', 'tool', 'median time', 'throughput', 'ours / this', 'peak RSS'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [header, ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  console.log(`goals: ours / curl >= 0.90; sourcemesh peak RSS < 150 MB. nginx ${nginx.version}, ${reps} runs each, median.`);
} finally {
  await cleanup();
}
