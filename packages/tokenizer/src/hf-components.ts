/**
 * Hugging Face tokenizer.json components: normalizers, pre-tokenizers, decoders, post-processors.
 * Each is built from its JSON object; malformed fields throw TOKENIZER_INVALID naming the field.
 */
import { BYTE_TO_UNICODE, UNICODE_TO_BYTE, utf8Binary } from "./bytes.js";
import { invalidTokenizer } from "./errors.js";
import { GPT2_PATTERN, knownScanner, scannerFor, translateRegex } from "./pretokenize.js";

type Json = Record<string, unknown>;

function obj(v: unknown, field: string): Json {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw invalidTokenizer(field, "an object", v);
  return v as Json;
}
function str(v: unknown, field: string): string {
  if (typeof v !== "string") throw invalidTokenizer(field, "a string", v);
  return v;
}
function arr(v: unknown, field: string): unknown[] {
  if (!Array.isArray(v)) throw invalidTokenizer(field, "an array", v);
  return v;
}
const bool = (v: unknown, dflt: boolean) => (typeof v === "boolean" ? v : dflt);

// ---------- normalizers ----------

/** `charwise`: the normalizer maps each code point independently (offsets can be aligned exactly). */
export type Normalizer = ((s: string) => string) & { charwise?: boolean };

const charwise = (f: (s: string) => string): Normalizer => Object.assign(f, { charwise: true });

const RE_MN = /\p{Mn}/gu;
// sentencepiece's control characters (dropped) and odd spaces (mapped to " "), built from code points
const cpClass = (items: (number | [number, number])[]) =>
  `[${items.map((x) => (Array.isArray(x) ? `${cp(x[0])}-${cp(x[1])}` : cp(x))).join("")}]`;
const cp = (x: number) => `\\u{${x.toString(16)}}`;
const RE_PRECOMPILED_DROP = new RegExp(cpClass([[1, 8], 0xb, [0xe, 0x1f], 0x7f, 0x8f, 0x9f]), "gu");
const RE_PRECOMPILED_SPACE = new RegExp(
  cpClass([
    9,
    0xa,
    0xc,
    0xd,
    0xa0,
    0x1680,
    [0x2000, 0x200f],
    0x2028,
    0x2029,
    0x202f,
    0x205f,
    0x2581,
    0x3000,
    0xfeff,
    0xfffd,
  ]),
  "gu",
);
const RE_CONTROL = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}]/u;
const RE_WS = /[\s\p{Zs}]/u;

