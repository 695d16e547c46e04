// The first node of a closed BitTorrent DHT, for tests that run it in a network namespace of their own:
//   dht-router.ts HOST PORT   (prints `listening` once up; runs until SIGTERM)
import { DhtNode } from '../../src/discovery/dht.ts';

const [host, port] = process.argv.slice(2);
const node = await DhtNode.start({ bootstrap: [], host: host!, port: Number(port) });
process.stdout.write('listening\n');
process.once('SIGTERM', () => void node.close().then(() => process.exit(0)));
