import { Command } from 'commander';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { SourcemeshError } from '../errors.ts';
import { readBoundedBytes } from '../fs/bounded-read.ts';
import { limitsWith, LIMITS } from '../limits.ts';
import type { Logger as PinoLogger } from 'pino';
import type { Logger, LogFields } from '../logger.ts';
import type { ContentEvent } from '../mirror/file-index.ts';
import { announceNode, interfacesFor, type Announcer } from '../discovery/announce.ts';
import { INVENTORY_PATH, nodeKeyFiles, resolveNodeKey } from '../mirror/inventory.ts';
import { joinPool, limitsOfWorker, startPool, workerRole } from './serve-pool.ts';
import { stateDirOf } from '../mirror/state-dir.ts';
import { defaultStoreRoot } from '../store/store.ts';
import { formatVerifierKey } from '../trust/note.ts';
import { formatBytes, nonNegativeInt, positiveInt, type Io } from './output.ts';
import { formatDuration, parseDuration } from './units.ts';
import { parseListen } from './listen.ts';

// The server, the index and the logger are imported once the node has begun claiming its name on the
// local network (--announce): the mDNS probes, which take 750 ms by RFC 6762 §8.1, run while they load
// and the root is indexed, not after (docs/BENCHMARKS.md, bench:discovery).
const serverModules = () => [import('pino'), import('../mirror/server.ts'), import('../mirror/file-index.ts')] as const;

interface ServeFlags {
  root?: string;
  local?: string | true;
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  key?: string;
  keyName?: string;
  accessLog: string | false;
  rate: string;
  burst: string;
  maxConnections: string;
  maxConnectionsPerClient: string;
  sendTimeout: string;
  shutdownTimeout: string;
  workers: string;
  announce?: boolean;
  announceInterface?: string[];
}

