/**
 * Hugging Face `tokenizer.json`: BPE (byte-level or not), WordPiece and WordLevel models with their
 * normalizers, pre-tokenizers, post-processors (TemplateProcessing `[CLS] $A [SEP]` …), added tokens
 * and decoders. Loads files written by Hugging Face tooling and writes files it loads.
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { BaseTokenizer } from "./base.js";
import { concatParts, type Parts } from "./batch.js";
import { UNICODE_TO_BYTE } from "./bytes.js";
import { CHAR_SPLIT_PATTERN, CharTokenizer } from "./char.js";
import { invalidTokenizer, show, TypeformerError } from "./errors.js";
import {
  buildDecoder,
  buildNormalizer,
  buildPostProcessor,
  buildPreTokenizer,
  type Decoder,
  type Encoded,
  type Normalizer,
  type Piece,
  type PostProcessor,
  type PreTokenizerInfo,
  toByteLevel,
} from "./hf-components.js";
import type { DecodeOptions, EncodeOptions } from "./types.js";

type Json = Record<string, unknown>;

export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  single_word?: boolean;
}

/** A model turns one pre-tokenized piece into token ids. */
interface Model {
  readonly type: string;
  tokenize(piece: string, out: number[], lens: number[]): void;
  tokenToId(t: string): number | undefined;
  idToToken(id: number): string | undefined;
  readonly size: number;
  toJSON(): Json;
}

function vocabMap(v: unknown, field: string): { map: Map<string, number>; inv: string[] } {
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw invalidTokenizer(field, "an object of token → id", v);
  const map = new Map<string, number>();
  const inv: string[] = [];
  for (const [k, id] of Object.entries(v)) {
    if (!Number.isInteger(id) || (id as number) < 0)
      throw invalidTokenizer(`${field}.${k}`, "a non-negative integer id", id);
    map.set(k, id as number);
    inv[id as number] = k;
  }
  return { map, inv };
}

const TWO32 = 4294967296;

/** Hugging Face's BPE: merges applied by merge rank (lowest first, leftmost on ties). */
export class BpeModel implements Model {
  readonly type = "BPE";
  readonly vocab: Map<string, number>;
  readonly inv: string[];
  readonly merges: [string, string][];
  private readonly pairs = new Map<number, number>(); // (a * 2^21 + b) -> rank * 2^21 + newId... stored as rank, new id separately
  private readonly pairNew = new Map<number, number>();
  private readonly cache = new Map<string, number[]>();
  readonly unkToken: string | null;
  readonly ignoreMerges: boolean;
  readonly prefix: string | null;
  readonly suffix: string | null;
  readonly byteFallback: boolean;
  readonly fuseUnk: boolean;

  constructor(j: Json, field = "model") {
    const { map, inv } = vocabMap(j.vocab, `${field}.vocab`);
    this.vocab = map;
    this.inv = inv;
    const merges = Array.isArray(j.merges) ? j.merges : j.merges === undefined ? [] : null;
    if (!merges) throw invalidTokenizer(`${field}.merges`, "an array", j.merges);
    this.merges = merges.map((m, i) => {
      const pair = typeof m === "string" ? m.split(" ") : m;
      if (
        !Array.isArray(pair) ||
        pair.length !== 2 ||
        typeof pair[0] !== "string" ||
        typeof pair[1] !== "string"
      )
        throw invalidTokenizer(`${field}.merges[${i}]`, "'a b' or [a, b]", m);
      return pair as [string, string];
    });
    this.unkToken = typeof j.unk_token === "string" ? j.unk_token : null;
    this.ignoreMerges = j.ignore_merges === true;
    this.prefix = typeof j.continuing_subword_prefix === "string" ? j.continuing_subword_prefix : null;
    this.suffix = typeof j.end_of_word_suffix === "string" ? j.end_of_word_suffix : null;
    this.byteFallback = j.byte_fallback === true;
    this.fuseUnk = j.fuse_unk === true;
    this.merges.forEach(([a, b], rank) => {
      const ia = map.get(a);
      const ib = map.get(b);
      const merged = a + (this.prefix && b.startsWith(this.prefix) ? b.slice(this.prefix.length) : b);
      const nid = map.get(merged);
      if (ia === undefined)
        throw invalidTokenizer(`${field}.merges[${rank}]`, `tokens in the vocabulary (missing ${show(a)})`, [
          a,
          b,
        ]);
      if (ib === undefined)
        throw invalidTokenizer(`${field}.merges[${rank}]`, `tokens in the vocabulary (missing ${show(b)})`, [
          a,
          b,
        ]);
      if (nid === undefined)
        throw invalidTokenizer(
          `${field}.merges[${rank}]`,
          `a merge whose result ${show(merged)} is in the vocabulary`,
          [a, b],
        );
      const key = ia * 2097152 + ib;
      if (!this.pairs.has(key)) {
        this.pairs.set(key, rank);
        this.pairNew.set(key, nid);
      }
    });
  }

