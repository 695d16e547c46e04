// The sourcemesh command line: one module per command; this file only assembles them and turns
// errors into one line and an exit status (0 ok, 1 operational, 2 usage or input, 3 verification).
import { Command, CommanderError } from 'commander';
import { EXIT } from '../errors.ts';
import { printError, processIo, type Io } from './output.ts';
import { VERSION } from '../version.ts';

interface Context { io: Io; setExit: (n: number) => void; signal: AbortSignal }

// Each command's module is loaded only when it runs (or for help): a short command such as
// `archive` or `verify` then does not pay for loading the HTTP, SQLite and trust stacks
// (its start-up is measured in docs/BENCHMARKS.md, bench:archive). The order is the help's order.
const COMMANDS: Record<string, (c: Context) => Promise<Command>> = {
  import: async (c) => (await import('./import.ts')).importCommand(c.io),
  fetch: async (c) => (await import('./fetch.ts')).fetchCommand(c.io, c.setExit, c.signal),
  verify: async (c) => (await import('./verify.ts')).verifyCommand(c.io, c.setExit),
  store: async (c) => (await import('./store.ts')).storeCommand(c.io),
  mirror: async (c) => (await import('./mirror.ts')).mirrorCommand(c.io, c.setExit, c.signal),
  pack: async (c) => (await import('./pack.ts')).packCommand(c.io),
  mirrors: async (c) => (await import('./mirrors.ts')).mirrorsCommand(c.io),
  audit: async (c) => (await import('./audit.ts')).auditCommand(c.io, c.setExit, c.signal),
  serve: async (c) => (await import('./serve.ts')).serveCommand(c.io, c.setExit, c.signal),
  discover: async (c) => (await import('./discover.ts')).discoverCommand(c.io, c.setExit, c.signal),
  key: async (c) => (await import('./key.ts')).keyCommand(c.io),
  log: async (c) => (await import('./log.ts')).logCommand(c.io, c.signal),
  witness: async (c) => (await import('./witness.ts')).witnessCommand(c.io, c.signal),
  time: async (c) => (await import('./time.ts')).timeCommand(c.io, c.setExit),
  doctor: async (c) => (await import('./doctor.ts')).doctorCommand(c.io, c.setExit),
  node: async (c) => (await import('./node.ts')).nodeCommand(c.io, c.signal),
  archive: async (c) => (await import('./archive.ts')).archiveCommand(c.io),
  cleanse: async (c) => (await import('./cleanse.ts')).cleanseCommand(c.io),
  compress: async (c) => (await import('./compress.ts')).compressCommand(c.io),
  release: async (c) => (await import('./release.ts')).releaseCommand(c.io, c.setExit),
  torrent: async (c) => (await import('./torrent.ts')).torrentCommand(c.io, c.setExit),
  seed: async (c) => (await import('./seed.ts')).seedCommand(c.io, c.setExit, c.signal),
  rebuild: async (c) => (await import('./rebuild.ts')).rebuildCommand(c.io, c.setExit, c.signal),
  attest: async (c) => (await import('./attest.ts')).attestCommand(c.io, c.setExit),
};

export async function main(argv: string[], io: Io = processIo): Promise<number> {
  // A service of `node run` ends with its supervisor, even one killed with SIGKILL.
  if (process.env.SOURCEMESH_SUPERVISED !== undefined) (await import('../node/supervised.ts')).endWithSupervisor();
  let exit: number = EXIT.ok;
  const setExit = (n: number) => (exit = n);
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const program = new Command('sourcemesh')
    .description('Fetch, mirror and verify upstream source distfiles byte for byte.')
    .version(VERSION)
    .showSuggestionAfterError()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
  const named = argv[0] !== undefined && Object.hasOwn(COMMANDS, argv[0]) ? [argv[0]] : Object.keys(COMMANDS);

  try {
    for (const name of named) program.addCommand(await COMMANDS[name]!({ io, setExit, signal: abort.signal }));
    for (const cmd of allCommands(program)) cmd.exitOverride();
    await program.parseAsync(argv, { from: 'user' });
    return exit;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.input;
    if (abort.signal.aborted) {
      io.stderr.write('sourcemesh: interrupted; partial downloads are kept and resume next time\n');
      return 130;
    }
    return printError(io, err); // a bug: one line with E_INTERNAL, then its stack
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function allCommands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(allCommands)];
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
