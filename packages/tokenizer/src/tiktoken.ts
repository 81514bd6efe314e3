import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { BaseTokenizer } from "./base.js";
import { bytePairEncode } from "./bpe-merge.js";
import { base64ToBinary, binaryToByteLevel, byteLevelToBinary, decodeUtf8, utf8Binary } from "./bytes.js";
import { invalidTokenizer, show, TypeformerError } from "./errors.js";
import { type PieceScanner, scannerFor } from "./pretokenize.js";
import type { DecodeOptions, EncodeOptions } from "./types.js";

/** The encodings whose ranks ship with the `js-tiktoken` package. */
export const ENCODING_NAMES = ["gpt2", "r50k_base", "p50k_base", "cl100k_base", "o200k_base"] as const;
export type EncodingName = (typeof ENCODING_NAMES)[number];

/** A tiktoken encoding: pre-tokenisation pattern, mergeable ranks and special tokens. */
export interface TiktokenRanks {
  name?: string;
  patStr: string;
  /** binary string (one char per byte) → rank (= token id) */
  ranks: Map<string, number>;
  specialTokens: Record<string, number>;
  explicitNVocab?: number;
}

function checkSpecialTokens(v: unknown, field: string): Record<string, number> {
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw invalidTokenizer(field, "an object of token → id", v);
  for (const [k, id] of Object.entries(v)) {
    if (!Number.isInteger(id) || (id as number) < 0)
      throw invalidTokenizer(`${field}.${k}`, "a non-negative integer id", id);
  }
  return v as Record<string, number>;
}

/** Parses js-tiktoken's rank modules (`{pat_str, special_tokens, bpe_ranks}`) with field-level errors. */
export function parseJsTiktokenRanks(data: unknown, name?: string): TiktokenRanks {
  if (typeof data !== "object" || data === null) throw invalidTokenizer("(root)", "an object", data);
  const d = data as Record<string, unknown>;
  if (typeof d.pat_str !== "string") throw invalidTokenizer("pat_str", "a regex string", d.pat_str);
  try {
    new RegExp(d.pat_str, "u");
  } catch {
    throw invalidTokenizer("pat_str", "a valid JS regex", d.pat_str);
  }
  const specialTokens = checkSpecialTokens(d.special_tokens ?? {}, "special_tokens");
  if (typeof d.bpe_ranks !== "string") throw invalidTokenizer("bpe_ranks", "a string", d.bpe_ranks);
  const ranks = new Map<string, number>();
  const lines = d.bpe_ranks.split("\n");
  for (let li = 0; li < lines.length; li++) {
    const line = lines[li];
    if (!line) continue;
    const parts = line.split(" ");
    const offset = Number(parts[1]);
    if (parts.length < 2 || !Number.isInteger(offset) || offset < 0)
      throw invalidTokenizer(`bpe_ranks[line ${li + 1}]`, "'<prefix> <offset> <base64>...'", line);
    for (let k = 2; k < parts.length; k++) {
      const b = base64ToBinary(parts[k]);
      if (b === null || b.length === 0)
        throw invalidTokenizer(`bpe_ranks[line ${li + 1}][${k - 2}]`, "base64 bytes", parts[k]);
      ranks.set(b, offset + k - 2);
    }
  }
  if (ranks.size === 0) throw invalidTokenizer("bpe_ranks", "a non-empty rank list", d.bpe_ranks);
  const n = d.explicit_n_vocab;
  if (n !== undefined && !Number.isInteger(n)) throw invalidTokenizer("explicit_n_vocab", "an integer", n);
  return { name, patStr: d.pat_str, ranks, specialTokens, explicitNVocab: n as number | undefined };
}

