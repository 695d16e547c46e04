// The serving roles of a stress run: `up` (upstream: a static server of distfiles and git repositories,
// upstream.ts; the release maintainer runs here too), `log` (log serve), `w1`..`w3` (witness serve, also
// Roughtime over UDP) and `m1`..`mN` (mirror sync, which attests what it derived, + serve --announce +
// seed), with the keys and trust policies they and the clients use, releases and mirror syncs.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/run.ts';
import type { History } from './history.ts';
import { hashDir } from './observe.ts';
import type { Material } from './material.ts';
import { BEHIND, DIRECT, PORT, RT_PORT, SEED_PORT, type Nodes, type Proc } from './nodes.ts';
import type { Fault } from './schedule.ts';

export const LOG_ORIGIN = 'log.stress.test/main';
export const BUILDERS_THRESHOLD = 2;
const MiB = 1024 * 1024;

/** What a run shares between its parts: the network, the history, the run's directories and state. */
export interface Run {
  nodes: Nodes;
  history: History;
  work: string;
  out: string;
  /** The sources the harness's own helpers (roughtime-liar.ts, forge-attestation.ts) load: the run's. */
  srcDir: string;
  mirrors: string[];
  clients: string[];
  say: (line: string) => void;
  /** Set once the load phase is over: nothing new starts. */
  live: { ending: boolean };
  timers: NodeJS.Timeout[];
}

export interface Key {
  file: string;
  pub: string;
  vkey: string;
}

/** Keys and trust policies: the log's, the witnesses' (2 of 3), the release signers' (2 of 2). */
export interface Trust {
  logKey: Key;
  wKeys: Key[];
  policy: string;
  /** The policy with signed time from the three witnesses' Roughtime, 2 of 3 (for `sourcemesh time`). */
  timePolicy: string;
  /** The policy with the builders' quorum of the mirrors' node keys (written once they exist). */
  builderPolicy: string;
  /** The mirrors' node keys (their builder keys), in mirror order; filled by `Servers.startMirrors`. */
  builderVkeys: string[];
  releaseKeys: Key[];
  policyBody: object;
}

export async function makeTrust(run: Run): Promise<Trust> {
  const { nodes, work } = run;
  const keys = path.join(work, 'keys');
  mkdirSync(keys);
  const keygen = async (name: string, file: string, type = 'note'): Promise<Key> => {
    const r = await nodes.runIn('up', 'keys', ['key', 'generate', name, '-o', path.join(keys, file), '--type', type]);
    if (r.code !== 0) throw new Error(`key generate ${name} failed`);
    return { file: path.join(keys, file), pub: path.join(keys, `${file}.pub`), vkey: readFileSync(path.join(keys, `${file}.pub`), 'utf8').trim() };
  };
  const logKey = await keygen(LOG_ORIGIN, 'log.key');
  const wKeys = await Promise.all([1, 2, 3].map((i) => keygen(`w${i}.stress.test`, `w${i}.key`, 'cosignature')));
  const releaseKeys = await Promise.all([1, 2].map((i) => keygen(`release${i}.stress.test`, `release${i}.key`)));
  const policy = path.join(work, 'policy.json');
  const policyBody = {
    format: 'sourcemesh.policy/v1', log: { vkey: logKey.vkey, url: nodes.url('log') },
    witnesses: { quorum: 2, vkeys: wKeys.map((k) => k.vkey) }, release: { threshold: 2, vkeys: releaseKeys.map((k) => k.vkey) }, maxCheckpointAgeSeconds: 3600,
  };
  writeFileSync(policy, JSON.stringify(policyBody, null, 2));
  const timePolicy = path.join(work, 'policy-time.json');
  writeFileSync(timePolicy, JSON.stringify({
    ...policyBody,
    time: { roughtime: [1, 2, 3].map((i) => ({ witness: `w${i}.stress.test`, address: `${nodes.address(`w${i}`)}:${RT_PORT}` })), quorum: 2 },
  }, null, 2));
  return { logKey, wKeys, policy, timePolicy, builderPolicy: path.join(work, 'policy-builders.json'), builderVkeys: [], releaseKeys, policyBody };
}

export class Servers {
  /** The newest release the log acknowledged ('0': none yet). */
  released = '0';
  readonly syncing = new Set<string>();
  /** Each mirror's root (a small tmpfs for a mirror a disk-full fault targets). */
  readonly roots = new Map<string, string>();
  readonly mirrorProcs = new Map<string, Proc>();
  readonly seedProcs = new Map<string, Proc>();
  readonly logRoot: string;
  /** A mirror's forged attestation of the snapshot (bogus-attest), as it publishes it from then on. */
  readonly forged = new Map<string, Buffer>();
  private readonly run: Run;
  private readonly m: Material;
  private readonly trust: Trust;

  constructor(run: Run, m: Material, trust: Trust) {
    this.run = run;
    this.m = m;
    this.trust = trust;
    this.logRoot = path.join(run.work, 'log');
  }

