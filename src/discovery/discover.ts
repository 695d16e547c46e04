// `discover`: browse the local network for _sourcemesh._tcp nodes and keep those that prove the key
// they announce: a node is kept only when what it serves under its announced path (its signed
// inventory, or a log's checkpoint) verifies against that key, and a mirror also signs a fresh nonce
// with its address (challenge.ts), so a node replaying another's inventory is refused. Anyone on the
// link may announce anything, so every announced node is a claim until checked, and checking is bounded:
// candidates (limits.discoveryCandidates, 16 per sender), checks in flight
// (limits.discoveryChecksInFlight), each check's time (limits.discoveryCheckTimeoutMs) and the whole run (the timeout, then checks in flight end).
import type { Dispatcher } from '../net/undici.ts';
import { SourcemeshError } from '../errors.ts';
import { createAgent, openHttp, readBoundedBody } from '../fetch/http.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { SILENT, type Logger } from '../logger.ts';
import { INVENTORY_PATH, parseInventory } from '../mirror/inventory.ts';
import { openCheckpoint } from '../trust/checkpoint.ts';
import { createVerifier, parseVerifierKey, type VerifierKey } from '../trust/note.ts';
import { CHALLENGE_PATH, checkChallengeAnswer, hostPort, newNonce } from './challenge.ts';
import { BrowseState, SERVICE_TYPE, type Candidate, type Refusal, type Role } from './dns-sd.ts';
import { MDNS_PORT, MdnsSockets } from './mdns.ts';

export interface DiscoveredNode {
  instance: string;
  /** Base URL of the node: scheme://address:port */
  url: string;
  key: string;
  roles: Role[];
  /**
   * What was checked: a mirror's inventory (and challenge), a log's checkpoint, or for a seed or a witness
   * (nothing signed to fetch) the challenge alone: the key signed our nonce and the address we reached.
   */
  checked: { inventory: { files: number; generated: string } } | { checkpoint: { origin: string; size: number } } | { challenge: { address: string } };
  /** A seed's BitTorrent peer wire, host:port (TXT bt=). */
  bittorrent?: string;
  /** Milliseconds from the start of discovery to the end of this node's check. */
  ms: number;
}

export interface DiscoverResult {
  nodes: DiscoveredNode[];
  /** Announced nodes that failed their check, or whose announcement was malformed. */
  refused: Refusal[];
  /** Announcements beyond the bounds, and packets over the rate. */
  dropped: number;
}

export interface DiscoverOptions {
  timeoutMs: number;
  interfaces?: readonly string[];
  limits?: Limits;
  log?: Logger;
  dispatcher?: Dispatcher;
  /** For tests: another mDNS port. */
  mdnsPort?: number;
  /**
   * When browsing was asked for, on performance.now()'s clock (0: the process's start): the first query's
   * random delay of 20-120 ms counts from then (default: now).
   */
  since?: number;
  /** In [0, 1): that delay's random draw. */
  random?: () => number;
  /** Called as each node passes its check (fetch --discover starts using it at once). */
  onNode?: (node: DiscoveredNode) => void;
  /** Called as an announced node fails its check. */
  onRefused?: (refusal: Refusal) => void;
  signal?: AbortSignal;
}