function isCjk(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/** BERT's normalizer: clean text, pad CJK characters, strip accents, lowercase. */
export function bertNormalize(
  s: string,
  o: { cleanText: boolean; handleChineseChars: boolean; stripAccents: boolean; lowercase: boolean },
): string {
  if (o.cleanText || o.handleChineseChars) {
    let out = "";
    for (const ch of s) {
      const cp = ch.codePointAt(0)!;
      if (o.cleanText) {
        if (cp === 0 || cp === 0xfffd) continue;
        if (ch !== "\t" && ch !== "\n" && ch !== "\r" && RE_CONTROL.test(ch)) continue;
        if (ch === "\t" || ch === "\n" || ch === "\r" || RE_WS.test(ch)) {
          out += " ";
          continue;
        }
      }
      if (o.handleChineseChars && isCjk(cp)) out += ` ${ch} `;
      else out += ch;
    }
    s = out;
  }
  if (o.stripAccents) s = s.normalize("NFD").replace(RE_MN, "");
  if (o.lowercase) s = s.toLowerCase();
  return s;
}

export function buildNormalizer(j: unknown, field = "normalizer"): Normalizer | null {
  if (j === null || j === undefined) return null;
  const o = obj(j, field);
  const type = str(o.type, `${field}.type`);
  switch (type) {
    case "BertNormalizer": {
      const lowercase = bool(o.lowercase, true);
      const opts = {
        cleanText: bool(o.clean_text, true),
        handleChineseChars: bool(o.handle_chinese_chars, true),
        stripAccents: typeof o.strip_accents === "boolean" ? o.strip_accents : lowercase,
        lowercase,
      };
      return charwise((s) => bertNormalize(s, opts));
    }
    case "Precompiled":
      // sentencepiece's compiled nmt_nfkc charsmap, approximated like transformers.js / tokenizers.js:
      // drop control characters, map odd spaces to " ", then NFKC (keeping U+FF5E "～" as is)
      return (s) => {
        s = s.replace(RE_PRECOMPILED_DROP, "");
        s = s.replace(RE_PRECOMPILED_SPACE, " ");
        return s.includes("\uFF5E")
          ? s
              .split("\uFF5E")
              .map((p) => p.normalize("NFKC"))
              .join("\uFF5E")
          : s.normalize("NFKC");
      };
    case "Lowercase":
      return charwise((s) => s.toLowerCase());
    case "StripAccents":
      return charwise((s) => s.replace(RE_MN, ""));
    case "NFC":
    case "NFD":
    case "NFKC":
    case "NFKD":
      return (s) => s.normalize(type);
    case "Strip": {
      const l = bool(o.strip_left, true);
      const r = bool(o.strip_right, true);
      return (s) => (l && r ? s.trim() : l ? s.trimStart() : r ? s.trimEnd() : s);
    }
    case "Prepend": {
      const p = str(o.prepend, `${field}.prepend`);
      return (s) => (s.length ? p + s : s);
    }
    case "Replace": {
      const pat = obj(o.pattern, `${field}.pattern`);
      const content = str(o.content, `${field}.content`);
      if (typeof pat.String === "string") {
        const from = pat.String;
        return (s) => s.split(from).join(content);
      }
      const re = compileRegex(str(pat.Regex, `${field}.pattern.Regex`), `${field}.pattern.Regex`);
      return (s) => s.replace(re, content);
    }
    case "Sequence": {
      const parts = arr(o.normalizers, `${field}.normalizers`).map((n, i) =>
        buildNormalizer(n, `${field}.normalizers[${i}]`),
      );
      const f: Normalizer = (s) => parts.reduce((acc, g) => (g ? g(acc) : acc), s);
      f.charwise = parts.every((g) => !g || g.charwise);
      return f;
    }
    default:
      throw invalidTokenizer(`${field}.type`, "a supported normalizer", type);
  }
}

// ---------- pre-tokenizers ----------

/** A pre-tokenized piece: text and its [start, end) span in the (normalized) input. */
export interface Piece {
  text: string;
  start: number;
  end: number;
}
export type PreTokenizer = (pieces: Piece[]) => Piece[];

const RE_BERT_PUNCT = /[\p{P}!-/:-@[-`{-~]/u;
const RE_WHITESPACE = /\s/u;

function mapPieces(pieces: Piece[], split: (p: Piece) => Piece[]): Piece[] {
  const out: Piece[] = [];
  for (const p of pieces) for (const q of split(p)) out.push(q);
  return out;
}

function sub(p: Piece, a: number, b: number): Piece {
  return { text: p.text.slice(a, b), start: p.start + a, end: p.start + b };
}

/** Splits on whitespace (removed) and punctuation (each its own piece): BERT's basic tokenizer. */
function bertSplit(p: Piece): Piece[] {
  const out: Piece[] = [];
  const s = p.text;
  let start = -1;
  for (let i = 0; i < s.length; ) {
    const cp = s.codePointAt(i)!;
    const w = cp > 0xffff ? 2 : 1;
    const ch = s.slice(i, i + w);
    if (RE_WHITESPACE.test(ch)) {
      if (start >= 0) out.push(sub(p, start, i));
      start = -1;
    } else if (RE_BERT_PUNCT.test(ch)) {
      if (start >= 0) out.push(sub(p, start, i));
      out.push(sub(p, i, i + w));
      start = -1;
    } else if (start < 0) start = i;
    i += w;
  }
  if (start >= 0) out.push(sub(p, start, s.length));
  return out;
}

function regexSplit(p: Piece, re: RegExp, behavior: string, invert: boolean): Piece[] {
  // matches are the delimiters (invert=false) or the kept parts (invert=true)
  const spans: [number, number, boolean][] = []; // [a, b, isMatch]
  let last = 0;
  for (const m of p.text.matchAll(re)) {
    if (m[0].length === 0) continue;
    if (m.index > last) spans.push([last, m.index, false]);
    spans.push([m.index, m.index + m[0].length, true]);
    last = m.index + m[0].length;
  }
  if (last < p.text.length) spans.push([last, p.text.length, false]);
  if (invert) for (const s of spans) s[2] = !s[2];
  const out: Piece[] = [];
  switch (behavior) {
    case "Removed":
      for (const [a, b, d] of spans) if (!d) out.push(sub(p, a, b));
      break;
    case "Isolated":
      for (const [a, b] of spans) out.push(sub(p, a, b));
      break;
    case "MergedWithPrevious": {
      let cur: [number, number] | null = null;
      for (const [a, b, d] of spans) {
        if (d && cur) cur[1] = b;
        else {
          if (cur) out.push(sub(p, cur[0], cur[1]));
          cur = [a, b];
        }
      }
      if (cur) out.push(sub(p, cur[0], cur[1]));
      break;
    }
    case "MergedWithNext": {
      let pend: number | null = null;
      for (const [a, b, d] of spans) {
        if (d) {
          if (pend === null) pend = a;
        } else {
          out.push(sub(p, pend ?? a, b));
          pend = null;
        }
      }
      if (pend !== null) out.push(sub(p, pend, p.text.length));
      break;
    }
    case "Contiguous": {
      let cur: [number, number, boolean] | null = null;
      for (const [a, b, d] of spans) {
        if (cur && cur[2] === d && d) cur[1] = b;
        else {
          if (cur) out.push(sub(p, cur[0], cur[1]));
          cur = [a, b, d];
        }
      }
      if (cur) out.push(sub(p, cur[0], cur[1]));
      break;
    }
    default:
      throw invalidTokenizer(
        "pre_tokenizer.behavior",
        "Removed|Isolated|MergedWithPrevious|MergedWithNext|Contiguous",
        behavior,
      );
  }
  return out;
}

/** Compiles a tokenizer.json (Rust/Oniguruma dialect) regex for JS, naming the field on failure. */
function compileRegex(src: string, field: string): RegExp {
  try {
    return new RegExp(translateRegex(src), "gu");
  } catch {
    throw invalidTokenizer(field, "a regex JavaScript can compile", src);
  }
}

function escapeRe(s: string): string {
  return s.replace(/[\\^$*+?.()|[\]{}]/g, "\\$&");
}

/** Byte-level pre-tokenizer state: pieces are mapped to GPT-2's byte alphabet at the end. */
export interface PreTokenizerInfo {
  fn: PreTokenizer;
  byteLevel: boolean;
}

export function buildPreTokenizer(j: unknown, field = "pre_tokenizer"): PreTokenizerInfo | null {
  if (j === null || j === undefined) return null;
  const o = obj(j, field);
  const type = str(o.type, `${field}.type`);
  switch (type) {
    case "BertPreTokenizer":
      return { fn: (ps) => mapPieces(ps, bertSplit), byteLevel: false };
    case "Whitespace": {
      const re = /\p{L}[\p{L}\p{N}_\p{M}]*|[\p{N}_\p{M}][\p{L}\p{N}_\p{M}]*|[^\p{L}\p{N}_\p{M}\s]+/gu;
      return {
        fn: (ps) =>
          mapPieces(ps, (p) => [...p.text.matchAll(re)].map((m) => sub(p, m.index, m.index + m[0].length))),
        byteLevel: false,
      };
    }
    case "WhitespaceSplit":
      return {
        fn: (ps) =>
          mapPieces(ps, (p) =>
            [...p.text.matchAll(/\S+/gu)].map((m) => sub(p, m.index, m.index + m[0].length)),
          ),
        byteLevel: false,
      };
    case "ByteLevel": {
      const addPrefix = bool(o.add_prefix_space, true);
      const useRegex = bool(o.use_regex, true);
      const scan = scannerFor(GPT2_PATTERN);
      return {
        fn: (ps) =>
          mapPieces(ps, (p) => {
            let q = p;
            if (addPrefix && p.start === 0 && !p.text.startsWith(" "))
              q = { text: ` ${p.text}`, start: p.start, end: p.end };
            if (!useRegex) return [q];
            const out: Piece[] = [];
            const shift = q.text.length - p.text.length;
            for (let i = 0; i < q.text.length; ) {
              const e = scan(q.text, i);
              out.push({
                text: q.text.slice(i, e),
                start: p.start + Math.max(0, i - shift),
                end: p.start + e - shift,
              });
              i = e;
            }
            return out;
          }),
        byteLevel: true,
      };
    }
    case "Split": {
      const pat = obj(o.pattern, `${field}.pattern`);
      const src =
        typeof pat.String === "string" ? escapeRe(pat.String) : str(pat.Regex, `${field}.pattern.Regex`);
      const re = compileRegex(src, `${field}.pattern.Regex`);
      const behavior = str(o.behavior ?? "Isolated", `${field}.behavior`);
      const invert = bool(o.invert, false);
      // the tiktoken patterns run through the exact hand-written scanners
      const fast = !invert && behavior === "Isolated" ? knownScanner(src) : null;
      return {
        fn: (ps) =>
          mapPieces(ps, (p) => {
            if (!fast) return regexSplit(p, re, behavior, invert);
            const out: Piece[] = [];
            for (let i = 0; i < p.text.length; ) {
              const e = fast(p.text, i);
              out.push(sub(p, i, e));
              i = e;
            }
            return out;
          }),
        byteLevel: false,
      };
    }
    case "Metaspace": {
      const rep = str(o.replacement ?? "\u2581", `${field}.replacement`);
      const scheme =
        typeof o.prepend_scheme === "string"
          ? o.prepend_scheme
          : o.add_prefix_space === false
            ? "never"
            : "always";
      const split = bool(o.split, true);
      return {
        fn: (ps) =>
          mapPieces(ps, (p) => {
            let t = p.text.replaceAll(" ", rep);
            let shift = 0;
            if ((scheme === "always" || (scheme === "first" && p.start === 0)) && !t.startsWith(rep)) {
              t = rep + t;
              shift = rep.length;
            }
            const q: Piece = { text: t, start: p.start, end: p.end };
            if (!split) return [q];
            // split before each replacement character (MergedWithNext)
            const out: Piece[] = [];
            let last = 0;
            for (let i = t.indexOf(rep, 1); i >= 0; i = t.indexOf(rep, i + 1)) {
              if (i > last)
                out.push({
                  text: t.slice(last, i),
                  start: p.start + Math.max(0, last - shift),
                  end: p.start + i - shift,
                });
              last = i;
            }
            out.push({ text: t.slice(last), start: p.start + Math.max(0, last - shift), end: p.end });
            return out;
          }),
        byteLevel: false,
      };
    }
    case "Digits": {
      const individual = bool(o.individual_digits, false);
      const re = individual ? /\p{N}/gu : /\p{N}+/gu;
      return { fn: (ps) => mapPieces(ps, (p) => regexSplit(p, re, "Isolated", false)), byteLevel: false };
    }
    case "Punctuation": {
      const behavior = str(o.behavior ?? "Isolated", `${field}.behavior`);
      return {
        fn: (ps) => mapPieces(ps, (p) => regexSplit(p, /[\p{P}!-/:-@[-`{-~]/gu, behavior, false)),
        byteLevel: false,
      };
    }
    case "Sequence": {
      const parts = arr(o.pretokenizers, `${field}.pretokenizers`)
        .map((n, i) => buildPreTokenizer(n, `${field}.pretokenizers[${i}]`))
        .filter((x): x is PreTokenizerInfo => x !== null);
      return {
        fn: (ps) => parts.reduce((acc, f) => f.fn(acc), ps),
        byteLevel: parts.some((p) => p.byteLevel),
      };
    }
    default:
      throw invalidTokenizer(`${field}.type`, "a supported pre-tokenizer", type);
  }
}

