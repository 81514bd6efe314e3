/**
 * Byte helpers. Byte strings are "binary strings": one UTF-16 code unit (0–255) per byte, which V8
 * stores as compact one-byte strings and hashes quickly — the keys of the rank maps.
 */

/** UTF-8 encodes `s` into a binary string (lone surrogates become U+FFFD like TextEncoder). */
export function utf8Binary(s: string): string {
  const n = s.length;
  let ascii = true;
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) >= 128) {
      ascii = false;
      break;
    }
  }
  if (ascii) return s;
  let out = "";
  for (let i = 0; i < n; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) out += String.fromCharCode(c);
    else if (c < 0x800) out += String.fromCharCode(0xc0 | (c >> 6), 0x80 | (c & 63));
    else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = i + 1 < n ? s.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
          c = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
          i++;
          out += String.fromCharCode(
            0xf0 | (c >> 18),
            0x80 | ((c >> 12) & 63),
            0x80 | ((c >> 6) & 63),
            0x80 | (c & 63),
          );
          continue;
        }
        c = 0xfffd;
      }
      out += String.fromCharCode(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
  }
  return out;
}

export function binaryToBytes(b: string): Uint8Array {
  const out = new Uint8Array(b.length);
  for (let i = 0; i < b.length; i++) out[i] = b.charCodeAt(i);
  return out;
}

export function bytesToBinary(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 4096) s += String.fromCharCode(...b.subarray(i, i + 4096));
  return s;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_INV = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_INV[B64.charCodeAt(i)] = i;
B64_INV["-".charCodeAt(0)] = 62;
B64_INV["_".charCodeAt(0)] = 63;

/** Decodes base64 (standard or URL alphabet, optional padding) to a binary string; null if invalid. */
export function base64ToBinary(s: string): string | null {
  if (typeof atob === "function") {
    try {
      return atob(s);
    } catch {
      // URL-safe alphabet or invalid: the strict decoder below decides
    }
  }
  return base64ToBinarySlow(s);
}

function base64ToBinarySlow(s: string): string | null {
  let n = s.length;
  while (n > 0 && s.charCodeAt(n - 1) === 61) n--;
  if (n % 4 === 1) return null;
  let out = "";
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? B64_INV[c] : -1;
    if (v < 0) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += String.fromCharCode((acc >> bits) & 255);
    }
  }
  return out;
}

export function binaryToBase64(b: string): string {
  let out = "";
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const v = (b.charCodeAt(i) << 16) | (b.charCodeAt(i + 1) << 8) | b.charCodeAt(i + 2);
    out += B64[v >> 18] + B64[(v >> 12) & 63] + B64[(v >> 6) & 63] + B64[v & 63];
  }
  if (i < b.length) {
    const v = (b.charCodeAt(i) << 16) | (i + 1 < b.length ? b.charCodeAt(i + 1) << 8 : 0);
    out += B64[v >> 18] + B64[(v >> 12) & 63];
    out += i + 1 < b.length ? `${B64[(v >> 6) & 63]}=` : "==";
  }
  return out;
}

const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
export function decodeUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/**
 * GPT-2's reversible byte ↔ printable-unicode map (used by Hugging Face byte-level BPE vocabularies):
 * printable Latin-1 bytes map to themselves, the rest to U+0100 upwards.
 */
export const BYTE_TO_UNICODE: string[] = (() => {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const out = new Array<string>(256);
  for (let i = 0; i < bs.length; i++) out[bs[i]] = String.fromCharCode(cs[i]);
  return out;
})();

export const UNICODE_TO_BYTE: Map<string, number> = new Map(BYTE_TO_UNICODE.map((c, b) => [c, b]));

/** Binary string → GPT-2 byte-level unicode string. */
export function binaryToByteLevel(b: string): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += BYTE_TO_UNICODE[b.charCodeAt(i)];
  return s;
}

/** GPT-2 byte-level unicode string → binary string; null if a character is not in the map. */
export function byteLevelToBinary(s: string): string | null {
  let out = "";
  for (const ch of s) {
    const b = UNICODE_TO_BYTE.get(ch);
    if (b === undefined) return null;
    out += String.fromCharCode(b);
  }
  return out;
}
