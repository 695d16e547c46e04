// Hostile and honest clients of `sourcemesh serve` for the adversarial tests, each bound to a loopback
// address of its own (127.0.0.0/8 is all loopback on Linux), so that the server counts them as
// different clients. Every wait is bounded.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';

/** A connection that asked for a file and then stopped reading: what a slow-reader attack holds open. */
export interface Stalled {
  socket: net.Socket;
  /** Whether the response head arrived before the socket was paused. */
  started: boolean;
  /** Bytes of the first read, taken before the socket was paused (head included). */
  bytes: number;
  closed: boolean;
}

/**
 * Open `n` connections from `from`, each asking for `target` and then never reading (paused after the
 * first bytes, so only what the kernel buffers is taken). Resolves once every one got its first bytes,
 * or after `waitMs` (a server that makes some of them wait sends them nothing).
 */
export async function stalledReaders(port: number, from: string, target: string, n: number, waitMs = 10_000): Promise<Stalled[]> {
  const all: Stalled[] = [];
  let notify = () => {};
  for (let i = 0; i < n; i++) {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: from });
    const s: Stalled = { socket, started: false, bytes: 0, closed: false };
    all.push(s);
    socket.on('error', () => {});
    socket.on('close', () => {
      s.closed = true;
      notify();
    });
    socket.once('connect', () => socket.write(`GET ${target} HTTP/1.1\r\nHost: mirror.test\r\n\r\n`));
    socket.once('data', (d: Buffer) => {
      socket.pause();
      s.bytes = d.length;
      s.started = true;
      notify();
    });
  }
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, waitMs);
    notify = () => {
      if (all.every((s) => s.started || s.closed)) {
        clearTimeout(timer);
        resolve();
      }
    };
    notify();
  });
  return all;
}

/** What a paced reader saw. */
export interface Paced {
  /** Status of the response (0: no head came). */
  status: number;
  /** Body bytes taken while pacing. */
  paced: number;
  /** Body bytes in all, after the fast read of the rest. */
  body: number;
  /** The Content-Length the head announced. */
  length: number;
  /** The server ended the connection before the whole body came. */
  cut: boolean;
}

/**
 * A slow reader that keeps reading: GET `target` from `from`, take bytes at no more than `bytesPerSecond`
 * for `paceMs` (looked at every 20 ms; the socket stays paused in between, so the kernel's buffers drain
 * at that pace and no faster: what curl's --limit-rate was meant to do, which Debian's curl 7.88.1 does
 * not on loopback), then read the rest as fast as it comes, for at most `restMs`. A server that cut the
 * response while it was paced can't deliver the whole body afterwards.
 */
export function pacedReader(port: number, from: string, target: string, bytesPerSecond: number, paceMs: number, restMs = 20_000): Promise<Paced> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: from });
    const result: Paced = { status: 0, paced: 0, body: 0, length: -1, cut: false };
    let head = Buffer.alloc(0);
    let taken = 0; // bytes read, head included
    let pacing = true;
    let timer: NodeJS.Timeout | undefined;
    const t0 = performance.now();
    const finish = () => {
      clearInterval(pace);
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const complete = () => result.length >= 0 && result.body >= result.length;
    const take = (chunk: Buffer) => {
      taken += chunk.length;
      if (result.length < 0) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        const text = head.subarray(0, end).toString('latin1');
        result.status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
        result.length = Number(/\r\ncontent-length: *(\d+)/i.exec(text)?.[1] ?? 0);
        result.body = head.length - end - 4;
        head = Buffer.alloc(0);
      } else {
        result.body += chunk.length;
      }
      if (pacing) result.paced = result.body;
      if (!pacing && complete()) finish();
    };
    socket.on('error', () => {});
    socket.once('close', () => {
      result.cut = !complete();
      finish();
    });
    socket.pause();
    socket.once('connect', () => socket.write(`GET ${target} HTTP/1.1\r\nHost: mirror.test\r\n\r\n`));
    const pace = setInterval(() => {
      const allowed = ((performance.now() - t0) / 1000) * bytesPerSecond;
      while (taken < allowed) {
        const chunk = socket.read() as Buffer | null; // what the stream holds: at most about 64 KiB
        if (chunk === null) break;
        take(chunk);
      }
    }, 20);
    timer = setTimeout(() => {
      pacing = false;
      clearInterval(pace);
      if (complete()) return finish();
      timer = setTimeout(finish, restMs);
      socket.on('data', take);
      socket.resume();
    }, paceMs);
  });
}

/** Read what a paused socket still gets until it closes or `ms` pass: the bytes, and whether it closed. */
export function drain(socket: net.Socket, ms: number): Promise<{ bytes: number; closed: boolean }> {
  return new Promise((resolve) => {
    let bytes = 0;
    const done = (closed: boolean) => {
      clearTimeout(timer);
      socket.removeAllListeners('data');
      resolve({ bytes, closed });
    };
    const timer = setTimeout(() => done(false), ms);
    if (socket.destroyed) return done(true);
    socket.on('data', (d: Buffer) => (bytes += d.length));
    socket.once('close', () => done(true));
    socket.resume();
  });
}

export interface Download {
  status: number;
  bytes: number;
  sha256: string;
  ms: number;
}

/** GET `target` from `from` on a connection of its own; rejects after `timeoutMs`. */
export function download(port: number, from: string, target: string, timeoutMs: number, headers: http.OutgoingHttpHeaders = {}): Promise<Download> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: target, localAddress: from, agent: false, headers }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (d: Buffer) => {
        bytes += d.length;
        hash.update(d);
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, bytes, sha256: hash.digest('hex'), ms: performance.now() - t0 });
      });
      res.on('error', reject);
    });
    const timer = setTimeout(() => req.destroy(new Error(`GET ${target} from ${from}: no complete answer in ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** The resident set size of a process, from /proc (bytes). */
export function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** Wait until `check` holds, polling every `everyMs`, at most `ms`; false if it never did. */
export async function until(check: () => boolean | Promise<boolean>, ms: number, everyMs = 100): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const MiB = 1024 * 1024;
