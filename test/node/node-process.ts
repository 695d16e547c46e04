// `sourcemesh node run DIR` as a child process, as an operator runs it, with its JSON-lines log parsed.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { request } from 'undici';
import { configText, type NodeConfig } from '../../src/node/config.ts';
import { initNode } from '../../src/node/init.ts';
import { CLI, ROOT, waitFor } from '../helpers/run.ts';

export interface RunningNode {
  dir: string;
  token: string;
  child: ChildProcess;
  /** Every JSON line so far. */
  lines(): Record<string, unknown>[];
  stderr(): string;
  /** Wait for a line for which `match` holds (bounded). */
  waitLine(what: string, match: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  panelUrl(): Promise<string>;
  /** The URL the service announced in its newest "listening" line. */
  serviceUrl(service: string, after?: number): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A fresh node directory: init, then `edit` the config (ports 0 so tests never collide). */
export async function makeNode(dir: string, edit: (c: NodeConfig) => void = () => {}): Promise<{ dir: string; token: string }> {
  const r = await initNode(dir, { name: 'test-node' });
  const c = structuredClone(r.config);
  c.services.serve.port = 0;
  c.services.logServe.port = 0;
  c.services.witnessServe.port = 0;
  c.panel.port = 0;
  edit(c);
  await writeFile(path.join(dir, 'node.json'), configText(c));
  return { dir, token: r.token };
}

export async function editConfig(dir: string, edit: (c: NodeConfig) => void): Promise<void> {
  const c = JSON.parse(await readFile(path.join(dir, 'node.json'), 'utf8')) as NodeConfig;
  edit(c);
  await writeFile(path.join(dir, 'node.json'), configText(c));
}

export async function startNode(t: { after(fn: () => unknown): void }, node: { dir: string; token: string }, args: string[] = []): Promise<RunningNode> {
  const child = spawn(process.execPath, [CLI, 'node', 'run', node.dir, ...args], { cwd: ROOT, env: { ...process.env, CI: '1', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let buf = '';
  let err = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        lines.push(JSON.parse(line));
      } catch {
        lines.push({ raw: line });
      }
    }
  });
  child.stderr!.on('data', (d) => (err += d));
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  });
  const waitLine: RunningNode['waitLine'] = async (what, match, timeoutMs = 30_000) => {
    let found: Record<string, unknown> | undefined;
    await waitFor(`${what} (stderr: ${err.slice(-500)})`, () => {
      if (child.exitCode !== null) throw new Error(`node run exited with ${child.exitCode} while waiting for ${what}: ${err}`);
      found = lines.find(match);
      return found !== undefined;
    }, { timeoutMs, everyMs: 20 });
    return found!;
  };
  return {
    dir: node.dir, token: node.token, child,
    lines: () => lines,
    stderr: () => err,
    waitLine,
    panelUrl: async () => String((await waitLine('panel listening', (l) => l.msg === 'panel listening')).url),
    serviceUrl: async (service, after = 0) => {
      const l = await waitLine(`${service} listening`, (x) => lines.indexOf(x) >= after && x.service === service && x.stream === 'stdout' && typeof x.line === 'string' && /listening/.test(x.line));
      const line = String(l.line);
      return line.startsWith('{') ? String(JSON.parse(line).url) : line.replace(/^listening on /, '');
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const [code, sig] = await exited;
      return { code, signal: sig };
    },
  };
}

/** GET `url` as a client sees it: the status and body, or the error code (ECONNREFUSED once a service is off). */
export async function httpGet(url: string): Promise<{ status: number; body: string } | { error: string }> {
  try {
    const r = await request(url, { headersTimeout: 5000, bodyTimeout: 5000 });
    return { status: r.statusCode, body: await r.body.text() };
  } catch (err) {
    return { error: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
}