/** Parses a `.tiktoken` file (`<base64 token> <rank>` per line). */
export function parseTiktokenFile(text: string): Map<string, number> {
  const ranks = new Map<string, number>();
  const lines = text.split("\n");
  for (let li = 0; li < lines.length; li++) {
    const line = lines[li].trim();
    if (!line) continue;
    const sp = line.indexOf(" ");
    const tok = sp < 0 ? null : base64ToBinary(line.slice(0, sp));
    const rank = sp < 0 ? Number.NaN : Number(line.slice(sp + 1));
    if (tok === null || tok.length === 0 || !Number.isInteger(rank) || rank < 0)
      throw invalidTokenizer(`line ${li + 1}`, "'<base64 token> <rank>'", line);
    ranks.set(tok, rank);
  }
  if (ranks.size === 0) throw invalidTokenizer("(file)", "a non-empty rank list", text.slice(0, 40));
  return ranks;
}

const require_ = createRequire(import.meta.url);

/** Loads the ranks of a named encoding from the installed `js-tiktoken` package (no network). */
export function loadEncodingRanks(name: string): TiktokenRanks {
  if (!(ENCODING_NAMES as readonly string[]).includes(name)) {
    throw new TypeformerError(
      "UNKNOWN_ENCODING",
      `unknown encoding ${show(name)}; known encodings: ${ENCODING_NAMES.join(", ")}`,
      { name, known: [...ENCODING_NAMES] },
    );
  }
  let mod: unknown;
  try {
    mod = require_(`js-tiktoken/ranks/${name}`);
  } catch (e) {
    throw new TypeformerError(
      "NOT_FOUND",
      `the ranks of ${name} ship in the 'js-tiktoken' package, which could not be loaded`,
      { name },
      { cause: e },
    );
  }
  const data = (mod as { default?: unknown }).default ?? mod;
  return parseJsTiktokenRanks(data, name);
}

/**
 * Loads ranks from a user's file: either js-tiktoken's JSON (`{pat_str, special_tokens, bpe_ranks}`)
 * or a `.tiktoken` file (then `patStr`, default GPT-2's... pass the one the ranks were trained with).
 */
export async function loadTiktokenFile(
  path: string,
  opts: { patStr?: string; specialTokens?: Record<string, number>; name?: string } = {},
): Promise<TiktokenRanks> {
  const text = await readFile(path, "utf8");
  if (text.trimStart().startsWith("{")) {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new TypeformerError("TOKENIZER_INVALID", `${path} is not valid JSON`, { path }, { cause: e });
    }
    return parseJsTiktokenRanks(data, opts.name);
  }
  if (!opts.patStr)
    throw new TypeformerError("INVALID_ARGUMENT", "a .tiktoken rank file needs opts.patStr", { path });
  return {
    name: opts.name,
    patStr: opts.patStr,
    ranks: parseTiktokenFile(text),
    specialTokens: checkSpecialTokens(opts.specialTokens ?? {}, "specialTokens"),
  };
}

const CACHE_SLOTS = 1 << 18;
const CACHE_PIECE_MAX = 64;

function escapeRegex(s: string): string {
  return s.replace(/[\\^$*+?.()|[\]{}]/g, "\\$&");
}

/**
 * Byte-level BPE with tiktoken semantics: pieces from the encoding's pattern, each merged by rank.
 * Ids are identical to tiktoken / js-tiktoken.
 */
export class TiktokenTokenizer extends BaseTokenizer {
  readonly name: string;
  readonly patStr: string;
  readonly vocabSize: number;
  readonly specialTokens: Record<string, number>;
  private readonly ranks: Map<string, number>;
  private readonly scan: PieceScanner;
  private readonly offsets: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly specialIds: Set<number>;
  private readonly specialNames: string[];
  private specialRegex?: RegExp;
  private byteLevelVocab?: Map<string, number>;

