export * from './distfile.ts';
export { canonicalJson } from './canonical.ts';
export { validateManifest, parseManifestJson } from './validate.ts';
export { importStepsDir, importSourcesFile, parseSources, parseStepsManifest, snapshotPrefix } from './live-bootstrap.ts';
export { loadManifest } from './load.ts';
export { canonicalDigest, formatManifest, manifestDigest } from './write.ts';
