// The sourcemesh command line: one module per command; this file only assembles them and turns
// errors into one line and an exit status (0 ok, 1 operational, 2 usage or input, 3 verification).
import { Command, CommanderError } from 'commander';
import { EXIT } from '../errors.ts';
import { archiveCommand } from './archive.ts';
import { auditCommand } from './audit.ts';
import { cleanseCommand } from './cleanse.ts';
import { fetchCommand } from './fetch.ts';
import { importCommand } from './import.ts';
import { keyCommand } from './key.ts';
import { logCommand } from './log.ts';
import { mirrorCommand } from './mirror.ts';
import { mirrorsCommand } from './mirrors.ts';
import { packCommand } from './pack.ts';
import { printError, processIo, type Io } from './output.ts';
import { releaseCommand } from './release.ts';
import { serveCommand } from './serve.ts';
import { storeCommand } from './store.ts';
import { verifyCommand } from './verify.ts';
import { witnessCommand } from './witness.ts';
import { VERSION } from '../version.ts';


export async function main(argv: string[], io: Io = processIo): Promise<number> {
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
  for (const cmd of [importCommand(io), fetchCommand(io, setExit, abort.signal), verifyCommand(io, setExit), storeCommand(io), mirrorCommand(io, setExit, abort.signal), packCommand(io), mirrorsCommand(io), auditCommand(io, setExit, abort.signal), serveCommand(io, setExit, abort.signal), keyCommand(io), logCommand(io, abort.signal), witnessCommand(io, abort.signal), archiveCommand(io), cleanseCommand(io), releaseCommand(io, setExit)]) program.addCommand(cmd);
  for (const cmd of allCommands(program)) cmd.exitOverride();

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exit;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.input;
    if (abort.signal.aborted) {
      io.stderr.write('sourcemesh: interrupted; partial downloads are kept and resume next time\n');
      return 130;
    }
    return printError(io, err);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function allCommands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(allCommands)];
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
