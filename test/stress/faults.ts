// The faults of a stress run (planned from the seed by schedule.ts), injected and ended at their times,
// each recorded in the history once it is in effect. A new fault kind is a case in `apply`.
import { type ChildProcess, execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT } from '../helpers/run.ts';
import type { Clients } from './clients.ts';
import { content, sha256, type Material } from './material.ts';
import { RT_LIAR_PORT, RT_PORT } from './nodes.ts';
import type { Fault } from './schedule.ts';
import type { Run, Servers, Trust } from './servers.ts';

const KiB = 1024;

export class Faults {
  /** Faults in effect now. */
  private readonly on = new Set<Fault>();
  private readonly rtLiars = new Map<string, ChildProcess>();
  /** Faults the harness failed to inject or end: the run then ends as a harness failure. */
  readonly errors: string[] = [];
  private readonly run: Run;
  private readonly servers: Servers;
  private readonly m: Material;
  private readonly trust: Trust;
  private readonly clients: Clients;
  private readonly seed: number;

  constructor(run: Run, servers: Servers, m: Material, trust: Trust, clients: Clients, seed: number) {
    this.run = run;
    this.servers = servers;
    this.m = m;
    this.trust = trust;
    this.clients = clients;
    this.seed = seed;
  }

  /** Run `fn` at `ms` from now; an error in it is a harness error (a run must not pass on faults that never happened). */
  at(ms: number, fn: () => unknown): void {
    this.run.timers.push(setTimeout(() => void Promise.resolve().then(fn).catch((e) => {
      this.errors.push((e as Error).message);
      this.run.say(`error: ${(e as Error).stack}`);
    }), ms));
  }

  /** Each fault started and ended at its time (from now, the start of the load). */
  schedule(faults: readonly Fault[]): void {
    const { history, live } = this.run;
    for (const f of faults) {
      this.at(f.at, async () => {
        if (live.ending) return;
        await this.apply(f, 'start');
        this.on.add(f);
        history.add({ type: 'fault', kind: f.kind, target: f.target, phase: 'start', ...(f.param !== undefined ? { param: f.param } : {}) });
      });
      if (f.until !== undefined) {
        this.at(f.until, async () => {
          if (!this.on.delete(f)) return;
          await this.apply(f, 'end');
          history.add({ type: 'fault', kind: f.kind, target: f.target, phase: 'end' });
        });
      }
    }
  }

