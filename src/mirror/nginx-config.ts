// `sourcemesh mirror nginx-config ROOT`: an nginx configuration that serves a mirror root the way
// `serve` does (src/mirror/server.ts), for operators who want a stock web server in front. Pure: the
// caller resolves the root and passes the limits; the text goes in nginx's http context.
//
// What it reproduces (docs/OPERATIONS.md, "Serving with nginx"): /NAME for plain, non-hidden names at
// the top of the root; /sha256/HEX and /sha256/HEX.pieces (HEX written by `mirror sync --static-links`
// as hard links, src/mirror/hash-links.ts); the signed inventory and attestations under
// /.well-known/sourcemesh/; Range requests (at most serveMaxRanges ranges); 404 for everything else:
// no listing, no directory, no hidden file, never ROOT/.sourcemesh/ (private state, the node key).
// Per-address connection and request limits are serve's defaults. Symlinks are never followed: sync
// publishes by hard link, and a symlink is how a root would be made to leak a file outside it.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { SourcemeshError } from '../errors.ts';
import type { Limits } from '../limits.ts';

export interface NginxConfigOptions {
  /** The mirror root, an absolute real path (no symlink in it: nginx is told to follow none). */
  root: string;
  host: string;
  port: number;
  serverName?: string;
  limits: Pick<Limits, 'serveClientConnections' | 'serveRequestsPerSecond' | 'serveRequestBurst' | 'serveMaxRanges' | 'serveHeadersTimeoutMs' | 'serveKeepAliveTimeoutMs' | 'serveSendTimeoutMs'>;
  /** Printed in the header comment. */
  version: string;
}

// nginx expands $variables in `root` and reads ; { } # " ' \ as syntax even inside quotes in places:
// a root naming any of them, or a control character, is refused rather than escaped.
const UNSAFE_PATH = /["'\\$;{}#\u0000-\u001f\u007f]/;
const SERVER_NAME = /^[A-Za-z0-9_*.-]{1,253}$/;

export function nginxConfig(o: NginxConfigOptions): string {
  if (!path.isAbsolute(o.root)) throw new SourcemeshError('E_USAGE', `mirror root ${o.root}: not an absolute path`);
  const bad = UNSAFE_PATH.exec(o.root);
  if (bad) throw new SourcemeshError('E_INPUT', `mirror root ${JSON.stringify(o.root)}: contains ${JSON.stringify(bad[0])}, which an nginx configuration cannot hold safely; move or link the root elsewhere`);
  if (o.serverName !== undefined && !SERVER_NAME.test(o.serverName)) throw new SourcemeshError('E_USAGE', `--server-name ${JSON.stringify(o.serverName)}: expected a host name (letters, digits, . - _ *)`);
  if (o.host.includes('%')) throw new SourcemeshError('E_USAGE', `--listen ${o.host}: nginx cannot listen on a scoped IPv6 address; give the address without %INTERFACE`);
  const listen = o.host.includes(':') ? `[${o.host}]:${o.port}` : `${o.host}:${o.port}`;
  // Zone names are shared by the whole http context: one per root, so two mirrors on one nginx do not clash.
  const zone = `sourcemesh_${createHash('sha256').update(o.root).digest('hex').slice(0, 12)}`;
  const l = o.limits;
  const seconds = (ms: number) => `${Math.max(1, Math.ceil(ms / 1000))}s`;
  const perClient = l.serveClientConnections > 0 ? `    limit_conn ${zone}_conn ${l.serveClientConnections};\n    limit_conn_status 503;\n` : '';
  const rate = l.serveRequestsPerSecond > 0 ? `    limit_req zone=${zone}_req burst=${l.serveRequestBurst} nodelay;\n    limit_req_status 429;\n` : '';
  const zones = [
    ...(l.serveClientConnections > 0 ? [`limit_conn_zone $binary_remote_addr zone=${zone}_conn:10m;`] : []),
    ...(l.serveRequestsPerSecond > 0 ? [`limit_req_zone $binary_remote_addr zone=${zone}_req:10m rate=${l.serveRequestsPerSecond}r/s;`] : []),
  ];
  return `# Written by sourcemesh ${o.version} (mirror nginx-config) for the mirror root ${o.root}.
# Goes in nginx's http context (Debian: /etc/nginx/conf.d/). Serves the root as \`sourcemesh serve\`
# does; /sha256/HEX needs \`sourcemesh mirror sync --static-links\`. See docs/OPERATIONS.md,
# "Serving with nginx".
${zones.join('\n')}
server {
    listen ${listen};
    server_name ${o.serverName ?? '_'};
    root "${o.root}";
    autoindex off;
    # Never follow a symlink: sync publishes by hard link.
    disable_symlinks on;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    etag on;
    max_ranges ${l.serveMaxRanges};
    types { }
    default_type application/octet-stream;
    charset off;
    client_header_timeout ${seconds(l.serveHeadersTimeoutMs)};
    keepalive_timeout ${seconds(l.serveKeepAliveTimeoutMs)};
    send_timeout ${seconds(l.serveSendTimeoutMs)};
${perClient}${rate}
    # The signed inventory and the node's attestations (docs/FORMATS.md).
    location = /.well-known/sourcemesh/inventory {
        types { }
        default_type "text/plain; charset=utf-8";
        add_header Cache-Control "no-cache";
        try_files $uri =404;
    }
    location ~ "^/\\.well-known/sourcemesh/attestations/[^/.\\x00-\\x20\\x7f][^/\\x00-\\x1f\\x7f]*\\.sigstore\\.json$" {
        types { }
        default_type application/json;
        add_header Cache-Control "no-cache";
        try_files $uri =404;
    }
    # Content-addressed names never change meaning.
    location ~ "^/sha256/[0-9a-f]{64}(\\.pieces)?$" {
        add_header Cache-Control "public, max-age=31536000, immutable";
        try_files $uri =404;
    }
    # /NAME: a plain file at the top of the root, never a hidden one, never a directory.
    location ~ "^/[^/.\\x00-\\x20\\x7f][^/\\x00-\\x1f\\x7f]*$" {
        try_files $uri =404;
    }
    # Everything else, / included (no listing).
    location / {
        return 404;
    }
}
`;
}
