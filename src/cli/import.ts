import { Command } from 'commander';
import { formatManifest, loadManifest } from '../manifest/index.ts';
import { writeOutputFile } from '../fs/durable-file.ts';
import { type Io } from './output.ts';

export function importCommand(io: Io): Command {
  const cmd = new Command('import').description('convert a distfile list from another project into a sourcemesh manifest');
  cmd
    .command('live-bootstrap')
    .description("read live-bootstrap's steps/ tree (or one steps/STEP/sources file) and write a sourcemesh.manifest/v1")
    .argument('<steps>', 'the steps/ directory, a checkout holding it, or one sources file')
    .option('-o, --output <file>', 'write the manifest here instead of stdout')
    .option('--name <name>', 'manifest name', undefined)
    .option('--before-network', 'only the steps built before the first "improve: ...network..." directive')
    .action(async (steps: string, o: { output?: string; name?: string; beforeNetwork?: boolean }) => {
      const manifest = await loadManifest(steps, { name: o.name, beforeNetwork: o.beforeNetwork });
      const text = formatManifest(manifest);
      if (!o.output) {
        io.stdout.write(text);
        return;
      }
      await writeOutputFile(o.output, text);
      io.stderr.write(`wrote ${o.output}: ${manifest.distfiles.length} distfiles (${manifest.distfiles.filter((d) => d.git).length} git snapshots)\n`);
    });
  return cmd;
}
