// wrk as the load generator of the benchmarks, counting only what a client could use. wrk's own
// Requests/sec counts every response, 4xx and 5xx included, and its byte count includes headers and
// whatever a server sent: a server that answered 503 at once, or ignored Range and sent whole files,
// would score higher. So the summary separates failed statuses from the rest, and a run whose bytes
// do not add up to whole bodies of the expected size is refused as a whole.
//
// Checking each body in wrk would mean a Lua `response` callback, which makes wrk buffer and copy every
// body (64 MiB ones too) and would measure wrk instead of the servers; the byte accounting below, with
// a sample checked byte for byte by the benchmark itself (curl), holds a server to the same standard.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';

export interface WrkRun {
  /** Responses completed (any status). */
  requests: number;
  /** Bytes read, headers and bodies, partial responses at the end of the run included. */
  bytes: number;
  seconds: number;
  p99ms: number;
  /** Responses with a status of 400 or more (wrk counts no 3xx here). */
  statusErrors: number;
  /** Connect, read, write errors and timeouts. */
  socketErrors: number;
}

/** The Lua of a wrk run: `request` (optional, e.g. random ranges) and a summary line wrk prints at the end. */
export function wrkScript(request = ''): string {
  return `${request}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d\\n", summary.requests, summary.bytes, summary.duration,
    latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
`;
}

/** Run wrk against `url` with the script at `lua`; rejects when wrk fails or prints no summary. */
export async function runWrk(url: string, lua: string, script: string, opts: { connections: number; threads: number; seconds: number; timeoutSeconds?: number }): Promise<WrkRun> {
  await writeFile(lua, script);
  const args = ['-t', String(opts.threads), '-c', String(opts.connections), '-d', `${opts.seconds}s`, '--timeout', `${opts.timeoutSeconds ?? 30}s`, '-s', lua, url];
  const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const run = parseWrkSummary(out);
  if (code !== 0 || run === undefined) throw new Error(`wrk failed (${code}): ${out}`);
  return run;
}

export function parseWrkSummary(out: string): WrkRun | undefined {
  const m = /BENCH (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)/.exec(out);
  if (!m) return undefined;
  return { requests: Number(m[1]), bytes: Number(m[2]), seconds: Number(m[3]) / 1e6, p99ms: Number(m[4]) / 1000, statusErrors: Number(m[5]), socketErrors: Number(m[6]) };
}

export interface Counted {
  /** Responses that count: completed with a success status, in a run whose bytes add up. */
  good: number;
  /** Body bytes of those responses (headers not counted). */
  goodBytes: number;
  /** Why the run does not count (empty when it does). */
  problems: string[];
}

/**
 * What a run is worth when every good response carries exactly `bodyBytes` of body and a head of at
 * most `headBytes`. Any failed status or socket error makes the run not count; so do bytes that cannot
 * be whole responses of that size: fewer than `good` bodies, or more than `good + connections` heads
 * and bodies (each connection may be cut in the middle of one response when the time is up).
 */
export function countWrkRun(run: WrkRun, bodyBytes: number, connections: number, headBytes = 1024): Counted {
  const problems: string[] = [];
  if (run.statusErrors > 0) problems.push(`${run.statusErrors} responses with status 400 or more`);
  if (run.socketErrors > 0) problems.push(`${run.socketErrors} connect/read/write errors or timeouts`);
  const good = run.requests - run.statusErrors;
  if (good <= 0) problems.push('no successful response');
  const least = good * bodyBytes;
  const most = (good + connections) * (bodyBytes + headBytes);
  if (run.bytes < least) problems.push(`${run.bytes} bytes read for ${good} responses of ${bodyBytes} body bytes: short bodies`);
  if (run.bytes > most) problems.push(`${run.bytes} bytes read for ${good} responses of ${bodyBytes} body bytes: more than asked for (Range ignored?)`);
  return { good: problems.length === 0 ? good : 0, goodBytes: problems.length === 0 ? good * bodyBytes : 0, problems };
}
