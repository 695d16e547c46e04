// A bandwidth cap for a loopback server, as a TCP forwarder in a child process of its own: every byte
// a server sends to its clients passes one token bucket, shared by all of that server's connections.
// A real mirror's uplink is slow for all its clients together; nginx's `limit_rate` caps each
// connection instead, so a client that opens more connections would get more. Requests go upstream
// unthrottled.
//
// As a script: node bench/lib/throttle.ts HOST:LISTEN_PORT:TARGET_PORT:BYTES_PER_SECOND ...
// (0 bytes per second: no cap). Listens on loopback addresses only and connects to 127.0.0.1 only.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { onCleanup } from './cleanup.ts';
import { freePort, stopChild, waitForPort } from './nginx.ts';

export interface Route {
  /** Where the capped server listens: a loopback address (distinct addresses look like distinct hosts). */
  host: string;
  /** The server behind the cap: 127.0.0.1:targetPort. */
  targetPort: number;
  /** Bytes per second to all clients together; 0: no cap (the forwarder still costs its copy). */
  bytesPerSecond: number;
}

export interface Throttle {
  /** One http://HOST:PORT per route, in order. */
  urls: string[];
  stop(): Promise<void>;
}

/** Start one forwarder process serving every route on a port of its own. */
export async function startThrottle(routes: Route[]): Promise<Throttle> {
  const ports: number[] = [];
  for (const r of routes) {
    if (!/^127\.\d+\.\d+\.\d+$/.test(r.host)) throw new Error(`throttle: ${r.host} is not a loopback address`);
    ports.push(await freePort(r.host));
  }
  const args = routes.map((r, i) => `${r.host}:${ports[i]}:${r.targetPort}:${Math.round(r.bytesPerSecond)}`);
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  const unregister = onCleanup(() => stopChild(child), () => child.kill('SIGTERM'));
  try {
    for (const [i, p] of ports.entries()) await waitForPort(p, child, () => 'throttle', 10_000, routes[i]!.host);
  } catch (err) {
    await stopChild(child);
    unregister();
    throw err;
  }
  return {
    urls: ports.map((p, i) => `http://${routes[i]!.host}:${p}`),
    stop: async () => {
      await stopChild(child);
      unregister();
    },
  };
}

/** Bytes may be sent when the balance is not negative; it refills at `rate` up to BURST seconds' worth. */
class Bucket {
  private tokens: number;
  private last = performance.now();
  private readonly rate: number;
  private readonly capacity: number;
  private waiters: (() => void)[] = [];
  private timer?: NodeJS.Timeout;

  constructor(rate: number) {
    this.rate = rate;
    this.capacity = rate * BURST_SECONDS;
    this.tokens = this.capacity;
  }

  private refill(): void {
    const now = performance.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
  }

  /** Take `n` bytes' worth (the balance may go negative: the sender then waits until it is repaid). */
  take(n: number): boolean {
    this.refill();
    this.tokens -= n;
    return this.tokens >= 0;
  }

  /** Call `resume` once the balance is back to zero. */
  wait(resume: () => void): void {
    this.waiters.push(resume);
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) return;
    this.refill();
    const ms = Math.max(1, (-this.tokens / this.rate) * 1000);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refill();
      if (this.tokens < 0) return this.schedule();
      // Wake the waiters in turn; each takes its share as it sends again.
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    }, ms);
  }
}

// The cap holds over any window longer than this. Shorter would be tighter, but a forwarder whose event
// loop runs late (the machine is busy with the transfer it forwards) would then lose the tokens that
// accrued meanwhile, and the cap would come out lower than asked.
const BURST_SECONDS = 0.1;

function forward(host: string, listenPort: number, targetPort: number, rate: number): net.Server {
  const bucket = rate > 0 ? new Bucket(rate) : undefined;
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
    client.pipe(upstream);
    let blockedByBucket = false;
    let blockedByClient = false;
    const maybeResume = () => {
      if (!blockedByBucket && !blockedByClient) upstream.resume();
    };
    upstream.on('data', (chunk: Buffer) => {
      if (!client.write(chunk)) {
        blockedByClient = true;
        upstream.pause();
        client.once('drain', () => {
          blockedByClient = false;
          maybeResume();
        });
      }
      if (bucket && !bucket.take(chunk.length)) {
        blockedByBucket = true;
        upstream.pause();
        bucket.wait(() => {
          blockedByBucket = false;
          maybeResume();
        });
      }
    });
    upstream.on('end', () => client.end());
  });
  server.listen(listenPort, host);
  return server;
}

if (import.meta.main) {
  const specs = process.argv.slice(2).map((a) => /^(127\.\d+\.\d+\.\d+):(\d+):(\d+):(\d+)$/.exec(a));
  if (specs.length === 0 || specs.some((m) => !m)) {
    process.stderr.write('usage: node bench/lib/throttle.ts 127.X.Y.Z:LISTEN_PORT:TARGET_PORT:BYTES_PER_SECOND ...\n');
    process.exit(2);
  }
  const servers = specs.map((m) => forward(m![1]!, Number(m![2]), Number(m![3]), Number(m![4])));
  const stop = () => {
    for (const s of servers) s.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
