// How connections leave this machine: directly, or through a SOCKS5 proxy (Tor) with stream
// isolation. With --tor, each mirror (or each mirror and file, with --isolate-per-file) gets its own
// SOCKS username and password, which Tor's IsolateSOCKSAuth (on by default) maps to its own circuit,
// so that no exit or mirror can link one mirror's requests to another's. Names are always resolved by
// the proxy (socks5h): a local DNS lookup would say where we are going.
import { createHash, randomBytes } from 'node:crypto';
import { Socks5ProxyAgent, type Dispatcher } from 'undici';
import { SourcemeshError } from '../errors.ts';
import type { Limits } from '../limits.ts';
import { createAgent } from './http.ts';
import type { Source } from './plan.ts';

export const TOR_DEFAULT_PROXY = 'socks5h://127.0.0.1:9050';
const MAX_ISOLATED = 512;

export interface NetworkOptions {
  proxy?: string;
  tor?: boolean;
  isolatePerFile?: boolean;
}

export class Network {
  readonly dispatcher: Dispatcher;
  private readonly proxy?: URL;
  private readonly isolate: false | 'mirror' | 'file';
  private readonly limits: Limits;
  private readonly runId = randomBytes(6).toString('hex');
  private readonly isolated = new Map<string, Dispatcher>();

  constructor(opts: NetworkOptions, limits: Limits) {
    this.limits = limits;
    const proxy = opts.proxy ?? (opts.tor ? TOR_DEFAULT_PROXY : undefined);
    this.isolate = opts.tor ? (opts.isolatePerFile ? 'file' : 'mirror') : false;
    if (proxy) {
      this.proxy = parseProxy(proxy);
      this.dispatcher = this.agentFor('default');
    } else {
      if (opts.isolatePerFile) throw new SourcemeshError('E_USAGE', '--isolate-per-file needs --tor');
      this.dispatcher = createAgent(limits);
    }
  }

  /** The dispatcher for one source (and file): its own SOCKS credentials under --tor. */
  for(source: Source, file: string): Dispatcher {
    if (!this.proxy || !this.isolate) return this.dispatcher;
    const key = this.isolate === 'file' ? `${source.label}\n${file}` : source.label;
    let d = this.isolated.get(key);
    if (!d) {
      if (this.isolated.size >= MAX_ISOLATED) {
        const [oldKey, old] = this.isolated.entries().next().value!;
        this.isolated.delete(oldKey);
        void old.close();
      }
      d = this.agentFor(key);
      this.isolated.set(key, d);
    }
    return d;
  }

  private agentFor(key: string): Dispatcher {
    const url = this.proxy!;
    const creds = this.isolate
      ? { username: `sourcemesh-${this.runId}-${createHash('sha256').update(key).digest('hex').slice(0, 16)}`, password: 'isolate' }
      : { username: url.username ? decodeURIComponent(url.username) : undefined, password: url.password ? decodeURIComponent(url.password) : undefined };
    const base = new URL(url.href);
    base.protocol = 'socks5:';
    base.username = '';
    base.password = '';
    return new Socks5ProxyAgent(base, {
      ...creds,
      connectTimeout: this.limits.connectTimeoutMs,
      headersTimeout: this.limits.headersTimeoutMs,
      bodyTimeout: this.limits.idleTimeoutMs,
    } as Socks5ProxyAgent.Options);
  }

  async close(): Promise<void> {
    await Promise.all([this.dispatcher.close(), ...[...this.isolated.values()].map((d) => d.close())]);
  }
}

function parseProxy(text: string): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new SourcemeshError('E_USAGE', `--proxy ${text}: not a URL`);
  }
  if (u.protocol === 'socks5:') throw new SourcemeshError('E_USAGE', `--proxy ${text}: use socks5h:// so that names are resolved by the proxy, never locally`);
  if (u.protocol !== 'socks5h:') throw new SourcemeshError('E_USAGE', `--proxy ${text}: only socks5h:// proxies are supported`);
  if (!u.hostname || !u.port) throw new SourcemeshError('E_USAGE', `--proxy ${text}: give the proxy's host and port`);
  return u;
}

/** Anonymity networks are slow: longer timeouts and more retries than the defaults. */
export function torLimits(limits: Limits): Limits {
  return { ...limits, connectTimeoutMs: Math.max(limits.connectTimeoutMs, 120_000), headersTimeoutMs: Math.max(limits.headersTimeoutMs, 120_000), idleTimeoutMs: Math.max(limits.idleTimeoutMs, 120_000), attemptsPerSource: Math.max(limits.attemptsPerSource, 8) };
}
