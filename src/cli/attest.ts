// sourcemesh attest verify FILE|DIR... --trust-policy POLICY [--manifest MANIFEST] [--state DIR] [--json]
// Attestations checked on their own: each Sigstore bundle verified against the policy's builders, then each
// git snapshot decided by the builders' quorum (src/attest/). Exit 0 when every bundle verified and every
// snapshot reached the quorum, 3 when a signature, builder or quorum said no, 2 for malformed bundles.
import { Command } from 'commander';
import { EXIT, ERROR_CODES, type ErrorCode } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import { checkAttestations } from '../attest/check.ts';
import { loadManifest } from '../manifest/load.ts';
import { defaultStoreRoot } from '../store/store.ts';
import { readPolicy } from '../trust/check-release.ts';
import { keyLabel } from '../trust/policy.ts';
import { printJson, table, type Io } from './output.ts';

interface VerifyFlags {
  trustPolicy: string;
  manifest?: string;
  state?: string;
  json?: boolean;
}

export function attestCommand(io: Io, setExit: (n: number) => void): Command {
  const cmd = new Command('attest').description('check rebuilders\' attestations (in-toto statements in Sigstore bundles) against a trust policy');
  cmd.command('verify')
    .description('verify attestation bundles and the builders\' quorum of each git snapshot (exit 0 accepted, 3 refused)')
    .argument('<paths...>', 'bundle files, or directories of *.json bundles')
    .requiredOption('--trust-policy <policy>', 'a sourcemesh.policy/v1 file with builders: {threshold, vkeys}')
    .option('--manifest <manifest>', 'decide the manifest\'s git snapshots, with its pinned hashes (default: every snapshot the bundles name)')
    .option('--state <dir>', 'where the bundles of a disagreement are kept, in attest-evidence/ (default the store: $SOURCEMESH_STORE or $XDG_CACHE_HOME/sourcemesh)')
    .option('--json', 'print the report as JSON')
    .action(async (paths: string[], o: VerifyFlags) => {
      const policy = await readPolicy(o.trustPolicy);
      const manifest = o.manifest === undefined ? undefined : await loadManifest(o.manifest);
      const report = await checkAttestations({ paths, policy, manifest, stateDir: o.state ?? defaultStoreRoot(io.env), now: new Date(), limits: LIMITS });
      let exit: number = EXIT.ok;
      for (const r of report.refused) exit = Math.max(exit, ERROR_CODES[r.code as ErrorCode] ?? EXIT.verification);
      if (report.snapshots.some((s) => s.error)) exit = EXIT.verification;
      if (report.upstreamChanges.length) exit = EXIT.verification; // upstream served different bytes under one URL
      if (report.snapshots.length === 0 && report.refused.length === 0 && report.verified.length === 0) exit = EXIT.verification; // nothing attested
      if (o.json) {
        printJson(io, {
          accepted: exit === EXIT.ok,
          attestations: report.verified.map((a) => ({ file: a.source.file, ...a.claim })),
          refused: report.refused,
          snapshots: report.snapshots.map((s) => s.verdict
            ? { name: s.name, accepted: true, sha256: s.verdict.sha256, commit: s.verdict.commit, builders: s.verdict.builders, liars: s.verdict.liars, ignored: s.verdict.ignored.map((i) => ({ file: i.source.file, why: i.why })), ...(s.evidenceDir ? { evidence: s.evidenceDir } : {}) }
            : { name: s.name, accepted: false, code: s.error!.code, message: s.error!.message, ...s.error!.details }),
          upstreamChanges: report.upstreamChanges.map((c) => ({ url: c.url, versions: c.versions.map((v) => ({ sha256: v.sha256, builders: v.builders, files: v.sources.map((x) => x.file) })) })),
        });
      } else {
        const rows = report.snapshots.map((s) => s.verdict
          ? [s.name, 'accepted', s.verdict.sha256.slice(0, 16), `${s.verdict.builders.length} builder${s.verdict.builders.length === 1 ? '' : 's'}${s.verdict.liars.length ? `; liars: ${s.verdict.liars.map((l) => keyLabel(l.builder)).join(', ')}` : ''}`]
          : [s.name, 'REFUSED', '', s.error!.message]);
        io.stdout.write(table(rows));
        for (const s of report.snapshots) if (s.evidenceDir) io.stdout.write(`evidence for ${s.name}: ${s.evidenceDir}\n`);
        for (const r of report.refused) io.stderr.write(`sourcemesh: refused: ${r.message} [${r.code}]\n`);
        for (const c of report.upstreamChanges) {
          io.stderr.write(`sourcemesh: upstream changed: ${c.url} was downloaded as ${c.versions.map((v) => `sha256 ${v.sha256} (by ${v.builders.map(keyLabel).join(', ')})`).join(' and as ')} [E_POLICY]\n`);
        }
        if (report.snapshots.length === 0 && report.refused.length === 0 && report.verified.length === 0) io.stderr.write('sourcemesh: no attestation given\n');
      }
      setExit(exit);
    });
  return cmd;
}
