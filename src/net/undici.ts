// The one module that imports undici (the rule of docs/ARCHITECTURE.md: each third-party package has one
// private path in our code, test/docs/private-imports.test.ts). Everything else takes undici's client,
// agents and types from here, so an upgrade, or loading less of undici, is a change in one place.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createRequire, registerHooks } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import type * as Undici from 'undici';

// undici's parts are loaded by their paths, not through its index: the index also loads its fetch, web
// streams, WebSocket, cache, cookies, mocks and interceptors, none of which we use, and their code is
// 10-14 MB of a fetch's peak RSS (docs/BENCHMARKS.md, issue 21). undici 8 has no `exports` map, so these
// paths are reachable; they are its CommonJS modules, typed here by its published types. What the index
// adds on top of them is its `request(url, options)`, remade below.
const load = createRequire(import.meta.url);

// Nor node:http2, which undici's HTTP/2 client loads at its start and which is some 3-4 MB of RSS
// (docs/BENCHMARKS.md, issue 21): every agent of ours is HTTP/1.1 only (src/fetch/http.ts HTTP1_ONLY, and
// request() below), so HTTP/2 is never negotiated. undici loads it in a try and, when it fails, takes
// itself to be on a runtime without HTTP/2 (lib/dispatcher/client-h2.js); the hook says so for that one
// module, only while undici's parts load.
const withoutHttp2 = registerHooks({
  resolve(specifier, context, next) {
    if ((specifier === 'node:http2' || specifier === 'http2') && context.parentURL?.endsWith('/undici/lib/dispatcher/client-h2.js')) {
      throw Object.assign(new Error('node:http2 is not loaded for undici: sourcemesh speaks HTTP/1.1'), { code: 'ERR_UNKNOWN_BUILTIN_MODULE' });
    }
    return next(specifier, context);
  },
});

export const Agent: typeof Undici.Agent = load('undici/lib/dispatcher/agent.js');
export type Agent = Undici.Agent;
export const Dispatcher: typeof Undici.Dispatcher = load('undici/lib/dispatcher/dispatcher.js');
export type Dispatcher = Undici.Dispatcher;
// Types that callers name through the class, as undici's index exports them.
export declare namespace Dispatcher {
  type ResponseData = Undici.Dispatcher.ResponseData;
  type RequestOptions = Undici.Dispatcher.RequestOptions;
  type DispatchOptions = Undici.Dispatcher.DispatchOptions;
  type DispatchHandler = Undici.Dispatcher.DispatchHandler;
  type DispatchController = Undici.Dispatcher.DispatchController;
}
export const Pool: typeof Undici.Pool = load('undici/lib/dispatcher/pool.js');
export type Pool = Undici.Pool;
export const buildConnector: typeof Undici.buildConnector = load('undici/lib/core/connect.js');
export type buildConnector = Undici.buildConnector.connector;
export const Socks5ProxyAgent: typeof Undici.Socks5ProxyAgent = load('undici/lib/dispatcher/socks5-proxy-agent.js');
export type Socks5ProxyAgent = Undici.Socks5ProxyAgent;
export declare namespace Socks5ProxyAgent {
  type Options = Undici.Socks5ProxyAgent.Options;
}
withoutHttp2.deregister();

type RequestOptions = Omit<Undici.Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & { method?: Undici.Dispatcher.HttpMethod; dispatcher?: Undici.Dispatcher };
type ApiRequest = (this: Undici.Dispatcher, options: Undici.Dispatcher.RequestOptions) => Promise<Undici.Dispatcher.ResponseData>;
let apiRequest: ApiRequest | undefined;

let fallback: Undici.Dispatcher | undefined;

/**
 * undici's `request(url, options)`: one request through `options.dispatcher` (src/ always gives one;
 * without it, an HTTP/1.1 agent of this module's, where undici's index would take its global agent, which
 * negotiates HTTP/2), its body a Readable. As undici's index makes it: the origin and the path with its
 * query from `url`, GET unless a method is given.
 */
export function request(url: string | URL, options: RequestOptions = {}): Promise<Undici.Dispatcher.ResponseData> {
  const { dispatcher = (fallback ??= new Agent({ allowH2: false })), ...rest } = options;
  const u = typeof url === 'string' ? new URL(url) : url;
  apiRequest ??= load('undici/lib/api/api-request.js') as ApiRequest;
  return apiRequest.call(dispatcher, { ...rest, origin: u.origin, path: `${u.pathname}${u.search}`, method: rest.method ?? 'GET' });
}

// undici publishes this when a response's headers are parsed (lib/core/diagnostics.js): the parser's
// functions have run, so each was compiled (V8 compiles WebAssembly functions lazily, at their first call).
const FIRST_HEADERS = 'undici:request:headers';
let parserAsked = false;

/**
 * undici's HTTP/1.1 parser is llhttp compiled to WebAssembly, compiled at a process's first connection.
 * V8 then recompiles its one large function (the parser's state machine) with its optimizing tier on a
 * background thread: 90 ms of CPU and 23 MB of compiler memory at the start of a download, which glibc
 * keeps in that thread's arena for the rest of the process (about 10 MB of a fetch's peak RSS;
 * docs/BENCHMARKS.md, issue 21). The parser reads headers and skips bodies by their length, so the
 * baseline tier is enough. The tier-up is off from this call until the first response's headers are parsed
 * and back on right after, so WebAssembly compiled later (xz) keeps it: V8 reads these flags when it
 * compiles a function. Called by the download agents (src/fetch/http.ts createAgent) before they connect.
 */
export function parserWithoutTierUp(): void {
  if (parserAsked) return;
  parserAsked = true;
  setFlagsFromString('--no-wasm-tier-up');
  setFlagsFromString('--no-wasm-dynamic-tiering');
  const parsed = (): void => {
    unsubscribe(FIRST_HEADERS, parsed);
    setFlagsFromString('--wasm-tier-up');
    setFlagsFromString('--wasm-dynamic-tiering');
  };
  subscribe(FIRST_HEADERS, parsed);
}
