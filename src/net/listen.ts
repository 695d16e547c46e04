// Listening, the one way every server of ours starts: resolves once the socket listens, rejects with
// the listen error (EADDRINUSE, EACCES...) instead of leaving it to the server's 'error' event.
import type net from 'node:net';

/** `server.listen(options)`, as a promise. */
export function listenOn(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
