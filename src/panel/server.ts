// The control panel of `node run`: server-rendered HTML over fastify, every action a plain form.
// Who may act: whoever holds the panel token (printed once by node init, its SHA-256 kept in
// DIR/panel.token). A login gives a session cookie (HttpOnly, SameSite=Strict, Secure over TLS) and a
// CSRF token; every POST needs the session, the CSRF token in its form, and no foreign Origin or
// Sec-Fetch-Site (OWASP CSRF cheat sheet: synchronizer token plus origin check). The API for `node clone`
// takes the token itself as a bearer. Everything a browser sends is attacker-controlled: bodies are
// bounded (limits.panelBodyBytes), failed logins rate-limited per address, sessions bounded in number.
import formbody from '@fastify/formbody';
import cookie from '@fastify/cookie';
import { Eta } from 'eta/core';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { formatBytes } from '../units.ts';
import { SourcemeshError } from '../errors.ts';
import { readBoundedBytes } from '../fs/bounded-read.ts';
import { LIMITS } from '../limits.ts';
import type { Logger } from '../logger.ts';
import { clientKey, retryAfterSeconds, TokenBuckets } from '../net/rate-limit.ts';
import { configText, fieldDocs, isLoopback, nodePath, SERVICE_NAMES, type NodeConfig, type ServiceName } from '../node/config.ts';
import { readTokenDigest, tokenMatches } from '../node/init.ts';
import type { NodeRuntime } from '../node/runtime.ts';
import { nodeKeyOf, SERVICES } from '../node/services.ts';
import { barChart, lineChart } from './charts.ts';
import { CSS, LAYOUT, LIVE_JS, LOGIN, MIRROR, OVERVIEW, SERVICE, TRUST } from './templates.ts';

export interface PanelOptions {
  runtime: NodeRuntime;
  /** Default: the config's panel.host and panel.port. */
  host?: string;
  port?: number;
  logger: Logger;
  now?: () => number;
}

export interface RunningPanel {
  url: string;
  close(): Promise<void>;
}

interface Session { csrf: string; expires: number }

const COOKIE = 'sm_session';

