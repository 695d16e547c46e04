// Strict standard base64 (RFC 4648 §4), the encoding every C2SP trust format uses for keys, signatures
// and hashes. Node's decoder is lenient (it skips foreign characters and accepts the URL alphabet), so
// attacker-controlled text goes through here: one spelling per byte string, anything else is refused.

const ALPHABET = /^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decode canonical padded base64, or return undefined. Canonical: padding present, unused bits zero. */
export function decodeBase64(text: string): Buffer | undefined {
  if (text.length % 4 !== 0 || !ALPHABET.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  // Non-zero bits in the last character's unused low bits decode to the same bytes as the canonical
  // spelling; re-encoding tells the two apart.
  if (bytes.toString('base64') !== text) return undefined;
  return bytes;
}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}
