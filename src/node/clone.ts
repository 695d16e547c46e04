// `node clone SOURCE --to DIR`: a new node from a running one, while the source keeps serving. The
// config and the node's public key come from the source's panel API (the panel token as a bearer) or
// from its directory; the files come through the source's `serve`, as a manifest made from its signed
// inventory (every file pinned by sha256 and size) fetched by `mirror sync`'s own pipeline with the
// source's serve as the only upstream: verified byte for byte, resumable, into a store and a mirror root
// of the clone's own. The clone gets a new identity (node init's keys): no private key is ever copied.
// What the source sends is attacker-controlled for the clone: bodies are bounded, the inventory must be
// signed by the key the source's panel or directory names.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { request, type Dispatcher } from '../net/undici.ts';
import { SourcemeshError } from '../errors.ts';
import { readBoundedFile } from '../fs/bounded-read.ts';
import { writeFileDurable } from '../fs/durable-file.ts';
import { createAgent, readBoundedBody, USER_AGENT } from '../fetch/http.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { MANIFEST_FORMAT, type Manifest } from '../manifest/distfile.ts';
import { INVENTORY_PATH, parseInventory, type ParsedInventory } from '../mirror/inventory.ts';
import { snapshotGenerator } from '../mirror/snapshot.ts';
import { syncMirror, type SyncReport } from '../mirror/sync.ts';
import { openNodeKey } from '../mirror/inventory.ts';
import { loadConfig, nodePath, parseConfig, type NodeConfig } from './config.ts';
import { initNode, type InitResult } from './init.ts';
import { nodeKeyOf } from './services.ts';

export interface CloneOptions {
  /** A panel URL (http(s)://HOST:PORT) or a node directory. */
  source: string;
  to: string;
  /** The source panel's token (for a panel URL). */
  token?: string;
  /** The source's serve, when its address cannot be learnt (a directory whose serve listens on port 0). */
  serveUrl?: string;
  name?: string;
  /** Added to every non-zero port of the config: a clone on the same machine as its source. */
  portOffset?: number;
  jobs?: number;
  limits?: Limits;
  signal?: AbortSignal;
}

export interface CloneResult {
  init: InitResult;
  serveUrl: string;
  inventory: ParsedInventory;
  report: SyncReport;
}

interface SourceView {
  config: NodeConfig;
  nodeVkey: string;
  serveUrl?: string;
  /** The manifest mirror sync follows, when it is a file of the source. */
  manifest?: Buffer;
}

export async function cloneNode(o: CloneOptions): Promise<CloneResult> {
  const limits = o.limits ?? LIMITS;
  const dispatcher = createAgent(limits);
  try {
    const src = /^https?:\/\//.test(o.source) ? await fromPanel(o.source, o.token, dispatcher) : await fromDirectory(o.source);
    const serveUrl = (o.serveUrl ?? src.serveUrl)?.replace(/\/+$/, '');
    if (serveUrl === undefined) throw new SourcemeshError('E_USAGE', `${o.source}: its serve is not running where the clone can learn its address; give --serve URL`);
    const invUrl = `${serveUrl}/${INVENTORY_PATH}`;
    const note = await getBounded(invUrl, limits.inventoryBytes, dispatcher);
    // Signed by the source's node key, as its panel or directory names it: a serve in between cannot
    // hand the clone other files.
    const inventory = parseInventory(note, src.nodeVkey, limits);

    const config = structuredClone(src.config);
    const offset = o.portOffset ?? 0;
    if (offset !== 0) {
      for (const s of [config.services.serve, config.services.seed, config.services.logServe, config.services.witnessServe, config.panel]) if (s.port !== 0) s.port += offset;
    }
    const dir = path.resolve(o.to);
    if (src.manifest !== undefined) config.services.mirrorSync.manifest = 'manifest.json';
    const name = o.name ?? `${src.config.name}-clone`.slice(0, 64);
    const valid = parseConfig({ ...config, name }, `the config of ${o.source}`);
    const init = await initNode(dir, { name, config: valid });
    if (src.manifest !== undefined) await writeFileDurable(path.join(dir, 'manifest.json'), src.manifest, { what: 'cannot write the manifest' });

    // The files: the inventory as a manifest whose only source is the source's serve.
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      name: `clone of ${src.config.name}`,
      distfiles: inventory.files.map((f) => ({ name: f.name, sha256: f.sha256, size: f.size, urls: [`${serveUrl}/${encodeURIComponent(f.name)}`] })),
    };
    const keyFiles = nodeKeyOf(dir);
    const { key } = await openNodeKey(keyFiles, name);
    const root = nodePath(dir, valid.services.serve.root);
    const report = await syncMirror(manifest, {
      root, limits, dispatcher, generator: snapshotGenerator('sourcemesh'), jobs: o.jobs ?? 4, signal: o.signal, key, keyFile: keyFiles.key,
    });
    if (report.failed.length > 0) {
      const f = report.failed[0]!;
      throw new SourcemeshError(f.error?.code ?? 'E_NO_SOURCE', `clone: ${report.failed.length} file(s) not copied; first: ${f.error?.message ?? f.name}`, { failed: report.failed.map((x) => x.name) });
    }
    return { init, serveUrl, inventory, report };
  } finally {
    await dispatcher.close();
  }
}

