// How connections leave this machine: directly, or through a SOCKS5 proxy (Tor) with stream
// isolation. With --tor, each mirror (or each mirror and file, with --isolate-per-file) gets its own
// SOCKS username and password, which Tor's IsolateSOCKSAuth (on by default) maps to its own circuit,
// so that no exit or mirror can link one mirror's requests to another's. Names are always resolved by
// the proxy (socks5h): a local DNS lookup would say where we are going.
import { createHash, randomBytes } from 'node:crypto';
import { Dispatcher, Socks5ProxyAgent } from '../net/undici.ts';
import { SourcemeshError } from '../errors.ts';
import type { Limits } from '../limits.ts';
import { HTTP1_ONLY, createAgent } from './http.ts';
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
    return this.isolatedAgent(this.isolate === 'file' ? `${source.label}\n${file}` : source.label);
  }

  /**
   * One dispatcher for code that takes a single one (mirror sync, audits): under --tor each origin
   * (scheme, host and port) it reaches gets its own SOCKS credentials, hence its own circuit.
   */
  byOrigin(): Dispatcher {
    if (!this.proxy || !this.isolate) return this.dispatcher;
    return new OriginRouter((origin) => this.isolatedAgent(`origin ${origin}`));
  }

  /**
   * The proxy URL for a program of our own that connects by itself (git cloning `repo`), with the
   * credentials stream isolation gives `repo`'s origin; undefined without a proxy.
   */
  proxyUrlFor(repo: string): string | undefined {
    if (!this.proxy) return undefined;
    const u = new URL(this.proxy.href);
    if (this.isolate) {
      let origin = repo;
      try {
        origin = new URL(repo).origin;
      } catch {
        // not a URL (a local path): no network, any credentials do
      }
      const creds = this.credentials(`origin ${origin}`);
      u.username = encodeURIComponent(creds.username!);
      u.password = encodeURIComponent(creds.password!);
    }
    return u.href;
  }

  private isolatedAgent(key: string): Dispatcher {
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

  private credentials(key: string): { username?: string; password?: string } {
    const url = this.proxy!;
    return this.isolate
      ? { username: `sourcemesh-${this.runId}-${createHash('sha256').update(key).digest('hex').slice(0, 16)}`, password: 'isolate' }
      : { username: url.username ? decodeURIComponent(url.username) : undefined, password: url.password ? decodeURIComponent(url.password) : undefined };
  }

  private agentFor(key: string): Dispatcher {
    const url = this.proxy!;
    const creds = this.credentials(key);
    const base = new URL(url.href);
    base.protocol = 'socks5:';
    base.username = '';
    base.password = '';
    return withoutSocksWarning(() => new Socks5ProxyAgent(base, {
      ...HTTP1_ONLY,
      ...creds,
      connectTimeout: this.limits.connectTimeoutMs,
      headersTimeout: this.limits.headersTimeoutMs,
      bodyTimeout: this.limits.idleTimeoutMs,
    } as Socks5ProxyAgent.Options));
  }

  async close(): Promise<void> {
    await Promise.all([this.dispatcher.close(), ...[...this.isolated.values()].map((d) => d.close())]);
  }
}

/** Sends each request through the dispatcher `pick` gives its origin; closing is the Network's business. */
class OriginRouter extends Dispatcher {
  private readonly pick: (origin: string) => Dispatcher;

  constructor(pick: (origin: string) => Dispatcher) {
    super();
    this.pick = pick;
  }

  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.pick(String(opts.origin)).dispatch(opts, handler);
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    if (callback) return void queueMicrotask(callback);
    return Promise.resolve();
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    const callback = typeof a === 'function' ? a : b;
    if (callback) return void queueMicrotask(callback);
    return Promise.resolve();
  }
}

// undici warns once, from the first Socks5ProxyAgent's constructor, that its SOCKS5 support is
// experimental. Our use of it is pinned and tested against a real SOCKS5 server (dante), so the line only
// alarms users of --tor: exactly that warning is dropped, and only while an agent is being made (undici
// emits it synchronously there); every other warning passes as before.
export const SOCKS_EXPERIMENTAL_WARNING = 'SOCKS5 proxy support is experimental and subject to change';

export function withoutSocksWarning<T>(make: () => T): T {
  const emit = process.emitWarning;
  process.emitWarning = function (warning: string | Error, ...rest: unknown[]): void {
    const message = typeof warning === 'string' ? warning : warning.message;
    const opt = rest[0];
    const type = typeof opt === 'string' ? opt : typeof opt === 'object' && opt !== null && 'type' in opt ? (opt as { type?: string }).type : typeof warning === 'string' ? 'Warning' : warning.name;
    if (message === SOCKS_EXPERIMENTAL_WARNING && type === 'ExperimentalWarning') return;
    (emit as (...args: unknown[]) => void).call(process, warning, ...rest);
  } as typeof process.emitWarning;
  try {
    return make();
  } finally {
    process.emitWarning = emit;
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
