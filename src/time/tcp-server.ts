// Roughtime over TCP, the server side (RFC 10049 "Protocol Details": "Multiple requests and responses can
// be exchanged over an established TCP connection ... Either side SHOULD close the connection in response
// to synchronization, format, implementation-defined timeouts, or other errors"). Each complete packet on
// the stream goes to the same batches as the UDP datagrams (`submit`, under the same per-client bucket) and
// its answer is written back on the connection it came from; responses are never larger than the request
// (the amplification rule of "Requests" holds on both transports). Every peer is hostile, so:
// - connections are counted in all and per client address (IPv6: its /64); over either bound the new
//   connection is closed at once;
// - a frame over limits.roughtimePacketBytes, bytes that are not a ROUGHTIM packet, a request the server
//   would not answer (malformed, another SRV, no version we speak) and a request over the rate limit close
//   the connection: over TCP a request left unanswered would only hold the connection open;
// - a connection that completes no request for limits.roughtimeTcpIdleMs is closed, however slowly it
//   trickles bytes (slowloris), and one with limits.roughtimeTcpPendingRequests requests still waiting
//   for their answers is closed;
// - a peer that does not read its answers stops being read (backpressure), so its queue lives in the
//   kernel's buffers, not ours, until the idle timeout closes it.
import net from 'node:net';
import { SourcemeshError } from '../errors.ts';
import type { Limits } from '../limits.ts';
import type { Logger } from '../logger.ts';
import { clientKey } from '../net/rate-limit.ts';
import { listenOn } from '../net/listen.ts';
import { FrameReader } from './frames.ts';
import type { Submitted } from './server.ts';

export interface TcpStats {
  /** Connections taken, refused at once (over a bound), closed by the server for an error or timeout, open now. */
  accepted: number;
  refused: number;
  closedForError: number;
  open: number;
}

export interface TcpListenOptions {
  readonly host: string;
  readonly port: number;
  readonly limits: Limits;
  readonly logger: Logger;
  readonly stats: TcpStats;
  readonly submit: (packet: Buffer, clientAddress: string | undefined, reply: (response: Buffer) => void) => Submitted;
}

export async function listenRoughtimeTcp(o: TcpListenOptions): Promise<{ address: string; close(): Promise<void> }> {
  const { limits, stats } = o;
  const perClient = new Map<string, number>();
  const sockets = new Set<net.Socket>();

  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    const client = clientKey(socket.remoteAddress);
    const count = perClient.get(client) ?? 0;
    if (sockets.size >= limits.roughtimeTcpConnections || count >= limits.roughtimeTcpConnectionsPerClient) {
      stats.refused++;
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    stats.accepted++;
    stats.open++;
    perClient.set(client, count + 1);
    sockets.add(socket);
    const reader = new FrameReader(`Roughtime request from ${socket.remoteAddress}`, limits);
    let pending = 0;
    let ended = false;

    const fail = (why: string) => {
      if (socket.destroyed) return;
      stats.closedForError++;
      o.logger.debug({ client, why }, 'roughtime tcp connection closed');
      socket.destroy();
    };
    let idle = setTimeout(() => fail('idle'), limits.roughtimeTcpIdleMs);

    const reply = (response: Buffer) => {
      pending--;
      if (socket.destroyed) return;
      // A peer that does not read: stop reading it until it does.
      if (!socket.write(response)) {
        socket.pause();
        socket.once('drain', () => socket.resume());
      }
      if (ended && pending === 0) socket.end();
    };

    socket.on('data', (chunk: Buffer) => {
      let packets: Buffer[];
      try {
        packets = reader.push(chunk);
      } catch (err) {
        fail((err as Error).message);
        return;
      }
      for (const packet of packets) {
        if (pending >= limits.roughtimeTcpPendingRequests) {
          fail('too many requests waiting for their answers');
          return;
        }
        const taken = o.submit(packet, socket.remoteAddress, reply);
        if (taken !== 'queued') {
          fail(`a request ${taken}`);
          return;
        }
        pending++;
        clearTimeout(idle);
        idle = setTimeout(() => fail('idle'), limits.roughtimeTcpIdleMs);
      }
    });
    // The client half-closed: answer what it asked, then close ("The connection SHOULD be closed by the
    // client when it has no more requests to send and has received all expected responses").
    socket.on('end', () => {
      ended = true;
      if (reader.pending > 0) fail('the stream ended inside a frame');
      else if (pending === 0) socket.end();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(idle);
      stats.open--;
      sockets.delete(socket);
      const left = (perClient.get(client) ?? 1) - 1;
      if (left === 0) perClient.delete(client);
      else perClient.set(client, left);
    });
  });

  await listenOn(server, { host: o.host, port: o.port }).catch((err: unknown) => {
    server.close();
    throw new SourcemeshError('E_IO', `cannot listen for Roughtime over TCP on ${o.host}:${o.port}: ${(err as Error).message}`, {}, { cause: err });
  });
  server.on('error', (err) => o.logger.error({ err }, 'roughtime tcp listener error'));
  const bound = server.address() as net.AddressInfo;
  const address = bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  return {
    address,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    }),
  };
}