export async function discoverNodes(options: DiscoverOptions): Promise<DiscoverResult> {
  const limits = options.limits ?? LIMITS;
  const log = options.log ?? SILENT;
  const start = performance.now();
  const dispatcher = options.dispatcher ?? createAgent({ ...limits, connectTimeoutMs: limits.discoveryCheckTimeoutMs, headersTimeoutMs: limits.discoveryCheckTimeoutMs, idleTimeoutMs: limits.discoveryCheckTimeoutMs });
  const nodes: DiscoveredNode[] = [];
  const refused: Refusal[] = [];
  const queue: Candidate[] = [];
  const running = new Set<Promise<void>>();
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });

  const pump = () => {
    while (running.size < limits.discoveryChecksInFlight && queue.length > 0 && !stop.signal.aborted) {
      const c = queue.shift()!;
      const p = checkCandidate(c, dispatcher, limits, stop.signal).then(
        (checked) => {
          // A node heard over IPv4 and IPv6 (one instance, key and port, two addresses) is checked at each;
          // it is listed once, at the first. (A node that restarts on another port is listed again.)
          if (nodes.some((n) => n.key === c.key && n.instance === c.instance && n.url.endsWith(`:${c.port}`))) return;
          const node: DiscoveredNode = {
            instance: c.instance, url: baseUrl(c), key: c.key, roles: c.roles, checked,
            ...(c.bittorrent !== undefined ? { bittorrent: hostPort(c.address, c.bittorrent) } : {}), ms: Math.round(performance.now() - start),
          };
          nodes.push(node);
          log.info({ instance: c.instance, url: node.url }, 'node found and checked');
          options.onNode?.(node);
        },
        (err: Error) => {
          const r = { instance: c.instance, address: `${c.address}:${c.port}`, reason: err.message };
          refused.push(r);
          options.onRefused?.(r);
        },
      ).finally(() => {
        running.delete(p);
        pump();
      });
      running.add(p);
    }
  };
  const state = new BrowseState((c) => {
    queue.push(c);
    pump();
  }, limits);

  const sockets = await MdnsSockets.open({
    ...(options.interfaces ? { interfaces: options.interfaces } : {}),
    ...(options.mdnsPort !== undefined ? { port: options.mdnsPort } : {}),
    limits,
    log,
    onPacket: (packet, from, link) => {
      // RFC 6762 §6: responses not sent from port 5353 are ignored.
      if (packet.type !== 'response' || from.port !== (options.mdnsPort ?? MDNS_PORT)) return;
      state.add([...packet.answers, ...packet.additionals], from.address, link);
    },
  });
  const timers: NodeJS.Timeout[] = [];
  try {
    // RFC 6762 §5.2, continuous querying: the first query after a random 20-120 ms (counted from when
    // browsing was asked for, so a start-up longer than that sends it at once), the second one second
    // later, each interval after that twice the one before, at most an hour; each query also asks for
    // what is missing (an instance heard without its SRV, TXT or address).
    const ask = () => {
      state.expire(Date.now()); // a long browse forgets nodes whose records lapsed (RFC 6762 §10)
      sockets.query([{ name: SERVICE_TYPE, type: 'PTR' }]);
      const more = state.missing().slice(0, 32);
      if (more.length > 0) sockets.query(more);
    };
    const first = Math.max(0, (options.since ?? start) + 20 + (options.random ?? Math.random)() * 100 - performance.now());
    for (const at of queryTimes(first, options.timeoutMs)) timers.push(setTimeout(ask, at));
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, options.timeoutMs);
      timers.push(t);
      stop.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  } finally {
    for (const t of timers) clearTimeout(t);
    await sockets.close();
    options.signal?.removeEventListener('abort', onAbort);
  }
  // Checks in flight get their own bound to finish; the queue left is reported, not checked.
  const late = setTimeout(() => stop.abort(), limits.discoveryCheckTimeoutMs);
  while (running.size > 0) await Promise.race(running);
  clearTimeout(late);
  for (const c of queue) refused.push({ instance: c.instance, address: `${c.address}:${c.port}`, reason: 'not checked before the timeout' });
  if (options.dispatcher === undefined) await dispatcher.close();
  nodes.sort((a, b) => a.ms - b.ms);
  return { nodes, refused: [...state.refused, ...refused], dropped: state.dropped + sockets.droppedPackets };
}

/** When to query, in ms from now (RFC 6762 §5.2): `first`, then 1 s later, each gap doubling up to an hour, within `timeoutMs`. */
export function queryTimes(first: number, timeoutMs: number): number[] {
  const times: number[] = [];
  for (let at = first, gap = 1000; at < timeoutMs; at += gap, gap = Math.min(gap * 2, 3_600_000)) times.push(at);
  return times;
}

