// What each service of a node is, as a command of our own CLI (pure: config in, arguments out), and what
// changes when a config replaces another. The supervisor runs each switched-on service as a child process
// of `sourcemesh`: the commands an operator would start by hand, with the same flags, so a node behaves
// as they are documented, and a service that crashes takes no other service with it (docs/OPERATIONS.md,
// "Running a node").
import { nodePath, type NodeConfig, SERVICE_NAMES, type ServiceName } from './config.ts';
import { nodeKeyFiles } from '../mirror/inventory.ts';
import path from 'node:path';

export interface ServiceInfo {
  title: string;
  /**
   * What it exposes and who can reach it, for the panel. `listening` is the address the running service
   * announced (the supervisor reads it from its first line): with port 0 in the config, the only place
   * the real port is known.
   */
  exposes: (c: NodeConfig, listening?: string) => string;
}

export const SERVICES: Record<ServiceName, ServiceInfo> = {
  serve: {
    title: 'Serve',
    exposes: (c, listening) => `HTTP on ${bound(c.services.serve.host, c.services.serve.port, listening)}: /NAME and /sha256/HEX of every file in the mirror root, /.well-known/sourcemesh/inventory signed by the node key. ${reach(c.services.serve.host)}`,
  },
  mirrorSync: {
    title: 'Mirror sync',
    exposes: () => 'Nothing: it connects out, to the upstream URLs and git repositories of the manifest, and writes the mirror root.',
  },
  seed: {
    title: 'Seed',
    exposes: (c, listening) => `BitTorrent peer wire on ${bound(c.services.seed.host, c.services.seed.port, listening)}: every verified file of the mirror root to any peer that asks by info-hash${c.services.seed.dht ? ', announced in the public DHT' : ''}. ${reach(c.services.seed.host)}`,
  },
  logServe: {
    title: 'Transparency log',
    exposes: (c, listening) => `HTTP on ${bound(c.services.logServe.host, c.services.logServe.port, listening)}: POST /add for statements, GET /checkpoint and /tile/... for anyone. ${reach(c.services.logServe.host)}`,
  },
  witnessServe: {
    title: 'Witness',
    exposes: (c, listening) => `HTTP on ${bound(c.services.witnessServe.host, c.services.witnessServe.port, listening)}: POST /add-checkpoint (C2SP tlog-witness) from the logs it witnesses. ${reach(c.services.witnessServe.host)}`,
  },
};

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * host:port as the service really listens: the announced address when it runs, else the configured one,
 * where port 0 (the system picks one at start) is said in words rather than shown as `:0`.
 */
export function bound(host: string, port: number, listening: string | undefined): string {
  if (listening !== undefined) {
    // serve, log and witness announce a URL; seed announces HOST:PORT.
    if (/^(\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):\d{1,5}$/.test(listening)) return listening;
    try {
      const u = new URL(listening);
      if (u.port !== '') return u.host;
    } catch {
      // not an address: fall back to the config's
    }
  }
  return port === 0 ? `${hostPort(host, 0).slice(0, -2)}, on a port the system picks when it starts (port 0)` : hostPort(host, port);
}

function reach(host: string): string {
  return host === '::1' || host.startsWith('127.') ? 'Only this machine can reach it.' : 'Every network this machine is on can reach it.';
}

/** The node's own key, which signs the mirror inventory: DIR/keys/node.key. */
export function nodeKeyOf(dir: string) {
  return nodeKeyFiles(path.join(dir, 'keys'));
}

/** The arguments of `sourcemesh ...` for a service, or undefined when it is off. */
export function serviceArgs(c: NodeConfig, dir: string, name: ServiceName): string[] | undefined {
  const key = nodeKeyOf(dir).key;
  switch (name) {
    case 'serve': {
      const s = c.services.serve;
      if (!s.enabled) return undefined;
      return ['serve', '--root', nodePath(dir, s.root), '--listen', hostPort(s.host, s.port), '--key', key,
        '--rate', String(s.rate), '--burst', String(s.burst), '--max-connections', String(s.maxConnections),
        ...(s.announce ? ['--announce', ...s.announceInterfaces.flatMap((i) => ['--announce-interface', i])] : [])];
    }
    case 'seed': {
      const s = c.services.seed;
      if (!s.enabled) return undefined;
      return ['seed', '--root', nodePath(dir, s.root), '--listen', hostPort(s.host, s.port), '--max-peers', String(s.maxPeers),
        '--upload-rate', String(s.uploadRate), ...(s.dht ? ['--dht'] : [])];
    }
    case 'mirrorSync': {
      const s = c.services.mirrorSync;
      if (!s.enabled) return undefined;
      const manifest = /^https?:\/\//.test(s.manifest) ? s.manifest : nodePath(dir, s.manifest);
      return ['mirror', 'sync', manifest, '--root', nodePath(dir, s.root), '--interval', `${s.intervalSeconds}s`, '--key', key,
        '--jobs', String(s.jobs), '--json', ...(s.maxBytes > 0 ? ['--max-bytes', String(s.maxBytes)] : []),
        ...(c.torProxy !== '' ? ['--tor', '--proxy', c.torProxy] : [])];
    }
    case 'logServe': {
      const s = c.services.logServe;
      if (!s.enabled) return undefined;
      return ['log', 'serve', '--root', nodePath(dir, s.root), '--key', nodePath(dir, s.key), '--listen', hostPort(s.host, s.port),
        s.admit === 'unsigned' ? '--admit-unsigned' : '--admit-any-signed'];
    }
    case 'witnessServe': {
      const s = c.services.witnessServe;
      if (!s.enabled) return undefined;
      return ['witness', 'serve', '--state', nodePath(dir, s.state), '--key', nodePath(dir, s.key), '--listen', hostPort(s.host, s.port),
        ...s.logs.flatMap((l) => ['--log', l]),
        ...(s.roughtime ? ['--roughtime', hostPort(s.host, s.roughtimePort)] : []), ...(s.roughtimeTcp ? ['--roughtime-tcp', hostPort(s.host, s.roughtimeTcpPort)] : [])];
    }
  }
}

export interface Plan {
  start: ServiceName[];
  stop: ServiceName[];
  /** Switched on in both, with other arguments: stopped, then started with the new ones. */
  restart: ServiceName[];
}

/**
 * What to do to go from the services running now (name -> arguments) to those `wanted`: a service whose
 * arguments did not change is left alone.
 */
export function planChanges(running: ReadonlyMap<ServiceName, readonly string[]>, wanted: ReadonlyMap<ServiceName, readonly string[]>): Plan {
  const plan: Plan = { start: [], stop: [], restart: [] };
  for (const name of SERVICE_NAMES) {
    const now = running.get(name);
    const next = wanted.get(name);
    if (now === undefined && next !== undefined) plan.start.push(name);
    else if (now !== undefined && next === undefined) plan.stop.push(name);
    else if (now !== undefined && next !== undefined && JSON.stringify(now) !== JSON.stringify(next)) plan.restart.push(name);
  }
  return plan;
}

export function wantedServices(c: NodeConfig, dir: string): Map<ServiceName, string[]> {
  const m = new Map<ServiceName, string[]>();
  for (const name of SERVICE_NAMES) {
    const args = serviceArgs(c, dir, name);
    if (args) m.set(name, args);
  }
  return m;
}
