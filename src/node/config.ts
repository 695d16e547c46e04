// The node's configuration (DIR/node.json, format sourcemesh.node/v1): one valibot schema that is at once
// the validator, the source of docs/CONFIG.md (scripts/config-doc.ts) and the panel's help text. Strict:
// an unknown field is refused, and every service is off unless the file switches it on. The file is
// operator input, and through the panel a browser's: every field is checked and a refusal names it.
import net from 'node:net';
import path from 'node:path';
import * as v from 'valibot';
import { SourcemeshError } from '../errors.ts';
import { readBoundedFile } from '../fs/bounded-read.ts';
import { writeFileDurable } from '../fs/durable-file.ts';
import { LIMITS } from '../limits.ts';

export const NODE_CONFIG_FORMAT = 'sourcemesh.node/v1';
export const CONFIG_FILE = 'node.json';

/** What the docs and the panel show of a field beside its description: its kind in words. */
interface FieldMeta { kind: string }

function field<S extends v.GenericSchema>(schema: S, fallback: v.InferOutput<S>, kind: string, help: string) {
  const piped = v.pipe(schema, v.description(help), v.metadata({ kind } satisfies FieldMeta));
  return v.optional(piped, fallback as v.Default<typeof piped, undefined>);
}

const bool = (fallback: boolean, help: string) => field(v.boolean(), fallback, 'true or false', help);
const int = (min: number, max: number, fallback: number, help: string) =>
  field(v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max)), fallback, `whole number from ${min} to ${max}`, help);
// An IP address literal, not a name: a node must not listen where a resolver says.
const host = (fallback: string, help: string) =>
  field(v.pipe(v.string(), v.maxLength(64), v.check((s) => net.isIP(s) !== 0, 'not an IP address')), fallback, 'IPv4 or IPv6 address', help);
const port = (fallback: number, help: string) => int(0, 65535, fallback, help);
// A path on this machine, relative to the node directory unless absolute. No NUL, no control characters.
const filePath = (fallback: string, help: string) =>
  field(v.pipe(v.string(), v.minLength(1), v.maxLength(4096), v.regex(/^[^\x00-\x1f\x7f]+$/, 'control characters')), fallback, 'path (relative to the node directory)', help);
// A network interface name as Linux allows it (IFNAMSIZ 16 with the NUL), no slash, no space.
const IFNAME = /^[A-Za-z0-9_.:@-]{1,15}$/;
const VKEY = /^[^\s+]{1,256}\+[0-9a-f]{8}\+[A-Za-z0-9+/]+={0,2}$/;
// A SOCKS5 proxy as fetch --proxy takes it: socks5h only (names resolved by the proxy, never locally).
function isSocks5hUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'socks5h:' && u.hostname !== '' && Number(u.port) >= 1 && (u.pathname === '' || u.pathname === '/') && u.search === '' && u.hash === '';
  } catch {
    return false;
  }
}

