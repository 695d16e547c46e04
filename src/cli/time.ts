// sourcemesh time --trust-policy POLICY [--state DIR] [--proof FILE] [--tor] [--proxy URL] [--json]
// Signed time from the policy's Roughtime witnesses (src/time/): the interval that a quorum agree on, the
// witnesses that agreed, any that contradicted them (with the chained proof written), and the local clock's
// skew. With --tor or --proxy the witnesses are asked over TCP through the SOCKS5 proxy only (src/time/through-proxy.ts).
// Exit 0 when a quorum agreed and the local clock is within the policy's bound, 3 otherwise.
import { Command } from 'commander';
import path from 'node:path';
import { EXIT, SourcemeshError } from '../errors.ts';
import { Network, TOR_DEFAULT_PROXY } from '../fetch/network.ts';
import { LIMITS } from '../limits.ts';
import { defaultStoreRoot } from '../store/store.ts';
import { decideNow, signedTime } from '../time/signed-now.ts';
import { measureThrough } from '../time/through-proxy.ts';
import { readPolicy } from '../trust/check-release.ts';
import { type Io, printJson } from './output.ts';

interface TimeFlags { trustPolicy: string; state?: string; proof?: string; tor?: boolean; proxy?: string; json?: boolean }

const iso = (ms: number) => new Date(ms).toISOString();

export function timeCommand(io: Io, setExit: (n: number) => void): Command {
  return new Command('time')
    .description('ask the trust policy\'s witnesses for signed time (Roughtime, RFC 10049), k of n, and compare the local clock')
    .requiredOption('--trust-policy <policy>', 'a sourcemesh.policy/v1 file with time.roughtime: the witnesses that answer Roughtime and where')
    .option('--state <dir>', 'where a proof of a lying witness is kept, in roughtime/ (default the store: $SOURCEMESH_STORE or $XDG_CACHE_HOME/sourcemesh)')
    .option('--proof <file>', 'write the chained proof of this measurement (an RFC 10049 malfeasance report) to FILE')
    .option('--proxy <url>', 'ask the witnesses over TCP through this SOCKS5 proxy (socks5h://HOST:PORT), never over UDP')
    .option('--tor', `through Tor (default proxy ${TOR_DEFAULT_PROXY}): over TCP only (Tor carries no UDP), each witness on its own circuit`)
    .option('--json', 'print the interval, the witnesses and the skew as JSON')
    .action(async (o: TimeFlags) => {
      const policy = await readPolicy(o.trustPolicy);
      if (policy.time === undefined) throw new SourcemeshError('E_USAGE', `--trust-policy ${o.trustPolicy}: the policy names no Roughtime witnesses (time.roughtime)`);
      const stateDir = o.state ?? defaultStoreRoot(io.env);
      const network = o.tor || o.proxy ? new Network({ proxy: o.proxy, tor: o.tor }, LIMITS) : undefined;
      const through = network ? measureThrough(network, LIMITS) : undefined;
      const r = await signedTime(policy, { stateDir, ...(o.proof ? { proofFile: path.resolve(o.proof) } : {}), ...(through ? { measure: through } : {}) })
        .finally(() => network?.close());
      const local = r.localAt / 1000;
      let skewError: string | undefined;
      let skew = 0;
      try {
        skew = decideNow(local, { earliest: r.earliest / 1000, latest: r.latest / 1000 }, undefined, policy.time.maxSkewSeconds).skew ?? 0;
      } catch (err) {
        skewError = (err as Error).message;
        skew = Number((err as SourcemeshError).details.skew ?? 0);
      }
      const failed = r.measurement.failed;
      if (o.json) {
        printJson(io, {
          earliest: iso(r.earliest), latest: iso(r.latest), radiusSeconds: (r.latest - r.earliest) / 2000,
          local: iso(r.localAt), skewSeconds: skew, withinBound: skewError === undefined, maxSkewSeconds: policy.time.maxSkewSeconds,
          quorum: policy.time.quorum, agreed: r.agreed,
          liars: r.liars.map((l) => ({ witness: l.server, proof: l.proof })), failed,
          ...(r.proofFile ? { proof: r.proofFile } : {}),
        });
      } else {
        io.stdout.write(`signed time ${iso(r.earliest)} .. ${iso(r.latest)} (${r.agreed.length} of ${policy.time.roughtime.length} witnesses agree, quorum ${policy.time.quorum}: ${r.agreed.join(', ')})\n`);
        io.stdout.write(`local clock ${iso(r.localAt)}: ${skew === 0 ? 'inside the signed interval' : `${Math.abs(Math.round(skew))} s ${skew < 0 ? 'behind' : 'ahead'}`}\n`);
        for (const l of r.liars) io.stdout.write(`liar: ${l.server} contradicts the others${l.proof.length ? ` (${l.proof.length} causal-order breaks in the chain)` : ''}\n`);
        for (const f of failed) io.stdout.write(`no answer: ${f.server}: ${f.reason}\n`);
        if (r.proofFile) io.stdout.write(`proof: ${r.proofFile}\n`);
      }
      if (skewError !== undefined) io.stderr.write(`sourcemesh: error: ${skewError} [E_POLICY]\n`);
      setExit(skewError === undefined ? EXIT.ok : EXIT.verification);
    });
}
