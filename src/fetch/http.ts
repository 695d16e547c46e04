// HTTP(S) transport on undici. Redirects are followed here, by hand, so that each hop is checked:
// only http and https, at most LIMITS.maxRedirects hops.
import { ownedReads } from '../net/socket-buffers.ts';
import { Agent, buildConnector, parserWithoutTierUp, request, type Dispatcher } from '../net/undici.ts';
import { SourcemeshError } from '../errors.ts';
import { VERSION } from '../version.ts';
import type { Limits } from '../limits.ts';
import { HttpBody } from './http-body.ts';
import { transferError, type OpenOptions, type Opened } from './transport.ts';

export const USER_AGENT = `sourcemesh/${VERSION}`;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * HTTP/1.1 only (undici 8 would negotiate HTTP/2 over TLS): our timeouts, header bounds and range
 * handling are the ones proven against hostile HTTP/1.1 servers, and a mirror's files need no more.
 */
export const HTTP1_ONLY = { allowH2: false } as const;

let shared: Dispatcher | undefined;

/**
 * The dispatcher of a client given none (`release`, `release rotate`, `release verify --online`): HTTP/1.1
 * like every other, where undici's global one would negotiate HTTP/2 over TLS. Its idle connections do not
 * keep the process alive (undici unrefs them).
 */
export function defaultDispatcher(): Dispatcher {
  return (shared ??= new Agent({ ...HTTP1_ONLY, keepAliveTimeout: 10_000 }));
}

/**
 * A download agent. Its plain-HTTP connections read into memory of ours (src/net/socket-buffers.ts
 * ownedReads), which a consumer that copies every chunk at once (readRange's pieces) gives back for the
 * next read, instead of a fresh buffer per read that stays until a collection (docs/BENCHMARKS.md,
 * bench:mirrors, issue 21); TLS connections as undici makes them.
 */
export function createAgent(limits: Limits): Dispatcher {
  parserWithoutTierUp();
  const tls = buildConnector({ ...HTTP1_ONLY, timeout: limits.connectTimeoutMs });
  const plain = buildConnector({ ...HTTP1_ONLY, timeout: limits.connectTimeoutMs, onread: ownedReads } as Parameters<typeof buildConnector>[0]);
  return new Agent({
    ...HTTP1_ONLY,
    connect: (options, callback) => (options.protocol === 'https:' ? tls : plain)(options, callback),
    headersTimeout: limits.headersTimeoutMs,
    bodyTimeout: limits.idleTimeoutMs,
    maxHeaderSize: limits.maxHeaderBytes,
    keepAliveTimeout: 10_000,
  });
}

