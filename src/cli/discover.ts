import { Command } from 'commander';
import { SourcemeshError } from '../errors.ts';
import { discoverNodes } from '../discovery/discover.ts';
import { printJson, table, type Io } from './output.ts';
import { parseDuration } from './units.ts';

interface DiscoverFlags {
  timeout: string;
  interface?: string[];
  json?: boolean;
}

export function discoverCommand(io: Io, setExit: (n: number) => void, signal: AbortSignal): Command {
  return new Command('discover')
    .description('find sourcemesh nodes on the local network (DNS-SD over mDNS) and keep those whose signed inventory or checkpoint verifies against the key they announce')
    .option('--timeout <seconds>', 'how long to listen (seconds, or a duration such as 500ms)', '2')
    .option('--interface <name...>', 'network interfaces to browse on, over IPv4 and IPv6 (default: every interface that is up, loopback aside)')
    .option('--json', 'JSON output')
    .action(async (o: DiscoverFlags) => {
      const timeoutMs = parseDuration('--timeout', /^\d+(\.\d+)?$/.test(o.timeout) ? `${o.timeout}s` : o.timeout);
      if (timeoutMs <= 0 || timeoutMs > 3_600_000) throw new SourcemeshError('E_USAGE', `--timeout ${o.timeout}: must be more than 0 and at most an hour`);
      // since 0: the first query's delay (RFC 6762 §5.2) counts from the process's start.
      const result = await discoverNodes({ timeoutMs, ...(o.interface ? { interfaces: o.interface } : {}), signal, since: 0 });
      if (o.json) {
        printJson(io, result);
      } else {
        const rows = [['NODE', 'URL', 'ROLES', 'CHECKED', 'KEY']];
        for (const n of result.nodes) {
          const what = 'inventory' in n.checked ? `inventory, ${n.checked.inventory.files} files`
            : 'checkpoint' in n.checked ? `checkpoint ${n.checked.checkpoint.origin} @ ${n.checked.checkpoint.size}`
              : `challenge${n.bittorrent ? `, peer wire ${n.bittorrent}` : ''}`;
          rows.push([n.instance, n.url, n.roles.join(','), what, n.key]);
        }
        if (result.nodes.length > 0) io.stdout.write(table(rows));
        io.stderr.write(`${result.nodes.length} nodes found and checked in ${timeoutMs / 1000} s`);
        io.stderr.write(result.refused.length > 0 ? `; ${result.refused.length} refused:\n` : '\n');
        for (const r of result.refused) io.stderr.write(`  ${r.instance}${r.address ? ` at ${r.address}` : ''}: ${r.reason}\n`);
        if (result.dropped > 0) io.stderr.write(`${result.dropped} announcements or packets dropped over the bounds\n`);
      }
      setExit(0);
    });
}
