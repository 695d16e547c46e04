import { Command, Option } from 'commander';
import { loadManifest } from '../manifest/index.ts';
import { PACK_FORMATS, pack, type PackFormat } from '../mirror/offline-image.ts';
import { Store, defaultStoreRoot } from '../store/store.ts';
import { formatBytes, printJson, type Io } from './output.ts';
import { parseSize } from './units.ts';

interface PackFlags {
  format: PackFormat;
  output: string;
  maxDiskBytes?: string;
  beforeNetwork?: string;
  hex0Dir?: string;
  store?: string;
  json?: boolean;
}

export function packCommand(io: Io): Command {
  return new Command('pack')
    .description('write the distfiles of a manifest (from the store) for an isolated build machine')
    .argument('<manifest>', 'a sourcemesh manifest, live-bootstrap sources file or steps/ directory')
    .addOption(new Option('--format <format>', 'a directory, a deterministic tar, or a builder-hex0 source disk').choices(PACK_FORMATS).makeOptionMandatory())
    .requiredOption('-o, --output <path>', 'where to write (OUT.1, OUT.2, ... when split)')
    .option('--max-disk-bytes <size>', 'split across several images of at most SIZE each (e.g. 2G)')
    .option('--before-network <steps>', 'only files of the steps built before the first "improve: ...network..." in STEPS/manifest')
    .option('--hex0-dir <dir>', 'directory of the files inside a hex0 disk', '/external/distfiles')
    .option('--store <dir>', 'the store to read from (default $SOURCEMESH_STORE or $XDG_CACHE_HOME/sourcemesh)')
    .option('--json', 'print what was written as JSON')
    .action(async (input: string, o: PackFlags) => {
      const maxDiskBytes = o.maxDiskBytes !== undefined ? parseSize('--max-disk-bytes', o.maxDiskBytes) : undefined;
      const manifest = await loadManifest(input);
      let distfiles = manifest.distfiles;
      if (o.beforeNetwork) {
        const early = new Set((await loadManifest(o.beforeNetwork, { beforeNetwork: true })).distfiles.map((d) => d.name));
        distfiles = distfiles.filter((d) => early.has(d.name));
      }
      const store = await Store.open(o.store ?? defaultStoreRoot(io.env));
      const images = await pack(distfiles, store, { format: o.format, out: o.output, maxDiskBytes, hex0Dir: o.hex0Dir });
      if (o.json) return printJson(io, { format: o.format, images });
      for (const img of images) io.stdout.write(`${img.path}: ${img.files.length} files, ${formatBytes(img.bytes)}\n`);
    });
}