export async function openHttp(url: string, opts: OpenOptions & { dispatcher: Dispatcher; limits: Limits }): Promise<Opened> {
  let current = url;
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': USER_AGENT };
    const wanted = `bytes=${opts.offset}-${opts.end ?? ''}`;
    if (opts.offset > 0 || opts.end !== undefined) {
      headers.range = wanted;
      if (opts.ifRange) headers['if-range'] = opts.ifRange;
    }
    let res: Head;
    try {
      res = await dispatchGet(current, headers, opts.dispatcher, opts.limits, opts.signal);
    } catch (err) {
      throw networkError(err, current);
    }
    const status = res.statusCode;
    const header = (name: string) => {
      const v = res.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    if (REDIRECTS.has(status)) {
      await res.body.dump().catch(() => {});
      const location = header('location');
      if (!location) throw transferError('E_HTTP', `${current}: HTTP ${status} redirect without a Location`, false, { url: current, status });
      if (hop >= opts.limits.maxRedirects) throw transferError('E_REDIRECT', `${url}: more than ${opts.limits.maxRedirects} redirects`, false, { url });
      let next: URL;
      try {
        next = new URL(location, current);
      } catch {
        throw transferError('E_REDIRECT', `${current}: redirect to an invalid URL "${location}"`, false, { url: current });
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw transferError('E_REDIRECT', `${current}: refusing a redirect to ${next.protocol} URL ${next.href}`, false, { url: current, location: next.href });
      }
      current = next.href;
      continue;
    }
    const cancel = () => res.body.cancel();
    if (status === 200 || status === 206) {
      const contentLength = parseLength(header('content-length'));
      let start = 0;
      let total = status === 200 ? contentLength : undefined;
      if (status === 206) {
        const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header('content-range') ?? '');
        const last = range ? Number(range[2]) : -1;
        const cutAtEnd = opts.shortEndOk && range?.[3] !== '*' && last === Number(range?.[3]) - 1 && last < opts.end!;
        if (!range || Number(range[1]) !== opts.offset || (opts.end !== undefined && last !== opts.end && !cutAtEnd)) {
          cancel();
          throw transferError('E_HTTP', `${current}: 206 with Content-Range "${header('content-range')}" for ${wanted}`, false, { url: current, badRange: true });
        }
        start = opts.offset;
        total = range[3] === '*' ? undefined : Number(range[3]);
      }
      const etag = header('etag');
      return {
        body: res.body,
        pipe: (sink) => res.body.pipe(sink),
        lend: () => res.body.lend(),
        start,
        ranged: status === 206,
        total,
        etag: etag && !etag.startsWith('W/') ? etag : undefined,
        lastModified: header('last-modified'),
        url: current,
        cancel,
      };
    }
    await res.body.dump().catch(() => {});
    if (status === 416) {
      // RFC 9110 §15.5.17: the length of the whole file, when the server says ("bytes */LENGTH").
      const whole = /^bytes \*\/(\d+)$/.exec(header('content-range') ?? '');
      throw transferError('E_HTTP', `${current}: HTTP 416 for ${wanted}`, false, { url: current, status, rangeNotSatisfiable: true, completeLength: whole ? Number(whole[1]) : undefined });
    }
    const retryable = status >= 500 || status === 429 || status === 408;
    throw transferError('E_HTTP', `${current}: HTTP ${status}`, retryable, { url: current, status, retryAfter: header('retry-after'), notFound: status === 404 || status === 410 });
  }
}

interface Head {
  statusCode: number;
  headers: Dispatcher.ResponseData['headers'];
  body: HttpBody;
}

/**
 * GET `url` through undici's dispatch(): resolves with the status and headers, the body held paused
 * until its consumer pipes or iterates it (src/fetch/http-body.ts). Timeouts per request: a proxy agent
 * does not pass its own on to the pools it makes.
 */
function dispatchGet(url: string, headers: Record<string, string>, dispatcher: Dispatcher, limits: Limits, signal?: AbortSignal): Promise<Head> {
  const target = new URL(url);
  return new Promise<Head>((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined;
    let body: HttpBody | undefined;
    let settled = false;
    const onAbort = () => {
      const reason = signal!.reason ?? Object.assign(new Error('aborted'), { name: 'AbortError' });
      if (controller && !controller.aborted) controller.abort(reason);
      if (!settled) {
        settled = true;
        reject(reason);
      }
    };
    const detach = () => signal?.removeEventListener('abort', onAbort);
    if (signal?.aborted) {
      onAbort();
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (signal?.aborted) c.abort(signal.reason);
      },
      onResponseStart(c, statusCode, responseHeaders) {
        if (statusCode < 200) return; // 1xx: the real answer follows
        body = new HttpBody(c);
        settled = true;
        resolve({ statusCode, headers: responseHeaders, body });
      },
      onResponseData(_c, chunk) {
        body?.data(chunk);
      },
      onResponseEnd() {
        detach();
        body?.end();
      },
      onResponseError(_c, err) {
        detach();
        if (body) body.error(err);
        if (!settled) {
          settled = true;
          reject(err);
        }
      },
    };
    try {
      dispatcher.dispatch({ origin: target.origin, path: `${target.pathname}${target.search}`, method: 'GET', headers, headersTimeout: limits.headersTimeoutMs, bodyTimeout: limits.idleTimeoutMs }, handler);
    } catch (err) {
      detach();
      settled = true;
      reject(err);
    }
  });
}

