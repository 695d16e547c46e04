// sourcemesh log serve --root DIR --key KEYFILE --listen HOST:PORT [--witness VKEY=URL]... [--quorum K]
//                      [--checkpoint-interval 1s] [--batch N]
//                      --admit VKEY... | --admit-file FILE | --admit-any-signed | --admit-unsigned
//                      [--key-entries-per-hour N] [--key-bytes-per-day SIZE] [--add-rate N] [--verify-threads N]
// Prints `listening on URL` as the first line on stdout; JSON logs (pino) go to stderr. SIGHUP reloads
// the admission file.
import { Command } from 'commander';
import { pino, type Logger } from 'pino';
import { announceNode, type Announcer } from '../discovery/announce.ts';
import { SourcemeshError } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import { type AdmissionMode, type AdmissionPolicy, admissionPolicy, admittedKey, parseAdmissionFile } from '../trust/log/admission.ts';
import { type RunningLog, startLog } from '../trust/log/log.ts';
import { splitWitnessFlag, type WitnessEndpoint } from '../trust/log/witness-client.ts';
import { formatVerifierKey } from '../trust/note.ts';
import { readBoundedFile } from '../fs/bounded-read.ts';
import { readSignerKeyFile } from '../trust/key-file.ts';
import { readVerifierKeyArg } from './key.ts';
import { parseListen } from './listen.ts';
import { nonNegativeInt, type Io } from './output.ts';
import { parseDuration, parseSize } from './units.ts';

interface ServeFlags {
  root: string;
  key: string;
  listen: string;
  witness: string[];
  quorum?: string;
  checkpointInterval: string;
  batch?: string;
  logLevel: string;
  admit: string[];
  admitFile?: string;
  admitAnySigned?: boolean;
  admitUnsigned?: boolean;
  keyEntriesPerHour: string;
  keyBytesPerDay: string;
  addRate: string;
  verifyThreads?: string;
  announce?: boolean;
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
    .option('--admit <vkey>', 'admit a submitting key: its statements are logged (vkey text or a .pub file); repeatable', collect, [])
    .option('--admit-file <file>', 'admitted keys, and projects with their genesis release keys (sourcemesh.log-admission/v1); reloaded on SIGHUP')
    .option('--admit-any-signed', 'log statements signed by any key (the submitter names its vkey), under the per-key quotas')
    .option('--admit-unsigned', 'log any bytes, unchecked (no statements, signatures or quotas): only for a private log, or to measure')
    .option('--key-entries-per-hour <n>', 'entries each submitting key may add per hour (0: no limit)', String(LIMITS.logKeyEntriesPerHour))
    .option('--key-bytes-per-day <size>', 'bytes each submitting key may add per day, e.g. 16M (0: no limit)', `${LIMITS.logKeyBytesPerDay / 1024 / 1024}M`)
    .option('--add-rate <n>', 'submissions per second from one client address, with bursts of 10 times that (0: no limit)', String(LIMITS.logAddRequestsPerSecond))
    .option('--verify-threads <n>', 'threads checking signatures (default: one per core but one, at least one)')
    .option('--announce', 'announce the log on the local network (DNS-SD over mDNS, _sourcemesh._tcp, role log) for `sourcemesh discover`')
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
      const admission = await admissionFlags(o);
      const entriesPerHour = nonNegativeInt('--key-entries-per-hour', o.keyEntriesPerHour);
      const bytesPerDay = parseSize('--key-bytes-per-day', o.keyBytesPerDay);
      const maxEntry = Math.min(LIMITS.logEntryBytes, 0xffff);
      if (bytesPerDay > 0 && bytesPerDay < maxEntry) throw new SourcemeshError('E_USAGE', `--key-bytes-per-day ${o.keyBytesPerDay}: at least ${maxEntry} bytes (one entry), or 0 for no limit`);
      const addRate = nonNegativeInt('--add-rate', o.addRate);
      const verifyThreads = o.verifyThreads === undefined ? undefined : nonNegativeInt('--verify-threads', o.verifyThreads, 256);
      const logger = createLogger(o.logLevel, 'log');
      // SIGHUP is taken from the start: by default it would end the process.
      let log: RunningLog | undefined;
      let announcer: Announcer | undefined;
      let reloading: Promise<void> = Promise.resolve();
      const onHup = () => {
        reloading = reloading.then(async () => {
          if (log === undefined) return;
          if (o.admitFile === undefined) return void logger.warn('SIGHUP: there is no --admit-file to reload');
          let policy: AdmissionPolicy;
          try {
            policy = await admission.load();
          } catch (err) {
            return void logger.error({ err: (err as Error).message, file: o.admitFile }, 'admission file not reloaded: keeping the admission in force');
          }
          log.reload(policy);
          logger.info({ file: o.admitFile, ...describeAdmission(policy, log) }, 'admission reloaded');
        });
      };
      process.on('SIGHUP', onHup);
      try {
        log = await startLog({
          root: o.root, key, witnesses, quorum, checkpointIntervalMs: intervalMs, batch, host: listen.host, port: listen.port, logger,
          admission: await admission.load(), quota: { entriesPerHour, bytesPerDay }, addRate: { perSecond: addRate, burst: addRate * 10 },
          ...(verifyThreads === undefined ? {} : { verifyThreads }),
        });
        io.stdout.write(`listening on ${log.url}\n`);
        // Checked by discover against the log key: the checkpoint it serves (C2SP tlog-tiles).
        if (o.announce) announcer = await announceNode({ key, port: Number(new URL(log.url).port), roles: ['log'], path: '/checkpoint', listenHost: listen.host, log: logger });
        logger.info({ url: log.url, origin: log.origin, vkey: log.vkey, witnesses: witnesses.length, quorum, verifyThreads: log.verifyThreads, quota: { entriesPerHour, bytesPerDay }, addRate, ...describeAdmission(admission.current!, log) }, 'log serving');
        await untilAborted(signal);
        logger.info('shutting down');
        await announcer?.close();
        await reloading;
        await log.close();
      } finally {
        process.off('SIGHUP', onHup);
        await announcer?.close();
      }
    });
  return cmd;
}