export function serveCommand(io: Io, setExit: (n: number) => void, signal: AbortSignal): Command {
  return new Command('serve')
    .description('serve a mirror root (or the local store) over HTTP: /NAME, /sha256/HEX and a signed inventory')
    .option('--root <dir>', 'the mirror root that `mirror sync` keeps')
    .option('--local [store]', 'serve the local store instead (default $SOURCEMESH_STORE or $XDG_CACHE_HOME/sourcemesh), for isolated build machines')
    .option('--listen <host:port>', 'address and port: an IP address, a host name or a network interface name (e.g. virbr0:8080)', '127.0.0.1:8080')
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (chain)')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert')
    .option('--key <file>', 'the node key signing the inventory (default ROOT/.sourcemesh/node.key or STORE/node.key, created when missing)')
    .option('--key-name <name>', 'the name of a node key created now (default this host\'s name)')
    .option('--access-log <file>', 'JSON lines access log: a file, or - for stdout', '-')
    .option('--no-access-log', 'no access log')
    .option('--rate <n>', 'requests per second allowed per client address (IPv6: per /64); 0 for no limit', String(LIMITS.serveRequestsPerSecond))
    .option('--burst <n>', 'requests a client may make at once before --rate applies', String(LIMITS.serveRequestBurst))
    .option('--max-connections <n>', 'open connections at most (when full, an idle one makes room)', String(LIMITS.serveMaxConnections))
    .option('--max-connections-per-client <n>', 'open connections per client address (IPv6: per /64); 0 for no limit', String(LIMITS.serveClientConnections))
    .option('--send-timeout <duration>', 'cut a response of which the client takes no byte for this long', `${LIMITS.serveSendTimeoutMs / 1000}s`)
    .option('--shutdown-timeout <duration>', 'on SIGINT/SIGTERM, how long in-flight responses may take to finish', `${LIMITS.serveShutdownMs / 1000}s`)
    .option('--workers <n>', 'worker processes serving the address; each client address is served by one of them, so per-client limits hold across them', '1')
    .option('--announce', 'announce this mirror on the local network (DNS-SD over mDNS, _sourcemesh._tcp) for `sourcemesh discover`')
    .option('--announce-interface <name...>', 'interfaces to announce on (default: every interface that is up, loopback aside; IPv4, IPv6 or both as the listen address serves)')
    .action(async (o: ServeFlags) => {
      // Flags first, all of them, so a mistake costs one clear line before anything is touched.
      if ((o.root === undefined) === (o.local === undefined)) throw new SourcemeshError('E_USAGE', 'serve needs exactly one of --root DIR and --local [STORE]');
      if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new SourcemeshError('E_USAGE', '--tls-cert and --tls-key go together');
      const { host, port } = parseListen(o.listen);
      const rate = nonNegativeInt('--rate', o.rate, 1_000_000);
      const burst = positiveInt('--burst', o.burst, 1_000_000);
      const maxConnections = positiveInt('--max-connections', o.maxConnections, 1_000_000);
      const perClient = nonNegativeInt('--max-connections-per-client', o.maxConnectionsPerClient, 1_000_000);
      const sendTimeoutMs = parseDuration('--send-timeout', o.sendTimeout);
      if (sendTimeoutMs <= 0) throw new SourcemeshError('E_USAGE', `--send-timeout ${o.sendTimeout}: must be more than 0`);
      const shutdownMs = parseDuration('--shutdown-timeout', o.shutdownTimeout);
      const workers = positiveInt('--workers', o.workers, 64);
      const role = workerRole(io.env); // set when this process is a worker of a pool (src/cli/serve-pool.ts)
      // With --workers, the pool (the process that accepts) announces, once for all its workers; they
      // answer the challenge with the same node key over the same address.
      const announcing = role === undefined && (o.announce === true || o.announceInterface !== undefined);
      if (announcing && o.announceInterface === undefined) interfacesFor(host); // a loopback address: refused before anything starts

      const source = o.root !== undefined
        ? { kind: 'root' as const, root: path.resolve(o.root) }
        : { kind: 'store' as const, store: path.resolve(o.local === true ? defaultStoreRoot(io.env) : o.local!) };
      const dir = source.kind === 'root' ? source.root : source.store;
      const st = await stat(dir).catch(() => undefined);
      if (!st?.isDirectory()) throw new SourcemeshError('E_INPUT', `${source.kind === 'root' ? '--root' : '--local'} ${dir}: not a directory${source.kind === 'store' ? ' (run `sourcemesh fetch` first)' : ''}`);
      const keyDir = source.kind === 'root' ? stateDirOf(source.root) : source.store;
      const { key, file: keyFile, created } = await resolveNodeKey(keyDir, o.key, o.keyName);
      if (created) io.stderr.write(`created the node key ${keyFile} (public key in ${nodeKeyFiles(keyDir).pub})\n`);
      let logger: PinoLogger | undefined;
      let listening = false; // nothing goes to the log before the "listening" line
      // Warnings and errors also go to stderr, for an operator watching the terminal.
      const loud = (level: 'warn' | 'error') => (fields: LogFields, msg: string) => {
        if (listening) logger?.[level](fields, msg);
        io.stderr.write(`sourcemesh serve: ${msg}${Object.keys(fields).length ? ` ${JSON.stringify(fields)}` : ''}\n`);
      };
      const log: Logger = {
        debug: (fields, msg) => listening && logger?.debug(fields, msg),
        info: (fields, msg) => listening && logger?.info(fields, msg),
        warn: loud('warn'),
        error: loud('error'),
      };

      // With a fixed port, the node's names are claimed (probed for) now, while the server's modules load
      // and the root is indexed; they are announced once it serves (announceNode's `ready`).
      let serving!: (up: boolean) => void;
      const ready = new Promise<void>((resolve, reject) => {
        serving = (up) => (up ? resolve() : reject(new SourcemeshError('E_NETWORK', '--announce: the node did not start')));
      });
      ready.catch(() => undefined); // without --announce nothing waits on it: a failed start is not unhandled
      const announceOn = (p: number) => announceNode({
        key, port: p, roles: ['mirror'], scheme: o.tlsCert !== undefined ? 'https' : 'http', path: `/${INVENTORY_PATH}`, listenHost: host,
        ...(o.announceInterface ? { interfaces: o.announceInterface } : {}), log, since: 0, ready,
      });
      const early = announcing && port !== 0 ? announceOn(port) : undefined;
      early?.catch(() => undefined); // awaited below; a failure before then is not unhandled
      /** Starting something: on failure, the names being claimed are let go before the error goes on. */
      const starting = async <T>(start: () => Promise<T>): Promise<T> => {
        try {
          return await start();
        } catch (err) {
          serving(false);
          await early?.catch(() => undefined);
          throw err;
        }
      };
      /** Serving on port `p`: announce (the early claim, else claim now), or stop and fail. */
      const announceServing = async (p: number, stop: () => Promise<unknown>): Promise<Announcer | undefined> => {
        if (!announcing) return undefined;
        serving(true);
        try {
          const a = await (early ?? announceOn(p));
          io.stderr.write(`announcing ${JSON.stringify(a.announcement.instance)} on ${a.links().map((l) => `${l.name} (${l.address})`).join(', ')}\n`);
          return a;
        } catch (err) {
          await stop();
          throw err;
        }
      };
      const [{ pino }, { MirrorServer }, { MirrorContent }, tls] = await starting(() => Promise.all([...serverModules(), (async () => (o.tlsCert !== undefined ? {
        cert: await readBoundedBytes(o.tlsCert, LIMITS.tlsPemBytes, 'TLS certificate (--tls-cert)', 'E_INPUT'),
        key: await readBoundedBytes(o.tlsKey!, LIMITS.tlsPemBytes, 'TLS key (--tls-key)', 'E_INPUT'),
      } : undefined))()] as const));

      const logFile = o.accessLog === false || o.accessLog === '-' ? undefined : o.accessLog;
      const dest = o.accessLog === false ? undefined : await starting(async () => pino.destination({ dest: logFile ?? 1, sync: false, mkdir: true, append: true }));
      // A log file that cannot be written (its disk full, its directory gone) is said on stderr; serving goes on.
      dest?.on('error', (err: Error) => io.stderr.write(`sourcemesh serve: access log ${logFile ?? 'stdout'}: ${err.message}\n`));
      logger = dest ? pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } }, dest) : undefined;
      const onEvent = (e: ContentEvent) => {
        if (e.kind === 'warning') return log.warn({}, e.message);
        for (const s of e.skipped) io.stderr.write(`sourcemesh serve: not serving ${JSON.stringify(s.name)}: ${s.why}\n`);
        const hashed = e.hashedBytes ? `, hashed ${formatBytes(e.hashedBytes)}` : '';
        io.stderr.write(`indexed ${e.files} files${source.kind === 'store' ? ` (${e.objects} objects)` : ''} in ${formatDuration(e.ms)}${hashed}; inventory ${e.inventory}\n`);
        if (listening) logger?.info({ files: e.files, objects: e.objects, hashedBytes: e.hashedBytes, ms: Math.round(e.ms), inventory: e.inventory, skipped: e.skipped.length }, 'indexed');
      };

      const limits = limitsWith({ serveClientConnections: perClient, serveSendTimeoutMs: sendTimeoutMs });
      if (workers > 1 && role === undefined) {
        // The pool: index once (the inventory signed before any worker starts), then hand connections out.
        const pool = await starting(async () => {
          (await MirrorContent.open({ source, key, keyFile, limits, onEvent })).close();
          return startPool(host, port, workers, perClient > 0, log);
        });
        const h = pool.address.family === 'IPv6' ? `[${pool.address.address}]` : pool.address.address;
        const url = `${tls ? 'https' : 'http'}://${h}:${pool.address.port}`;
        io.stdout.write(JSON.stringify({ level: 'info', time: new Date().toISOString(), msg: 'listening', url, ...source, workers, pids: pool.pids(), key: formatVerifierKey(key) }) + '\n');
        io.stderr.write(`serving ${source.kind === 'root' ? source.root : `the store ${source.store}`} at ${url}/ with ${workers} workers\n`);
        const poolAnnouncer = await announceServing(pool.address.port, () => pool.stop());
        const onPoolHup = () => pool.signal('SIGHUP');
        process.on('SIGHUP', onPoolHup);
        try {
          if (!signal.aborted) await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
          await poolAnnouncer?.close(); // goodbye first: browsers stop sending clients here
          await pool.stop();
        } finally {
          process.off('SIGHUP', onPoolHup);
        }
        return setExit(0);
      }
      const share = limitsOfWorker(limits, role?.count ?? 1, maxConnections);
      const server = await starting(() => MirrorServer.start({
        source, key, keyFile, limits: share.limits, onEvent, host: role?.host ?? host, port: role?.port ?? port, tls, log, maxConnections: share.maxConnections,
        rate: { perSecond: rate, burst }, listen: role === undefined,
      }));
      // A worker ends with its pool: the pool's SIGTERM, or the pool gone (its channel closed).
      const pool = role !== undefined ? joinPool(server) : undefined;
      const vkey = formatVerifierKey(key);
      // The first line on stdout says where we listen, as JSON (tests and scripts read it); access-log
      // lines follow it in the same shape.
      // (A worker of a pool says nothing here: the pool said where it listens.)
      if (role === undefined) io.stdout.write(JSON.stringify({ level: 'info', time: new Date().toISOString(), msg: 'listening', url: server.url, ...source, files: server.content.index.byName.size, key: vkey }) + '\n');
      listening = true;
      if (role === undefined) io.stderr.write(`serving ${source.kind === 'root' ? source.root : `the store ${source.store}`} at ${server.url}/ (inventory key ${vkey})\n`);
      const announcer = await announceServing(Number(new URL(server.url).port), () => server.close(0));

      const onHup = () => {
        // Log rotation: a file is reopened under its name (logrotate renamed the old one); stdout has
        // nothing to reopen. A failure to reopen is a warning, never the end of serving.
        if (dest && logFile !== undefined) {
          try {
            dest.reopen();
          } catch (err) {
            log.warn({ file: logFile, error: (err as Error).message }, 'cannot reopen the access log');
          }
        }
        void server.reload();
      };
      process.on('SIGHUP', onHup);
      try {
        if (!signal.aborted) await Promise.race([new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true })), ...(pool ? [pool.gone] : [])]);
        io.stderr.write(`shutting down: finishing responses in flight (at most ${formatDuration(shutdownMs)})\n`);
        await announcer?.close(); // goodbye first: browsers stop sending clients here
        const { cut } = await server.close(shutdownMs);
        if (cut > 0) io.stderr.write(`shutdown: ${cut} connections cut at the deadline\n`);
        logger?.info({ cut }, 'stopped');
      } finally {
        process.off('SIGHUP', onHup);
        if (dest) await new Promise<void>((resolve) => {
          dest.once('close', () => resolve());
          dest.end();
        });
        pool?.leave();
      }
      setExit(0);
    });
}