  get size(): number {
    return this.inv.length;
  }

  tokenToId(t: string): number | undefined {
    return this.vocab.get(t);
  }
  idToToken(id: number): string | undefined {
    return this.inv[id];
  }

  tokenize(piece: string, out: number[], lens: number[]): void {
    const cached = this.cache.get(piece);
    if (cached) {
      for (let i = 0; i < cached.length; i += 2) {
        out.push(cached[i]);
        lens.push(cached[i + 1]);
      }
      return;
    }
    const res: number[] = [];
    this.merge(piece, res);
    if (piece.length <= 64) {
      if (this.cache.size > 100_000) this.cache.clear();
      this.cache.set(piece, res);
    }
    for (let i = 0; i < res.length; i += 2) {
      out.push(res[i]);
      lens.push(res[i + 1]);
    }
  }

  /** Appends [id, length-in-piece-chars] pairs. */
  private merge(piece: string, res: number[]): void {
    if (this.ignoreMerges && !this.prefix && !this.suffix) {
      const id = this.vocab.get(piece);
      if (id !== undefined) {
        res.push(id, piece.length);
        return;
      }
    }
    const chars = [...piece];
    const n = chars.length;
    const ids: number[] = [];
    const lens: number[] = [];
    let unkPrev = false;
    for (let i = 0; i < n; i++) {
      let s = chars[i];
      if (i > 0 && this.prefix) s = this.prefix + s;
      if (i === n - 1 && this.suffix) s += this.suffix;
      let id = this.vocab.get(s);
      if (id === undefined && this.byteFallback) {
        const bytes = new TextEncoder().encode(chars[i]);
        const bids = [...bytes].map((b) =>
          this.vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`),
        );
        if (bids.every((x) => x !== undefined)) {
          bids.forEach((b, k) => {
            ids.push(b!);
            lens.push(k === 0 ? chars[i].length : 0);
          });
          unkPrev = false;
          continue;
        }
      }
      if (id === undefined) {
        if (this.unkToken === null) continue; // HF drops unknown symbols without an unk token
        id = this.vocab.get(this.unkToken);
        if (id === undefined)
          throw invalidTokenizer("model.unk_token", "a token in the vocabulary", this.unkToken);
        if (this.fuseUnk && unkPrev) {
          lens[lens.length - 1] += chars[i].length;
          continue;
        }
        unkPrev = true;
        ids.push(id);
        lens.push(chars[i].length);
        continue;
      }
      unkPrev = false;
      ids.push(id);
      lens.push(chars[i].length);
    }
    const m = ids.length;
    if (m < 2) {
      for (let i = 0; i < m; i++) res.push(ids[i], lens[i]);
      return;
    }
    // heap merge over a linked list (ranks of pairs, leftmost on ties)
    const next = new Int32Array(m);
    const prev = new Int32Array(m);
    const ver = new Int32Array(m);
    const alive = new Uint8Array(m).fill(1);
    for (let i = 0; i < m; i++) {
      next[i] = i + 1;
      prev[i] = i - 1;
    }
    const heapK: number[] = [];
    const heapV: number[] = [];
    const push = (k: number, v: number) => {
      let i = heapK.length;
      heapK.push(k);
      heapV.push(v);
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (heapK[p] <= k) break;
        heapK[i] = heapK[p];
        heapV[i] = heapV[p];
        i = p;
      }
      heapK[i] = k;
      heapV[i] = v;
    };
    const pop = () => {
      const k = heapK.pop()!;
      const v = heapV.pop()!;
      const size = heapK.length;
      if (size === 0) return;
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= size) break;
        if (c + 1 < size && heapK[c + 1] < heapK[c]) c++;
        if (heapK[c] >= k) break;
        heapK[i] = heapK[c];
        heapV[i] = heapV[c];
        i = c;
      }
      heapK[i] = k;
      heapV[i] = v;
    };
    const rankAt = (i: number): number => {
      const j = next[i];
      if (j >= m) return -1;
      const r = this.pairs.get(ids[i] * 2097152 + ids[j]);
      return r === undefined ? -1 : r;
    };
    for (let i = 0; i < m - 1; i++) {
      const r = rankAt(i);
      if (r >= 0) push(r * TWO32 + i, 0);
    }
    while (heapK.length > 0) {
      const k = heapK[0];
      const v = heapV[0];
      pop();
      const i = k % TWO32;
      if (!alive[i] || ver[i] !== v) continue;
      const r = (k - i) / TWO32;
      if (rankAt(i) !== r) continue;
      const j = next[i];
      ids[i] = this.pairNew.get(ids[i] * 2097152 + ids[j])!;
      lens[i] += lens[j];
      alive[j] = 0;
      next[i] = next[j];
      if (next[j] < m) prev[next[j]] = i;
      ver[i]++;
      const r1 = rankAt(i);
      if (r1 >= 0) push(r1 * TWO32 + i, ver[i]);
      const p = prev[i];
      if (p >= 0) {
        ver[p]++;
        const r0 = rankAt(p);
        if (r0 >= 0) push(r0 * TWO32 + p, ver[p]);
      }
    }
    for (let i = 0; i < m; i = next[i]) res.push(ids[i], lens[i]);
  }

  toJSON(): Json {
    return {
      type: "BPE",
      dropout: null,
      unk_token: this.unkToken,
      continuing_subword_prefix: this.prefix,
      end_of_word_suffix: this.suffix,
      fuse_unk: this.fuseUnk,
      byte_fallback: this.byteFallback,
      ignore_merges: this.ignoreMerges,
      vocab: Object.fromEntries(this.vocab),
      merges: this.merges.map(([a, b]) => [a, b]),
    };
  }
}

/** BERT's WordPiece: greedy longest-match-first with a continuation prefix. */
export class WordPieceModel implements Model {
  readonly type = "WordPiece";
  readonly vocab: Map<string, number>;
  readonly inv: string[];
  readonly unkToken: string;
  readonly prefix: string;
  readonly maxChars: number;
  private readonly unkId: number;

  constructor(j: Json, field = "model") {
    const { map, inv } = vocabMap(j.vocab, `${field}.vocab`);
    this.vocab = map;
    this.inv = inv;
    this.unkToken = typeof j.unk_token === "string" ? j.unk_token : "[UNK]";
    this.prefix = typeof j.continuing_subword_prefix === "string" ? j.continuing_subword_prefix : "##";
    const mx = j.max_input_chars_per_word ?? 100;
    if (!Number.isInteger(mx) || (mx as number) < 1)
      throw invalidTokenizer(`${field}.max_input_chars_per_word`, "a positive integer", mx);
    this.maxChars = mx as number;
    const u = map.get(this.unkToken);
    if (u === undefined)
      throw invalidTokenizer(`${field}.unk_token`, "a token in the vocabulary", this.unkToken);
    this.unkId = u;
  }

  get size(): number {
    return this.inv.length;
  }
  tokenToId(t: string): number | undefined {
    return this.vocab.get(t);
  }
  idToToken(id: number): string | undefined {
    return this.inv[id];
  }

  tokenize(piece: string, out: number[], lens: number[]): void {
    const chars = [...piece];
    if (chars.length > this.maxChars) {
      out.push(this.unkId);
      lens.push(piece.length);
      return;
    }
    const ids: number[] = [];
    const ls: number[] = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length;
      let found = -1;
      let sub = "";
      while (start < end) {
        sub = chars.slice(start, end).join("");
        const id = this.vocab.get(start > 0 ? this.prefix + sub : sub);
        if (id !== undefined) {
          found = id;
          break;
        }
        end--;
      }
      if (found < 0) {
        out.push(this.unkId);
        lens.push(piece.length);
        return;
      }
      ids.push(found);
      ls.push(sub.length);
      start = end;
    }
    for (let i = 0; i < ids.length; i++) {
      out.push(ids[i]);
      lens.push(ls[i]);
    }
  }

  toJSON(): Json {
    return {
      type: "WordPiece",
      unk_token: this.unkToken,
      continuing_subword_prefix: this.prefix,
      max_input_chars_per_word: this.maxChars,
      vocab: Object.fromEntries(this.vocab),
    };
  }
}

export class WordLevelModel implements Model {
  readonly type = "WordLevel";
  readonly vocab: Map<string, number>;
  readonly inv: string[];
  readonly unkToken: string | null;
  constructor(j: Json, field = "model") {
    const { map, inv } = vocabMap(j.vocab, `${field}.vocab`);
    this.vocab = map;
    this.inv = inv;
    this.unkToken = typeof j.unk_token === "string" ? j.unk_token : null;
  }
  get size(): number {
    return this.inv.length;
  }
  tokenToId(t: string): number | undefined {
    return this.vocab.get(t);
  }
  idToToken(id: number): string | undefined {
    return this.inv[id];
  }
  tokenize(piece: string, out: number[], lens: number[]): void {
    let id = this.vocab.get(piece);
    if (id === undefined && this.unkToken !== null) id = this.vocab.get(this.unkToken);
    if (id === undefined)
      throw new TypeformerError(
        "UNKNOWN_TOKEN",
        `${show(piece)} is not in the vocabulary and there is no unk_token`,
        {
          piece,
        },
      );
    out.push(id);
    lens.push(piece.length);
  }
  toJSON(): Json {
    return { type: "WordLevel", vocab: Object.fromEntries(this.vocab), unk_token: this.unkToken };
  }
}

/** SentencePiece's Unigram model: Viterbi over the piece log-probabilities (T5, ALBERT, XLNet). */
export class UnigramModel implements Model {
  readonly type = "Unigram";
  readonly pieces: [string, number][];
  readonly vocab = new Map<string, number>();
  readonly unkId: number | null;
  readonly byteFallback: boolean;
  private readonly maxLen: number;
  private readonly unkScore: number;

  constructor(j: Json, field = "model") {
    if (!Array.isArray(j.vocab))
      throw invalidTokenizer(`${field}.vocab`, "an array of [piece, score]", j.vocab);
    this.pieces = j.vocab.map((e, i) => {
      if (!Array.isArray(e) || typeof e[0] !== "string" || typeof e[1] !== "number")
        throw invalidTokenizer(`${field}.vocab[${i}]`, "[piece, score]", e);
      return [e[0], e[1]] as [string, number];
    });
    let maxLen = 1;
    let minScore = Number.POSITIVE_INFINITY;
    this.pieces.forEach(([p, sc], i) => {
      if (!this.vocab.has(p)) this.vocab.set(p, i);
      maxLen = Math.max(maxLen, [...p].length);
      minScore = Math.min(minScore, sc);
    });
    this.maxLen = maxLen;
    this.unkScore = minScore - 10;
    const u = j.unk_id;
    if (
      u !== null &&
      u !== undefined &&
      (!Number.isInteger(u) || (u as number) < 0 || (u as number) >= this.pieces.length)
    )
      throw invalidTokenizer(`${field}.unk_id`, "an index into the vocabulary", u);
    this.unkId = (u as number | null | undefined) ?? null;
    this.byteFallback = j.byte_fallback === true;
  }

  get size(): number {
    return this.pieces.length;
  }
  tokenToId(t: string): number | undefined {
    return this.vocab.get(t);
  }
  idToToken(id: number): string | undefined {
    return this.pieces[id]?.[0];
  }

  tokenize(piece: string, out: number[], lens: number[]): void {
    const chars = [...piece];
    const n = chars.length;
    if (n === 0) return;
    // forward Viterbi like sentencepiece/tokenizers: best[e] from starts in order, shorter first, strict >
    const best = new Float64Array(n + 1).fill(Number.NEGATIVE_INFINITY);
    const from = new Int32Array(n + 1).fill(-1);
    const tok = new Int32Array(n + 1).fill(-2);
    best[0] = 0;
    for (let s = 0; s < n; s++) {
      if (best[s] === Number.NEGATIVE_INFINITY) continue;
      let hasSingle = false;
      let sub = "";
      for (let l = 1; l <= this.maxLen && s + l <= n; l++) {
        sub += chars[s + l - 1];
        const id = this.vocab.get(sub);
        if (id === undefined) continue;
        if (l === 1) hasSingle = true;
        const sc = best[s] + this.pieces[id][1];
        if (from[s + l] < 0 || sc > best[s + l]) {
          best[s + l] = sc;
          from[s + l] = s;
          tok[s + l] = id;
        }
      }
      if (!hasSingle) {
        const sc = best[s] + this.unkScore;
        if (from[s + 1] < 0 || sc > best[s + 1]) {
          best[s + 1] = sc;
          from[s + 1] = s;
          tok[s + 1] = -1; // unknown
        }
      }
    }
    const ids: number[] = [];
    const ls: number[] = [];
    for (let e = n; e > 0; e = from[e]) {
      const s = from[e];
      ids.push(tok[e]);
      ls.push(chars.slice(s, e).join("").length);
    }
    ids.reverse();
    ls.reverse();
    // fuse consecutive unknowns, then map them to unk (or bytes with byte_fallback)
    for (let k = 0; k < ids.length; k++) {
      if (ids[k] !== -1) {
        out.push(ids[k]);
        lens.push(ls[k]);
        continue;
      }
      let len = ls[k];
      while (k + 1 < ids.length && ids[k + 1] === -1) len += ls[++k];
      if (this.byteFallback) {
        const start = lens.reduce((a, b) => a + b, 0);
        const bytes = new TextEncoder().encode(piece.slice(start, start + len));
        const bids = [...bytes].map((b) =>
          this.vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`),
        );
        if (bids.every((b) => b !== undefined)) {
          bids.forEach((b, q) => {
            out.push(b!);
            lens.push(q === 0 ? len : 0);
          });
          continue;
        }
      }
      if (this.unkId === null)
        throw new TypeformerError(
          "UNKNOWN_TOKEN",
          `${show(piece)} has characters outside the vocabulary and no unk_id`,
          {
            piece,
          },
        );
      out.push(this.unkId);
      lens.push(len);
    }
  }

  toJSON(): Json {
    return { type: "Unigram", unk_id: this.unkId, vocab: this.pieces, byte_fallback: this.byteFallback };
  }
}

