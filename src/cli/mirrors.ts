import { Command } from 'commander';
import { Reputation } from '../fetch/reputation.ts';
import { Store, defaultStoreRoot } from '../store/store.ts';
import { addPointerCommands } from './mirrors-dht.ts';
import { formatBytes, printJson, table, type Io } from './output.ts';

export function mirrorsCommand(io: Io): Command {
  const cmd = new Command('mirrors').description("what this node knows about mirrors");
  cmd.command('status')
    .description('bytes served, speed, failures and lies of every mirror used from this store')
    .option('--store <dir>', 'the store whose records to show (default $SOURCEMESH_STORE or $XDG_CACHE_HOME/sourcemesh)')
    .option('--json', 'JSON output')
    .action(async (o: { store?: string; json?: boolean }) => {
      const store = await Store.open(o.store ?? defaultStoreRoot(io.env));
      const rep = Reputation.open(store.root);
      try {
        const records = rep.all();
        if (o.json) return printJson(io, { store: store.root, mirrors: records });
        const rows = [['MIRROR', 'FILES', 'BYTES', 'RATE', 'FAILURES', 'LIES', 'LAST SEEN']];
        for (const r of records) {
          rows.push([r.mirror, String(r.files), formatBytes(r.bytes), r.ms > 0 ? `${formatBytes((r.bytes / r.ms) * 1000)}/s` : '-', String(r.failures), String(r.lies), new Date(r.lastSeen).toISOString().slice(0, 19) + 'Z']);
        }
        io.stdout.write(table(rows));
        for (const r of records) if (r.lastLie) io.stdout.write(`last lie of ${r.mirror}: ${r.lastLie}\n`);
      } finally {
        rep.close();
      }
    });
  addPointerCommands(cmd, io);
  return cmd;
}
