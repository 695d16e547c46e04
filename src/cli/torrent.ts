// sourcemesh torrent create MANIFEST -o DIR (--root DIR | --local [STORE]) [--web-seed URL]... [--tracker URL]...
//   [--v1|--v2|--hybrid] [--multi-file] [--piece-length SIZE] [--manifest-out FILE] [--json]
// sourcemesh torrent check TORRENT --manifest MANIFEST [--json]
import { Command } from 'commander';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ERROR_CODES, EXIT, SourcemeshError, fromSystemError } from '../errors.ts';
import { readBoundedBytes } from '../fs/bounded-read.ts';
import { writeFileDurable, writeOutputFile } from '../fs/durable-file.ts';
import { createAgent } from '../fetch/http.ts';
import { loadMirrorList } from '../fetch/mirror-list.ts';
import { LIMITS } from '../limits.ts';
import { formatManifest, loadManifest } from '../manifest/index.ts';
import { defaultStoreRoot } from '../store/store.ts';
import { matchTorrent } from '../torrent/check.ts';
import { createTorrents, type ByteSource } from '../torrent/create.ts';
import { readTorrent, type TorrentVersion } from '../torrent/metainfo.ts';
import { printJson, type Io } from './output.ts';
import { parseSize } from './units.ts';

interface CreateFlags {
  output: string;
  root?: string;
  local?: string | true;
  webSeed: string[];
  mirrorList: string[];
  tracker: string[];
  v1?: boolean;
  v2?: boolean;
  hybrid?: boolean;
  multiFile?: boolean;
  pieceLength?: string;
  manifestOut?: string;
  json?: boolean;
}

const collect = (v: string, all: string[]) => [...all, v];

