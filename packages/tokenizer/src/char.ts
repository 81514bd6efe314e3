import { BaseTokenizer } from "./base.js";
import { invalidTokenizer, show, TypeformerError } from "./errors.js";
import type { DecodeOptions, EncodeOptions } from "./types.js";

/** The Split pattern CharTokenizer writes to tokenizer.json: every code point on its own. */
export const CHAR_SPLIT_PATTERN = "[\\s\\S]";

export interface CharTokenizerOptions {
  /** Special tokens appended after the characters (e.g. ["<|endoftext|>"]). */
  specialTokens?: string[];
  /** Token used for characters outside the vocabulary; without one they throw UNKNOWN_CHARACTER. */
  unkToken?: string;
  eosToken?: string;
  bosToken?: string;
  padToken?: string;
}

/**
 * A character-level tokenizer: one id per code point, the vocabulary sorted by code point — exactly
 * nanoGPT's `sorted(list(set(text)))` (Tiny Shakespeare gives 65 ids). A char vocabulary is just
 * another tokenizer: it saves and loads as a Hugging Face tokenizer.json (WordLevel model, a
 * per-character Split pre-tokenizer and a Fuse decoder).
 */
export class CharTokenizer extends BaseTokenizer {
  readonly chars: string[];
  readonly specialTokens: Record<string, number>;
  private readonly toId = new Map<string, number>();
  private readonly idToStr: string[];
  private readonly specialIds = new Set<number>();
  private readonly bmp: Int32Array;
  private specialRegex?: RegExp;

  constructor(chars: string[], opts: CharTokenizerOptions = {}) {
    super();
    this.chars = chars;
    this.idToStr = chars.slice();
    this.bmp = new Int32Array(65536).fill(-1);
    chars.forEach((c, i) => {
      if ([...c].length !== 1) throw invalidTokenizer(`chars[${i}]`, "a single code point", c);
      if (this.toId.has(c)) throw invalidTokenizer(`chars[${i}]`, "unique", c);
      this.toId.set(c, i);
      if (c.length === 1) this.bmp[c.charCodeAt(0)] = i;
    });
    this.specialTokens = {};
    const specials = [...(opts.specialTokens ?? [])];
    for (const t of [opts.unkToken, opts.eosToken, opts.bosToken, opts.padToken])
      if (t !== undefined && !specials.includes(t)) specials.push(t);
    for (const s of specials) {
      if (this.toId.has(s)) {
        this.specialTokens[s] = this.toId.get(s)!;
        continue;
      }
      const id = this.idToStr.length;
      this.idToStr.push(s);
      this.toId.set(s, id);
      this.specialTokens[s] = id;
      this.specialIds.add(id);
    }
    const idOf = (t?: string) => (t === undefined ? undefined : this.toId.get(t));
    this.unkTokenId = idOf(opts.unkToken);
    this.eosTokenId = idOf(opts.eosToken);
    this.bosTokenId = idOf(opts.bosToken);
    this.padTokenId = idOf(opts.padToken);
  }

  /** The vocabulary of `text`: its distinct code points sorted by code point (nanoGPT's order). */
  static fromText(text: string, opts: CharTokenizerOptions = {}): CharTokenizer {
    const set = new Set<number>();
    for (let i = 0; i < text.length; i++) {
      const cp = text.codePointAt(i)!;
      set.add(cp);
      if (cp > 0xffff) i++;
    }
    const chars = [...set].sort((a, b) => a - b).map((cp) => String.fromCodePoint(cp));
    return new CharTokenizer(chars, opts);
  }

  get vocabSize(): number {
    return this.idToStr.length;
  }

