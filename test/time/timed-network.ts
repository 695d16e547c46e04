// A real trust network (three `witness serve`, one `log serve` on loopback; test/trust/release/network.ts)
// with a release made by the CLI, and Roughtime servers run in-process on real UDP under the witnesses' own
// keys with a clock `offsetSeconds` from this machine's: offset a day ahead, this machine looks like one
// whose clock was set back a day. `timedPolicy` writes the network's policy with `time.roughtime` naming them.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startRoughtimeServer, type RoughtimeServer } from '../../src/time/server.ts';
import { runCli } from '../helpers/run.ts';
import { startTrustNetwork, type TrustNetwork, writeManifest } from '../trust/release/network.ts';

export interface TimedNetwork {
  readonly net: TrustNetwork;
  /** A manifest released (signed, logged, cosigned) now; its bundle is `${manifest}.release`. */
  readonly manifest: string;
  readonly servers: readonly RoughtimeServer[];
  /** The network's policy without the log's URL (offline checks) and without `time`. */
  readonly plain: string;
  /** The plain policy with `time.roughtime` naming `servers` (by default those above), written to dir/name. */
  timedPolicy(name: string, maxSkewSeconds?: number, servers?: readonly RoughtimeServer[]): Promise<string>;
  /** More Roughtime servers under the witnesses' keys, with their clock `offsetSeconds` from this machine's. */
  startServers(offsetSeconds: number): Promise<RoughtimeServer[]>;
}

export async function startTimedNetwork(t: { after(fn: () => unknown): void }, dir: string, offsetSeconds: number): Promise<TimedNetwork> {
  const net = await startTrustNetwork(t, dir);
  const manifest = await writeManifest(path.join(dir, 'manifest.json'), '1.0');
  const made = await runCli(['release', manifest, '--key', net.releaseKeys[0]!.file, '--key', net.releaseKeys[1]!.file, '--log', net.log.url]);
  assert.equal(made.code, 0, made.stderr);
  const startServers = async (offset: number) => {
    const started = await Promise.all(net.witnessKeys.map((k) => startRoughtimeServer({ key: k.key, host: '127.0.0.1', port: 0, clock: () => Date.now() + offset * 1000 })));
    t.after(() => Promise.all(started.map((s) => s.close())));
    return started;
  };
  const servers = await startServers(offsetSeconds);
  const plain = await net.policy('plain.json', { url: false });
  return {
    net, manifest, servers, plain, startServers,
    async timedPolicy(name, maxSkewSeconds, named = servers) {
      const p = JSON.parse(await readFile(plain, 'utf8'));
      p.time = { roughtime: net.witnessKeys.map((k, i) => ({ witness: k.key.name, address: named[i]!.address })), ...(maxSkewSeconds ? { maxSkewSeconds } : {}) };
      await writeFile(path.join(dir, name), JSON.stringify(p));
      return path.join(dir, name);
    },
  };
}
