// The stress harness: a whole sourcemesh network on one machine, in network namespaces
// (test/helpers/netns.ts), with faults from a seeded schedule (schedule.ts), every operation and fault
// in a JSON-lines history (history.ts), and the checker (check.ts) run over it at the end.
// docs/OPERATIONS.md, "Stress runs", says how to run it and read its report.
//
// This module runs one: the network and what runs on it (nodes.ts), upstream's material (material.ts),
// the servers (servers.ts: upstream, the log and witnesses `w1`..`w3`, mirrors `m1`..`mN` with serve
// and seed), then the load phase: clients `c1`..`cC` (clients.ts), faults (faults.ts), releases and
// re-syncs, and the records the checker needs besides (observe.ts). New roles add a process next to the
// mirror's (servers.ts), and their faults a case in faults.ts.
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { prepareCli, type CliMode } from '../../bench/lib/cli.ts';
import { Network, newRunId, sweepStale, workDirOf } from '../helpers/netns.ts';
import { ROOT } from '../helpers/run.ts';
import { check, formatReport, type CheckResult } from './check.ts';
import { Clients } from './clients.ts';
import { Faults } from './faults.ts';
import { History, readHistory } from './history.ts';
import { makeMaterial } from './material.ts';
import { Nodes } from './nodes.ts';
import { finalChecks, watchCheckpoints } from './observe.ts';
import { type FaultKind, planFaults } from './schedule.ts';
import { makeTrust, Servers, type Run } from './servers.ts';

export interface StressOptions {
  mirrors: number;
  clients: number;
  durationMs: number;
  seed: number;
  faults: readonly FaultKind[];
  /** At most this many client operations at once (the machine has few cores). */
  concurrency: number;
  /** Where the history, the report and every process's log are kept. */
  out?: string;
  /**
   * Which sourcemesh runs: `head` (the last commit, exported into the run's work directory and run from
   * its sources, so that edits in the working tree during a run can't change it), or bench/lib/cli.ts's
   * `build` (the working tree compiled), `src` (the working tree as it is) or `dist` (as last built).
   */
  cli: CliMode | 'head';
  /** Test-only: this client skips verification (downloads with curl, exports what it got). */
  brokenClient?: string;
  log?: (line: string) => void;
}

export interface StressResult {
  runId: string;
  out: string;
  history: string;
  result: CheckResult;
  report: string;
}

/** The last commit's program, exported with git archive into WORK/head and run from its sources. */
function headCli(work: string): { argv: string[]; warnings: string[] } {
  const dir = path.join(work, 'head');
  mkdirSync(dir, { recursive: true });
  const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  execFileSync('sh', ['-c', 'git archive HEAD src package.json | tar -x -C "$1"', 'sh', dir], { cwd: ROOT });
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  return { argv: [process.execPath, path.join(dir, 'src/cli/main.ts')], warnings: [`running the last commit, ${commit.slice(0, 12)} (uncommitted changes are not part of this run)`] };
}