/** Text → GPT-2 byte alphabet (what byte-level BPE vocabularies are spelled in). */
export function toByteLevel(s: string): string {
  const b = utf8Binary(s);
  let out = "";
  for (let i = 0; i < b.length; i++) out += BYTE_TO_UNICODE[b.charCodeAt(i)];
  return out;
}

// ---------- decoders ----------

export type Decoder = (tokens: string[]) => string[];

function cleanup(s: string): string {
  return s
    .replaceAll(" .", ".")
    .replaceAll(" ?", "?")
    .replaceAll(" !", "!")
    .replaceAll(" ,", ",")
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

export function byteLevelDecode(tokens: string[]): string {
  const bytes: number[] = [];
  for (const t of tokens) {
    for (const ch of t) {
      const b = UNICODE_TO_BYTE.get(ch);
      if (b !== undefined) bytes.push(b);
      else for (const x of new TextEncoder().encode(ch)) bytes.push(x);
    }
  }
  return new TextDecoder("utf-8", { ignoreBOM: true }).decode(new Uint8Array(bytes));
}

export function buildDecoder(j: unknown, field = "decoder"): Decoder | null {
  if (j === null || j === undefined) return null;
  const o = obj(j, field);
  const type = str(o.type, `${field}.type`);
  switch (type) {
    case "ByteLevel":
      return (toks) => [byteLevelDecode(toks)];
    case "WordPiece": {
      const prefix = str(o.prefix ?? "##", `${field}.prefix`);
      const doCleanup = bool(o.cleanup, true);
      return (toks) =>
        toks.map((t, i) => {
          if (i !== 0) t = t.startsWith(prefix) ? t.slice(prefix.length) : ` ${t}`;
          return doCleanup ? cleanup(t) : t;
        });
    }
    case "ByteFallback":
      return (toks) => {
        const out: string[] = [];
        let bytes: number[] = [];
        const flush = () => {
          if (!bytes.length) return;
          try {
            out.push(
              new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(new Uint8Array(bytes)),
            );
          } catch {
            out.push("\ufffd".repeat(bytes.length));
          }
          bytes = [];
        };
        for (const t of toks) {
          const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(t);
          if (m) bytes.push(Number.parseInt(m[1], 16));
          else {
            flush();
            out.push(t);
          }
        }
        flush();
        return out;
      };
    case "Metaspace": {
      const rep = str(o.replacement ?? "\u2581", `${field}.replacement`);
      const strip = o.prepend_scheme !== "never" && o.add_prefix_space !== false;
      return (toks) =>
        toks.map((t, i) => {
          const r = t.replaceAll(rep, " ");
          return i === 0 && strip && r.startsWith(" ") ? r.slice(1) : r;
        });
    }
    case "Fuse":
      return (toks) => [toks.join("")];
    case "BPEDecoder": {
      const suffix = str(o.suffix ?? "</w>", `${field}.suffix`);
      return (toks) => toks.map((t, i) => t.replaceAll(suffix, i === toks.length - 1 ? "" : " "));
    }
    case "Strip": {
      const content = str(o.content ?? " ", `${field}.content`);
      const start = Number(o.start ?? 0);
      const stop = Number(o.stop ?? 0);
      return (toks) =>
        toks.map((t) => {
          let a = 0;
          let b = t.length;
          for (let k = 0; k < start && t.startsWith(content, a); k++) a += content.length;
          for (let k = 0; k < stop && t.slice(a, b).endsWith(content); k++) b -= content.length;
          return t.slice(a, b);
        });
    }
    case "Replace": {
      const pat = obj(o.pattern, `${field}.pattern`);
      const content = str(o.content, `${field}.content`);
      const re =
        typeof pat.String === "string"
          ? new RegExp(escapeRe(pat.String), "gu")
          : compileRegex(str(pat.Regex, `${field}.pattern.Regex`), `${field}.pattern.Regex`);
      return (toks) => toks.map((t) => t.replace(re, content));
    }
    case "Sequence": {
      const parts = arr(o.decoders, `${field}.decoders`)
        .map((d, i) => buildDecoder(d, `${field}.decoders[${i}]`))
        .filter((x): x is Decoder => x !== null);
      return (toks) => parts.reduce((acc, f) => f(acc), toks);
    }
    default:
      throw invalidTokenizer(`${field}.type`, "a supported decoder", type);
  }
}

// ---------- post-processors ----------

export interface Encoded {
  ids: number[];
  typeIds: number[];
  offsets: [number, number][];
  special: boolean[];
  /** 0 = first sequence, 1 = pair, -1 = added special token */
  sequence?: number[];
}

export type PostProcessor = (a: Encoded, b: Encoded | null) => Encoded;

type TemplatePiece = { special: string; typeId: number } | { seq: "A" | "B"; typeId: number };

function parseTemplate(v: unknown, field: string): TemplatePiece[] {
  const items = typeof v === "string" ? v.split(/\s+/).filter(Boolean) : arr(v, field);
  return items.map((it, i) => {
    if (typeof it === "string") {
      const [name, t] = it.split(":");
      const typeId = t === undefined ? 0 : Number(t);
      if (name === "$A" || name === "$B" || name === "$")
        return { seq: name === "$B" ? "B" : "A", typeId } as TemplatePiece;
      if (name.startsWith("$"))
        return { seq: name.slice(1) === "B" ? "B" : "A", typeId: Number(name.slice(1)) || 0 };
      return { special: name, typeId };
    }
    const o = obj(it, `${field}[${i}]`);
    if (o.SpecialToken) {
      const s = obj(o.SpecialToken, `${field}[${i}].SpecialToken`);
      return { special: str(s.id, `${field}[${i}].SpecialToken.id`), typeId: Number(s.type_id ?? 0) };
    }
    const s = obj(o.Sequence, `${field}[${i}].Sequence`);
    return { seq: str(s.id, `${field}[${i}].Sequence.id`) as "A" | "B", typeId: Number(s.type_id ?? 0) };
  });
}

export function buildPostProcessor(
  j: unknown,
  tokenId: (t: string) => number | undefined,
  field = "post_processor",
): PostProcessor | null {
  if (j === null || j === undefined) return null;
  const o = obj(j, field);
  const type = str(o.type, `${field}.type`);
  const idOf = (t: string, f: string) => {
    const id = tokenId(t);
    if (id === undefined) throw invalidTokenizer(f, "a token in the vocabulary", t);
    return id;
  };
  const apply = (tpl: TemplatePiece[], specials: Record<string, number[]>, a: Encoded, b: Encoded | null) => {
    const out: Encoded = { ids: [], typeIds: [], offsets: [], special: [], sequence: [] };
    for (const p of tpl) {
      if ("special" in p) {
        for (const id of specials[p.special]) {
          out.ids.push(id);
          out.typeIds.push(p.typeId);
          out.offsets.push([0, 0]);
          out.special.push(true);
          out.sequence!.push(-1);
        }
      } else {
        const e = p.seq === "A" ? a : b;
        if (!e) continue;
        for (let i = 0; i < e.ids.length; i++) {
          out.ids.push(e.ids[i]);
          out.typeIds.push(p.typeId);
          out.offsets.push(e.offsets[i]);
          out.special.push(e.special[i]);
          out.sequence!.push(e.special[i] ? -1 : p.seq === "A" ? 0 : 1);
        }
      }
    }
    return out;
  };
  switch (type) {
    case "TemplateProcessing": {
      const single = parseTemplate(o.single, `${field}.single`);
      const pair = parseTemplate(o.pair ?? o.single, `${field}.pair`);
      const specials: Record<string, number[]> = {};
      const st = obj(o.special_tokens ?? {}, `${field}.special_tokens`);
      for (const [name, v] of Object.entries(st)) {
        const so = obj(v, `${field}.special_tokens.${name}`);
        specials[name] = arr(so.ids, `${field}.special_tokens.${name}.ids`).map(Number);
      }
      for (const p of [...single, ...pair])
        if ("special" in p && !specials[p.special])
          specials[p.special] = [idOf(p.special, `${field}.special_tokens.${p.special}`)];
      return (a, b) => apply(b ? pair : single, specials, a, b);
    }
    case "BertProcessing":
    case "RobertaProcessing": {
      const sep = arr(o.sep, `${field}.sep`);
      const cls = arr(o.cls, `${field}.cls`);
      const specials = { CLS: [Number(cls[1])], SEP: [Number(sep[1])] };
      const single: TemplatePiece[] = [
        { special: "CLS", typeId: 0 },
        { seq: "A", typeId: 0 },
        { special: "SEP", typeId: 0 },
      ];
      const bert = type === "BertProcessing";
      const pair: TemplatePiece[] = [
        ...single,
        ...(bert ? [] : [{ special: "SEP", typeId: 0 } as TemplatePiece]),
        { seq: "B", typeId: bert ? 1 : 0 },
        { special: "SEP", typeId: bert ? 1 : 0 },
      ];
      return (a, b) => apply(b ? pair : single, specials, a, b);
    }
    case "ByteLevel":
      return (a, b) => concat(a, b);
    case "Sequence": {
      const parts = arr(o.processors, `${field}.processors`)
        .map((p, i) => buildPostProcessor(p, tokenId, `${field}.processors[${i}]`))
        .filter((x): x is PostProcessor => x !== null);
      // HF applies each processor in turn; only template-like ones add tokens
      return (a, b) => {
        let cur: [Encoded, Encoded | null] = [a, b];
        let out = concat(a, b);
        for (const p of parts) {
          out = p(cur[0], cur[1]);
          cur = [out, null];
        }
        return out;
      };
    }
    default:
      throw invalidTokenizer(`${field}.type`, "a supported post-processor", type);
  }
}

function concat(a: Encoded, b: Encoded | null): Encoded {
  const seqA = a.sequence ?? a.ids.map((_, i) => (a.special[i] ? -1 : 0));
  if (!b) return { ...a, sequence: seqA };
  return {
    ids: [...a.ids, ...b.ids],
    typeIds: [...a.typeIds, ...b.typeIds.map(() => 1)],
    offsets: [...a.offsets, ...b.offsets],
    special: [...a.special, ...b.special],
    sequence: [...seqA, ...b.ids.map((_, i) => (b.special[i] ? -1 : 1))],
  };
}