function buildModel(j: unknown): Model {
  if (typeof j !== "object" || j === null) throw invalidTokenizer("model", "an object", j);
  const o = j as Json;
  const type = o.type ?? (o.merges ? "BPE" : undefined);
  switch (type) {
    case "BPE":
      return new BpeModel(o);
    case "WordPiece":
      return new WordPieceModel(o);
    case "WordLevel":
      return new WordLevelModel(o);
    case "Unigram":
      return new UnigramModel(o);
    default:
      throw invalidTokenizer("model.type", "BPE, WordPiece, WordLevel or Unigram", o.type);
  }
}

export interface EncodingWithOffsets {
  ids: number[];
  tokens: string[];
  attentionMask: number[];
  typeIds: number[];
  /** [start, end) UTF-16 spans in the input text (in the normalized text when a normalizer changes lengths); [0, 0] for added special tokens. */
  offsets: [number, number][];
  specialTokensMask: number[];
}

/** A tokenizer described by a Hugging Face tokenizer.json. */
export class HfTokenizer extends BaseTokenizer {
  readonly json: Json;
  readonly model: Model;
  readonly normalizer: Normalizer | null;
  readonly preTokenizer: PreTokenizerInfo | null;
  readonly postProcessor: PostProcessor | null;
  readonly decoder: Decoder | null;
  readonly addedTokens: AddedToken[];
  readonly specialTokens: Record<string, number> = {};
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedByContent = new Map<string, AddedToken>();
  private readonly addedRegex: RegExp | null;
  /** tokenizer_config.json's clean_up_tokenization_spaces (default true, like transformers). */
  cleanupSpaces: boolean;