  /** Upstream, the three witnesses and the log, each behind its proxy but upstream. */
  async startCore(): Promise<void> {
    const { nodes, work } = this.run;
    const { logKey, wKeys } = this.trust;
    await nodes.start({ name: 'up', node: 'up', argv: [process.execPath, path.join(ROOT, 'test/stress/upstream.ts'), this.m.upDir, `${nodes.address('up')}:${PORT}`], stopped: false });
    const cli = nodes.cliArgv;
    const witnesses: Proc[] = wKeys.map((k, i) => ({ name: `w${i + 1}`, node: `w${i + 1}`, stopped: false, argv: [...cli, 'witness', 'serve', '--state', path.join(work, `w${i + 1}`), '--key', k.file, '--listen', BEHIND, '--log', logKey.pub, '--log-level', 'warn', '--roughtime', `${nodes.address(`w${i + 1}`)}:${RT_PORT}`] }));
    const logProc: Proc = { name: 'log', node: 'log', stopped: false, argv: [...cli, 'log', 'serve', '--root', this.logRoot, '--key', logKey.file, '--listen', BEHIND, '--checkpoint-interval', '500ms', '--log-level', 'warn', '--admit-any-signed', '--quorum', '2', ...wKeys.flatMap((k, i) => ['--witness', `${k.pub}=${nodes.url(`w${i + 1}`)}`])] };
    await Promise.all(['log', 'w1', 'w2', 'w3'].map((n) => nodes.startProxy(n)));
    await Promise.all(witnesses.map((w) => nodes.start(w)));
    await nodes.start(logProc);
  }

  /** The maintainer signs `version` and submits it to the log; true when the log acknowledged it. */
  async release(version: string): Promise<boolean> {
    const { nodes, history } = this.run;
    const [k1, k2] = this.trust.releaseKeys;
    const r = await nodes.runIn('up', 'maintainer', ['release', 'sign', this.m.manifestFile(version), '--key', k1!.file, '--key', k2!.file, '--log', nodes.url('log'), '--json'], 60_000);
    let index: number | undefined;
    try {
      index = r.code === 0 ? (JSON.parse(r.stdout) as { index: number }).index : undefined;
    } catch {
      index = undefined;
    }
    history.add({ type: 'release', version, exit: r.code, ...(index !== undefined ? { index } : {}) });
    if (r.code === 0) this.released = version;
    return r.code === 0;
  }

  /** `mirror sync` of the newest release into the mirror's root, then a scan of what the root publishes. */
  async sync(m: string): Promise<void> {
    const { nodes, history, live } = this.run;
    if (this.syncing.has(m) || live.ending) return;
    this.syncing.add(m);
    const start = history.now();
    const version = this.released;
    const r = await nodes.runIn(m, `${m}-sync`, ['mirror', 'sync', this.m.manifestFile(version), '--root', this.roots.get(m)!, '--key-name', `${m}.stress.test`, '--timeout', '5', '--retries', '2', '-j', '2']);
    history.add({ type: 'sync', mirror: m, version, exit: r.code, start });
    history.add({ type: 'mirror-files', mirror: m, files: hashDir(this.roots.get(m)!) });
    this.syncing.delete(m);
  }

  /**
   * The mirrors: roots (a tmpfs for those a disk-full fault targets), proxies, a first sync two at a time,
   * then serve on every address of the node (the proxy reaches it on loopback, discovering clients on the
   * address it announces) and the seed beside it over the same root. Then the builders' policy.
   */
  async startMirrors(faults: readonly Fault[]): Promise<void> {
    const { nodes, history, work, mirrors, out, say } = this.run;
    const cli = nodes.cliArgv;
    for (const m of mirrors) {
      const r = path.join(work, 'mirrors', m);
      mkdirSync(r, { recursive: true });
      if (faults.some((f) => f.kind === 'disk-full' && f.target === m)) execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${32 * MiB}`, 'tmpfs', r]);
      this.roots.set(m, r);
      this.mirrorProcs.set(m, { name: m, node: m, stopped: false, argv: [...cli, 'serve', '--root', r, '--listen', `0.0.0.0:${DIRECT}`, '--announce', '--no-access-log', '--send-timeout', '10s', '--shutdown-timeout', '1s'] });
      this.seedProcs.set(m, { name: `${m}-seed`, node: m, stopped: false, argv: [...cli, 'seed', '--root', r, '--listen', `127.0.0.1:${SEED_PORT}`, '--max-peers', '64'] });
    }
    await Promise.all(mirrors.flatMap((m) => [nodes.startProxy(m), nodes.startProxy(m, true)]));
    for (let i = 0; i < mirrors.length; i += 2) await Promise.all(mirrors.slice(i, i + 2).map((m) => this.sync(m)));
    await Promise.all(mirrors.map((m) => nodes.start(this.mirrorProcs.get(m)!)));
    // A seed that does not start (the program under test failed it) is recorded and the run goes on
    // without it: the report says so, and BitTorrent clients then have the mirrors alone.
    await Promise.all(mirrors.map((m) => nodes.start(this.seedProcs.get(m)!).catch((e: Error) => {
      say(`warning: ${e.message}`);
      history.add({ type: 'role-failed', role: 'seed', node: m, message: readFileSync(path.join(out, 'logs', `${m}-seed.log`), 'utf8').split('\n')[0]!.slice(0, 300) });
    })));
    // The builders' quorum: every mirror's node key (made by its first sync), threshold 2.
    this.trust.builderVkeys.push(...mirrors.map((m) => readFileSync(path.join(this.roots.get(m)!, '.sourcemesh', 'node.pub'), 'utf8').trim()));
    writeFileSync(this.trust.builderPolicy, JSON.stringify({ ...this.trust.policyBody, builders: { threshold: BUILDERS_THRESHOLD, vkeys: this.trust.builderVkeys } }, null, 2));
  }

  nodeKeyOf(m: string): string {
    return path.join(this.roots.get(m)!, '.sourcemesh', 'node.key');
  }

  /** Where a mirror's serve publishes its attestations (docs/FORMATS.md, "Attestations"). */
  attestationsDir(m: string): string {
    return path.join(this.roots.get(m)!, '.well-known', 'sourcemesh', 'attestations');
  }
}
