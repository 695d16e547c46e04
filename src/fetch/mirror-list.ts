// Mirror lists (docs/FORMATS.md, "Mirror list (`sourcemesh.mirrors/v1`)"): JSON that can live in a git
// repository and later be signed and logged like a manifest release.
import { request, type Dispatcher } from '../net/undici.ts';
import * as v from 'valibot';
import { SourcemeshError } from '../errors.ts';
import { readBoundedFile } from '../fs/bounded-read.ts';
import type { Limits } from '../limits.ts';
import { USER_AGENT, networkError, readBoundedBody } from './http.ts';
import { parseMirror, type Mirror } from './plan.ts';

export const MIRRORS_FORMAT = 'sourcemesh.mirrors/v1';

export interface MirrorEntry {
  url: string;
  operator?: string;
  /** The mirror node's inventory-signing key, a C2SP vkey. */
  key?: string;
}

const schema = v.strictObject({
  format: v.literal(MIRRORS_FORMAT),
  mirrors: v.pipe(
    v.array(v.strictObject({
      url: v.pipe(v.string(), v.regex(/^https?:\/\/\S+$/, 'must be an http(s) URL')),
      operator: v.optional(v.pipe(v.string(), v.maxLength(256))),
      key: v.optional(v.pipe(v.string(), v.maxLength(512))),
    })),
    v.maxLength(10_000),
  ),
});

export function parseMirrorList(text: string, source: string): MirrorEntry[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new SourcemeshError('E_INPUT', `${source}: not valid JSON (${(err as Error).message})`);
  }
  const r = v.safeParse(schema, data);
  if (!r.success) {
    const issue = r.issues[0];
    const where = issue.path?.map((p) => String(p.key)).join('.') || '(top level)';
    throw new SourcemeshError('E_INPUT', `${source}: ${where} ${issue.message}`);
  }
  return r.output.mirrors;
}

/** Read a mirror list from a file or an http(s) URL (bounded, redirects not followed). */
export async function loadMirrorList(where: string, dispatcher: Dispatcher, limits: Limits): Promise<Mirror[]> {
  let text: string;
  if (/^https?:\/\//i.test(where)) {
    // The server and every byte it sends are attacker-controlled: each failure, from connecting to the
    // last byte of the body, is one line in our family naming the list.
    try {
      const res = await request(where, { dispatcher, headers: { 'accept-encoding': 'identity', 'user-agent': USER_AGENT }, headersTimeout: limits.headersTimeoutMs, bodyTimeout: limits.idleTimeoutMs });
      if (res.statusCode !== 200) {
        await res.body.dump().catch(() => {});
        throw new SourcemeshError('E_HTTP', `--mirror-list ${where}: HTTP ${res.statusCode}`, { url: where, status: res.statusCode });
      }
      text = (await readBoundedBody(res.body, limits.manifestBytes, () => new SourcemeshError('E_INPUT', `--mirror-list ${where}: larger than ${limits.manifestBytes} bytes`))).toString('utf8');
    } catch (err) {
      if (err instanceof SourcemeshError) throw err;
      const e = networkError(err, where);
      if (!(e instanceof SourcemeshError)) throw e; // an abort
      throw new SourcemeshError(e.code, `--mirror-list ${e.message}`, e.details, { cause: err });
    }
  } else {
    text = await readBoundedFile(where, limits.manifestBytes, 'mirror list (--mirror-list)', 'E_INPUT');
  }
  return parseMirrorList(text, where).map((m) => parseMirror(m.url));
}