export function baseUrl(c: Pick<Candidate, 'scheme' | 'address' | 'port'>): string {
  return `${c.scheme}://${hostPort(c.address, c.port)}`;
}

/** How a node of these roles proves its key: a mirror by its inventory, a log by its checkpoint, else the challenge alone. */
export function checkKind(roles: readonly Role[]): 'inventory' | 'checkpoint' | 'challenge' {
  if (roles.includes('mirror')) return 'inventory';
  if (roles.includes('log')) return 'checkpoint';
  return 'challenge';
}

/** Fetch what the candidate says it signs and verify it against the announced key. */
async function checkCandidate(c: Candidate, dispatcher: Dispatcher, limits: Limits, stop: AbortSignal): Promise<DiscoveredNode['checked']> {
  const key = parseVerifierKey(c.key, limits);
  const kind = checkKind(c.roles);
  const signal = AbortSignal.any([stop, AbortSignal.timeout(limits.discoveryCheckTimeoutMs)]);
  if (kind === 'challenge') {
    await challenge(c, key, dispatcher, limits, signal);
    return { challenge: { address: hostPort(c.address, c.port) } };
  }
  const isLog = kind === 'checkpoint';
  const path = c.path ?? (isLog ? '/checkpoint' : `/${INVENTORY_PATH}`);
  const url = `${baseUrl(c)}${path}`;
  const max = isLog ? limits.noteBytes : limits.inventoryBytes;
  let body: Buffer;
  try {
    const opened = await openHttp(url, { offset: 0, dispatcher, limits: { ...limits, maxRedirects: 0 }, signal });
    body = await readBoundedBody(opened.body as Parameters<typeof readBoundedBody>[0], max, () => new SourcemeshError('E_SIZE', `${url}: more than ${max} bytes`));
  } catch (err) {
    if (signal.aborted) throw new SourcemeshError('E_NETWORK', `${url}: no answer within ${limits.discoveryCheckTimeoutMs / 1000} s`);
    throw err;
  }
  if (isLog) {
    const { checkpoint } = openCheckpoint(body, [createVerifier(key)], limits);
    return { checkpoint: { origin: checkpoint.origin, size: checkpoint.size } };
  }
  const inv = parseInventory(body, key, limits);
  // A copied inventory verifies as well as the original: the node must also sign a fresh nonce and the
  // address we reached it at (challenge.ts).
  await challenge(c, key, dispatcher, limits, signal);
  return { inventory: { files: inv.files.length, generated: inv.generated } };
}

/** The node signs a fresh nonce and the address:port we reached it at, with the announced key (challenge.ts). */
async function challenge(c: Candidate, key: VerifierKey, dispatcher: Dispatcher, limits: Limits, signal: AbortSignal): Promise<void> {
  const nonce = newNonce();
  const challengeUrl = `${baseUrl(c)}${CHALLENGE_PATH}?nonce=${nonce}`;
  let answer: Buffer;
  try {
    const opened = await openHttp(challengeUrl, { offset: 0, dispatcher, limits: { ...limits, maxRedirects: 0 }, signal });
    answer = await readBoundedBody(opened.body as Parameters<typeof readBoundedBody>[0], limits.noteBytes, () => new SourcemeshError('E_SIZE', `${challengeUrl}: more than ${limits.noteBytes} bytes`));
  } catch (err) {
    if (signal.aborted) throw new SourcemeshError('E_NETWORK', `${challengeUrl}: no answer within ${limits.discoveryCheckTimeoutMs / 1000} s`);
    throw new SourcemeshError('E_SIGNATURE', `${challengeUrl}: the node did not answer the challenge (${(err as Error).message})`);
  }
  checkChallengeAnswer(answer, key, nonce, hostPort(c.address, c.port), challengeUrl, limits);
}
