/**
 * Pre-tokenisation: splitting text into the pieces BPE runs on.
 *
 * tiktoken's patterns are regexes; running them through the JS regex engine costs a match object
 * and a substring per piece. The scanners here are hand-written equivalents of the JS translations
 * of those patterns (the ones js-tiktoken ships), driven by a code-point class table. They produce
 * exactly the spans `text.matchAll(new RegExp(pattern, "gu"))` produces (fuzz-tested against the
 * regex in `pretokenize.test.ts`). Unknown patterns fall back to the regex itself.
 */

/** Code-point classes. Letters are U, W and B (`\p{L}`); M is `\p{M}`; S is JS `\s`. */
export const C_O = 0; // other
export const C_U = 1; // Lu, Lt
export const C_W = 2; // Ll
export const C_B = 3; // Lm, Lo
export const C_M = 4; // marks
export const C_N = 5; // \p{N}
export const C_S = 6; // \s

const RE_UPPER = /[\p{Lu}\p{Lt}]/u;
const RE_LOWER = /\p{Ll}/u;
const RE_LETTER = /\p{L}/u;
const RE_MARK = /\p{M}/u;
const RE_NUM = /\p{N}/u;
const RE_SPACE = /\s/u;

function classify(ch: string): number {
  if (RE_SPACE.test(ch)) return C_S;
  if (RE_LETTER.test(ch)) return RE_UPPER.test(ch) ? C_U : RE_LOWER.test(ch) ? C_W : C_B;
  if (RE_NUM.test(ch)) return C_N;
  if (RE_MARK.test(ch)) return C_M;
  return C_O;
}

let BMP: Uint8Array | undefined;
const ASTRAL = new Map<number, number>();
/** Marks a BMP code unit whose class is computed on first sight. */
const UNKNOWN = 255;

/**
 * The class table of the BMP: ASCII filled up front, everything else classified lazily on first
 * sight (no 65k-entry scan at start-up). Surrogate code units are C_O (a lone surrogate matches no
 * property; pairs are classified as astral code points).
 */
export function bmpClasses(): Uint8Array {
  if (BMP) return BMP;
  const t = new Uint8Array(65536).fill(UNKNOWN);
  for (let c = 0; c < 128; c++) t[c] = classify(String.fromCharCode(c));
  for (let c = 0xd800; c <= 0xdfff; c++) t[c] = C_O;
  BMP = t;
  return t;
}

/** Class of an astral code point (cached). */
export function astralClass(cp: number): number {
  let v = ASTRAL.get(cp);
  if (v === undefined) {
    v = classify(String.fromCodePoint(cp));
    ASTRAL.set(cp, v);
  }
  return v;
}

/**
 * A scanner returns the end (exclusive, UTF-16 index) of the piece starting at `i` (< text.length).
 * Every position starts a match for these patterns, so pieces tile the text.
 */
export type PieceScanner = (text: string, i: number) => number;

