// Strict standard base64 (RFC 4648 §4), the encoding every C2SP trust format uses for keys, signatures
// and hashes. Node's decoder is lenient (it skips foreign characters and accepts the URL alphabet), so
// attacker-controlled text goes through here: one spelling per byte string, anything else is refused.

const ALPHABET = /^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Decode canonical padded base64, or return undefined. Canonical: padding present, unused bits zero. */
export function decodeBase64(text: string): Buffer | undefined {
  if (text.length % 4 !== 0 || !ALPHABET.test(text)) return undefined;
  // Non-zero bits in the last character's unused low bits (4 before "==", 2 before "=") decode to the
  // same bytes as the canonical spelling (RFC 4648 §3.5): refused.
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  if (pad > 0 && (DIGITS.indexOf(text[text.length - pad - 1]!) & (pad === 2 ? 0x0f : 0x03)) !== 0) return undefined;
  return Buffer.from(text, 'base64');
}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}
