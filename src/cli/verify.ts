import { Command } from 'commander';
import { EXIT } from '../errors.ts';
import { loadManifest } from '../manifest/index.ts';
import { verifyDir } from '../store/distdir.ts';
import { paint, printJson, type Io } from './output.ts';

export function verifyCommand(io: Io, setExit: (n: number) => void): Command {
  return new Command('verify')
    .description('check a distfiles directory against a manifest: missing, mismatched and extra files')
    .argument('<dir>', 'the distfiles directory')
    .requiredOption('-m, --manifest <manifest>', 'a sourcemesh manifest, live-bootstrap sources file or steps/ directory')
    .option('--json', 'print the report as JSON')
    .action(async (dir: string, o: { manifest: string; json?: boolean }) => {
      const manifest = await loadManifest(o.manifest);
      const report = await verifyDir(dir, manifest.distfiles);
      const bad = report.missing.length + report.mismatched.length;
      if (o.json) {
        printJson(io, { dir, manifest: manifest.name, verified: bad === 0, ...report });
      } else {
        for (const m of report.mismatched) io.stdout.write(`${paint(io, io.stdout, 'red', 'MISMATCH')} ${m.name}: sha256 ${m.actual}, expected ${m.expected}\n`);
        for (const n of report.missing) io.stdout.write(`${paint(io, io.stdout, 'yellow', 'MISSING')}  ${n}\n`);
        for (const n of report.extra) io.stdout.write(`EXTRA    ${n}\n`);
        io.stdout.write(`${report.ok.length} ok, ${report.mismatched.length} mismatched, ${report.missing.length} missing, ${report.extra.length} extra\n`);
      }
      setExit(bad === 0 ? EXIT.ok : EXIT.verification);
    });
}
