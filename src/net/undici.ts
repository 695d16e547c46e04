// The one module that imports undici (the rule of docs/ARCHITECTURE.md: each third-party package has one
// private path in our code, test/docs/private-imports.test.ts). Everything else takes undici's client,
// agents and types from here, so an upgrade, or loading less of undici, is a change in one place.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { setFlagsFromString } from 'node:v8';

export { Agent, Dispatcher, Pool, Socks5ProxyAgent, request } from 'undici';

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