  constructor(data: TiktokenRanks, extraSpecialTokens: Record<string, number> = {}) {
    super();
    this.name = data.name ?? "custom";
    this.patStr = data.patStr;
    this.ranks = data.ranks;
    this.specialTokens = { ...data.specialTokens, ...extraSpecialTokens };
    this.specialNames = Object.keys(this.specialTokens);
    this.specialIds = new Set(Object.values(this.specialTokens));
    this.scan = scannerFor(data.patStr);
    let maxId = -1;
    let total = 0;
    for (const [b, r] of this.ranks) {
      if (r > maxId) maxId = r;
      total += b.length;
    }
    for (const [s, id] of Object.entries(this.specialTokens)) {
      if (id > maxId) maxId = id;
      total += utf8Binary(s).length;
    }
    this.vocabSize = data.explicitNVocab ?? maxId + 1;
    const offsets = new Int32Array(maxId + 2);
    const lens = new Int32Array(maxId + 1);
    const strs: string[] = new Array(maxId + 1);
    for (const [b, r] of this.ranks) {
      strs[r] = b;
      lens[r] = b.length;
    }
    for (const [s, id] of Object.entries(this.specialTokens)) {
      const b = utf8Binary(s);
      strs[id] = b;
      lens[id] = b.length;
    }
    for (let i = 0; i <= maxId; i++) offsets[i + 1] = offsets[i] + lens[i];
    const bytes = new Uint8Array(total);
    for (let i = 0; i <= maxId; i++) {
      const b = strs[i];
      if (b === undefined) continue;
      const o = offsets[i];
      for (let k = 0; k < b.length; k++) bytes[o + k] = b.charCodeAt(k);
    }
    this.offsets = offsets;
    this.bytes = bytes;
    this.eosTokenId = this.specialTokens["<|endoftext|>"];
  }

  /** Encodes text, treating special-token strings as plain text. */
  encodeOrdinary(text: string): number[] {
    const out: number[] = [];
    this.encodeInto(text, 0, text.length, out);
    return out;
  }

  /**
   * Piece cache: an open-addressing hash table keyed by the piece's UTF-16 code units, probed
   * straight from the text (no substring is allocated on a hit). Cleared when half full.
   */
  private cKeys: (string | undefined)[] = new Array(CACHE_SLOTS);
  private cHash = new Int32Array(CACHE_SLOTS);
  private cVal = new Int32Array(CACHE_SLOTS);
  private cMulti: number[][] = [];
  private cCount = 0;

  private encodeInto(text: string, start: number, end: number, out: number[]): void {
    const s = start === 0 && end === text.length ? text : text.slice(start, end);
    const n = s.length;
    const scan = this.scan;
    const mask = CACHE_SLOTS - 1;
    let keys = this.cKeys;
    const hashes = this.cHash;
    const vals = this.cVal;
    let i = 0;
    while (i < n) {
      const e = scan(s, i);
      if (e < 0) {
        i = -e - 1;
        continue;
      }
      const len = e - i;
      if (len <= CACHE_PIECE_MAX) {
        let h = 0x811c9dc5 | 0;
        for (let k = i; k < e; k++) h = Math.imul(h ^ s.charCodeAt(k), 16777619);
        let slot = h & mask;
        let v = 0;
        for (;;) {
          const key = keys[slot];
          if (key === undefined) {
            const piece = s.slice(i, e);
            const r = this.encodePiece(piece);
            if (this.cCount >= CACHE_SLOTS >> 1) {
              keys = this.cKeys = new Array(CACHE_SLOTS);
              this.cMulti = [];
              this.cCount = 0;
              slot = h & mask;
            }
            keys[slot] = piece;
            hashes[slot] = h;
            if (typeof r === "number") v = r;
            else {
              this.cMulti.push(r);
              v = -this.cMulti.length;
            }
            vals[slot] = v;
            this.cCount++;
            break;
          }
          if (hashes[slot] === h && key.length === len) {
            let k = 0;
            while (k < len && key.charCodeAt(k) === s.charCodeAt(i + k)) k++;
            if (k === len) {
              v = vals[slot];
              break;
            }
          }
          slot = (slot + 1) & mask;
        }
        if (v >= 0) out.push(v);
        else {
          const m = this.cMulti[-v - 1];
          for (let k = 0; k < m.length; k++) out.push(m[k]);
        }
      } else {
        const b = utf8Binary(s.slice(i, e));
        const r = this.ranks.get(b);
        if (r !== undefined) out.push(r);
        else bytePairEncode(b, this.ranks, out);
      }
      i = e;
    }
  }