  constructor(json: Json, config: Json = {}) {
    super();
    if (typeof json !== "object" || json === null || Array.isArray(json))
      throw invalidTokenizer("(root)", "an object", json);
    this.json = json;
    this.model = buildModel(json.model);
    this.normalizer = buildNormalizer(json.normalizer);
    this.preTokenizer = buildPreTokenizer(json.pre_tokenizer);
    this.decoder = buildDecoder(json.decoder);
    const added = json.added_tokens ?? [];
    if (!Array.isArray(added)) throw invalidTokenizer("added_tokens", "an array", added);
    this.addedTokens = added.map((a, i) => {
      if (typeof a !== "object" || a === null) throw invalidTokenizer(`added_tokens[${i}]`, "an object", a);
      const t = a as AddedToken;
      if (!Number.isInteger(t.id)) throw invalidTokenizer(`added_tokens[${i}].id`, "an integer", t.id);
      if (typeof t.content !== "string" || !t.content)
        throw invalidTokenizer(`added_tokens[${i}].content`, "a non-empty string", t.content);
      return { ...t, special: t.special === true };
    });
    for (const t of this.addedTokens) {
      this.addedById.set(t.id, t);
      this.addedByContent.set(t.content, t);
      if (t.special) this.specialTokens[t.content] = t.id;
    }
    const contents = [...this.addedByContent.keys()].sort((a, b) => b.length - a.length);
    this.addedRegex = contents.length
      ? new RegExp(contents.map((c) => c.replace(/[\\^$*+?.()|[\]{}]/g, "\\$&")).join("|"), "gu")
      : null;
    this.postProcessor = buildPostProcessor(json.post_processor, (t) => this.tokenToId(t));
    const tok = (k: string) => {
      const v = config[k];
      const s =
        typeof v === "string" ? v : typeof v === "object" && v !== null ? (v as Json).content : undefined;
      return typeof s === "string" ? this.tokenToId(s) : undefined;
    };
    this.bosTokenId = tok("bos_token");
    this.eosTokenId = tok("eos_token");
    this.padTokenId = tok("pad_token");
    this.unkTokenId = tok("unk_token");
    if (typeof config.chat_template === "string") this.chatTemplate = config.chat_template;
    this.config = { ...config };
    delete this.config.chat_template;
    // transformers / tokenizers.js default: clean up " ." " 's" … after decoding
    this.cleanupSpaces = config.clean_up_tokenization_spaces !== false;
  }

