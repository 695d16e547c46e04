// sourcemesh log serve --root DIR --key KEYFILE --listen HOST:PORT [--witness VKEY=URL]... [--quorum K]
//                      [--checkpoint-interval 1s] [--batch N]
// Prints `listening on URL` as the first line on stdout; JSON logs (pino) go to stderr.
import { Command } from 'commander';
import { pino, type Logger } from 'pino';
import { SourcemeshError } from '../errors.ts';
import { startLog } from '../trust/log/log.ts';
import { splitWitnessFlag, type WitnessEndpoint } from '../trust/log/witness-client.ts';
import { readSignerKeyFile, readVerifierKeyArg } from './key.ts';
import { nonNegativeInt, type Io } from './output.ts';
import { parseDuration } from './units.ts';

interface ServeFlags {
  root: string;
  key: string;
  listen: string;
  witness: string[];
  quorum?: string;
  checkpointInterval: string;
  batch?: string;
  logLevel: string;
}

export function logCommand(io: Io, signal: AbortSignal): Command {
  const cmd = new Command('log').description('run a transparency log (C2SP tlog-tiles, tlog-checkpoint, tlog-witness)');
  cmd.command('serve')
    .description('sequence submitted entries into a tiled Merkle tree under DIR, sign checkpoints, get them cosigned, serve them')
    .requiredOption('--root <dir>', 'the log directory: checkpoint, tile/ and entry bundles, servable by any static web server')
    .requiredOption('--key <keyfile>', 'the log\'s signing key (`sourcemesh key generate ORIGIN -o KEYFILE`); its name is the origin')
    .requiredOption('--listen <host:port>', 'address to serve on (port 0: any free port)')
    .option('--witness <vkey=url>', 'a witness: its cosignature vkey (or a .pub file) and its URL prefix; repeatable', collect, [])
    .option('--quorum <k>', 'publish a checkpoint once K witnesses cosigned it (default: all of them)')
    .option('--checkpoint-interval <duration>', 'sign a checkpoint this often', '1s')
    .option('--batch <n>', 'also sign as soon as N entries were added since the last checkpoint')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or silent', 'info')
    .action(async (o: ServeFlags) => {
      const listen = parseListen(o.listen);
      const key = await readSignerKeyFile(o.key);
      const witnesses: WitnessEndpoint[] = [];
      for (const w of o.witness) {
        const { key: vkey, url } = splitWitnessFlag(w);
        witnesses.push({ key: await readVerifierKeyArg(vkey), url });
      }
      const quorum = o.quorum === undefined ? witnesses.length : nonNegativeInt('--quorum', o.quorum, witnesses.length);
      const intervalMs = parseDuration('--checkpoint-interval', o.checkpointInterval);
      const batch = o.batch === undefined ? 0 : nonNegativeInt('--batch', o.batch);
      const logger = createLogger(o.logLevel, 'log');
      const log = await startLog({ root: o.root, key, witnesses, quorum, checkpointIntervalMs: intervalMs, batch, host: listen.host, port: listen.port, logger });
      io.stdout.write(`listening on ${log.url}\n`);
      logger.info({ url: log.url, origin: log.origin, vkey: log.vkey, witnesses: witnesses.length, quorum }, 'log serving');
      await untilAborted(signal);
      logger.info('shutting down');
      await log.close();
    });
  return cmd;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** HOST:PORT, [IPV6]:PORT, or :PORT (all interfaces). */
export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (m === null || port > 65535) throw new SourcemeshError('E_USAGE', `--listen ${value}: expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:0`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** JSON lines on stderr, written synchronously so that nothing is lost when the process is killed. */
export function createLogger(level: string, name: string): Logger {
  const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  if (!levels.includes(level)) throw new SourcemeshError('E_USAGE', `--log-level ${level}: expected one of ${levels.join(', ')}`);
  return pino({ level, name, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}

export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