async function fromPanel(panel: string, token: string | undefined, dispatcher: Dispatcher): Promise<SourceView> {
  if (!token) throw new SourcemeshError('E_USAGE', `${panel}: cloning from a panel needs its token (--token-file FILE or $SOURCEMESH_PANEL_TOKEN)`);
  const base = panel.replace(/\/+$/, '');
  const get = (p: string, max: number) => getBounded(`${base}${p}`, max, dispatcher, token);
  const config = parseConfig(parseJson(await get('/api/config', LIMITS.nodeConfigBytes), `${base}/api/config`), `${base}/api/config`);
  const identity = parseJson(await get('/api/identity', LIMITS.keyFileBytes), `${base}/api/identity`) as { nodeKey?: unknown; serveUrl?: unknown; manifest?: unknown };
  if (typeof identity.nodeKey !== 'string') throw new SourcemeshError('E_FORMAT', `${base}/api/identity: no node key`);
  const view: SourceView = { config, nodeVkey: identity.nodeKey, serveUrl: typeof identity.serveUrl === 'string' ? identity.serveUrl : undefined };
  if (identity.manifest === true) view.manifest = await get('/api/manifest', LIMITS.manifestBytes);
  return view;
}

async function fromDirectory(dir: string): Promise<SourceView> {
  const config = await loadConfig(dir);
  const nodeVkey = (await readBoundedFile(nodeKeyOf(dir).pub, LIMITS.keyFileBytes, 'node public key', 'E_INPUT')).trim();
  const s = config.services.serve;
  const host = s.host === '0.0.0.0' ? '127.0.0.1' : s.host === '::' ? '::1' : s.host;
  const view: SourceView = { config, nodeVkey, serveUrl: s.enabled && s.port !== 0 ? `http://${host.includes(':') ? `[${host}]` : host}:${s.port}` : undefined };
  const m = config.services.mirrorSync.manifest;
  if (m !== '' && !/^https?:\/\//.test(m)) view.manifest = await readFile(nodePath(dir, m)).catch(() => undefined);
  return view;
}

async function getBounded(url: string, max: number, dispatcher: Dispatcher, token?: string): Promise<Buffer> {
  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, { dispatcher, headers: { 'user-agent': USER_AGENT, ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  } catch (err) {
    throw new SourcemeshError('E_NETWORK', `${url}: ${(err as Error).message}`, { url }, { cause: err });
  }
  if (res.statusCode !== 200) {
    await res.body.dump().catch(() => {});
    throw new SourcemeshError('E_HTTP', `${url}: HTTP ${res.statusCode}${res.statusCode === 401 ? ' (wrong panel token?)' : ''}`, { url, status: res.statusCode });
  }
  return readBoundedBody(res.body, max, () => new SourcemeshError('E_FORMAT', `${url}: more than ${max} bytes`, { url }));
}

function parseJson(b: Buffer, what: string): unknown {
  try {
    return JSON.parse(b.toString('utf8'));
  } catch (err) {
    throw new SourcemeshError('E_FORMAT', `${what}: not JSON: ${(err as Error).message}`);
  }
}