  get vocabSize(): number {
    let n = this.model.size;
    for (const t of this.addedTokens) if (t.id >= n) n = t.id + 1;
    return n;
  }

  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.model.tokenToId(token);
  }
  idToToken(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.model.idToToken(id);
  }

  /** Normalizes, pre-tokenizes and runs the model on a text segment without added tokens. */
  private encodeSegment(text: string, base: number, e: Encoded): void {
    const norm = this.normalizer ? this.normalizer(text) : text;
    // align normalized offsets to the input: exact for code-point-wise normalizers
    let align: Int32Array | null = null;
    let alignEnd: Int32Array | null = null;
    if (this.normalizer?.charwise && norm !== text) {
      const a: number[] = [];
      const b: number[] = [];
      let joined = "";
      for (let i = 0; i < text.length; ) {
        const w = text.codePointAt(i)! > 0xffff ? 2 : 1;
        const out = this.normalizer(text.slice(i, i + w));
        joined += out;
        for (let k = 0; k < out.length; k++) {
          a.push(i);
          b.push(i + w);
        }
        i += w;
      }
      if (joined === norm) {
        a.push(text.length);
        align = Int32Array.from(a);
        alignEnd = Int32Array.from(b);
      }
    }
    let pieces: Piece[] = [{ text: norm, start: 0, end: norm.length }];
    if (this.preTokenizer) pieces = this.preTokenizer.fn(pieces);
    const byteLevel = this.preTokenizer?.byteLevel ?? false;
    const ids: number[] = [];
    const lens: number[] = [];
    for (const p of pieces) {
      if (!p.text) continue;
      const mapped = byteLevel ? toByteLevel(p.text) : p.text;
      ids.length = 0;
      lens.length = 0;
      this.model.tokenize(mapped, ids, lens);
      // offsets: lengths are in model-symbol chars; for byte-level, chars are bytes of the piece
      let pos = 0;
      const toChar = byteLevel ? byteToCharIndex(p.text) : null;
      const prefixShift = p.end - p.start - p.text.length; // negative when a prefix space was added
      for (let k = 0; k < ids.length; k++) {
        const a = pos;
        pos += lens[k];
        let s = toChar ? toChar[a] : a;
        let t = toChar ? toChar[pos] : pos;
        s = Math.max(0, s + prefixShift);
        t = Math.max(0, t + prefixShift);
        let so = p.start + s;
        let to = p.start + t;
        if (align && alignEnd) {
          const start = align[so];
          to = to > so ? alignEnd[to - 1] : start;
          so = start;
        }
        e.ids.push(ids[k]);
        e.typeIds.push(0);
        e.offsets.push([base + so, base + to]);
        e.special.push(false);
      }
    }
  }

  /**
   * Splits on added tokens, then encodes the text between them. With `allowed`, special added
   * tokens outside it are plain text (e.g. to keep user input from injecting control tokens).
   */
  private encodeRaw(text: string, allowed?: "all" | Set<string>): Encoded {
    const e: Encoded = { ids: [], typeIds: [], offsets: [], special: [] };
    if (!this.addedRegex) {
      this.encodeSegment(text, 0, e);
      return e;
    }
    let start = 0;
    for (const m of text.matchAll(this.addedRegex)) {
      const tok = this.addedByContent.get(m[0])!;
      if (tok.special && allowed !== undefined && allowed !== "all" && !allowed.has(tok.content)) continue;
      let a = m.index;
      let b = m.index + m[0].length;
      if (tok.lstrip) while (a > start && /\s/.test(text[a - 1])) a--;
      if (tok.rstrip) while (b < text.length && /\s/.test(text[b])) b++;
      if (a > start) this.encodeSegment(text.slice(start, a), start, e);
      e.ids.push(tok.id);
      e.typeIds.push(0);
      e.offsets.push([m.index, m.index + m[0].length]);
      e.special.push(tok.special);
      start = b;
    }
    if (start < text.length) this.encodeSegment(text.slice(start), start, e);
    return e;
  }

  override encodeParts(text: string, allowedSpecial?: "all" | Set<string>): Parts {
    return this.encodeRaw(text, allowedSpecial);
  }

  override postProcessParts(
    a: Parts,
    b: Parts | null,
    addSpecialTokens: boolean,
  ): Parts & { sequence: number[] } {
    const e = addSpecialTokens && this.postProcessor ? this.postProcessor(a, b) : concatParts(a, b);
    return { ...e, sequence: e.sequence ?? concatParts(a, b).sequence };
  }

  /** Full encoding with type ids, attention mask, offsets; `pair` for sentence pairs. */
  encodeWithOffsets(
    text: string,
    opts: { pair?: string; addSpecialTokens?: boolean; allowedSpecial?: "all" | Set<string> } = {},
  ): EncodingWithOffsets {
    if (typeof text !== "string")
      throw new TypeformerError("INVALID_ARGUMENT", `text must be a string; received ${show(text)}`, {
        value: text,
      });
    const a = this.encodeRaw(text, opts.allowedSpecial);
    let b = opts.pair !== undefined ? this.encodeRaw(opts.pair, opts.allowedSpecial) : null;
    let e: Encoded;
    if ((opts.addSpecialTokens ?? true) && this.postProcessor) e = this.postProcessor(a, b);
    else {
      if (b) b = { ...b, typeIds: b.typeIds.map(() => 1) };
      e = b
        ? {
            ids: [...a.ids, ...b.ids],
            typeIds: [...a.typeIds, ...b.typeIds],
            offsets: [...a.offsets, ...b.offsets],
            special: [...a.special, ...b.special],
          }
        : a;
    }
    return {
      ids: e.ids,
      tokens: e.ids.map((id) => this.idToToken(id) ?? ""),
      attentionMask: e.ids.map(() => 1),
      typeIds: e.typeIds,
      offsets: e.offsets,
      specialTokensMask: e.special.map((s) => (s ? 1 : 0)),
    };
  }

  encode(text: string, opts?: EncodeOptions): number[] {
    return this.encodeWithOffsets(text, {
      addSpecialTokens: opts?.addSpecialTokens,
      allowedSpecial: opts?.allowedSpecial,
    }).ids;
  }

  decode(ids: ArrayLike<number>, opts?: DecodeOptions): string {
    const skip = opts?.skipSpecialTokens ?? false;
    const toks: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (skip && this.addedById.get(id)?.special) continue;
      const t = this.idToToken(id);
      if (t !== undefined) toks.push(t);
    }
    const out = this.decoder ? this.decoder(toks).join("") : toks.join(" ");
    return this.cleanupSpaces ? cleanupText(out) : out;
  }

  protected idBytes(id: number, skipSpecial: boolean): Uint8Array | null {
    const added = this.addedById.get(id);
    if (added) return skipSpecial && added.special ? null : new TextEncoder().encode(added.content);
    const t = this.model.idToToken(id);
    if (t === undefined) return null;
    if (
      this.preTokenizer?.byteLevel ||
      (this.json.decoder && (this.json.decoder as Json).type === "ByteLevel")
    ) {
      const out: number[] = [];
      for (const ch of t) {
        const b = UNICODE_TO_BYTE.get(ch);
        if (b !== undefined) out.push(b);
        else out.push(...new TextEncoder().encode(ch));
      }
      return new Uint8Array(out);
    }
    return new TextEncoder().encode(this.decoder ? this.decoder([t]).join("") : t);
  }

  override createStreamDecoder(opts: { skipSpecialTokens?: boolean } = {}) {
    const byteLevel =
      this.preTokenizer?.byteLevel || (this.json.decoder as Json | null)?.type === "ByteLevel";
    if (byteLevel || !this.decoder) return super.createStreamDecoder(opts);
    // non-byte decoders (WordPiece, SentencePiece with byte fallback): the prefix/read-offset
    // scheme of text-generation-inference — decode a short window that starts a few tokens back
    // (so spacing rules see a previous token) and emit the new text once it does not end in U+FFFD
    const ids: number[] = [];
    let prefix = 0;
    let read = 0;
    const decodeFrom = (a: number, b: number) => this.decode(ids.slice(a, b), opts);
    return {
      push: (id: number) => {
        ids.push(id);
        const prefixText = decodeFrom(prefix, read);
        const text = decodeFrom(prefix, ids.length);
        if (text.length > prefixText.length && !text.endsWith("\ufffd") && text.startsWith(prefixText)) {
          prefix = read;
          read = ids.length;
          return text.slice(prefixText.length);
        }
        return "";
      },
      flush: () => {
        const prefixText = decodeFrom(prefix, read);
        const text = decodeFrom(prefix, ids.length);
        prefix = read = ids.length;
        return text.startsWith(prefixText) ? text.slice(prefixText.length) : text;
      },
    };
  }

  toJSON(): object {
    return {
      ...this.json,
      version: this.json.version ?? "1.0",
      added_tokens: this.addedTokens.map((t) => ({
        id: t.id,
        content: t.content,
        single_word: t.single_word ?? false,
        lstrip: t.lstrip ?? false,
        rstrip: t.rstrip ?? false,
        normalized: t.normalized ?? false,
        special: t.special,
      })),
      model: this.model.toJSON(),
    };
  }
}

