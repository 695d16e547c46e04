// What the harness records for the checker besides the operations themselves: the log's published
// checkpoints, what each witness says it cosigned, what each mirror root publishes, and at the end,
// whether every release the log acknowledged is still in it.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Exported } from './history.ts';
import { readHistory } from './history.ts';
import type { Material } from './material.ts';
import { LOG_ORIGIN, type Run, type Servers, type Trust } from './servers.ts';

/** Hash the distfiles in a directory (top-level regular files whose names do not start with a dot). */
export function hashDir(dir: string): Exported[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && !e.name.startsWith('.'))
    .map((e) => ({ name: e.name, sha256: createHash('sha256').update(readFileSync(path.join(dir, e.name))).digest('hex') }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

/**
 * Watch the log's published checkpoint (read from its directory: which witnesses cosigned which tree)
 * and ask each witness directly (from upstream's node, through its proxy) for the last checkpoint it
 * cosigned (GET /<sha256 of the log's origin>/checkpoint): what it says there must agree too. Returns
 * the function that stops both.
 */
export function watchCheckpoints(run: Run, logRoot: string): () => void {
  const { nodes, history, live } = run;
  let lastCheckpoint = '';
  const watch = setInterval(() => {
    const text = (() => {
      try {
        return readFileSync(path.join(logRoot, 'checkpoint'), 'utf8');
      } catch {
        return '';
      }
    })();
    if (text === '' || text === lastCheckpoint) return;
    lastCheckpoint = text;
    const [body, sigs = ''] = text.split('\n\n');
    const [, size, root] = body!.split('\n');
    const cosigners = sigs.split('\n').filter((l) => l.startsWith('\u2014 ')).map((l) => l.split(' ')[1]!).filter((n) => n !== LOG_ORIGIN);
    history.add({ type: 'checkpoint', size: Number(size), root: root!, cosigners });
  }, 250);
  const lastRead = new Map<string, string>();
  const originHash = createHash('sha256').update(LOG_ORIGIN).digest('hex');
  let reading = false;
  const readWitnesses = setInterval(() => {
    if (reading || live.ending) return;
    reading = true;
    void Promise.all(['w1', 'w2', 'w3'].map(async (w) => {
      const { code, stdout: text } = await nodes.exec('up', ['curl', '-sf', '-m', '2', `${nodes.url(w)}/${originHash}/checkpoint`], true);
      const [origin, size, root] = text.split('\n');
      if (code === 0 && origin === LOG_ORIGIN && /^\d+$/.test(size ?? '') && root && lastRead.get(w) !== `${size} ${root}`) {
        lastRead.set(w, `${size} ${root}`);
        history.add({ type: 'checkpoint', size: Number(size), root, cosigners: [`${w}.stress.test`], from: w });
      }
    })).finally(() => (reading = false));
  }, 2000);
  return () => {
    clearInterval(watch);
    clearInterval(readWitnesses);
  };
}

/**
 * Once the load is over: what every mirror root publishes, and every release the log acknowledged
 * checked against its newest checkpoint (`release verify --online`, from upstream's node).
 */
export async function finalChecks(run: Run, servers: Servers, m: Material, trust: Trust): Promise<void> {
  const { nodes, history, work, mirrors } = run;
  for (const mirror of mirrors) history.add({ type: 'mirror-files', mirror, files: hashDir(servers.roots.get(mirror)!) });
  await new Promise((r) => setTimeout(r, 1500));
  for (const r of readHistory(history.file)) {
    if (r.type !== 'release' || r.exit !== 0 || r.index === undefined) continue;
    const v = await nodes.runIn('up', 'entry-check', ['release', 'verify', m.manifestFile(r.version), '--trust-policy', trust.policy, '--online', '--state', path.join(work, 'entry-check', r.version)]);
    history.add({ type: 'entry-check', version: r.version, index: r.index, exit: v.code });
  }
}
