// A hostile HTTP/1.1 server on loopback written byte by byte with node:net, for what node:http will not
// do on purpose: a head and a body with no length written in one go and ended by FIN at once, or a
// response cut at any chosen byte. Every answer is bounded in bytes; every socket is closed with the
// server.
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface RawRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
}

/** What to send for one request: raw bytes, then FIN unless `keepOpen` (the answer then owns the socket). */
export type RawAnswer = { bytes: Buffer[]; keepOpen?: boolean };

export interface RawServer {
  url: string;
  requests: RawRequest[];
  close(): Promise<void>;
}

export async function startRawServer(answer: (req: RawRequest, nth: number, sock: Socket) => RawAnswer | Promise<RawAnswer>): Promise<RawServer> {
  const requests: RawRequest[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let head = '';
    const onData = async (d: Buffer) => {
      head += d.toString('latin1');
      if (head.length > 64 * 1024) return void sock.destroy();
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.off('data', onData);
      const [line = '', ...lines] = head.slice(0, end).split('\r\n');
      const [method = '', target = '/'] = line.split(' ');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const req = { method, path: decodeURIComponent(new URL(target, 'http://x').pathname), headers };
      requests.push(req);
      const a = await answer(req, requests.length, sock);
      // One write of everything, then FIN: the client receives the end of the body and the end of the
      // stream together.
      sock.write(Buffer.concat(a.bytes));
      if (!a.keepOpen) sock.end();
    };
    sock.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A 200 head without Content-Length: the body is whatever comes until FIN (RFC 9112 §6.3, item 8). */
export function closeDelimitedHead(extra: Record<string, string> = {}): Buffer {
  const lines = ['HTTP/1.1 200 OK', 'Connection: close', ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`)];
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}