export const ConfigSchema = v.strictObject({
  format: v.pipe(v.literal(NODE_CONFIG_FORMAT), v.description('The format of this file; always sourcemesh.node/v1.'), v.metadata({ kind: 'sourcemesh.node/v1' } satisfies FieldMeta)),
  name: field(v.pipe(v.string(), v.regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, dot, dash, underscore; at most 64')), 'sourcemesh-node', 'name',
    'The node\'s name: the name of its keys (the node key signs the mirror inventory) and the title of the panel.'),
  torProxy: field(v.pipe(v.string(), v.maxLength(300), v.check((s) => s === '' || isSocks5hUrl(s), 'not a socks5h://HOST:PORT URL')), '', 'socks5h URL or empty',
    'Tor\'s SOCKS port, e.g. socks5h://127.0.0.1:9050 (names resolved by Tor, never locally): mirror sync connects through it, each upstream host on its own circuit (`mirror sync --tor --proxy`), and `sourcemesh doctor` checks that it answers. Empty: direct connections.'),
  services: v.optional(v.strictObject({
    serve: v.optional(v.strictObject({
      enabled: bool(false, 'Serve the mirror root over HTTP (`sourcemesh serve --root`): /NAME, /sha256/HEX and the inventory signed by the node key. Anyone who can reach host:port can download every file.'),
      host: host('127.0.0.1', 'The address serve listens on. 127.0.0.1 reaches only this machine; 0.0.0.0 or :: every network the machine is on.'),
      port: port(8080, 'The TCP port serve listens on (0: any free port, shown on the panel).'),
      root: filePath('mirror', 'The mirror root served: the directory mirror sync keeps.'),
      rate: int(0, 1_000_000, LIMITS.serveRequestsPerSecond, 'Requests per second allowed per client address (IPv6: per /64); 0 for no limit.'),
      burst: int(1, 1_000_000, LIMITS.serveRequestBurst, 'Requests a client may make at once before the rate applies.'),
      maxConnections: int(1, 1_000_000, LIMITS.serveMaxConnections, 'Open connections at most; when full, an idle one makes room.'),
      announce: bool(false, 'Announce this mirror on the local network (DNS-SD over mDNS, `_sourcemesh._tcp`; `serve --announce`) so `sourcemesh discover` finds it. Anyone on those links learns the address, the port and the node key.'),
      announceInterfaces: field(v.pipe(v.array(v.pipe(v.string(), v.regex(IFNAME, 'not an interface name'))), v.maxLength(64)), [], 'list of interface names',
        'The interfaces to announce on (`serve --announce-interface`); none: every IPv4 interface that is up, loopback aside. Only with announce on.'),
    }), {}),
    mirrorSync: v.optional(v.strictObject({
      enabled: bool(false, 'Keep the mirror root in step with a manifest, from upstream only (`sourcemesh mirror sync --interval`), on a schedule with random jitter.'),
      manifest: field(v.pipe(v.string(), v.maxLength(LIMITS.urlBytes), v.regex(/^[^\x00-\x1f\x7f]*$/, 'control characters')), '', 'path or URL',
        'The manifest to follow: a sourcemesh manifest, a live-bootstrap sources file or steps/ directory (path relative to the node directory), or an https URL. Needed when mirror sync is on.'),
      root: filePath('mirror', 'The mirror root kept in step (serve serves the same directory by default).'),
      intervalSeconds: int(60, 30 * 86_400, 6 * 3600, 'Seconds between syncs (each one 80% to 120% of this, at random, so nobody can time an attack to just before a sync).'),
      maxBytes: int(0, Number.MAX_SAFE_INTEGER, 0, 'Refuse, before writing, a sync that would make the mirror hold more than this many bytes; 0 for no cap. The panel shows disk use against it.'),
      jobs: int(1, 64, 4, 'Parallel downloads.'),
    }), {}),
    seed: v.optional(v.strictObject({
      enabled: bool(false, 'Seed every verified file of the mirror root to BitTorrent peers (`sourcemesh seed --root`): v1, v2 and hybrid torrents, as `torrent create` makes them. Peers learn which files this node holds.'),
      host: host('127.0.0.1', 'The address peers connect to. 127.0.0.1 reaches only this machine; 0.0.0.0 or :: every network the machine is on.'),
      port: port(6881, 'The TCP port for peers (0: any free port, shown on the panel).'),
      root: filePath('mirror', 'The mirror root seeded: the directory mirror sync keeps (its files are hashed once at start).'),
      maxPeers: int(1, 100_000, LIMITS.seedMaxPeers, 'Connected peers at most.'),
      uploadRate: int(0, Number.MAX_SAFE_INTEGER, 0, 'Bytes per second for all peers together; 0 for no limit.'),
      dht: bool(false, 'Announce every seeded info-hash in the BitTorrent DHT (BEP 5), through its public bootstrap nodes: the whole Internet can then find this node\'s files.'),
    }), {}),
    logServe: v.optional(v.strictObject({
      enabled: bool(false, 'Run a transparency log (`sourcemesh log serve`): release statements are sequenced into a Merkle tree, checkpoints signed with the log key and served as tiles.'),
      host: host('127.0.0.1', 'The address the log listens on.'),
      port: port(8081, 'The TCP port the log listens on.'),
      root: filePath('log', 'The log directory: checkpoint, tiles and entry bundles.'),
      key: filePath('keys/log.key', 'The log\'s signing key (made by node init); its name is the log\'s origin.'),
      admit: field(v.picklist(['any-signed', 'unsigned']), 'any-signed', 'any-signed or unsigned',
        'Who may write: any-signed logs statements signed by any key, under per-key quotas; unsigned logs any bytes unchecked (a private log only).'),
    }), {}),
    witnessServe: v.optional(v.strictObject({
      enabled: bool(false, 'Run a witness (`sourcemesh witness serve`): cosign checkpoints of the listed logs only when they extend what it saw before.'),
      host: host('127.0.0.1', 'The address the witness listens on.'),
      port: port(8082, 'The TCP port the witness listens on.'),
      state: filePath('witness', 'Where the latest cosigned checkpoint of each log is kept.'),
      key: filePath('keys/witness.key', 'The witness\'s cosignature key (made by node init).'),
      logs: field(v.pipe(v.array(v.pipe(v.string(), v.regex(VKEY, 'not a vkey (NAME+ID+KEY)'))), v.maxLength(64)), [], 'list of vkeys',
        'The logs to witness, by vkey; the vkey\'s name is the log\'s origin. At least one when the witness is on.'),
      roughtime: bool(false, 'Also serve signed time (Roughtime, RFC 10049: `witness serve --roughtime`) over UDP on host:roughtimePort, under a key delegated from the witness key.'),
      roughtimePort: port(2002, 'The UDP port of Roughtime.'),
      roughtimeTcp: bool(false, 'Also serve Roughtime over TCP (`--roughtime-tcp`) on host:roughtimeTcpPort, for clients behind Tor (which carries no UDP). Needs roughtime.'),
      roughtimeTcpPort: port(2002, 'The TCP port of Roughtime.'),
    }), {}),
  }), {}),
  panel: v.optional(v.strictObject({
    host: host('127.0.0.1', 'The address of the control panel. Anything but loopback needs tlsCert and tlsKey.'),
    port: port(8070, 'The TCP port of the control panel.'),
    tlsCert: field(v.pipe(v.string(), v.maxLength(4096)), '', 'path or empty', 'A PEM certificate: the panel is served over HTTPS. Required off loopback.'),
    tlsKey: field(v.pipe(v.string(), v.maxLength(4096)), '', 'path or empty', 'The PEM private key of tlsCert.'),
  }), {}),
});

// Every field has a default (filled in by the parse), which valibot's inferred type does not carry
// through the generic field() helper: the parsed config is this, every field present.
type Filled<T> = T extends readonly (infer U)[] ? Filled<U>[] : T extends object ? { [K in keyof T]-?: Filled<NonNullable<T[K]>> } : NonNullable<T>;
export type NodeConfig = Filled<v.InferOutput<typeof ConfigSchema>>;
export type ServiceName = keyof NodeConfig['services'];
export const SERVICE_NAMES: readonly ServiceName[] = ['serve', 'mirrorSync', 'seed', 'logServe', 'witnessServe'];

/** A config with every default: every service off. */
export function defaultConfig(name: string): NodeConfig {
  return parseConfig({ format: NODE_CONFIG_FORMAT, name }, 'defaults');
}

/**
 * Validate `input` (parsed JSON, attacker-controlled when it came from the panel) as a whole: the first
 * problem is refused as E_CONFIG naming the field by its dotted path (`services.serve.port`).
 */
export function parseConfig(input: unknown, what: string): NodeConfig {
  const r = v.safeParse(ConfigSchema, input, { abortEarly: true });
  if (!r.success) {
    const issue = r.issues[0];
    const at = v.getDotPath(issue) ?? '(top level)';
    const why = issue.type === 'strict_object' && issue.expected === 'never' ? 'unknown field' : issue.message;
    throw new SourcemeshError('E_CONFIG', `${what}: ${at}: ${why}`, { field: at });
  }
  const c = r.output as NodeConfig;
  // What one field alone cannot say.
  const bad = (field: string, why: string) => new SourcemeshError('E_CONFIG', `${what}: ${field}: ${why}`, { field });
  if (c.services.mirrorSync.enabled && c.services.mirrorSync.manifest === '') throw bad('services.mirrorSync.manifest', 'mirror sync is on but follows no manifest');
  if (c.services.witnessServe.enabled && c.services.witnessServe.logs.length === 0) throw bad('services.witnessServe.logs', 'the witness is on but witnesses no log');
  if (c.services.witnessServe.roughtimeTcp && !c.services.witnessServe.roughtime) throw bad('services.witnessServe.roughtimeTcp', 'Roughtime over TCP needs roughtime (UDP) on as well');
  if (c.services.serve.announceInterfaces.length > 0 && !c.services.serve.announce) throw bad('services.serve.announceInterfaces', 'interfaces to announce on, but announce is off');
  if ((c.panel.tlsCert === '') !== (c.panel.tlsKey === '')) throw bad('panel.tlsKey', 'tlsCert and tlsKey go together');
  if (!isLoopback(c.panel.host) && c.panel.tlsCert === '') throw bad('panel.host', `${c.panel.host} is not loopback: the panel leaves this machine only over TLS (set tlsCert and tlsKey)`);
  const ports = new Map<number, string>();
  for (const [name, s] of [['panel', c.panel], ...SERVICE_NAMES.filter((n) => n !== 'mirrorSync').map((n) => [`services.${n}`, c.services[n]] as const)] as const) {
    if (name !== 'panel' && !(s as { enabled: boolean }).enabled) continue;
    const p = (s as { port: number }).port;
    if (p !== 0 && ports.has(p)) throw bad(`${name}.port`, `port ${p} is taken by ${ports.get(p)}`);
    ports.set(p, name);
  }
  const w = c.services.witnessServe;
  if (w.enabled && w.roughtimeTcp && w.roughtimeTcpPort !== 0) {
    if (ports.has(w.roughtimeTcpPort)) throw bad('services.witnessServe.roughtimeTcpPort', `port ${w.roughtimeTcpPort} is taken by ${ports.get(w.roughtimeTcpPort)}`);
  }
  return c;
}

export function isLoopback(host: string): boolean {
  return host === '::1' || (net.isIPv4(host) && host.startsWith('127.'));
}

export function configFile(dir: string): string {
  return path.join(dir, CONFIG_FILE);
}

/** Read and validate DIR/node.json (bounded: limits.nodeConfigBytes). */
export async function loadConfig(dir: string): Promise<NodeConfig> {
  const file = configFile(dir);
  const text = await readBoundedFile(file, LIMITS.nodeConfigBytes, 'node config', 'E_CONFIG');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SourcemeshError('E_CONFIG', `${file}: not JSON: ${(err as Error).message}`, { file });
  }
  return parseConfig(json, file);
}

