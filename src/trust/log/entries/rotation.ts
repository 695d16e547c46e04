// Log entry type `rotation`: a release key rotation statement (sourcemesh.rotation/v1, ../../rotation.ts),
// as a signed note. The admission policy checks that it follows the chain the log holds for its project.

import { parseRotationStatement, ROTATION_FORMAT, statementHash } from '../../rotation.ts';
import { checkSignedNote } from './signed-note.ts';
import { type EntryType, startsWithAscii } from './types.ts';

const PREFIX = `${ROTATION_FORMAT}\n`;

export const rotationEntry: EntryType = {
  name: 'rotation',
  claims: (entry) => startsWithAscii(entry, PREFIX),
  check(entry, keys, limits) {
    const note = checkSignedNote(entry, keys, limits);
    const s = parseRotationStatement(note.text, limits);
    return {
      type: 'rotation',
      subject: {
        kind: 'rotation', chain: s.chain, sequence: s.sequence, previous: s.previous, hash: statementHash(note.text),
        threshold: s.keySet.threshold, vkeys: s.keySet.vkeys,
      },
      signers: note.signers,
      named: note.named,
      describe: `rotation statement ${s.sequence} of chain ${s.chain.slice(0, 16)}`,
    };
  },
};
