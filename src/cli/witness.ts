// sourcemesh witness serve --state DIR --key KEYFILE --listen HOST:PORT --log VKEY [--log VKEY]...
// Prints `listening on URL` as the first line on stdout; JSON logs (pino) go to stderr.
import { Command } from 'commander';
import { SourcemeshError } from '../errors.ts';
import { startWitness } from '../trust/witness/server.ts';
import { readSignerKeyFile } from '../trust/key-file.ts';
import { readVerifierKeyArg } from './key.ts';
import { createLogger, parseListen, untilAborted } from './log.ts';
import type { Io } from './output.ts';

interface ServeFlags {
  state: string;
  key: string;
  listen: string;
  log: string[];
  logLevel: string;
}

export function witnessCommand(io: Io, signal: AbortSignal): Command {
  const cmd = new Command('witness').description('run a transparency log witness (C2SP tlog-witness, cosignature/v1)');
  cmd.command('serve')
    .description('cosign checkpoints of the given logs that are consistent with the last one cosigned; refuse rollbacks and forks')
    .requiredOption('--state <dir>', 'where the latest cosigned checkpoint of each log is kept (witness.sqlite)')
    .requiredOption('--key <keyfile>', 'the witness\'s cosignature key (`sourcemesh key generate NAME --type cosignature -o KEYFILE`)')
    .requiredOption('--listen <host:port>', 'address to serve on (port 0: any free port)')
    .requiredOption('--log <vkey>', 'a log to witness: its vkey (or a .pub file); the vkey\'s name is the log\'s origin; repeatable', (v: string, p: string[]) => [...p, v], [])
    .option('--log-level <level>', 'fatal, error, warn, info, debug or silent', 'info')
    .action(async (o: ServeFlags) => {
      const listen = parseListen(o.listen);
      const key = await readSignerKeyFile(o.key);
      if (o.log.length === 0) throw new SourcemeshError('E_USAGE', 'give at least one --log VKEY to witness');
      const logs = [];
      for (const v of o.log) logs.push(await readVerifierKeyArg(v));
      const logger = createLogger(o.logLevel, 'witness');
      const witness = await startWitness({ stateDir: o.state, key, logs, host: listen.host, port: listen.port, logger });
      io.stdout.write(`listening on ${witness.url}\n`);
      await untilAborted(signal);
      logger.info('shutting down');
      await witness.close();
    });
  return cmd;
}