  /** End every fault still on, so the final checks see a healed network; processes stopped go on. */
  async healAll(): Promise<void> {
    const { history, nodes } = this.run;
    for (const f of this.on) {
      if (f.until === undefined) continue; // a liar lies and a replaced file stays replaced to the end
      this.on.delete(f);
      await this.apply(f, 'end');
      history.add({ type: 'fault', kind: f.kind, target: f.target, phase: 'end' });
    }
    for (const p of nodes.procs) if (p.child && p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGCONT');
  }

  private filler(mirror: string): string {
    return path.join(this.servers.roots.get(mirror)!, '.filler');
  }

  private async apply(f: Fault, phase: 'start' | 'end'): Promise<void> {
    const { nodes, work, srcDir, clients, timers, say } = this.run;
    const { servers, m } = this;
    const p = nodes.procs.find((x) => x.name === f.target);
    switch (f.kind) {
      case 'seed-kill': {
        const seed = servers.seedProcs.get(f.target)!;
        if (phase === 'start') seed.child?.kill('SIGKILL');
        else await nodes.start(seed).catch((e) => say(`restart ${seed.name}: ${(e as Error).message}`));
        break;
      }
      case 'seed-liar':
        nodes.changeProxy(`${f.target}:seed`, { tamper: phase === 'start' });
        break;
      case 'time-liar':
        if (phase === 'start') {
          // The witness's own key, a clock param seconds off; its Roughtime port redirected there.
          const k = this.trust.wKeys[Number(f.target.slice(1)) - 1]!;
          const liar = nodes.net.spawn(f.target, [process.execPath, path.join(ROOT, 'test/stress/roughtime-liar.ts'), srcDir, k.file, `${nodes.address(f.target)}:${RT_LIAR_PORT}`, String(Number(f.param) * 1000)], { stdio: ['ignore', 'pipe', 'pipe'] });
          this.rtLiars.set(f.target, liar);
          liar.stderr!.pipe(nodes.logFile(`${f.target}-roughtime-liar`));
          await new Promise<void>((resolve, reject) => {
            createInterface({ input: liar.stdout! }).once('line', () => resolve());
            liar.once('exit', (code) => reject(new Error(`the Roughtime liar of ${f.target} exited (${code})`)));
          });
          nodes.net.nft(f.target, `table ip stress_rt {\n chain pre { type nat hook prerouting priority -100; udp dport ${RT_PORT} redirect to :${RT_LIAR_PORT}; }\n}\n`);
          // One client asks for signed time right away (once the fault is on record), as a sync follows
          // a full disk: the lie is put to a client in every run, not only when a client happens by.
          const asker = clients[Math.floor(f.at / 1000) % clients.length]!;
          timers.push(setTimeout(() => void this.clients.signedTime(asker), 500));
        } else {
          nodes.net.nft(f.target, 'delete table ip stress_rt\n');
          this.rtLiars.get(f.target)?.kill('SIGKILL');
        }
        break;
      case 'bogus-attest': {
        // The mirror's builder key attests other bytes for the snapshot it made, and its serve publishes
        // that bundle in place of its own from now on (until a sync writes its own again).
        const dir = path.join(work, 'forged', f.target);
        mkdirSync(dir, { recursive: true });
        const claim = { kind: 'git-snapshot', name: m.snapName, sha256: sha256(Buffer.from(`forged by ${f.target}`)), repository: m.repoUrl, ref: m.commit, commit: m.commit, prefix: m.prefix, compression: 'gzip-n', level: 6 };
        const r = spawnSync(process.execPath, [path.join(ROOT, 'test/stress/forge-attestation.ts'), srcDir, servers.nodeKeyOf(f.target), dir, JSON.stringify(claim)], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`forging an attestation of ${f.target}: ${r.stderr}`);
        const forgery = r.stdout.trim();
        servers.forged.set(f.target, readFileSync(forgery));
        const published = servers.attestationsDir(f.target);
        mkdirSync(published, { recursive: true });
        copyFileSync(forgery, path.join(published, '.forgery.tmp'));
        renameSync(path.join(published, '.forgery.tmp'), path.join(published, path.basename(forgery)));
        break;
      }
      case 'kill':
        if (phase === 'start') p?.child?.kill('SIGKILL');
        else if (p) await nodes.start(p).catch((e) => say(`restart ${p.name}: ${(e as Error).message}`));
        break;
      case 'stop':
        p?.child?.kill(phase === 'start' ? 'SIGSTOP' : 'SIGCONT');
        break;
      case 'partition':
        if (phase === 'start') nodes.nftTable(f.target, 'drop');
        else nodes.nftClear(f.target);
        break;
      case 'loss':
        if (phase === 'start') nodes.nftTable(f.target, `numgen random mod 100 < ${f.param} drop`);
        else nodes.nftClear(f.target);
        break;
      case 'latency':
        nodes.changeProxy(f.target, { latencyMs: phase === 'start' ? Number(f.param) : 0 });
        break;
      case 'bandwidth':
        nodes.changeProxy(f.target, { bytesPerSec: phase === 'start' ? Number(f.param) : 0 });
        break;
      case 'reset':
        nodes.changeProxy(f.target, { resetPercent: phase === 'start' ? Number(f.param) : 0 });
        break;
      case 'refuse':
        nodes.changeProxy(f.target, { refuse: phase === 'start' });
        break;
      case 'liar':
        nodes.changeProxy(f.target, { tamper: phase === 'start' });
        break;
      case 'replace': {
        const file = path.join(m.upDir, String(f.param));
        const size = m.sizes.get(String(f.param))!;
        writeFileSync(`${file}.new`, content(this.seed + 1, String(f.param), size));
        renameSync(`${file}.new`, file);
        break;
      }
      case 'disk-full':
        if (phase === 'start') {
          const s = statfsSync(servers.roots.get(f.target)!);
          const free = s.bavail * s.bsize;
          if (free > 64 * KiB) execFileSync('fallocate', ['-l', String(free - 32 * KiB), this.filler(f.target)]);
          void servers.sync(f.target);
        } else rmSync(this.filler(f.target), { force: true });
        break;
    }
  }
}
