// A lying Roughtime server for the stress harness's `time-liar` fault: the real server code
// (src/time/server.ts) answering under a witness's own key with a clock OFFSET_MS off, so its answers
// are validly signed lies (RFC 10049 §6: a client must catch them by comparing servers, and name the
// liar with a proof). The harness redirects the witness's Roughtime port here with nftables.
//
//   node test/stress/roughtime-liar.ts SRC_DIR KEYFILE HOST:PORT OFFSET_MS
// SRC_DIR is the sourcemesh sources the run uses (the exported commit under --cli head).
import { pathToFileURL } from 'node:url';

const [src, keyFile, at, offset] = process.argv.slice(2);
if (src === undefined || keyFile === undefined || at === undefined || offset === undefined) {
  process.stderr.write('usage: roughtime-liar.ts SRC_DIR KEYFILE HOST:PORT OFFSET_MS\n');
  process.exit(2);
}
const { readSignerKeyFile } = (await import(pathToFileURL(`${src}/trust/key-file.ts`).href)) as typeof import('../../src/trust/key-file.ts');
const { startRoughtimeServer } = (await import(pathToFileURL(`${src}/time/server.ts`).href)) as typeof import('../../src/time/server.ts');
const key = await readSignerKeyFile(keyFile);
const cut = at.lastIndexOf(':');
const server = await startRoughtimeServer({ key, host: at.slice(0, cut), port: Number(at.slice(cut + 1)), clock: () => Date.now() + Number(offset) });
process.stdout.write(`listening ${server.address}\n`);
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => void server.close().then(() => process.exit(0)));
