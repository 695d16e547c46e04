// Test support: a trust network on loopback as users run it: three `witness serve` processes, one
// `log serve` process with all three and quorum 2, release keys written as `key generate` writes them,
// and a sourcemesh.policy/v1 file that pins them.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type KeyFiles, ServerProcess, writeKey } from '../log/servers.ts';

export interface TrustNetwork {
  readonly dir: string;
  readonly log: ServerProcess;
  readonly logKey: KeyFiles;
  readonly witnesses: ServerProcess[];
  readonly witnessKeys: KeyFiles[];
  readonly releaseKeys: KeyFiles[];
  /** Write a policy file; fields override the default 2-of-3 witnesses, 2-of-3 release keys, one hour. */
  policy(name: string, overrides?: { quorum?: number; witnesses?: KeyFiles[]; threshold?: number; releaseKeys?: KeyFiles[]; maxCheckpointAgeSeconds?: number; url?: boolean }): Promise<string>;
}

export async function startTrustNetwork(t: { after(fn: () => unknown): void }, dir: string, options: { witnessesOnLog?: number; quorum?: number } = {}): Promise<TrustNetwork> {
  const logKey = await writeKey(dir, 'log.release.test/main');
  const witnessKeys = await Promise.all([1, 2, 3].map((i) => writeKey(dir, `w${i}.release.test`, 'cosignature')));
  const releaseKeys = await Promise.all([1, 2, 3].map((i) => writeKey(dir, `release${i}.release.test`)));
  const witnesses = await Promise.all(witnessKeys.map((k, i) => ServerProcess.start(['witness', 'serve', '--state', path.join(dir, `witness-${i + 1}`), '--key', k.file, '--listen', '127.0.0.1:0', '--log', logKey.pub])));
  t.after(() => Promise.all(witnesses.map((w) => w.stop())));
  const onLog = options.witnessesOnLog ?? 3;
  const log = await ServerProcess.start([
    'log', 'serve', '--root', path.join(dir, 'log'), '--key', logKey.file, '--listen', '127.0.0.1:0', '--checkpoint-interval', '100ms', '--log-level', 'warn',
    // A private log that takes any bytes: these tests log releases that clients must refuse.
    '--admit-unsigned',
    '--quorum', String(options.quorum ?? 2), ...witnessKeys.slice(0, onLog).flatMap((k, i) => ['--witness', `${k.pub}=${witnesses[i]!.url}`]),
  ]);
  t.after(() => log.stop());
  return {
    dir, log, logKey, witnesses, witnessKeys, releaseKeys,
    async policy(name, o = {}) {
      const file = path.join(dir, name);
      await writeFile(file, JSON.stringify({
        format: 'sourcemesh.policy/v1',
        log: { vkey: logKey.vkey, ...(o.url === false ? {} : { url: log.url }) },
        witnesses: { quorum: o.quorum ?? 2, vkeys: (o.witnesses ?? witnessKeys).map((k) => k.vkey) },
        release: { threshold: o.threshold ?? 2, vkeys: (o.releaseKeys ?? releaseKeys).map((k) => k.vkey) },
        maxCheckpointAgeSeconds: o.maxCheckpointAgeSeconds ?? 3600,
      }, null, 2));
      return file;
    },
  };
}

export async function writeManifest(file: string, version: string, distfiles: unknown[] = []): Promise<string> {
  await writeFile(file, `${JSON.stringify({ format: 'sourcemesh.manifest/v1', name: 'release-test', version, distfiles }, null, 2)}\n`);
  return file;
}