  private encodePiece(piece: string): number | number[] {
    const b = utf8Binary(piece);
    const r = this.ranks.get(b);
    if (r !== undefined) return r;
    const out: number[] = [];
    bytePairEncode(b, this.ranks, out);
    return out.length === 1 ? out[0] : out;
  }

  private resolveSpecial(opts: EncodeOptions | undefined): Set<string> {
    const allowedOpt = opts?.allowedSpecial;
    const allowed = allowedOpt === "all" ? new Set(this.specialNames) : (allowedOpt ?? new Set<string>());
    return allowed;
  }

  /**
   * tiktoken's `encode`: special tokens in `allowedSpecial` become their ids; any special token in
   * `disallowedSpecial` (default: all not allowed) found in the text throws DISALLOWED_SPECIAL_TOKEN.
   */
  encode(text: string, opts?: EncodeOptions): number[] {
    if (typeof text !== "string")
      throw new TypeformerError("INVALID_ARGUMENT", `text must be a string; received ${show(text)}`, {
        value: text,
      });
    const out: number[] = [];
    if (this.specialNames.length === 0) {
      this.encodeInto(text, 0, text.length, out);
      return out;
    }
    const allowed = this.resolveSpecial(opts);
    const disOpt = opts?.disallowedSpecial ?? "all";
    const disallowed = disOpt === "all" ? this.specialNames.filter((s) => !allowed.has(s)) : [...disOpt];
    for (const s of disallowed) {
      if (s && text.includes(s)) {
        throw new TypeformerError(
          "DISALLOWED_SPECIAL_TOKEN",
          `the text contains the special token ${show(s)}, which is not allowed; pass allowedSpecial: new Set([${show(s)}]) or "all" to encode it as a special token, or disallowedSpecial: new Set() to encode it as text`,
          { token: s },
        );
      }
    }
    if (allowed.size === 0) {
      this.encodeInto(text, 0, text.length, out);
      return out;
    }
    this.specialRegex ??= new RegExp(this.specialNames.map(escapeRegex).join("|"), "g");
    const re = this.specialRegex;
    let start = 0;
    for (;;) {
      let m: RegExpExecArray | null = null;
      let from = start;
      for (;;) {
        re.lastIndex = from;
        m = re.exec(text);
        if (m === null || allowed.has(m[0])) break;
        from = m.index + 1;
      }
      const end = m ? m.index : text.length;
      if (end > start) this.encodeInto(text, start, end, out);
      if (!m) break;
      out.push(this.specialTokens[m[0]]);
      start = m.index + m[0].length;
    }
    return out;
  }

  override countTokens(text: string, opts?: EncodeOptions): number {
    return this.encode(text, opts).length;
  }