function parseLength(v: string | undefined): number | undefined {
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

const NETWORK_CAUSES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
  ETIMEDOUT: 'timed out',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'name resolution failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_CONNECT_TIMEOUT: 'connect timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no response headers in time',
  UND_ERR_BODY_TIMEOUT: 'stalled: no data in time',
  UND_ERR_SOCKET: 'connection closed',
  UND_ERR_CLOSED: 'connection closed',
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'body shorter than Content-Length',
  UND_ERR_HEADERS_OVERFLOW: 'response headers too large',
};

/** Map an undici or socket error on `url` to our family; aborts pass through untouched. */
export function networkError(err: unknown, url: string): unknown {
  if (err instanceof SourcemeshError) return err;
  const e = err as { code?: string; name?: string; message?: string; cause?: { code?: string } };
  if (e?.name === 'AbortError') return err;
  const tlsCode = [e?.code, e?.cause?.code].find((c) => c && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL/.test(c));
  if (tlsCode) {
    // A certificate that does not verify will not verify on retry either.
    return transferError('E_NETWORK', `${url}: TLS certificate not accepted (${tlsCode}: ${e?.message ?? ''})`, false, { url, cause: tlsCode }, err);
  }
  const code = e?.code && NETWORK_CAUSES[e.code] ? e.code : e?.cause?.code && NETWORK_CAUSES[e.cause.code] ? e.cause.code : undefined;
  const why = code ? NETWORK_CAUSES[code] : e?.message ?? String(err);
  const retryable = code !== 'ENOTFOUND' && code !== 'UND_ERR_HEADERS_OVERFLOW';
  return transferError('E_NETWORK', `${url}: ${why}`, retryable, { url, cause: code ?? e?.code }, err);
}

/**
 * The size a server announces for `url` (HEAD; redirects followed as for GET), if it says. Only a hint:
 * an unreachable server, an error status or a bad redirect announce nothing (the GET that follows
 * reports why); only an abort is thrown.
 */
export async function headSize(url: string, dispatcher: Dispatcher, limits: Limits, signal?: AbortSignal): Promise<number | undefined> {
  let current = url;
  for (let hop = 0; hop <= limits.maxRedirects; hop++) {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(current, { method: 'HEAD', dispatcher, signal, headers: { 'accept-encoding': 'identity', 'user-agent': USER_AGENT }, headersTimeout: limits.headersTimeoutMs, bodyTimeout: limits.idleTimeoutMs });
    } catch (err) {
      if (signal?.aborted) throw err;
      return undefined;
    }
    await res.body.dump().catch(() => {});
    const location = res.headers.location;
    if (REDIRECTS.has(res.statusCode) && typeof location === 'string') {
      // The Location header is attacker-controlled: one that is not a URL ends the walk, it is no bug.
      const next = URL.parse(location, current);
      if (!next || (next.protocol !== 'http:' && next.protocol !== 'https:')) return undefined;
      current = next.href;
      continue;
    }
    const len = res.headers['content-length'];
    return res.statusCode === 200 && typeof len === 'string' && /^\d+$/.test(len) ? Number(len) : undefined;
  }
  return undefined;
}

/**
 * A whole response body of at most `max` bytes. The peer is attacker-controlled: past `max` the body is
 * destroyed and `tooLarge()` thrown, instead of a buffer growing without end.
 */
export async function readBoundedBody(body: AsyncIterable<Uint8Array> & { destroy(): void }, max: number, tooLarge: () => Error): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of body) {
    length += (chunk as Buffer).length;
    if (length > max) {
      body.destroy();
      throw tooLarge();
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
