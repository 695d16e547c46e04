// A forged attestation for the stress harness's `bogus-attest` fault: a git snapshot claim with bytes
// other than the ones the builder derived, signed with that builder's own node key (a builder that lies,
// not a bad signature), written as a Sigstore bundle by the real code (src/attest/). A builders' quorum
// must keep the pinned bytes and name this builder as a liar (docs/FORMATS.md, "Builders' quorum").
//
//   node test/stress/forge-attestation.ts SRC_DIR KEYFILE OUT_DIR CLAIM_JSON
// CLAIM_JSON: the claim without `builder` (it is the key's); prints the bundle's path.
import { pathToFileURL } from 'node:url';

const [src, keyFile, outDir, claimJson] = process.argv.slice(2);
if (src === undefined || keyFile === undefined || outDir === undefined || claimJson === undefined) {
  process.stderr.write('usage: forge-attestation.ts SRC_DIR KEYFILE OUT_DIR CLAIM_JSON\n');
  process.exit(2);
}
const load = async <T>(p: string) => (await import(pathToFileURL(`${src}/${p}`).href)) as T;
const { readSignerKeyFile } = await load<typeof import('../../src/trust/key-file.ts')>('trust/key-file.ts');
const { signAttestation } = await load<typeof import('../../src/attest/bundle.ts')>('attest/bundle.ts');
const { writeBundles } = await load<typeof import('../../src/attest/files.ts')>('attest/files.ts');
const { formatVerifierKey } = await load<typeof import('../../src/trust/note.ts')>('trust/note.ts');
const key = await readSignerKeyFile(keyFile, 'node key');
const builder = formatVerifierKey(key);
const claim = { ...(JSON.parse(claimJson) as object), builder } as Parameters<typeof signAttestation>[0];
const files = await writeBundles(outDir, [{ name: claim.name, builder, bundle: signAttestation(claim, key, { version: 'stress-forgery', finishedOn: new Date() }) }]);
process.stdout.write(`${files.join('\n')}\n`);