export function cleanupText(s: string): string {
  return s
    .replace(/ \./g, ".")
    .replace(/ \?/g, "?")
    .replace(/ !/g, "!")
    .replace(/ ,/g, ",")
    .replace(/ ' /g, "'")
    .replace(/ n't/g, "n't")
    .replace(/ 'm/g, "'m")
    .replace(/ 's/g, "'s")
    .replace(/ 've/g, "'ve")
    .replace(/ 're/g, "'re");
}

function byteToCharIndex(s: string): Int32Array {
  // index[b] = UTF-16 offset of the character containing byte b; index[len] = s.length
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.codePointAt(i)!;
    const n = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    const lone = c >= 0xd800 && c <= 0xdfff;
    for (let k = 0; k < (lone ? 3 : n); k++) out.push(i);
    if (c > 0xffff) i++;
  }
  out.push(s.length);
  return Int32Array.from(out);
}

/** Builds the right tokenizer class for a tokenizer.json object (+ tokenizer_config.json object). */
export function tokenizerFromJSON(json: unknown, config: Json = {}): BaseTokenizer {
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw invalidTokenizer("(root)", "an object", json);
  const j = json as Json;
  const pre = j.pre_tokenizer as Json | null | undefined;
  const model = j.model as Json | undefined;
  if (
    model?.type === "WordLevel" &&
    pre?.type === "Split" &&
    (pre.pattern as Json | undefined)?.Regex === CHAR_SPLIT_PATTERN &&
    (j.decoder as Json | null)?.type === "Fuse" &&
    !j.normalizer
  ) {
    return CharTokenizer.fromJSON(j, config);
  }
  return new HfTokenizer(j, config);
}

async function readJson(path: string): Promise<Json> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new TypeformerError("NOT_FOUND", `cannot read ${path}`, { path }, { cause: e });
  }
  try {
    return JSON.parse(text) as Json;
  } catch (e) {
    throw new TypeformerError(
      "TOKENIZER_INVALID",
      `${path} is not valid JSON: ${(e as Error).message}`,
      { path, field: "(root)" },
      { cause: e },
    );
  }
}

/**
 * Loads a tokenizer from a directory (tokenizer.json + optional tokenizer_config.json) or a
 * tokenizer.json path.
 */
export async function loadTokenizer(pathOrDir: string): Promise<BaseTokenizer> {
  let file = pathOrDir;
  let dir: string | null = null;
  try {
    if ((await stat(pathOrDir)).isDirectory()) {
      dir = pathOrDir;
      file = join(pathOrDir, "tokenizer.json");
    }
  } catch (e) {
    throw new TypeformerError("NOT_FOUND", `no tokenizer at ${pathOrDir}`, { path: pathOrDir }, { cause: e });
  }
  const json = await readJson(file);
  let config: Json = {};
  const cfgPath = dir ? join(dir, "tokenizer_config.json") : join(file, "..", "tokenizer_config.json");
  try {
    config = JSON.parse(await readFile(cfgPath, "utf8")) as Json;
  } catch {
    config = {};
  }
  return tokenizerFromJSON(json, config);
}
