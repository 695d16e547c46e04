// sourcemesh doctor [--node DIR] [--store DIR] [--root DIR]... [--trust-policy POLICY] [--key FILE]... [--sample N] [--json]
// Every check a node operator needs before trusting the node (src/doctor/checks.ts), one pass/warn/fail
// line each with a hint. Exit 0 when no check failed (warnings are printed), 3 when one failed, 1 only when
// doctor itself could not run (an unreadable policy, say).
import { Command } from 'commander';
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { EXIT } from '../errors.ts';
import { type CheckResult, checkClock, checkDisk, checkLog, checkRootSample, checkKeyFile, checkListening, checkNodeVersion, checkSocks, checkStoreSample } from '../doctor/checks.ts';
import { Network } from '../fetch/network.ts';
import { LIMITS } from '../limits.ts';
import { configFile, loadConfig, nodePath } from '../node/config.ts';
import { measureThrough } from '../time/through-proxy.ts';
import { defaultStoreRoot } from '../store/store.ts';
import { readPolicy } from '../trust/check-release.ts';
import { type Io, paint, positiveInt, printError, printJson } from './output.ts';

interface DoctorFlags { node?: string; store?: string; trustPolicy?: string; state?: string; root: string[]; key: string[]; sample: string; minFree: string; json?: boolean }

const REQUIRED_NODE_MAJOR = 24; // package.json engines.node

export function doctorCommand(io: Io, setExit: (n: number) => void): Command {
  return new Command('doctor')
    .description('check this node before trusting it: Node.js, clock against signed time, disk, a sample of the store re-hashed, key files, config and services (exit 0 ok, 3 a check failed)')
    .option('--node <dir>', 'the node directory (node.json): its config, keys, services and mirror root are checked too')
    .option('--store <dir>', 'the store whose sample is re-hashed (default $SOURCEMESH_STORE or $XDG_CACHE_HOME/sourcemesh)')
    .option('--trust-policy <policy>', 'a sourcemesh.policy/v1: the clock is checked against its witnesses\' signed time')
    .option('--state <dir>', 'where the trust state is (default the store)')
    .option('--root <dir>', 'a mirror root whose files are sampled and re-hashed against its signed inventory; repeatable', (v: string, p: string[]) => [...p, v], [])
    .option('--key <file>', 'a private key file to check (mode, owner); repeatable', (v: string, p: string[]) => [...p, v], [])
    .option('--sample <n>', 'store objects re-hashed, picked at random', '32')
    .option('--min-free <mib>', 'free space below this many MiB on the store\'s or a root\'s file system fails', '64')
    .option('--json', 'print the checks as JSON')
    .action(async (o: DoctorFlags) => {
      let results: CheckResult[];
      try {
        results = await runChecks(io, o);
      } catch (err) {
        printError(io, err);
        setExit(EXIT.operational);
        return;
      }
      const failed = results.some((r) => r.status === 'fail');
      if (o.json) printJson(io, { ok: !failed, checks: results });
      else {
        const style = { pass: 'green', warn: 'yellow', fail: 'red' } as const;
        for (const r of results) {
          io.stdout.write(`${paint(io, io.stdout, style[r.status], r.status.padEnd(4))}  ${r.check}: ${r.detail}\n`);
          if (r.hint) io.stdout.write(`      hint: ${r.hint}\n`);
        }
      }
      setExit(failed ? EXIT.verification : EXIT.ok);
    });
}

async function runChecks(io: Io, o: DoctorFlags): Promise<CheckResult[]> {
  const sampleSize = positiveInt('--sample', o.sample, 1_000_000);
  const minFree = positiveInt('--min-free', o.minFree, 1 << 30) * 1024 * 1024;
  const store = path.resolve(o.store ?? defaultStoreRoot(io.env));
  const policy = o.trustPolicy === undefined ? undefined : await readPolicy(o.trustPolicy);
  const uid = process.getuid?.();
  const results: CheckResult[] = [checkNodeVersion(process.versions.node, REQUIRED_NODE_MAJOR)];
  if (policy !== undefined) {
    const stateDir = path.resolve(o.state ?? store);
    // A node with torProxy asks its witnesses through Tor (over TCP, no UDP); a bad config is the config check's to report.
    const torProxy = o.node === undefined ? '' : await loadConfig(path.resolve(o.node)).then((c) => c.torProxy, () => '');
    const network = torProxy === '' ? undefined : new Network({ tor: true, proxy: torProxy }, LIMITS);
    try {
      results.push(...await checkClock(policy, stateDir, () => Date.now() / 1000, network ? measureThrough(network, LIMITS) : undefined));
    } finally {
      await network?.close();
    }
    results.push(await checkLog(policy, stateDir, Math.floor(Date.now() / 1000)));
  }
  results.push(await checkDisk('store', store, minFree), await checkStoreSample(store, sampleSize));
  const keys = [...o.key];
  const roots = o.root.map((r) => path.resolve(r));
  if (o.node !== undefined) {
    const dir = path.resolve(o.node);
    try {
      const c = await loadConfig(dir);
      results.push({ check: 'config', status: 'pass', detail: `${configFile(dir)} is valid` });
      keys.push(path.join(dir, 'keys', 'node.key'));
      const s = c.services;
      if (s.logServe.enabled) keys.push(nodePath(dir, s.logServe.key));
      if (s.witnessServe.enabled) keys.push(nodePath(dir, s.witnessServe.key));
      if (s.mirrorSync.enabled || s.serve.enabled) roots.push(nodePath(dir, s.mirrorSync.enabled ? s.mirrorSync.root : s.serve.root));
      if (s.serve.enabled) results.push(await checkListening('serve', s.serve.host, s.serve.port));
      if (s.logServe.enabled) results.push(await checkListening('log', s.logServe.host, s.logServe.port));
      if (s.witnessServe.enabled) results.push(await checkListening('witness', s.witnessServe.host, s.witnessServe.port));
      if (c.torProxy !== '') results.push(await checkSocks(c.torProxy));
    } catch (err) {
      results.push({ check: 'config', status: 'fail', detail: (err as Error).message, hint: 'fix the field named (docs/CONFIG.md), or `sourcemesh node init`' });
    }
  }
  for (const root of [...new Set(roots)]) {
    results.push(await checkDisk('mirror root', root, minFree), await checkRootSample(root, sampleSize));
    const rootKey = path.join(root, '.sourcemesh', 'node.key');
    if (await lstat(rootKey).then(() => true, () => false)) keys.push(rootKey); // made by the first sync
  }
  for (const k of [...new Set(keys)]) results.push(await checkKeyFile(path.resolve(k), uid));
  return results;
}
