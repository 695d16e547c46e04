// sourcemesh witness serve --state DIR --key KEYFILE --listen HOST:PORT --log VKEY [--log VKEY]...
// Prints `listening on URL` as the first line on stdout; JSON logs (pino) go to stderr.
import { Command } from 'commander';
import { SourcemeshError } from '../errors.ts';
import { startWitness } from '../trust/witness/server.ts';
import { readSignerKeyFile } from '../trust/key-file.ts';
import { readVerifierKeyArg } from './key.ts';
import { startRoughtimeServer } from '../time/server.ts';
import { parseListen } from './listen.ts';
import { createLogger, untilAborted } from './log.ts';
import { nonNegativeInt, positiveInt } from './output.ts';
import { LIMITS } from '../limits.ts';
import type { Io } from './output.ts';
import { announceNode } from '../discovery/announce.ts';

interface ServeFlags {
  state: string;
  key: string;
  listen: string;
  log: string[];
  logLevel: string;
  roughtime?: string;
  roughtimeTcp?: string;
  roughtimeRadius: string;
  roughtimeRate: string;
  roughtimeBurst: string;
  announce?: boolean;
  announceInterface?: string[];
}

export function witnessCommand(io: Io, signal: AbortSignal): Command {
  const cmd = new Command('witness').description('run a transparency log witness (C2SP tlog-witness, cosignature/v1)');
  cmd.command('serve')
    .description('cosign checkpoints of the given logs that are consistent with the last one cosigned; refuse rollbacks and forks')
    .requiredOption('--state <dir>', 'where the latest cosigned checkpoint of each log is kept (witness.sqlite)')
    .requiredOption('--key <keyfile>', 'the witness\'s cosignature key (`sourcemesh key generate NAME --type cosignature -o KEYFILE`)')
    .requiredOption('--listen <host:port>', 'address to serve on (port 0: any free port)')
    .requiredOption('--log <vkey>', 'a log to witness: its vkey (or a .pub file); the vkey\'s name is the log\'s origin; repeatable', (v: string, p: string[]) => [...p, v], [])
    .option('--roughtime <host:port>', 'also answer Roughtime (RFC 10049) over UDP here, signed by a key the witness key delegates to')
    .option('--roughtime-tcp <host:port>', 'also answer Roughtime over TCP here (RFC 10049 TCP transport mode); needs --roughtime')
    .option('--roughtime-radius <seconds>', 'the RADI of Roughtime answers: how far this machine\'s clock may be off', '3')
    .option('--roughtime-rate <n>', 'Roughtime requests per second answered per client address (IPv6: per /64); 0 for no limit', String(LIMITS.roughtimeRequestsPerSecond))
    .option('--roughtime-burst <n>', 'Roughtime requests a client address may make at once before --roughtime-rate applies', String(LIMITS.roughtimeRequestBurst))
    .option('--log-level <level>', 'fatal, error, warn, info, debug or silent', 'info')
    .option('--announce', 'announce the witness on the local network (DNS-SD over mDNS, _sourcemesh._tcp, role witness) for `sourcemesh discover`, which checks it by a challenge signed with the witness key')
    .option('--announce-interface <name...>', 'interfaces to announce on (default: every interface that is up, loopback aside; IPv4, IPv6 or both as the listen address serves)')
    .action(async (o: ServeFlags) => {
      const listen = parseListen(o.listen);
      const key = await readSignerKeyFile(o.key);
      if (o.log.length === 0) throw new SourcemeshError('E_USAGE', 'give at least one --log VKEY to witness');
      const logs = [];
      for (const v of o.log) logs.push(await readVerifierKeyArg(v));
      const logger = createLogger(o.logLevel, 'witness');
      const roughtimeAt = o.roughtime === undefined ? undefined : roughtimeListen('--roughtime', o.roughtime);
      const roughtimeTcpAt = o.roughtimeTcp === undefined ? undefined : roughtimeListen('--roughtime-tcp', o.roughtimeTcp);
      // "Servers SHOULD support both the UDP and TCP transport modes": TCP comes with UDP, not instead.
      if (roughtimeTcpAt !== undefined && roughtimeAt === undefined) throw new SourcemeshError('E_USAGE', '--roughtime-tcp needs --roughtime HOST:PORT (the UDP transport) as well');
      const radius = positiveInt('--roughtime-radius', o.roughtimeRadius, 86_400);
      const rate = { perSecond: nonNegativeInt('--roughtime-rate', o.roughtimeRate, 1_000_000), burst: positiveInt('--roughtime-burst', o.roughtimeBurst, 1_000_000) };
      const announcing = o.announce === true || o.announceInterface !== undefined;
      const witness = await startWitness({ stateDir: o.state, key, logs, host: listen.host, port: listen.port, logger, challenge: announcing });
      const roughtime = roughtimeAt === undefined ? undefined
        : await startRoughtimeServer({ key, host: roughtimeAt.host, port: roughtimeAt.port, radius, rate, logger, ...(roughtimeTcpAt === undefined ? {} : { tcp: roughtimeTcpAt }) }).catch(async (err: unknown) => { await witness.close(); throw err; });
      io.stdout.write(`listening on ${witness.url}\n`);
      if (roughtime !== undefined) io.stdout.write(`roughtime on udp ${roughtime.address}\n`);
      if (roughtime?.tcpAddress !== undefined) io.stdout.write(`roughtime on tcp ${roughtime.tcpAddress}\n`);
      const announcer = !announcing ? undefined : await announceNode({
        key, port: Number(new URL(witness.url).port), roles: ['witness'], listenHost: listen.host, log: logger,
        ...(o.announceInterface ? { interfaces: o.announceInterface } : {}),
      }).catch(async (err: unknown) => { await roughtime?.close(); await witness.close(); throw err; });
      if (announcer) logger.info({ instance: announcer.announcement.instance, links: announcer.links().map((l) => `${l.name} (${l.address})`) }, 'announcing');
      await untilAborted(signal);
      logger.info({}, 'shutting down');
      await announcer?.close(); // goodbye first: browsers forget the witness at once
      await roughtime?.close();
      await witness.close();
    });
  return cmd;
}

function roughtimeListen(flag: string, value: string): { host: string; port: number } {
  try {
    return parseListen(value);
  } catch {
    throw new SourcemeshError('E_USAGE', `${flag} ${value}: expected HOST:PORT, e.g. 127.0.0.1:2002 or [::1]:0`);
  }
}