/** The admission mode from the flags, and a loader of the policy (the file read again on each call). */
async function admissionFlags(o: ServeFlags): Promise<{ load(): Promise<AdmissionPolicy>; current?: AdmissionPolicy }> {
  const given = [o.admit.length > 0 || o.admitFile !== undefined, o.admitAnySigned, o.admitUnsigned].filter(Boolean).length;
  if (given === 0) {
    throw new SourcemeshError('E_USAGE', 'log serve: say who may write to the log: --admit VKEY, --admit-file FILE, --admit-any-signed, or --admit-unsigned for a private log');
  }
  if (o.admitUnsigned && given > 1) throw new SourcemeshError('E_USAGE', '--admit-unsigned logs anything unchecked: it does not go with --admit, --admit-file or --admit-any-signed');
  const mode: AdmissionMode = o.admitUnsigned ? 'unsigned' : o.admitAnySigned ? 'any-signed' : 'admitted';
  const keys = await Promise.all(o.admit.map(async (k) => admittedKey(formatVerifierKey(await readVerifierKeyArg(k)), `--admit ${k}`)));
  const out: { load(): Promise<AdmissionPolicy>; current?: AdmissionPolicy } = {
    async load() {
      const file = o.admitFile === undefined ? undefined : parseAdmissionFile(await readAdmissionFile(o.admitFile), o.admitFile);
      out.current = admissionPolicy(mode, keys, file);
      return out.current;
    },
  };
  return out;
}

function readAdmissionFile(file: string): Promise<string> {
  return readBoundedFile(file, LIMITS.logAdmissionBytes, 'admission file', 'E_INPUT');
}

function describeAdmission(policy: AdmissionPolicy, log: RunningLog) {
  return {
    admission: policy.mode,
    keys: policy.keys.size,
    projects: [...policy.projects.values()].map((p) => ({ name: p.name, keySet: log.positions().get(p.chain)?.sequence ?? 0 })),
  };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
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