export async function runStress(o: StressOptions): Promise<StressResult> {
  const say = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const tmp = os.tmpdir();
  const swept = sweepStale(tmp);
  if (swept.length > 0) say(`swept the remains of earlier runs: ${swept.join(', ')}`);
  const runId = newRunId();
  const work = workDirOf(runId, tmp);
  const out = path.resolve(o.out ?? path.join(tmp, `sourcemesh-stress-${runId}.out`));
  mkdirSync(path.join(out, 'logs'), { recursive: true });
  mkdirSync(work, { recursive: true });
  const cli = o.cli === 'head' ? headCli(work) : await prepareCli(ROOT, work, o.cli);
  for (const w of cli.warnings) say(`warning: ${w}`);
  const net = Network.create(runId);
  const history = new History(path.join(out, 'history.jsonl'), performance.now());
  const nodes = new Nodes(net, cli.argv, out, history);
  const run: Run = {
    nodes, history, work, out, say,
    srcDir: o.cli === 'head' ? path.join(work, 'head', 'src') : path.join(ROOT, 'src'),
    mirrors: Array.from({ length: o.mirrors }, (_, i) => `m${i + 1}`),
    clients: Array.from({ length: o.clients }, (_, i) => `c${i + 1}`),
    live: { ending: false },
    timers: [],
  };
  const onExit = () => net.destroy(work);
  process.once('exit', onExit);
  let stopWatching = () => {};
  let resync: NodeJS.Timeout | undefined;
  try {
    // --- the network
    for (const n of ['up', 'log', 'w1', 'w2', 'w3', ...run.mirrors, ...run.clients]) net.add(n);
    say(`run ${runId}: ${net.nodes.size} namespaces on a bridge in ${net.bridgeNs}; work ${work}; out ${out}`);

    // --- upstream's files, git repository, manifests and torrents; the schedule
    const m = await makeMaterial(o.seed, work, nodes);
    const faults = planFaults({ seed: o.seed, mirrors: o.mirrors, durationMs: o.durationMs, kinds: o.faults, files: m.files.map((f) => f.name), clients: o.clients });
    history.add({ type: 'run', seed: o.seed, durationMs: o.durationMs, nodes: Object.fromEntries([...net.nodes.values()].map((n) => [n.name, n.address])), mirrors: run.mirrors, clients: run.clients, faults, pins: m.pins, ...(o.brokenClient ? { broken: o.brokenClient } : {}) });
    say(`seed ${o.seed}: ${faults.length} faults scheduled (${faults.map((f) => `${f.kind}@${f.target}`).join(' ') || 'none'})`);

    // --- keys, policies, servers; the first release; mirrors synced, serving and seeding
    const trust = await makeTrust(run);
    const servers = new Servers(run, m, trust);
    await servers.startCore();
    for (let i = 0; i < 10 && !(await servers.release('1')); i++) await new Promise((r) => setTimeout(r, 1000));
    if (servers.released !== '1') throw new Error('the first release could not be logged; see the maintainer log');
    await servers.startMirrors(faults);
    say(`${run.mirrors.length} mirrors synced, serving and seeding; ${run.clients.length} clients start (${o.durationMs / 1000} s)`);

    // --- the load phase: faults, releases, re-syncs, clients, checkpoint watch
    const load0 = performance.now();
    const clients = new Clients(run, servers, m, trust, o);
    const injected = new Faults(run, servers, m, trust, clients, o.seed);
    injected.schedule(faults);
    for (const [at, version] of [[0.35, '2'], [0.7, '3']] as const) {
      injected.at(o.durationMs * at, async () => {
        for (let i = 0; i < 5 && !run.live.ending && !(await servers.release(version)); i++) await new Promise((r) => setTimeout(r, 2000));
        for (const mirror of run.mirrors) void servers.sync(mirror);
      });
    }
    stopWatching = watchCheckpoints(run, servers.logRoot);
    resync = setInterval(() => {
      const mirror = run.mirrors[Math.floor(((performance.now() - load0) / 1000) % run.mirrors.length)]!;
      void servers.sync(mirror);
    }, Math.max(5000, o.durationMs / 8));
    await clients.runAll(load0);
    run.live.ending = true;
    clearInterval(resync);
    for (const t of run.timers) clearTimeout(t);
    await injected.healAll();
    while (servers.syncing.size > 0) await new Promise((r) => setTimeout(r, 200));
    await finalChecks(run, servers, m, trust);
    stopWatching();
    history.add({ type: 'end' });
    if (injected.errors.length > 0) throw new Error(`the harness failed to inject or end faults: ${injected.errors.join('; ')}`);
    const result = check(readHistory(history.file));
    const report = `sourcemesh stress run ${runId}: seed ${o.seed}, ${o.mirrors} mirrors, ${o.clients} clients, ${o.durationMs / 1000} s, faults ${o.faults.join(',') || 'none'}\n${formatReport(result)}history: ${history.file}\n`;
    writeFileSync(path.join(out, 'report.txt'), report);
    return { runId, out, history: history.file, result, report };
  } finally {
    run.live.ending = true;
    clearInterval(resync);
    stopWatching();
    for (const t of run.timers) clearTimeout(t);
    nodes.killAll();
    net.destroy(work);
    process.removeListener('exit', onExit);
  }
}