export function configText(c: NodeConfig): string {
  return JSON.stringify(c, null, 2) + '\n';
}

/**
 * Save a config: validated first, then written atomically and durably (a temporary, fsync, rename,
 * directory fsync), so a kill -9 at any moment leaves the old file or the new one, never half of one.
 */
export async function saveConfig(dir: string, c: unknown): Promise<NodeConfig> {
  const file = configFile(dir);
  const valid = parseConfig(c, file);
  await writeFileDurable(file, configText(valid), { mode: 0o600, what: 'cannot save the node config' });
  return valid;
}

/** A path from the config: relative ones are under the node directory. */
export function nodePath(dir: string, p: string): string {
  return path.resolve(dir, p);
}

// ---------------------------------------------------------------------------------------------------
// The schema as data, for docs/CONFIG.md and the panel's help

export interface FieldDoc {
  /** Dotted path: services.serve.port. */
  path: string;
  kind: string;
  /** The valibot schema type of the field (boolean, number, string, array, picklist, ...): what input the panel shows. */
  type: string;
  default: unknown;
  help: string;
  /** The values allowed, for a field that is a choice. */
  options?: string[];
}

/** Every leaf field of the schema in order, with its kind, default and help text. */
export function fieldDocs(): FieldDoc[] {
  const out: FieldDoc[] = [];
  const walk = (schema: v.GenericSchema, at: string, fallback: unknown) => {
    let s = schema as unknown as { type: string; options?: string[]; entries?: Record<string, v.GenericSchema>; wrapped?: v.GenericSchema; default?: unknown; pipe?: { type: string; description?: string; metadata?: FieldMeta }[] };
    if (s.type === 'optional') {
      fallback = s.default;
      s = s.wrapped as unknown as typeof s;
    }
    if (s.type === 'strict_object') {
      for (const [k, e] of Object.entries(s.entries!)) walk(e, at ? `${at}.${k}` : k, undefined);
      return;
    }
    const help = s.pipe?.find((a) => a.type === 'description')?.description ?? '';
    const kind = s.pipe?.find((a) => a.type === 'metadata')?.metadata?.kind ?? s.type;
    out.push({ path: at, kind, type: s.type, default: fallback, help, ...(s.type === 'picklist' ? { options: [...s.options!] } : {}) });
  };
  walk(ConfigSchema as unknown as v.GenericSchema, '', undefined);
  return out;
}