export function torrentCommand(io: Io, setExit: (n: number) => void): Command {
  const cmd = new Command('torrent').description('BitTorrent v1/v2 torrents of a manifest\'s verified distfiles, with mirrors as web seeds');
  cmd.command('create')
    .description('write a deterministic .torrent per distfile (or one for the manifest) from verified bytes; print magnet links')
    .argument('<manifest>', 'a sourcemesh manifest, live-bootstrap sources file or steps/ directory')
    .requiredOption('-o, --output <dir>', 'directory to write NAME.torrent files into')
    .option('--root <dir>', 'take the bytes from a mirror root or distfiles directory (files by name)')
    .option('--local [store]', 'take the bytes from the store (default $SOURCEMESH_STORE or $XDG_CACHE_HOME/sourcemesh)')
    .option('--web-seed <url>', 'a mirror base URL serving BASE/NAME, as a BEP 19 web seed (repeatable)', collect, [])
    .option('--mirror-list <file|url>', 'a sourcemesh.mirrors/v1 list: each http(s) mirror becomes a web seed (repeatable)', collect, [])
    .option('--tracker <url>', 'a tracker announce URL (repeatable; BEP 12 tiers in this order)', collect, [])
    .option('--v1', 'BitTorrent v1 only (for clients without v2, such as Transmission 3)')
    .option('--v2', 'BitTorrent v2 only (BEP 52)')
    .option('--hybrid', 'v1 and v2 in one torrent (the default)')
    .option('--multi-file', 'one torrent for the whole manifest, named as the manifest')
    .option('--piece-length <size>', 'piece length, a power of two from 16KiB (default: at most 1,024 pieces, up to 1MiB)')
    .option('--manifest-out <file>', 'write the manifest again with every merkleRoot filled in')
    .option('--json', 'print the torrents, info-hashes and magnet links as JSON')
    .action(async (input: string, o: CreateFlags) => {
      if ((o.root === undefined) === (o.local === undefined)) throw new SourcemeshError('E_USAGE', 'torrent create needs exactly one of --root DIR and --local [STORE]');
      const kinds = [o.v1, o.v2, o.hybrid].filter(Boolean).length;
      if (kinds > 1) throw new SourcemeshError('E_USAGE', '--v1, --v2 and --hybrid exclude each other');
      const version: TorrentVersion = o.v1 ? 'v1' : o.v2 ? 'v2' : 'hybrid';
      const pieceLength = o.pieceLength !== undefined ? parseSize('--piece-length', o.pieceLength) : undefined;
      const listed: string[] = [];
      if (o.mirrorList.length) {
        const agent = createAgent(LIMITS);
        try {
          for (const list of o.mirrorList) for (const m of await loadMirrorList(list, agent, LIMITS)) if (m.kind === 'http') listed.push(m.base);
        } finally {
          await agent.close();
        }
      }
      const webSeeds = [...new Set([...o.webSeed, ...listed].map((u) => checkUrl('--web-seed', u, ['http:', 'https:'])).map((u) => (o.multiFile || u.endsWith('/') ? u : `${u}/`)))];
      const trackers = o.tracker.map((u) => checkUrl('--tracker', u, ['http:', 'https:', 'udp:']));
      const manifest = await loadManifest(input);
      const source: ByteSource = o.root !== undefined
        ? { kind: 'root', root: path.resolve(o.root) }
        : { kind: 'store', store: path.resolve(o.local === true ? defaultStoreRoot(io.env) : o.local!) };

      const result = await createTorrents(manifest, source, { version, multiFile: Boolean(o.multiFile), webSeeds, trackers, pieceLength });
      const outDir = path.resolve(o.output);
      await mkdir(outDir, { recursive: true }).catch((err: unknown) => { throw fromSystemError(err, `cannot make ${outDir}`); });
      const written: string[] = [];
      for (const t of result.torrents) {
        const file = path.join(outDir, t.fileName);
        await writeFileDurable(file, t.bytes, 'cannot write the torrent');
        written.push(file);
      }
      if (o.manifestOut !== undefined && result.filled.size > 0) {
        const updated = { ...manifest, distfiles: manifest.distfiles.map((d) => (result.filled.has(d.name) ? { ...d, merkleRoot: result.filled.get(d.name)! } : d)) };
        await writeOutputFile(o.manifestOut, formatManifest(updated), { what: 'cannot write the manifest' });
      }

      if (o.json) {
        printJson(io, {
          version, torrents: result.torrents.map((t, i) => ({
            name: t.name, file: written[i], infoHashV1: t.infoHashV1, infoHashV2: t.infoHashV2, magnet: t.magnet, pieceLength: t.pieceLength, files: t.files,
          })),
          filledMerkleRoots: Object.fromEntries(result.filled), failed: result.failed,
        });
      } else {
        for (const [i, t] of result.torrents.entries()) io.stdout.write(`${written[i]}\n  ${t.magnet}\n`);
        for (const f of result.failed) io.stderr.write(`sourcemesh: error: ${f.message} [${f.code}]\n`);
        io.stdout.write(`${result.torrents.length} torrent(s) written, ${result.failed.length} distfile(s) failed${result.filled.size ? `, ${result.filled.size} merkleRoot(s) filled${o.manifestOut ? ` in ${o.manifestOut}` : ''}` : ''}\n`);
      }
      // The most severe failure decides, as for fetch: verification (3) over operational (1) and input (2).
      const worst = result.failed.map((f) => ERROR_CODES[f.code as keyof typeof ERROR_CODES] ?? EXIT.operational);
      setExit(worst.includes(EXIT.verification) ? EXIT.verification : worst.includes(EXIT.operational) ? EXIT.operational : worst.length ? EXIT.input : EXIT.ok);
    });

  cmd.command('check')
    .description('read a torrent and check every file against the manifest: size and BEP 52 pieces root')
    .argument('<torrent>', 'a .torrent file (ours or any client\'s)')
    .requiredOption('-m, --manifest <manifest>', 'the manifest the torrent must agree with')
    .option('--json', 'print the torrent\'s identity and the matched distfiles as JSON')
    .action(async (file: string, o: { manifest: string; json?: boolean }) => {
      const manifest = await loadManifest(o.manifest);
      const bytes = await readBoundedBytes(file, LIMITS.torrentBytes, `torrent ${file}`, 'E_FORMAT');
      const t = readTorrent(bytes, `torrent ${file}`);
      const matched = matchTorrent(t, manifest, `torrent ${file}`);
      const info = {
        torrent: file, name: t.name, version: t.version, pieceLength: t.pieceLength, infoHashV1: t.infoHashV1?.toString('hex'), infoHashV2: t.infoHashV2?.toString('hex'),
        webSeeds: t.webSeeds, trackers: t.trackers, files: matched.map((m) => ({ name: m.name, size: m.size, checked: m.checked })),
      };
      if (o.json) printJson(io, info);
      else {
        for (const m of matched) io.stdout.write(`ok  ${m.name}  ${m.size} bytes  (${m.checked.join(', ') || 'nothing pinned but sha256'})\n`);
        io.stdout.write(`${t.version} torrent ${t.name} agrees with ${manifest.name}${t.infoHashV1 ? `; v1 ${t.infoHashV1.toString('hex')}` : ''}${t.infoHashV2 ? `; v2 ${t.infoHashV2.toString('hex')}` : ''}\n`);
      }
    });
  return cmd;
}

function checkUrl(flag: string, value: string, schemes: string[]): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch (err) {
    throw new SourcemeshError('E_USAGE', `${flag} ${value}: not a URL`, {}, { cause: err });
  }
  if (!schemes.includes(u.protocol)) throw new SourcemeshError('E_USAGE', `${flag} ${value}: expected ${schemes.map((s) => s.slice(0, -1)).join(', ')}`);
  if (Buffer.byteLength(value) > LIMITS.urlBytes) throw new SourcemeshError('E_USAGE', `${flag}: a URL longer than ${LIMITS.urlBytes} bytes`);
  return value;
}