  /** The raw bytes of a sequence of ids (unknown ids are skipped). */
  decodeBytes(ids: ArrayLike<number>, opts?: DecodeOptions): Uint8Array {
    const offsets = this.offsets;
    const bytes = this.bytes;
    const max = offsets.length - 1;
    const skip = opts?.skipSpecialTokens ?? false;
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id >= 0 && id < max && !(skip && this.specialIds.has(id))) total += offsets[id + 1] - offsets[id];
    }
    const out = new Uint8Array(total);
    let o = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!(id >= 0 && id < max) || (skip && this.specialIds.has(id))) continue;
      const a = offsets[id];
      const b = offsets[id + 1];
      if (b - a === 1) out[o++] = bytes[a];
      else {
        out.set(bytes.subarray(a, b), o);
        o += b - a;
      }
    }
    return out;
  }

  decode(ids: ArrayLike<number>, opts?: DecodeOptions): string {
    return decodeUtf8(this.decodeBytes(ids, opts));
  }

  protected idBytes(id: number, skipSpecial: boolean): Uint8Array | null {
    if (!(id >= 0 && id < this.offsets.length - 1)) return null;
    if (skipSpecial && this.specialIds.has(id)) return null;
    return this.bytes.subarray(this.offsets[id], this.offsets[id + 1]);
  }

  /** Raw bytes of one token as a binary string (one char per byte). */
  tokenBinary(id: number): string | undefined {
    if (!(id >= 0 && id < this.offsets.length - 1)) return undefined;
    const a = this.offsets[id];
    const b = this.offsets[id + 1];
    if (a === b) return undefined;
    let s = "";
    for (let k = a; k < b; k++) s += String.fromCharCode(this.bytes[k]);
    return s;
  }

  /** Hugging Face byte-level spelling of a token (`Ġhello`), or the special token's text. */
  idToToken(id: number): string | undefined {
    const b = this.tokenBinary(id);
    if (b === undefined) return undefined;
    if (this.specialIds.has(id)) return decodeUtf8(this.decodeBytes([id]));
    return binaryToByteLevel(b);
  }

  tokenToId(token: string): number | undefined {
    const sp = this.specialTokens[token];
    if (sp !== undefined && Object.hasOwn(this.specialTokens, token)) return sp;
    const b = byteLevelToBinary(token);
    return b === null ? undefined : this.ranks.get(b);
  }

  /** The mergeable ranks (binary string → rank); do not mutate. */
  get mergeableRanks(): ReadonlyMap<string, number> {
    return this.ranks;
  }

  /** The byte-level vocabulary (HF spelling → id), built on first use. */
  byteLevelVocabulary(): Map<string, number> {
    if (!this.byteLevelVocab) {
      const v = new Map<string, number>();
      const sorted = [...this.ranks].sort((a, b) => a[1] - b[1]);
      for (const [b, r] of sorted) v.set(binaryToByteLevel(b), r);
      this.byteLevelVocab = v;
    }
    return this.byteLevelVocab;
  }

  /**
   * Merges in rank order for the Hugging Face BPE model: for each multi-byte token, the two parts
   * tiktoken's merge reaches when only lower ranks are allowed.
   */
  merges(): [string, string][] {
    const out: [string, string][] = [];
    const sorted = [...this.ranks].sort((a, b) => a[1] - b[1]);
    const parts: number[] = [];
    for (const [b, r] of sorted) {
      if (b.length < 2) continue;
      parts.length = 0;
      bytePairEncode(b, this.ranks, parts, r);
      if (parts.length !== 2) continue;
      out.push([
        binaryToByteLevel(this.tokenBinary(parts[0])!),
        binaryToByteLevel(this.tokenBinary(parts[1])!),
      ]);
    }
    return out;
  }

  /** Hugging Face tokenizer.json (BPE model, Split + ByteLevel pre-tokenizer, ByteLevel decoder). */
  toJSON(): object {
    const added = Object.entries(this.specialTokens)
      .sort((a, b) => a[1] - b[1])
      .map(([content, id]) => ({
        id,
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      }));
    return {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: {
        type: "Sequence",
        pretokenizers: [
          { type: "Split", pattern: { Regex: this.patStr }, behavior: "Isolated", invert: false },
          { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
        ],
      },
      post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: true,
        vocab: Object.fromEntries(this.byteLevelVocabulary()),
        merges: this.merges().map(([a, b]) => [a, b]),
      },
    };
  }
}

const encodings = new Map<string, TiktokenTokenizer>();

/**
 * A tiktoken encoding by name ("gpt2", "r50k_base", "p50k_base", "cl100k_base", "o200k_base"), with
 * ranks read from the installed `js-tiktoken` package. Instances are cached.
 */
export function getEncoding(name: EncodingName | string): TiktokenTokenizer {
  let t = encodings.get(name);
  if (!t) {
    t = new TiktokenTokenizer(loadEncodingRanks(name));
    encodings.set(name, t);
  }
  return t;
}

/** Reads a rank file synchronously (js-tiktoken JSON format). */
export function tiktokenFromFileSync(path: string, name?: string): TiktokenTokenizer {
  const text = readFileSync(path, "utf8");
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new TypeformerError("TOKENIZER_INVALID", `${path} is not valid JSON`, { path }, { cause: e });
  }
  return new TiktokenTokenizer(parseJsTiktokenRanks(data, name));
}
