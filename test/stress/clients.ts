// The clients of a stress run, `c1`..`cC`, each in its namespace: a loop of `fetch` (over the mirrors
// given, with BitTorrent too, or from the mirrors it discovers), then in turn `release verify`,
// `sourcemesh time`, or `attest verify` of the bundles it fetched from the mirrors over HTTP. One client
// may be broken on purpose (test-only): it skips verification, and the checker must catch it.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { bundleFileName } from '../../src/attest/files.ts';
import { Prng } from '../helpers/prng.ts';
import { nodeOfKeyName } from './check.ts';
import type { AttestedSnapshot, FileReport, Transport } from './history.ts';
import { hashDir } from './observe.ts';
import type { Material } from './material.ts';
import { SEED_PORT } from './nodes.ts';
import { BUILDERS_THRESHOLD, type Run, type Servers, type Trust } from './servers.ts';

class Semaphore {
  #free: number;
  #waiting: (() => void)[] = [];
  constructor(n: number) {
    this.#free = n;
  }
  async take(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((r) => this.#waiting.push(r));
  }
  give(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

export interface ClientOptions {
  seed: number;
  durationMs: number;
  /** At most this many client operations at once. */
  concurrency: number;
  brokenClient?: string;
}

export class Clients {
  private readonly run: Run;
  private readonly servers: Servers;
  private readonly m: Material;
  private readonly trust: Trust;
  private readonly o: ClientOptions;
  private readonly gate: Semaphore;
  private opCount = 0;

  constructor(run: Run, servers: Servers, m: Material, trust: Trust, o: ClientOptions) {
    this.run = run;
    this.servers = servers;
    this.m = m;
    this.trust = trust;
    this.o = o;
    this.gate = new Semaphore(o.concurrency);
  }

  /** Every client's loop, until `durationMs` after `load0` (performance.now()) or the run ends. */
  async runAll(load0: number): Promise<void> {
    await Promise.all(this.run.clients.map((c, i) => this.loop(c, i, load0)));
  }

  private async loop(c: string, i: number, load0: number): Promise<void> {
    const { nodes, history, work, mirrors, live } = this.run;
    const { o, m } = this;
    const crng = new Prng(o.seed * 31 + i);
    // A third of the clients also take pieces from the mirrors' seeds, a third use only the mirrors
    // they discover on the link (and upstream), the rest the mirrors they are given.
    const transport: Transport = i % 3 === 1 ? 'bittorrent' : i % 3 === 2 ? 'discover' : 'mirrors';
    let n = 0;
    await new Promise((r) => setTimeout(r, crng.below(2000)));
    while (performance.now() - load0 < o.durationMs && !live.ending) {
      await this.gate.take();
      try {
        const op = ++this.opCount;
        const version = this.servers.released;
        const dir = path.join(work, 'clients', c, String(++n));
        mkdirSync(dir, { recursive: true });
        const start = history.now();
        let exit: number | null;
        let files: FileReport[] = [];
        if (o.brokenClient === c) {
          // Test-only: no verification at all; each file from one mirror in turn, exported as it came.
          exit = 0;
          const manifest = JSON.parse(readFileSync(m.manifestFile(version), 'utf8')) as { distfiles: { name: string }[] };
          mkdirSync(path.join(dir, 'out'), { recursive: true });
          for (const [k, d] of manifest.distfiles.entries()) {
            const from = mirrors[(op + k) % mirrors.length]!;
            const r = (await nodes.exec(c, ['curl', '-sf', '-m', '10', '-o', path.join(dir, 'out', d.name), `${nodes.url(from)}/${d.name}`])).code;
            if (r !== 0) exit = 1;
            files.push({ name: d.name, status: r === 0 ? 'fetched' : 'failed', source: `${nodes.url(from)}/`, rejected: [] });
          }
        } else {
          const given = mirrors.flatMap((mirror) => ['--mirror', `${nodes.url(mirror)}/`]);
          const how = transport === 'discover' ? ['--discover', '2']
            : transport === 'bittorrent' ? [...given, '--bittorrent', ...m.torrentsOf(version).flatMap((t) => ['--torrent', t]), ...mirrors.flatMap((mirror) => ['--peer', `${nodes.address(mirror)}:${SEED_PORT}`]), '--no-upload']
              : given;
          const r = await nodes.runIn(c, c, ['fetch', m.manifestFile(version), '-o', path.join(dir, 'out'), '--store', path.join(dir, 'store'), '--json', '--timeout', '5', '--retries', '1', '-j', '2', '--segments', '4', '--min-piece', '256KiB', ...how], 180_000);
          exit = r.code;
          try {
            files = ((JSON.parse(r.stdout) as { files: FileReport[] }).files ?? []).map((f) => ({ name: f.name, status: f.status, source: f.source, size: f.size, ms: f.ms, contributors: f.contributors, rejected: (f.rejected ?? []).map((x) => ({ source: x.source, code: x.code })) }));
          } catch {
            files = [];
          }
        }
        history.add({ type: 'fetch', op, client: c, start, exit, version, exported: hashDir(path.join(dir, 'out')), files, ...(o.brokenClient === c ? { broken: true } : { transport }) });
        if (n % 3 === 1 && !live.ending) {
          const v = await nodes.runIn(c, c, ['release', 'verify', m.manifestFile(version), '--trust-policy', this.trust.policy, '--state', path.join(work, 'clients', c, 'state')]);
          history.add({ type: 'release-verify', client: c, version, exit: v.code });
        }
        if (n % 3 === 2 && !live.ending) await this.signedTime(c);
        if (n % 3 === 0 && !live.ending) await this.attestCheck(c, version, dir);
        rmSync(dir, { recursive: true, force: true });
      } finally {
        this.gate.give();
      }
      await new Promise((r) => setTimeout(r, 200 + crng.below(1500)));
    }
  }

  /** `sourcemesh time` with the witnesses' Roughtime: who agreed, who was named a liar, who failed. */
  async signedTime(c: string): Promise<void> {
    const { nodes, history, work } = this.run;
    const start = history.now();
    const q = await nodes.runIn(c, c, ['time', '--trust-policy', this.trust.timePolicy, '--state', path.join(work, 'clients', c, 'state-time'), '--json'], 60_000);
    let r: { agreed?: string[]; liars?: { witness: string }[]; failed?: { server: string }[] } = {};
    try {
      r = JSON.parse(q.stdout);
    } catch {
      r = {};
    }
    history.add({ type: 'time', client: c, start, exit: q.code, agreed: (r.agreed ?? []).map(nodeOfKeyName), liars: (r.liars ?? []).map((l) => nodeOfKeyName(l.witness)), failed: (r.failed ?? []).map((f) => nodeOfKeyName(f.server)) });
  }

  /**
   * `attest verify` of the snapshot's attestations with the builders' quorum of the mirrors' keys. The
   * client fetches them as any client would: each mirror's bundle over HTTP, through the mirror's proxy,
   * at the name serve publishes it under (docs/FORMATS.md, "Attestations": the distfile's name and the
   * builder's key). A bundle that did not come whole is not given. What the client got is then compared
   * with what the mirror publishes (the harness's view): the forgery of a bogus-attest fault, or the
   * mirror's own bundle (an honest builder).
   */
  private async attestCheck(c: string, version: string, dir: string): Promise<void> {
    const { nodes, history, mirrors, work } = this.run;
    const start = history.now();
    const given = path.join(dir, 'attestations');
    mkdirSync(given, { recursive: true });
    const got = await Promise.all(mirrors.map(async (mirror, i) => {
      const name = bundleFileName(this.m.snapName, this.trust.builderVkeys[i]!);
      const file = path.join(given, name);
      const { code } = await nodes.exec(c, ['curl', '-sf', '-m', '5', '-o', file, `${nodes.url(mirror)}/.well-known/sourcemesh/attestations/${name}`]);
      if (code !== 0) {
        rmSync(file, { force: true });
        return { mirror, kind: 'none' as const };
      }
      const bytes = readFileSync(file);
      // The forgeries now (a forgery starts being served once it is recorded here), then the mirror's own.
      if (this.servers.forged.get(mirror)?.equals(bytes)) return { mirror, kind: 'forged' as const };
      const own = (() => {
        try {
          return readFileSync(path.join(this.servers.attestationsDir(mirror), name));
        } catch {
          return undefined;
        }
      })();
      return { mirror, kind: own?.equals(bytes) ? ('honest' as const) : ('other' as const) };
    }));
    const honest = got.filter((g) => g.kind === 'honest').length;
    const q = await nodes.runIn(c, c, ['attest', 'verify', given, '--trust-policy', this.trust.builderPolicy, '--manifest', this.m.manifestFile(version), '--state', path.join(work, 'clients', c, 'state-attest'), '--json'], 60_000);
    let snapshots: AttestedSnapshot[] = [];
    try {
      const r = JSON.parse(q.stdout) as { snapshots: { name: string; accepted: boolean; sha256?: string; builders?: string[]; liars?: { builder: string }[] }[] };
      snapshots = r.snapshots.map((x) => ({ name: x.name, accepted: x.accepted, ...(x.sha256 ? { sha256: x.sha256 } : {}), builders: (x.builders ?? []).map(nodeOfKeyName), liars: (x.liars ?? []).map((l) => nodeOfKeyName(l.builder)) }));
    } catch {
      snapshots = [];
    }
    const bogus = got.find((g) => g.kind === 'forged')?.mirror;
    history.add({ type: 'attest', client: c, start, version, exit: q.code, ...(bogus !== undefined ? { bogus } : {}), honestBuilders: honest, threshold: BUILDERS_THRESHOLD, snapshots });
  }
}
