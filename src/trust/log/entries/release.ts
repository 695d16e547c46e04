// Log entry type `release`: a release statement (sourcemesh.release/v1, ../../release.ts) of a manifest or
// a mirror list, as a signed note. The admission policy judges it by the project it names.

import { parseReleaseStatement, RELEASE_FORMAT } from '../../release.ts';
import { checkSignedNote } from './signed-note.ts';
import { type EntryType, startsWithAscii } from './types.ts';

const PREFIX = `${RELEASE_FORMAT}\n`;

export const releaseEntry: EntryType = {
  name: 'release',
  claims: (entry) => startsWithAscii(entry, PREFIX),
  check(entry, keys, limits) {
    const note = checkSignedNote(entry, keys, limits);
    const r = parseReleaseStatement(note.text);
    return {
      type: 'release',
      subject: { kind: 'release', project: r.name },
      signers: note.signers,
      named: note.named,
      describe: `release of ${r.kind} ${r.name} ${r.version}`,
    };
  },
};
