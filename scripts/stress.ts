// `npm run stress -- [--mirrors N] [--clients N] [--duration 60s] [--seed S] [--faults LIST] [--concurrency N] [--out DIR] [--cli head|build|src|dist]`:
// a whole sourcemesh network in network namespaces under seeded faults, checked from its history
// (test/stress/harness.ts; docs/OPERATIONS.md, "Stress runs"). Needs root (ip netns, nft, mount).
// Exit 0: every invariant held; 1: the checker found violations; 2: bad usage; 3: the harness failed.
import { parseArgs } from 'node:util';
import { runStress } from '../test/stress/harness.ts';
import { FAULT_KINDS, parseFaultKinds } from '../test/stress/schedule.ts';

function duration(flag: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v);
  if (!m) throw new Error(`${flag}: ${JSON.stringify(v)} is not a duration (e.g. 90s, 5m)`);
  return Math.round(Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000));
}

function count(flag: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${flag}: ${JSON.stringify(v)} is not an integer in [${min}, ${max}]`);
  return n;
}

let opts;
try {
  const { values } = parseArgs({
    options: {
      mirrors: { type: 'string', default: '4' },
      clients: { type: 'string', default: '6' },
      duration: { type: 'string', default: '60s' },
      seed: { type: 'string', default: String(Date.now() % 2 ** 31) },
      faults: { type: 'string', default: 'all' },
      concurrency: { type: 'string', default: '3' },
      out: { type: 'string' },
      cli: { type: 'string', default: 'head' },
      'broken-client': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`usage: npm run stress -- [--mirrors N] [--clients N] [--duration 60s] [--seed S] [--faults LIST] [--concurrency N] [--out DIR] [--cli head|build|src|dist]\n  faults: all, none, or a comma-separated list of ${FAULT_KINDS.join(', ')}\n`);
    process.exit(0);
  }
  if (!['head', 'build', 'src', 'dist'].includes(values.cli)) throw new Error(`--cli: head, build, src or dist, not ${values.cli}`);
  opts = {
    mirrors: count('--mirrors', values.mirrors, 2, 200),
    clients: count('--clients', values.clients, 1, 500),
    durationMs: duration('--duration', values.duration),
    seed: count('--seed', values.seed, 0, 2 ** 31 - 1),
    faults: parseFaultKinds(values.faults),
    concurrency: count('--concurrency', values.concurrency, 1, 500),
    out: values.out,
    cli: values.cli as 'head' | 'build' | 'src' | 'dist',
    brokenClient: values['broken-client'],
  };
} catch (err) {
  process.stderr.write(`stress: ${(err as Error).message}\n`);
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  process.stderr.write('stress: needs root (network namespaces, nftables, tmpfs mounts)\n');
  process.exit(2);
}
// One SIGINT/SIGTERM ends the run; the harness's exit hook tears the network down.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));
try {
  const r = await runStress(opts);
  process.stdout.write(r.report);
  process.exitCode = r.result.ok ? 0 : 1;
} catch (err) {
  process.stderr.write(`stress: the harness failed: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 3;
}
