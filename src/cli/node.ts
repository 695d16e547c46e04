// sourcemesh node init DIR [--name NAME] [--json]
// sourcemesh node run DIR [--panel-listen HOST:PORT] [--no-panel] [--log-level LEVEL]
// sourcemesh node clone SOURCE --to DIR [--token-file FILE]
// A node: one config (docs/CONFIG.md), one supervisor of its services, a control panel on loopback.
import { Command } from 'commander';
import path from 'node:path';
import { pino } from 'pino';
import { SourcemeshError } from '../errors.ts';
import { defaultKeyName } from '../mirror/inventory.ts';
import { initNode } from '../node/init.ts';
import { NodeRuntime } from '../node/runtime.ts';
import { checkPanelHost, startPanel } from '../panel/server.ts';
import { loadConfig } from '../node/config.ts';
import { parseListen } from './listen.ts';
import { formatBytes, nonNegativeInt, positiveInt, printJson, type Io } from './output.ts';
import { cloneNode } from '../node/clone.ts';
import { readBoundedFile } from '../fs/bounded-read.ts';
import { LIMITS } from '../limits.ts';

interface RunFlags {
  panelListen?: string;
  panel: boolean;
  logLevel: string;
}

export function nodeCommand(io: Io, signal: AbortSignal): Command {
  const cmd = new Command('node').description('one node: every service off until switched on, a control panel, cloning');
  cmd.command('init')
    .description('make a node directory: node.json with every service off, the node\'s keys (mode 0600), a panel token printed once')
    .argument('<dir>', 'the node directory (made if missing)')
    .option('--name <name>', 'the node\'s name, and its keys\' (default this host\'s name)')
    .option('--json', 'print the directory, keys and token as JSON')
    .action(async (dir: string, o: { name?: string; json?: boolean }) => {
      const name = o.name ?? defaultKeyName().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64);
      const r = await initNode(dir, { name });
      if (o.json) return printJson(io, { dir: r.dir, name, token: r.token, nodeKey: r.nodeVkey, logKey: r.logVkey, witnessKey: r.witnessVkey });
      io.stdout.write(`node ${name} in ${r.dir}: every service is off (${path.join(r.dir, 'node.json')})\n`);
      io.stdout.write(`node key     ${r.nodeVkey}\nlog key      ${r.logVkey}\nwitness key  ${r.witnessVkey}\n`);
      io.stdout.write(`panel token  ${r.token}\n  (shown this once: keep it; only its digest is stored)\n`);
      io.stdout.write(`start it:    sourcemesh node run ${dir}\n`);
    });
  cmd.command('run')
    .description('run the services node.json switches on, and the control panel; SIGHUP re-reads node.json, SIGTERM stops')
    .argument('<dir>', 'the node directory')
    .option('--panel-listen <host:port>', 'where the panel listens (default the config\'s panel.host and panel.port; off loopback only with TLS)')
    .option('--no-panel', 'no panel: the config file and SIGHUP only')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or silent', 'info')
    .action(async (dirArg: string, o: RunFlags) => {
      const levels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
      if (!levels.includes(o.logLevel)) throw new SourcemeshError('E_USAGE', `--log-level ${o.logLevel}: expected one of ${levels.join(', ')}`);
      const listen = o.panelListen === undefined ? undefined : parseListen(o.panelListen);
      const dir = path.resolve(dirArg);
      // JSON lines on stdout, one per event and one per line a service prints.
      const logger = pino({ level: o.logLevel, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } }, pino.destination({ fd: 1, sync: true }));
      // Our own CLI, run as this process was: the services are its commands.
      const cli = [process.execPath, ...process.execArgv, process.argv[1]!];
      if (listen && o.panel) checkPanelHost(listen.host, await loadConfig(dir));
      const rt = await NodeRuntime.start({ dir, cli, logger });
      let panel: Awaited<ReturnType<typeof startPanel>> | undefined;
      let reloading: Promise<unknown> = Promise.resolve();
      const onHup = () => {
        reloading = reloading.then(() => rt.reload().then(
          () => logger.info({}, 'config reloaded'),
          (err: Error) => logger.error({ error: err.message, code: (err as SourcemeshError).code, field: (err as SourcemeshError).details?.field }, 'config refused: the services go on as they were'),
        ));
      };
      process.on('SIGHUP', onHup);
      try {
        if (o.panel) {
          panel = await startPanel({ runtime: rt, host: listen?.host, port: listen?.port, logger });
          logger.info({ url: panel.url }, 'panel listening');
        }
        if (!signal.aborted) await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
        logger.info({}, 'stopping');
      } finally {
        process.off('SIGHUP', onHup);
        await reloading;
        await panel?.close();
        await rt.close();
        logger.info({}, 'stopped');
      }
    });
  cmd.command('clone')
    .description('a new node from a running one, while it keeps serving: its config, its files through its serve (each verified by sha256 against its signed inventory), a new identity')
    .argument('<source>', 'the source\'s panel URL (http://127.0.0.1:8070) or its node directory')
    .requiredOption('--to <dir>', 'the new node directory')
    .option('--token-file <file>', 'the source panel\'s token (default $SOURCEMESH_PANEL_TOKEN)')
    .option('--serve <url>', 'the source\'s serve, when the clone cannot learn it (a directory source whose serve listens on port 0)')
    .option('--name <name>', 'the new node\'s name (default SOURCE-NAME-clone)')
    .option('--port-offset <n>', 'add N to every non-zero port of the config (a clone on the source\'s machine)', '0')
    .option('-j, --jobs <n>', 'parallel downloads', '4')
    .option('--json', 'print the result as JSON')
    .action(async (source: string, o: { to: string; tokenFile?: string; serve?: string; name?: string; portOffset: string; jobs: string; json?: boolean }) => {
      const token = o.tokenFile !== undefined ? (await readBoundedFile(o.tokenFile, LIMITS.keyFileBytes, 'panel token (--token-file)', 'E_INPUT')).trim() : io.env.SOURCEMESH_PANEL_TOKEN;
      const portOffset = nonNegativeInt('--port-offset', o.portOffset, 60_000);
      const jobs = positiveInt('--jobs', o.jobs, 64);
      const t0 = performance.now();
      const r = await cloneNode({ source, to: o.to, token, serveUrl: o.serve, name: o.name, portOffset, jobs, signal });
      const seconds = (performance.now() - t0) / 1000;
      const bytes = r.inventory.files.reduce((n, f) => n + f.size, 0);
      const on = Object.entries(r.init.config.services).filter(([, s]) => s.enabled).map(([n]) => n);
      if (o.json) {
        return printJson(io, { dir: r.init.dir, name: r.init.config.name, from: source, serve: r.serveUrl, files: r.inventory.files.length, bytes, seconds, services: on,
          token: r.init.token, nodeKey: r.init.nodeVkey, logKey: r.init.logVkey, witnessKey: r.init.witnessVkey });
      }
      io.stdout.write(`cloned ${source} into ${r.init.dir}: ${r.inventory.files.length} files (${formatBytes(bytes)}) verified in ${seconds.toFixed(1)} s\n`);
      io.stdout.write(`services on: ${on.join(', ') || 'none'}\nnew node key ${r.init.nodeVkey}\npanel token  ${r.init.token}\n  (shown this once)\nstart it:    sourcemesh node run ${o.to}\n`);
    });
  return cmd;
}