  private encodePlain(text: string, out: number[], offset: number): void {
    const bmp = this.bmp;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      let id = bmp[c];
      if (id < 0) {
        const cp = text.codePointAt(i)!;
        const ch = String.fromCodePoint(cp);
        id = this.toId.get(ch) ?? -1;
        if (cp > 0xffff) i++;
        if (id < 0 || this.specialIds.has(id)) {
          if (this.unkTokenId === undefined)
            throw new TypeformerError(
              "UNKNOWN_CHARACTER",
              `character ${show(ch)} (U+${cp.toString(16).toUpperCase().padStart(4, "0")}) at index ${offset + i} is not in the vocabulary and there is no unkToken`,
              { char: ch, index: offset + i },
            );
          id = this.unkTokenId;
        }
      }
      out.push(id);
    }
  }

  encode(text: string, opts?: EncodeOptions): number[] {
    if (typeof text !== "string")
      throw new TypeformerError("INVALID_ARGUMENT", `text must be a string; received ${show(text)}`, {
        value: text,
      });
    const out: number[] = [];
    const allowed = opts?.allowedSpecial;
    const names = Object.keys(this.specialTokens).filter((s) => this.specialIds.has(this.toId.get(s)!));
    if (!allowed || names.length === 0) {
      this.encodePlain(text, out, 0);
      return out;
    }
    const use = allowed === "all" ? names : names.filter((n) => allowed.has(n));
    if (use.length === 0) {
      this.encodePlain(text, out, 0);
      return out;
    }
    this.specialRegex = new RegExp(use.map((s) => s.replace(/[\\^$*+?.()|[\]{}]/g, "\\$&")).join("|"), "g");
    let start = 0;
    for (const m of text.matchAll(this.specialRegex)) {
      this.encodePlain(text.slice(start, m.index), out, start);
      out.push(this.specialTokens[m[0]]);
      start = m.index + m[0].length;
    }
    this.encodePlain(text.slice(start), out, start);
    return out;
  }

  decode(ids: ArrayLike<number>, opts?: DecodeOptions): string {
    const skip = opts?.skipSpecialTokens ?? false;
    let s = "";
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (skip && this.specialIds.has(id)) continue;
      s += this.idToStr[id] ?? "";
    }
    return s;
  }

  protected idBytes(id: number, skipSpecial: boolean): Uint8Array | null {
    const s = this.idToStr[id];
    if (s === undefined || (skipSpecial && this.specialIds.has(id))) return null;
    return new TextEncoder().encode(s);
  }

  tokenToId(token: string): number | undefined {
    return this.toId.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.idToStr[id];
  }

  toJSON(): object {
    const vocab: Record<string, number> = {};
    this.idToStr.forEach((s, i) => {
      vocab[s] = i;
    });
    return {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: [...this.specialIds].map((id) => ({
        id,
        content: this.idToStr[id],
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
      normalizer: null,
      pre_tokenizer: {
        type: "Split",
        pattern: { Regex: CHAR_SPLIT_PATTERN },
        behavior: "Isolated",
        invert: false,
      },
      post_processor: null,
      decoder: { type: "Fuse" },
      model: {
        type: "WordLevel",
        vocab,
        unk_token: this.unkTokenId === undefined ? "<unk>" : this.idToStr[this.unkTokenId],
      },
    };
  }

  /** Rebuilds a CharTokenizer from its tokenizer.json (+ tokenizer_config.json) objects. */
  static fromJSON(json: Record<string, unknown>, config: Record<string, unknown> = {}): CharTokenizer {
    const model = json.model as Record<string, unknown> | undefined;
    const vocab = model?.vocab as Record<string, number> | undefined;
    if (!vocab || typeof vocab !== "object") throw invalidTokenizer("model.vocab", "an object", vocab);
    const added = (json.added_tokens ?? []) as { id: number; content: string }[];
    if (!Array.isArray(added)) throw invalidTokenizer("added_tokens", "an array", json.added_tokens);
    const addedIds = new Set(added.map((a) => a.id));
    const entries = Object.entries(vocab).sort((a, b) => a[1] - b[1]);
    const chars: string[] = [];
    const specials: string[] = [];
    entries.forEach(([tok, id], i) => {
      if (id !== i) throw invalidTokenizer(`model.vocab.${tok}`, `id ${i} (ids must be 0..n-1)`, id);
      if (addedIds.has(id)) specials.push(tok);
      else chars.push(tok);
    });
    const str = (k: string) => (typeof config[k] === "string" ? (config[k] as string) : undefined);
    const unk = model?.unk_token;
    const t = new CharTokenizer(chars, {
      specialTokens: specials,
      unkToken: typeof unk === "string" && specials.includes(unk) ? unk : undefined,
      eosToken: str("eos_token"),
      bosToken: str("bos_token"),
      padToken: str("pad_token"),
    });
    if (typeof config.chat_template === "string") t.chatTemplate = config.chat_template;
    return t;
  }
}
