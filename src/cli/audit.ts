import { Command } from 'commander';
import { EXIT, SourcemeshError } from '../errors.ts';
import { auditMirror } from '../fetch/audit.ts';
import { Network, TOR_DEFAULT_PROXY, torLimits } from '../fetch/network.ts';
import { parseMirror } from '../fetch/plan.ts';
import { loadManifest } from '../manifest/index.ts';
import { Store, defaultStoreRoot } from '../store/store.ts';
import { fetchLimits } from './fetch.ts';
import { paint, printJson, type Io } from './output.ts';
import { parseSize } from './units.ts';

export function auditCommand(io: Io, setExit: (n: number) => void, signal: AbortSignal): Command {
  return new Command('audit')
    .description('check that a mirror replicates upstream (or another mirror) by comparing random byte ranges of random files')
    .argument('<mirror>', 'the mirror to audit: an http(s) base serving BASE/NAME, or a directory')
    .requiredOption('-m, --manifest <manifest>', 'the distfiles it should have')
    .option('--sample <fraction>', 'fraction of files, and of each file\'s bytes, to compare', '0.05')
    .option('--against <upstream|mirror>', 'compare with the upstream URLs (default) or another mirror', 'upstream')
    .option('--range <size>', 'bytes per compared range', '64KiB')
    .option('--timeout <seconds>', 'connect and idle timeout')
    .option('--proxy <url>', 'every connection through this SOCKS5 proxy (socks5h://HOST:PORT: names resolved by the proxy)')
    .option('--tor', `through Tor (default proxy ${TOR_DEFAULT_PROXY}), each host on its own circuit; longer timeouts`)
    .option('--json', 'print the report as JSON')
    .action(async (mirrorSpec: string, o: { manifest: string; sample: string; against: string; range: string; timeout?: string; proxy?: string; tor?: boolean; json?: boolean }) => {
      const sample = Number(o.sample);
      if (!/^\d*\.?\d+$/.test(o.sample) || sample <= 0 || sample > 1) throw new SourcemeshError('E_USAGE', `--sample ${o.sample}: expected a fraction above 0, at most 1`);
      const rangeBytes = parseSize('--range', o.range);
      const manifest = await loadManifest(o.manifest);
      const limits = o.tor ? torLimits(fetchLimits(o)) : fetchLimits(o);
      const network = new Network({ proxy: o.proxy, tor: o.tor }, limits);
      const dispatcher = network.byOrigin();
      const store = await Store.open(defaultStoreRoot(io.env));
      try {
        const report = await auditMirror(parseMirror(mirrorSpec), manifest.distfiles, { store, dispatcher, limits, random: Math.random, signal }, {
          sample, rangeBytes, against: o.against === 'upstream' ? undefined : parseMirror(o.against),
        });
        if (o.json) printJson(io, report);
        else {
          for (const d of report.differences) io.stdout.write(`${paint(io, io.stdout, 'red', 'DIFFERS')} ${d.name}: ${d.problem}\n`);
          for (const s of report.skipped) io.stdout.write(`skipped  ${s.name}: ${s.problem}\n`);
          io.stdout.write(`audit of ${report.mirror} against ${report.reference}: ${report.files} files, ${report.ranges} ranges (${report.bytes} bytes) compared, ${report.differences.length} differences, ${report.skipped.length} skipped\n`);
        }
        // A difference is a lie (3); files the mirror could not serve make the audit incomplete (1).
        setExit(report.differences.length ? EXIT.verification : report.skipped.some((x) => x.mirror) ? EXIT.operational : EXIT.ok);
      } finally {
        await network.close();
      }
    });
}
