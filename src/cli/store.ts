import { Command } from 'commander';
import { SourcemeshError } from '../errors.ts';
import { loadManifest } from '../manifest/index.ts';
import { Store, defaultStoreRoot } from '../store/store.ts';
import { collect } from './fetch.ts';
import { formatBytes, printJson, table, type Io } from './output.ts';

export function storeCommand(io: Io): Command {
  const cmd = new Command('store').description('see and prune the content-addressed store');
  const storeOption = '--store <dir>';
  const storeHelp = 'the store (default $SOURCEMESH_STORE or $XDG_CACHE_HOME/sourcemesh)';
  const openStore = (o: { store?: string }) => Store.open(o.store ?? defaultStoreRoot(io.env));

  cmd.command('list')
    .description('list stored objects with their sizes')
    .option(storeOption, storeHelp)
    .option('--json', 'JSON output')
    .action(async (o: { store?: string; json?: boolean }) => {
      const store = await openStore(o);
      const objects = [];
      for await (const obj of store.list()) objects.push(obj);
      const total = objects.reduce((n, x) => n + x.size, 0);
      if (o.json) return printJson(io, { store: store.root, objects: objects.map(({ sha256, size }) => ({ sha256, size })), count: objects.length, bytes: total });
      io.stdout.write(table(objects.map((x) => [x.sha256, formatBytes(x.size)])));
      io.stdout.write(`${objects.length} objects, ${formatBytes(total)} in ${store.root}\n`);
    });

  cmd.command('path')
    .description('print the path of a stored object')
    .argument('<sha256>')
    .option(storeOption, storeHelp)
    .action(async (sha256: string, o: { store?: string }) => {
      const store = await openStore(o);
      const obj = await store.get(sha256.toLowerCase());
      if (!obj) throw new SourcemeshError('E_INPUT', `${sha256}: not in the store ${store.root}`);
      io.stdout.write(obj.path + '\n');
    });

  cmd.command('gc')
    .description('remove stale locks and temporary files; with --keep, also every object no given manifest lists')
    .option(storeOption, storeHelp)
    .option('--keep <manifest>', 'keep the objects of this manifest (repeatable); others are deleted', collect, [])
    .option('--partials', 'also delete resumable partial downloads')
    .option('--json', 'JSON output')
    .action(async (o: { store?: string; keep: string[]; partials?: boolean; json?: boolean }) => {
      const store = await openStore(o);
      let keep: Set<string> | undefined;
      if (o.keep.length) {
        keep = new Set();
        const names = await store.names();
        // A distfile pinned by tarSha256 alone keeps the object last fetched under its name.
        for (const m of o.keep) for (const d of (await loadManifest(m)).distfiles) { const sha = d.sha256 ?? names.get(d.name)?.sha256; if (sha) keep.add(sha); }
      }
      const r = await store.gc({ keep, partials: o.partials });
      if (o.json) return printJson(io, { store: store.root, removedObjects: r.removedObjects.map((x) => x.sha256), removedTemp: r.removedTemp, freedBytes: r.freedBytes });
      io.stdout.write(`removed ${r.removedObjects.length} objects and ${r.removedTemp} temporary files, freed ${formatBytes(r.freedBytes)}\n`);
    });
  return cmd;
}
