// `mirrors publish LIST --key KEYFILE --dht` and `mirrors get dht:HEXKEY?salt=NAME`: the signed pointer to
// the newest mirror list in the BitTorrent DHT (src/discovery/pointer.ts), and the DHT flags that
// `fetch --mirror-list dht:...` shares.
import path from 'node:path';
import type { Command } from 'commander';
import { SourcemeshError } from '../errors.ts';
import { DhtNode, parseDhtAddressList, PUBLIC_BOOTSTRAP, stateHasNodes } from '../discovery/dht.ts';
import { formatPointerAddress, pointerTo, pointerValue, resolveMirrorList, parsePointerAddress, type ResolvedList } from '../discovery/pointer.ts';
import { createAgent } from '../fetch/http.ts';
import { readBoundedFile } from '../fs/bounded-read.ts';
import { LIMITS, type Limits } from '../limits.ts';
import { defaultStoreRoot } from '../store/store.ts';
import { readSignerKeyFile } from '../trust/key-file.ts';
import { addDhtOptions, collectList, type DhtFlags } from './dht-options.ts';
import { printJson, type Io } from './output.ts';


/** Join the DHT as the flags say; the state file defaults to STATE_DIR/dht.json. */
export async function startDht(o: DhtFlags, stateDir: string, limits: Limits = LIMITS): Promise<DhtNode> {
  const bootstrap = o.dhtBootstrap.flatMap((s) => parseDhtAddressList(s));
  const stateFile = path.resolve(o.dhtState ?? path.join(stateDir, 'dht.json'));
  const fallback = bootstrap.length === 0 && !(await stateHasNodes(stateFile, limits)) ? [...PUBLIC_BOOTSTRAP] : [];
  return DhtNode.start({ bootstrap: [...bootstrap, ...fallback], stateFile, limits });
}

/** Resolve `dht:HEXKEY?salt=NAME` to a checked mirror list (rollbacks refused through STATE_DIR). */
export async function resolveDhtList(address: string, o: DhtFlags, stateDir: string, limits: Limits): Promise<ResolvedList> {
  const a = parsePointerAddress(address);
  const dht = await startDht(o, stateDir, limits);
  const dispatcher = createAgent(limits);
  try {
    return await resolveMirrorList(a, { dht, stateDir, dispatcher, limits });
  } finally {
    await dht.close();
    await dispatcher.close();
  }
}

interface PublishFlags extends DhtFlags {
  key: string;
  dht?: boolean;
  url: string[];
  torrent?: string;
  name?: string;
  seq?: string;
  store?: string;
  json?: boolean;
}

export function addPointerCommands(cmd: Command, io: Io): void {
  addDhtOptions(cmd.command('publish <list>')
    .description('put a signed pointer to the mirror list LIST in the BitTorrent DHT (BEP 44, salt = the list\'s name, seq increasing)')
    .requiredOption('--key <file>', 'the publisher\'s Ed25519 signer key; clients name the list by its public key')
    .option('--dht', 'publish in the DHT (the only place there is today)')
    .option('--url <url>', 'where clients get LIST (repeatable; its release bundle beside it at URL.release)', collectList, [])
    .option('--torrent <file>', 'a torrent of LIST (one file, LIST\'s bytes, checked): its info-hash goes in the pointer as btih, for clients that get the list from peers')
    .option('--name <name>', 'the list\'s name, the BEP 44 salt (default LIST\'s file name without .json)')
    .option('--seq <n>', 'the sequence number (default: the current one plus one, at least the time in seconds)')
    .option('--store <dir>', 'the state directory for the DHT routing table (default $SOURCEMESH_STORE or $XDG_CACHE_HOME/sourcemesh)')
    .option('--json', 'JSON output'))
    .action(async (list: string, o: PublishFlags) => {
      if (!o.dht) throw new SourcemeshError('E_USAGE', 'mirrors publish needs --dht (the DHT is where the pointer goes)');
      if (o.url.length === 0) throw new SourcemeshError('E_USAGE', 'mirrors publish needs at least one --url where clients get the list');
      for (const u of o.url) if (!/^https?:\/\/\S+$/.test(u)) throw new SourcemeshError('E_USAGE', `--url ${u}: not an http(s) URL`);
      const name = o.name ?? path.basename(list).replace(/\.json$/, '');
      if (Buffer.byteLength(name) > LIMITS.dhtSaltBytes) throw new SourcemeshError('E_USAGE', `--name ${name}: over BEP 44's ${LIMITS.dhtSaltBytes} bytes`);
      const explicitSeq = o.seq === undefined ? undefined : Number(o.seq);
      if (explicitSeq !== undefined && (!Number.isSafeInteger(explicitSeq) || explicitSeq < 0)) throw new SourcemeshError('E_USAGE', `--seq ${o.seq}: not a whole number`);
      const key = await readSignerKeyFile(o.key, 'publisher key (--key)');
      const text = await readBoundedFile(list, LIMITS.manifestBytes, 'mirror list', 'E_INPUT');
      const btih = o.torrent === undefined ? undefined : await (await import('../discovery/list-torrent.ts')).listTorrentHash(o.torrent, list, LIMITS);
      const pointer = { ...pointerTo(text, o.url, list), ...(btih !== undefined ? { btih } : {}) };
      const stateDir = o.store ?? defaultStoreRoot(io.env);
      const dht = await startDht(o, stateDir);
      try {
        const salt = Buffer.from(name);
        const current = await dht.getMutable(key.publicKey, salt);
        const seq = explicitSeq ?? Math.max((current?.seq ?? -1) + 1, Math.floor(Date.now() / 1000));
        const put = await dht.putMutable({ seed: key.seed, publicKey: key.publicKey, value: pointerValue(pointer), seq, salt, ...(current ? { cas: current.seq } : {}) });
        const address = formatPointerAddress({ publicKey: Buffer.from(key.publicKey), salt: name });
        if (o.json) printJson(io, { address, seq, target: put.target, nodes: put.nodes, pointer });
        else io.stdout.write(`${address}\n`);
        io.stderr.write(`published seq ${seq} (sha256 ${pointer.sha256}${btih ? `, btih ${btih}` : ''}) to ${put.nodes} DHT nodes; clients: fetch --mirror-list ${address}\n`);
      } finally {
        await dht.close();
      }
    });

  addDhtOptions(cmd.command('get <address>')
    .description('look up a mirror-list pointer in the DHT (dht:HEXKEY?salt=NAME), get the list and check it against the pointer')
    .option('--store <dir>', 'the state directory: DHT routing table and the highest seq seen (default $SOURCEMESH_STORE or $XDG_CACHE_HOME/sourcemesh)')
    .option('--json', 'JSON output'))
    .action(async (address: string, o: DhtFlags & { store?: string; json?: boolean }) => {
      const r = await resolveDhtList(address, o, o.store ?? defaultStoreRoot(io.env), LIMITS);
      if (o.json) printJson(io, { address: r.address, seq: r.seq, pointer: r.pointer, url: r.url, mirrors: r.mirrors });
      else {
        io.stdout.write(r.text.endsWith('\n') ? r.text : `${r.text}\n`);
        io.stderr.write(`seq ${r.seq}, sha256 ${r.pointer.sha256}, from ${r.url}\n`);
      }
    });
}
