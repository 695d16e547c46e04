// The one module that imports undici (the rule of docs/ARCHITECTURE.md: each third-party package has one
// private path in our code, test/docs/private-imports.test.ts). Everything else takes undici's client,
// agents and types from here, so an upgrade, or loading less of undici, is a change in one place.
export { Agent, Dispatcher, Pool, Socks5ProxyAgent, request } from 'undici';