export async function startPanel(o: PanelOptions): Promise<RunningPanel> {
  const rt = o.runtime;
  const now = o.now ?? Date.now;
  const cfg = rt.config.panel;
  const host = o.host ?? cfg.host;
  const port = o.port ?? cfg.port;
  const tls = cfg.tlsCert !== '' ? {
    cert: await readBoundedBytes(nodePath(rt.dir, cfg.tlsCert), LIMITS.tlsPemBytes, 'panel TLS certificate (panel.tlsCert)', 'E_INPUT'),
    key: await readBoundedBytes(nodePath(rt.dir, cfg.tlsKey), LIMITS.tlsPemBytes, 'panel TLS key (panel.tlsKey)', 'E_INPUT'),
  } : undefined;
  checkPanelHost(host, rt.config);
  const digest = await readTokenDigest(rt.dir);

  const eta = new Eta({ autoEscape: true, useWith: false, cache: true });
  for (const [name, text] of Object.entries({ layout: LAYOUT, login: LOGIN, overview: OVERVIEW, service: SERVICE, mirror: MIRROR, trust: TRUST })) eta.loadTemplate(`@${name}`, text);

  const sessions = new Map<string, Session>();
  const logins = new TokenBuckets({ perSecond: LIMITS.panelLoginsPerMinute / 60, burst: LIMITS.panelLoginBurst, maxClients: 4096 });

  const app = Fastify({
    logger: false,
    bodyLimit: LIMITS.panelBodyBytes,
    routerOptions: { maxParamLength: 64 },
    requestTimeout: LIMITS.panelRequestTimeoutMs,
    connectionTimeout: LIMITS.panelRequestTimeoutMs,
    http2: false,
    // On close, every connection goes at once (a browser keeps some open, and its live script polls):
    // the panel's stop never waits on a client.
    forceCloseConnections: true,
    ...(tls ? { https: tls } : {}),
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance; // the HTTP/1.1 server's types, HTTPS or not
  await app.register(cookie);
  await app.register(formbody, { bodyLimit: LIMITS.panelBodyBytes });
  const origin = () => `${tls ? 'https' : 'http'}://${app.server.address() && typeof app.server.address() === 'object' ? hostPort(host, (app.server.address() as { port: number }).port) : ''}`;

  const session = (req: FastifyRequest): Session | undefined => {
    const id = req.cookies[COOKIE];
    if (typeof id !== 'string' || id.length !== 43) return undefined;
    const s = sessions.get(id);
    if (!s) return undefined;
    if (s.expires < now()) {
      sessions.delete(id);
      return undefined;
    }
    return s;
  };

  // A change from a page of another site is refused before anything else is looked at.
  const crossSite = (req: FastifyRequest): string | undefined => {
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site: ${site}`;
    const from = req.headers.origin;
    if (from !== undefined && from !== origin()) return `Origin: ${from}`;
    return undefined;
  };

  const page = (reply: FastifyReply, status: number, title: string, pageName: string, body: string, s: Session | undefined, flash?: { kind: string; text: string }) => {
    // The message of a redirect after a change (post/redirect/get) comes in the query.
    const done = (reply.request.query as Record<string, unknown> | undefined)?.done;
    if (flash === undefined && typeof done === 'string' && done.length <= 200) flash = { kind: 'ok', text: done };
    const html = eta.render('@layout', {
      title, page: pageName, node: rt.config.name, body, loggedIn: s !== undefined, csrf: s?.csrf ?? '', flash,
      nav: SERVICE_NAMES.map((n) => ({ name: n, title: SERVICES[n].title })),
    });
    return reply.code(status).header('content-type', 'text/html; charset=utf-8').send(html);
  };

  app.addHook('onSend', async (_req, reply, payload) => {
    // No framing by other sites (clickjacking), no guessing of types, no referrer leaving the panel
    // (same-origin, not no-referrer: with no-referrer a browser sends Origin: null on the panel's own
    // forms, which the origin check must refuse).
    reply.header('x-frame-options', 'DENY');
    reply.header('content-security-policy', "default-src 'self'; frame-ancestors 'none'; form-action 'self'");
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'same-origin');
    reply.header('cache-control', 'no-store');
    return payload;
  });

  // Pages need a session; without one, the login page.
  const guard = (handler: (req: FastifyRequest, reply: FastifyReply, s: Session) => unknown) => async (req: FastifyRequest, reply: FastifyReply) => {
    const s = session(req);
    if (!s) return reply.code(303).header('location', '/login').send();
    return handler(req, reply, s);
  };
  // Changes need a session, a same-site request and the session's CSRF token.
  const change = (handler: (req: FastifyRequest, reply: FastifyReply, s: Session, form: Record<string, string>) => unknown) => async (req: FastifyRequest, reply: FastifyReply) => {
    const cross = crossSite(req);
    if (cross) return reply.code(403).type('text/plain').send(`refused: a cross-site request (${cross})\n`);
    const s = session(req);
    if (!s) return reply.code(403).type('text/plain').send('refused: not logged in\n');
    const form = formOf(req.body);
    if (!equalText(form.csrf ?? '', s.csrf)) return reply.code(403).type('text/plain').send('refused: missing or wrong CSRF token\n');
    return handler(req, reply, s, form);
  };

  app.get('/panel.css', async (_req, reply) => reply.type('text/css; charset=utf-8').send(CSS));
  app.get('/live.js', async (_req, reply) => reply.type('text/javascript; charset=utf-8').send(LIVE_JS));

  app.get('/login', async (req, reply) => page(reply, 200, 'Log in', 'login', eta.render('@login', {}), undefined));
  app.post('/login', async (req, reply) => {
    const cross = crossSite(req);
    if (cross) return reply.code(403).type('text/plain').send(`refused: a cross-site request (${cross})\n`);
    const who = clientKey(req.socket.remoteAddress);
    const form = formOf(req.body);
    if (!tokenMatches(form.token ?? '', digest)) {
      const wait = logins.take(who, now());
      o.logger.warn({ client: req.socket.remoteAddress }, 'panel: wrong token');
      if (wait > 0) return reply.code(429).header('retry-after', String(retryAfterSeconds(wait))).type('text/plain').send('too many failed logins; wait\n');
      return page(reply, 403, 'Log in', 'login', eta.render('@login', {}), undefined, { kind: 'error', text: 'Wrong token.' });
    }
    while (sessions.size >= LIMITS.panelSessions) sessions.delete(sessions.keys().next().value!);
    const id = randomBytes(32).toString('base64url');
    sessions.set(id, { csrf: randomBytes(32).toString('base64url'), expires: now() + LIMITS.panelSessionMs });
    o.logger.info({ client: req.socket.remoteAddress }, 'panel: logged in');
    return reply.setCookie(COOKIE, id, { path: '/', httpOnly: true, sameSite: 'strict', secure: tls !== undefined, maxAge: LIMITS.panelSessionMs / 1000 })
      .code(303).header('location', '/').send();
  });
  app.post('/logout', change(async (req, reply) => {
    sessions.delete(req.cookies[COOKIE]!);
    return reply.clearCookie(COOKIE, { path: '/' }).code(303).header('location', '/login').send();
  }));

  const serviceRows = () => {
    const st = rt.supervisor.status();
    return st.map((s) => ({ ...s, title: SERVICES[s.name].title, enabled: rt.config.services[s.name].enabled }));
  };

  app.get('/', guard(async (_req, reply, s) => {
    const status = await rt.status();
    const body = eta.render('@overview', {
      csrf: s.csrf, services: serviceRows(), mirror: mirrorView(status.mirror), log: status.log, witness: status.witness,
      diskChart: diskChart(status.mirror),
    });
    return page(reply, 200, 'Overview', 'overview', body, s);
  }));

  app.get('/services/:name', guard(async (req, reply, s) => {
    const name = serviceName(req);
    if (!name) return reply.code(404).type('text/plain').send('no such service\n');
    return servicePage(reply, s, name, rt.config, 200);
  }));

  app.post('/services/:name', change(async (req, reply, s, form) => {
    const name = serviceName(req);
    if (!name) return reply.code(404).type('text/plain').send('no such service\n');
    const current = rt.config;
    const next = structuredClone(current) as NodeConfig;
    const svc = next.services[name] as Record<string, unknown>;
    const action = form.action;
    if (action === 'on' || action === 'off') svc.enabled = action === 'on';
    else if (action === 'save') {
      for (const f of serviceFields(name)) {
        // An unchecked checkbox sends nothing (HTML, "constructing the entry list"): its absence means off,
        // or a switch could never be turned off from the form.
        if (f.input === 'checkbox' && !Object.hasOwn(form, f.key)) form[f.key] = 'false';
        if (!Object.hasOwn(form, f.key)) continue;
        svc[f.key] = fromForm(form[f.key]!, (current.services[name] as Record<string, unknown>)[f.key]);
      }
    } else return reply.code(400).type('text/plain').send('unknown action\n');
    try {
      await rt.change(next);
    } catch (err) {
      const e = err as SourcemeshError;
      if (e.code !== 'E_CONFIG') throw err;
      // The whole change is refused; the form shows what was sent, with the field named.
      return servicePage(reply, s, name, next, 400, { kind: 'error', text: `Not saved: ${e.message.slice(e.message.indexOf(': ') + 2)}` }, String(e.details.field ?? ''));
    }
    const what = action === 'save' ? 'Settings saved.' : `${SERVICES[name].title} switched ${action}.`;
    // Post/redirect/get, with the message in the query so a reload does not post again.
    return reply.code(303).header('location', `/services/${name}?done=${encodeURIComponent(what)}`).send();
  }));

  const servicePage = (reply: FastifyReply, s: Session, name: ServiceName, shown: NodeConfig, status: number, flash?: { kind: string; text: string }, badField?: string) => {
    const st = rt.supervisor.status().find((x) => x.name === name)!;
    const docs = fieldDocs();
    const body = eta.render('@service', {
      csrf: s.csrf, md: helpHtml,
      service: { ...st, title: SERVICES[name].title, enabled: rt.config.services[name].enabled, help: docs.find((d) => d.path === `services.${name}.enabled`)!.help, exposes: SERVICES[name].exposes(rt.config, st.url) },
      fields: serviceFields(name).map((f) => {
        const value = (shown.services[name] as Record<string, unknown>)[f.key];
        return { ...f, value: Array.isArray(value) ? value.join('\n') : String(value), error: badField === `services.${name}.${f.key}` };
      }),
    });
    return page(reply, status, SERVICES[name].title, name, body, s, flash);
  };


  app.get('/mirror', guard(async (_req, reply, s) => {
    const m = (await rt.status()).mirror;
    const body = eta.render('@mirror', {
      mirror: { ...mirrorView(m), capText: m.maxBytes > 0 ? `${formatBytes(m.bytes)} of ${formatBytes(m.maxBytes)} (${((m.bytes / m.maxBytes) * 100).toFixed(1)}%)` : 'none (mirrorSync.maxBytes is 0)' },
      diskChart: diskChart(m),
      syncChart: barChart('Throughput of the last syncs (bytes added per second)', m.syncs.map((x) => (x.seconds > 0 ? x.addedBytes / x.seconds : 0)), (n) => `${formatBytes(n)}/s`, m.syncs.length ? when(m.syncs[0]!.at) : '', m.syncs.length ? when(m.syncs.at(-1)!.at) : ''),
      syncs: m.syncs.slice(-10).reverse().map((x) => ({ ...x, when: when(x.at), addedText: formatBytes(x.addedBytes) })),
      reputation: m.reputation.map((r) => ({ ...r, bytes: formatBytes(r.bytes), rate: r.ms > 0 ? `${formatBytes((r.bytes / r.ms) * 1000)}/s` : '-', lastSeen: new Date(r.lastSeen).toISOString().slice(0, 19) + 'Z' })),
    });
    return page(reply, 200, 'Mirror', 'mirror', body, s);
  }));

  app.get('/trust', guard(async (_req, reply, s) => {
    const st = await rt.status();
    return page(reply, 200, 'Log & witness', 'trust', eta.render('@trust', { log: st.log, witness: st.witness }), s);
  }));

  // JSON for the live script (session) and for `node clone` (bearer token).
  const apiAuth = (req: FastifyRequest): boolean => {
    const auth = req.headers.authorization;
    if (typeof auth === 'string' && auth.startsWith('Bearer ')) return tokenMatches(auth.slice(7), digest);
    return session(req) !== undefined;
  };
  app.get('/api/services', async (req, reply) => {
    if (!apiAuth(req)) return reply.code(401).send({ error: 'log in or give the panel token as a bearer' });
    return serviceRows().map(({ recent: _r, ...rest }) => rest);
  });
  app.get('/api/status', async (req, reply) => {
    if (!apiAuth(req)) return reply.code(401).send({ error: 'log in or give the panel token as a bearer' });
    return { services: serviceRows(), ...(await rt.status()) };
  });
  app.get('/api/config', async (req, reply) => {
    if (!apiAuth(req)) return reply.code(401).send({ error: 'log in or give the panel token as a bearer' });
    return reply.type('application/json').send(configText(rt.config));
  });

  // For `node clone`: the node's public key (which signs its inventory), where its serve listens, and
  // the manifest its mirror sync follows when that is a file of the node.
  const manifestFile = () => {
    const m = rt.config.services.mirrorSync.manifest;
    return m !== '' && !/^https?:\/\//.test(m) ? nodePath(rt.dir, m) : undefined;
  };
  app.get('/api/identity', async (req, reply) => {
    if (!apiAuth(req)) return reply.code(401).send({ error: 'log in or give the panel token as a bearer' });
    const nodeKey = (await readBoundedBytes(nodeKeyOf(rt.dir).pub, LIMITS.keyFileBytes, 'node public key', 'E_INPUT')).toString('utf8').trim();
    const serve = rt.supervisor.status().find((x) => x.name === 'serve');
    const file = manifestFile();
    return { name: rt.config.name, nodeKey, serveUrl: serve?.state === 'running' ? serve.url : undefined, manifest: file !== undefined && (await stat(file).then((st) => st.isFile(), () => false)) };
  });
  app.get('/api/manifest', async (req, reply) => {
    if (!apiAuth(req)) return reply.code(401).send({ error: 'log in or give the panel token as a bearer' });
    const file = manifestFile();
    if (file === undefined) return reply.code(404).send({ error: 'mirror sync follows no manifest file' });
    return reply.type('application/octet-stream').send(await readBoundedBytes(file, LIMITS.manifestBytes, 'manifest', 'E_INPUT'));
  });

  app.setErrorHandler(async (err, _req, reply) => {
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    if (status >= 500) o.logger.error({ error: (err as Error).message }, 'panel: request failed');
    return reply.code(status).type('text/plain').send(status >= 500 ? 'internal error\n' : `${(err as Error).message}\n`);
  });

  await app.listen({ host, port });
  const addr = app.server.address() as { port: number };
  const url = `${tls ? 'https' : 'http'}://${hostPort(host, addr.port)}`;
  return { url, close: () => app.close() };

  function mirrorView(m: Awaited<ReturnType<NodeRuntime['status']>>['mirror']) {
    const last = m.lastSync;
    return {
      ...m, bytesText: formatBytes(m.bytes),
      lastSyncText: last ? `${when(last.at)}: ${last.added} added, ${last.unchanged} unchanged, ${last.quarantined} quarantined, ${last.failed} failed` : 'none yet',
    };
  }
}

/** The panel leaves loopback only over TLS: checked before anything starts. */
export function checkPanelHost(host: string, c: NodeConfig): void {
  if (!isLoopback(host) && c.panel.tlsCert === '') throw new SourcemeshError('E_USAGE', `--panel-listen ${host}: not loopback; the panel leaves this machine only over TLS (set panel.tlsCert and panel.tlsKey in node.json)`);
}

function diskChart(m: { sizes: { at: number; bytes: number }[]; maxBytes: number }): string {
  return lineChart('Disk use of the mirror over time', m.sizes.map((p) => ({ x: p.at, y: p.bytes })), formatBytes, when, m.maxBytes > 0 ? m.maxBytes : undefined);
}

/** Help text from the schema as HTML: escaped, with `code` spans shown as code. */
function helpHtml(text: string): string {
  const esc = text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
  return esc.replace(/`([^`]+)`/g, '<code>$1</code>');
}

function when(ms: number): string {
  return new Date(ms).toISOString().slice(0, 16).replace('T', ' ') + 'Z';
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The fields of a service's settings form: every field of its schema but `enabled`. */
function serviceFields(name: ServiceName) {
  const prefix = `services.${name}.`;
  return fieldDocs().filter((d) => d.path.startsWith(prefix) && d.path !== `${prefix}enabled`).map((d) => {
    const key = d.path.slice(prefix.length);
    // The input follows the schema's type, so a new field gets the right one without touching the panel.
    const input = d.type === 'picklist' ? 'select'
      : d.type === 'boolean' ? 'checkbox' : d.type === 'array' ? 'textarea' : d.type === 'number' ? 'number' : 'text';
    return { key, help: d.help, kind: d.kind, default: Array.isArray(d.default) ? '(none)' : String(d.default), input, options: d.options ?? [] };
  });
}

/** A form value in the type of the field it replaces; anything else is left as text for the schema to refuse, by name. */
function fromForm(text: string, current: unknown): unknown {
  if (Array.isArray(current)) return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  if (typeof current === 'number') return /^-?\d+$/.test(text.trim()) ? Number(text.trim()) : text;
  if (typeof current === 'boolean') return text === 'true' ? true : text === 'false' ? false : text;
  return text;
}

function formOf(body: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (body === null || typeof body !== 'object') return out;
  for (const [k, v] of Object.entries(body)) if (typeof v === 'string') out[k] = v;
  return out;
}

function equalText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function serviceName(req: FastifyRequest): ServiceName | undefined {
  const n = (req.params as { name?: string }).name;
  return SERVICE_NAMES.find((s) => s === n);
}