// Module-level scratch: width (1 or 2 code units) of the code point last classified by `cls`.
let W = 1;
function cls(s: string, k: number, t: Uint8Array): number {
  const c = s.charCodeAt(k);
  if ((c & 0xfc00) === 0xd800 && k + 1 < s.length) {
    const d = s.charCodeAt(k + 1);
    if ((d & 0xfc00) === 0xdc00) {
      W = 2;
      return astralClass(((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000);
    }
  }
  W = 1;
  const v = t[c];
  if (v !== UNKNOWN) return v;
  const cl = classify(String.fromCharCode(c));
  t[c] = cl;
  return cl;
}

const isLetter = (k: number) => k >= C_U && k <= C_B;

/** Apostrophe contractions of the GPT-2 pattern (case-sensitive): returns length or 0. */
function contractionLower(s: string, i: number): number {
  const a = s.charCodeAt(i + 1);
  if (a === 115 || a === 116 || a === 109 || a === 100) return 2; // s t m d
  const b = s.charCodeAt(i + 2);
  if ((a === 114 && b === 101) || (a === 118 && b === 101) || (a === 108 && b === 108)) return 3; // re ve ll
  return 0;
}

/** Case-insensitive ASCII contractions ('s 'S 're 'rE ...): returns length or 0. */
function contractionAnyCase(s: string, i: number): number {
  const a = s.charCodeAt(i + 1) | 0x20;
  if (a === 115 || a === 116 || a === 109 || a === 100) return 2;
  const b = s.charCodeAt(i + 2) | 0x20;
  if ((a === 114 && b === 101) || (a === 118 && b === 101) || (a === 108 && b === 108)) return 3;
  return 0;
}

/** Whitespace tail shared by the patterns: `\s*[\r\n]+` (optional) then `\s+(?!\S)` then `\s+`. */
function whitespace(s: string, i: number, t: Uint8Array, newlines: boolean): number {
  const n = s.length;
  let j = i;
  let lastNl = -1;
  let prev = i;
  while (j < n) {
    const c = s.charCodeAt(j);
    if (c < 128) {
      if (t[c] !== C_S) break;
      if (c === 10 || c === 13) lastNl = j;
      prev = j;
      j++;
    } else {
      if (cls(s, j, t) !== C_S) break;
      prev = j;
      j += W;
    }
  }
  if (newlines && lastNl >= 0) return lastNl + 1;
  if (j >= n) return j;
  // \s+(?!\S): give back the last whitespace code point (all \s are BMP, width 1)
  if (prev > i) return prev;
  return j;
}

/** `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` (gpt2, r50k, p50k). */
export function makeGpt2Scanner(): PieceScanner {
  const t = bmpClasses();
  return (s, i) => {
    const n = s.length;
    let c = s.charCodeAt(i);
    if (c === 39) {
      const k = contractionLower(s, i);
      if (k) return i + k;
    }
    let k = cls(s, i, t);
    let p = i;
    if (c === 32 && i + 1 < n) {
      const k1 = cls(s, i + 1, t);
      if (k1 !== C_S) {
        k = k1;
        p = i + 1;
      }
    }
    if (k === C_S) return whitespace(s, i, t, false);
    let j = p + W;
    if (isLetter(k)) {
      while (j < n) {
        c = s.charCodeAt(j);
        if (c < 128) {
          const q = t[c];
          if (q < C_U || q > C_B) break;
          j++;
        } else {
          if (!isLetter(cls(s, j, t))) break;
          j += W;
        }
      }
      return j;
    }
    if (k === C_N) {
      while (j < n && cls(s, j, t) === C_N) j += W;
      return j;
    }
    // other: [^\s\p{L}\p{N}]+ (marks count as other)
    while (j < n) {
      const q = cls(s, j, t);
      if (q !== C_O && q !== C_M) break;
      j += W;
    }
    return j;
  };
}

/**
 * cl100k_base: `('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)|
 * [^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
 */
export function makeCl100kScanner(): PieceScanner {
  const t = bmpClasses();
  return (s, i) => {
    const n = s.length;
    const c0 = s.charCodeAt(i);
    if (c0 === 39) {
      const k = contractionAnyCase(s, i);
      if (k) return i + k;
    }
    const k0 = cls(s, i, t);
    const w0 = W;
    let j: number;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (isLetter(k0)) j = i + w0;
    else if (k0 !== C_N && c0 !== 10 && c0 !== 13 && i + w0 < n && isLetter(cls(s, i + w0, t)))
      j = i + w0 + W;
    else j = -1;
    if (j >= 0) {
      while (j < n) {
        const c = s.charCodeAt(j);
        if (c < 128) {
          const q = t[c];
          if (q < C_U || q > C_B) break;
          j++;
        } else {
          if (!isLetter(cls(s, j, t))) break;
          j += W;
        }
      }
      return j;
    }
    if (k0 === C_N) {
      j = i + w0;
      for (let r = 1; r < 3 && j < n && cls(s, j, t) === C_N; r++) j += W;
      return j;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    let p = -1;
    if (k0 === C_O || k0 === C_M) p = i + w0;
    else if (c0 === 32 && i + 1 < n) {
      const k1 = cls(s, i + 1, t);
      if (k1 === C_O || k1 === C_M) p = i + 1 + W;
    }
    if (p >= 0) {
      while (p < n) {
        const q = cls(s, p, t);
        if (q !== C_O && q !== C_M) break;
        p += W;
      }
      while (p < n) {
        const c = s.charCodeAt(p);
        if (c !== 10 && c !== 13) break;
        p++;
      }
      return p;
    }
    return whitespace(s, i, t, true);
  };
}

/**
 * o200k_base:
 * `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(contraction)?|
 *  [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(contraction)?|
 *  \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
 */
export function makeO200kScanner(): PieceScanner {
  const t = bmpClasses();
  const inUpper = (k: number) => k === C_U || k === C_B || k === C_M;
  const inLower = (k: number) => k === C_W || k === C_B || k === C_M;
  // End of the uppercase-ish run from q; sets lastBoth to the start of the last B/M code point in it.
  let lastBoth = -1;
  const upperRun = (s: string, q: number): number => {
    lastBoth = -1;
    const n = s.length;
    while (q < n) {
      const k = cls(s, q, t);
      if (!inUpper(k)) break;
      if (k !== C_U) lastBoth = q;
      q += W;
    }
    return q;
  };
  const lowerRun = (s: string, q: number): number => {
    const n = s.length;
    while (q < n) {
      const k = cls(s, q, t);
      if (!inLower(k)) break;
      q += W;
    }
    return q;
  };
  // Alternative 1 from q: U* L+ ; returns end or -1
  const alt1 = (s: string, q: number): number => {
    const u = upperRun(s, q);
    if (u < s.length && cls(s, u, t) === C_W) return lowerRun(s, u);
    if (lastBoth >= 0) {
      cls(s, lastBoth, t);
      return lastBoth + W;
    }
    return -1;
  };
  // Alternative 2 from q: U+ L* ; returns end or -1
  const alt2 = (s: string, q: number): number => {
    const u = upperRun(s, q);
    if (u === q) return -1;
    return lowerRun(s, u);
  };
  const withContraction = (s: string, e: number): number => {
    if (s.charCodeAt(e) === 39) return e + contractionAnyCase(s, e);
    return e;
  };
  return (s, i) => {
    const n = s.length;
    const c0 = s.charCodeAt(i);
    const k0 = cls(s, i, t);
    const w0 = W;
    const prefixOk = !isLetter(k0) && k0 !== C_N && c0 !== 10 && c0 !== 13 && i + w0 < n;
    let e = -1;
    if (prefixOk) e = alt1(s, i + w0);
    if (e < 0) e = alt1(s, i);
    if (e < 0 && prefixOk) e = alt2(s, i + w0);
    if (e < 0) e = alt2(s, i);
    if (e >= 0) return withContraction(s, e);
    if (k0 === C_N) {
      let j = i + w0;
      for (let r = 1; r < 3 && j < n && cls(s, j, t) === C_N; r++) j += W;
      return j;
    }
    let p = -1;
    if (k0 === C_O || k0 === C_M) p = i + w0;
    else if (c0 === 32 && i + 1 < n) {
      const k1 = cls(s, i + 1, t);
      if (k1 === C_O || k1 === C_M) p = i + 1 + W;
    }
    if (p >= 0) {
      while (p < n) {
        const q = cls(s, p, t);
        if (q !== C_O && q !== C_M) break;
        p += W;
      }
      while (p < n) {
        const c = s.charCodeAt(p);
        if (c !== 10 && c !== 13 && c !== 47) break;
        p++;
      }
      return p;
    }
    return whitespace(s, i, t, true);
  };
}

/** A scanner that runs an arbitrary pattern with a sticky regex (used for unknown patterns). */
export function makeRegexScanner(pattern: string): PieceScanner {
  const js = translateRegex(pattern);
  const re = new RegExp(js, "uy");
  const search = new RegExp(js, "ug");
  return (s, i) => {
    re.lastIndex = i;
    const m = re.exec(s);
    if (m && m[0].length > 0) return i + m[0].length;
    // The pattern does not match here: skip to the next match (characters in between are dropped
    // by tiktoken too, so we return a negative marker handled by the caller).
    search.lastIndex = i;
    const m2 = search.exec(s);
    return m2 ? -(m2.index + 1) : -(s.length + 1);
  };
}

export const GPT2_PATTERN =
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
export const CL100K_PATTERN =
  "('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
export const O200K_PATTERN =
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** The hand-written scanner of a known tiktoken pattern, or null. */
export function knownScanner(pattern: string): PieceScanner | null {
  if (pattern === GPT2_PATTERN) return makeGpt2Scanner();
  if (pattern === CL100K_PATTERN || CL100K_EQUIVALENT.includes(pattern)) return makeCl100kScanner();
  if (pattern === O200K_PATTERN || O200K_EQUIVALENT.includes(pattern)) return makeO200kScanner();
  return null;
}

/**
 * Spellings of the cl100k pattern in tiktoken itself and in Hugging Face tokenizer.json files
 * (Llama 3 and other tiktoken-derived vocabularies), all equivalent to CL100K_PATTERN.
 */
const CL100K_EQUIVALENT = [
  "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];
const O200K_EQUIVALENT = [
  [
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "\\p{N}{1,3}",
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*",
    "\\s*[\\r\\n]+",
    "\\s+(?!\\S)",
    "\\s+",
  ].join("|"),
];

/**
 * Translates the Rust/Oniguruma regex dialect of tiktoken and tokenizer.json patterns to JS:
 * possessive quantifiers (`?+ *+ ++ }+`) become greedy ones (equivalent for these patterns) and
 * scoped case-insensitive groups `(?i:…)` spell out both ASCII cases.
 */
export function translateRegex(pattern: string): string {
  let out = "";
  let inClass = false;
  let classStart = -1;
  const ciDepths: number[] = []; // group depths where (?i: started
  let depth = 0;
  const swap = (c: string) =>
    c >= "a" && c <= "z" ? c.toUpperCase() : c >= "A" && c <= "Z" ? c.toLowerCase() : "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    const ci = ciDepths.length > 0;
    if (c === "\\") {
      // an escape; \p{…} \P{…} \x{…} \u{…} run to their closing brace
      let end = i + 2;
      if ("pPxu".includes(pattern[i + 1] ?? "") && pattern[i + 2] === "{") {
        const close = pattern.indexOf("}", i + 3);
        if (close > 0) end = close + 1;
      }
      out += pattern.slice(i, end);
      i = end - 1;
      continue;
    }
    if (inClass) {
      if (c === "]") {
        if (ci) {
          // append the other case of every ASCII letter (and range) in the class
          const body = out.slice(classStart);
          let extra = "";
          for (let k = 0; k < body.length; k++) {
            const ch = body[k];
            if (ch === "\\") {
              k++;
              continue;
            }
            const sw = swap(ch);
            if (!sw) continue;
            if (body[k + 1] === "-" && k + 2 < body.length && swap(body[k + 2])) {
              extra += `${sw}-${swap(body[k + 2])}`;
              k += 2;
              continue;
            }
            extra += sw;
          }
          out += extra;
        }
        inClass = false;
      }
      out += c;
      continue;
    }
    if (c === "[") {
      inClass = true;
      out += c;
      if (pattern[i + 1] === "^") {
        out += "^";
        i++;
      }
      classStart = out.length;
      continue;
    }
    if (c === "(") {
      depth++;
      if (pattern.startsWith("(?i:", i)) {
        ciDepths.push(depth);
        out += "(?:";
        i += 3;
        continue;
      }
      out += c;
      continue;
    }
    if (c === ")") {
      if (ciDepths.at(-1) === depth) ciDepths.pop();
      depth--;
      out += c;
      continue;
    }
    if ((c === "?" || c === "*" || c === "+" || c === "}") && pattern[i + 1] === "+") {
      out += c;
      i++;
      continue;
    }
    if (ci && swap(c)) {
      out += `[${c}${swap(c)}]`;
      continue;
    }
    out += c;
  }
  return out;
}

/** The fastest scanner for a pattern: hand-written for the known tiktoken patterns, else the regex. */
export function scannerFor(pattern: string): PieceScanner {
  return knownScanner(pattern) ?? makeRegexScanner(pattern);
}

/** Splits text into pieces with a scanner (for tests and tools; the encoder inlines this loop). */
export function splitPieces(text: string, scanner: PieceScanner): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const e = scanner(text, i);
    if (e < 0) {
      i = -e - 1;
      continue;
    }
    out.push(text.slice(i, e));
    i = e;
  }
  return out;
}
