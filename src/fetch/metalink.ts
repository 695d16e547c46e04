// Metalink v4 (RFC 5854) for a manifest and its mirrors, so that aria2 and other Metalink clients can
// use the same mirror network, with whole-file and per-piece SHA-256 to check what they get.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Distfile } from '../manifest/distfile.ts';
import { mirrorSource, type Mirror } from './plan.ts';

export interface MetalinkFile {
  distfile: Distfile;
  size: number;
  /** SHA-256 of each `pieceLength` bytes, in order (RFC 5854 §4.2.10). */
  pieces: string[];
  pieceLength: number;
}

export const METALINK_PIECE = 1 << 20;

/** Piece hashes of a local copy, streamed. */
export async function pieceHashes(file: string, pieceLength = METALINK_PIECE): Promise<{ size: number; pieces: string[] }> {
  const pieces: string[] = [];
  let hash = createHash('sha256');
  let inPiece = 0;
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: pieceLength })) {
    let buf = chunk as Buffer;
    size += buf.length;
    while (buf.length) {
      const take = Math.min(buf.length, pieceLength - inPiece);
      hash.update(buf.subarray(0, take));
      inPiece += take;
      buf = buf.subarray(take);
      if (inPiece === pieceLength) {
        pieces.push(hash.digest('hex'));
        hash = createHash('sha256');
        inPiece = 0;
      }
    }
  }
  if (inPiece > 0) pieces.push(hash.digest('hex'));
  return { size, pieces };
}

const escape = (s: string) => s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);

/** The document: mirrors first (priority 1, in the order given), then upstream URLs (priority 2). */
export function formatMetalink(files: MetalinkFile[], mirrors: Mirror[], generator: string): string {
  const out = ['<?xml version="1.0" encoding="UTF-8"?>', '<metalink xmlns="urn:ietf:params:xml:ns:metalink">', `  <generator>${escape(generator)}</generator>`];
  for (const f of files) {
    const d = f.distfile;
    out.push(`  <file name="${escape(d.name)}">`, `    <size>${f.size}</size>`, `    <hash type="sha-256">${d.sha256}</hash>`);
    out.push(`    <pieces length="${f.pieceLength}" type="sha-256">`, ...f.pieces.map((h) => `      <hash>${h}</hash>`), '    </pieces>');
    for (const m of mirrors) {
      const s = mirrorSource(m, d);
      if (s.location.type === 'http') out.push(`    <url priority="1">${escape(s.location.url)}</url>`);
    }
    for (const url of d.urls) out.push(`    <url priority="2">${escape(url)}</url>`);
    out.push('  </file>');
  }
  out.push('</metalink>', '');
  return out.join('\n');
}
