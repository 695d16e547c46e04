// Two announcers of one key started at the same instant in one process (for the probe tiebreak of RFC
// 6762 §8.2, run inside a network namespace by lan.test.ts): both probe for the same name with no random
// delay, so each hears the other's probe. Prints the names they end up announcing, as JSON on stderr.
//
//   node test/discovery/two-announcers.ts '{"ports":[8080,8081]}'
import { announceNode } from '../../src/discovery/announce.ts';
import { KEY_TYPE_ED25519, signerKeyFromSeed } from '../../src/trust/note.ts';

const { ports } = JSON.parse(process.argv[2]!) as { ports: [number, number] };
const key = signerKeyFromSeed('same-moment', KEY_TYPE_ED25519, Buffer.alloc(32, 16));
const announcers = await Promise.all(ports.map((port) => announceNode({ key, port, roles: ['mirror'], random: () => 0 })));
process.stderr.write(`${JSON.stringify(announcers.map((a) => a.announcement.instance))}\n`);
await Promise.all(announcers.map((a) => a.close()));
