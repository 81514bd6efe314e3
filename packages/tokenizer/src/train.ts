/**
 * Training: byte-level BPE (GPT-2 style, Hugging Face tokenizer.json out) and WordPiece (BERT style).
 * Deterministic: ties between equally frequent pairs go to the smallest (left id, right id), as in
 * Hugging Face's trainer. After word counting, memory is linear in the number of distinct words.
 */
import { BYTE_TO_UNICODE, utf8Binary } from "./bytes.js";
import { invalidArg } from "./errors.js";
import { HfTokenizer } from "./hf.js";
import { bertNormalize } from "./hf-components.js";
import { GPT2_PATTERN, scannerFor } from "./pretokenize.js";

export type Corpus = string | Iterable<string> | AsyncIterable<string>;

export interface TrainProgress {
  phase: "count" | "merge" | "done";
  /** count: characters read; merge: merges done */
  done: number;
  /** merge: merges wanted */
  total?: number;
}

export interface TrainBpeOptions {
  vocabSize: number;
  specialTokens?: string[];
  /** Minimum pair frequency to merge (default 2). */
  minFrequency?: number;
  onProgress?: (p: TrainProgress) => void;
  /** Pre-tokenisation pattern (default GPT-2's). */
  pattern?: string;
  /** Chat template saved in tokenizer_config.json. */
  chatTemplate?: string;
}

async function* chunks(corpus: Corpus): AsyncGenerator<string> {
  if (typeof corpus === "string") {
    yield corpus;
    return;
  }
  if (Symbol.asyncIterator in (corpus as object)) {
    for await (const s of corpus as AsyncIterable<string>) yield s;
    return;
  }
  for (const s of corpus as Iterable<string>) yield s;
}

interface Words {
  syms: number[][];
  freq: number[];
}

/** The merge loop shared by BPE and WordPiece training. Returns merges as [left id, right id, new id]. */
function learnMerges(
  words: Words,
  numMerges: number,
  firstNewId: number,
  minFrequency: number,
  onMerge: (a: number, b: number, id: number) => void,
  onProgress?: (p: TrainProgress) => void,
): void {
  const K = 1048576;
  const counts = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  const { syms, freq } = words;
  for (let w = 0; w < syms.length; w++) {
    const s = syms[w];
    const f = freq[w];
    for (let i = 0; i + 1 < s.length; i++) {
      const key = s[i] * K + s[i + 1];
      counts.set(key, (counts.get(key) ?? 0) + f);
      let set = where.get(key);
      if (!set) {
        set = new Set();
        where.set(key, set);
      }
      set.add(w);
    }
  }
  // max-heap on (count desc, key asc)
  const hc: number[] = [];
  const hk: number[] = [];
  const better = (c1: number, k1: number, c2: number, k2: number) => c1 > c2 || (c1 === c2 && k1 < k2);
  const push = (c: number, k: number) => {
    let i = hc.length;
    hc.push(c);
    hk.push(k);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!better(c, k, hc[p], hk[p])) break;
      hc[i] = hc[p];
      hk[i] = hk[p];
      i = p;
    }
    hc[i] = c;
    hk[i] = k;
  };
  const pop = () => {
    const c = hc.pop()!;
    const k = hk.pop()!;
    const n = hc.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      let ch = 2 * i + 1;
      if (ch >= n) break;
      if (ch + 1 < n && better(hc[ch + 1], hk[ch + 1], hc[ch], hk[ch])) ch++;
      if (!better(hc[ch], hk[ch], c, k)) break;
      hc[i] = hc[ch];
      hk[i] = hk[ch];
      i = ch;
    }
    hc[i] = c;
    hk[i] = k;
  };
  for (const [k, c] of counts) push(c, k);
  let done = 0;
  let nextId = firstNewId;
  const changed = new Set<number>();
  while (done < numMerges && hc.length > 0) {
    const c = hc[0];
    const key = hk[0];
    pop();
    const cur = counts.get(key) ?? 0;
    if (cur !== c) {
      if (cur > 0) push(cur, key);
      continue;
    }
    if (c < minFrequency) break;
    const a = Math.floor(key / K);
    const b = key - a * K;
    const id = nextId++;
    onMerge(a, b, id);
    changed.clear();
    const ws = where.get(key)!;
    for (const w of ws) {
      const s = syms[w];
      const f = freq[w];
      const out: number[] = [];
      let i = 0;
      let hit = false;
      while (i < s.length) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          hit = true;
          i += 2;
          out.push(id);
        } else out.push(s[i++]);
      }
      if (!hit) continue;
      // subtract the old pairs, add the new ones
      for (let j = 0; j + 1 < s.length; j++) {
        const k = s[j] * K + s[j + 1];
        counts.set(k, counts.get(k)! - f);
      }
      for (let j = 0; j + 1 < out.length; j++) {
        const k = out[j] * K + out[j + 1];
        counts.set(k, (counts.get(k) ?? 0) + f);
        if (out[j] === id || out[j + 1] === id) {
          let set = where.get(k);
          if (!set) {
            set = new Set();
            where.set(k, set);
          }
          set.add(w);
          changed.add(k);
        }
      }
      syms[w] = out;
    }
    counts.delete(key);
    where.delete(key);
    for (const k of changed) {
      const cc = counts.get(k) ?? 0;
      if (cc > 0) push(cc, k);
    }
    done++;
    if (onProgress && (done % 100 === 0 || done === numMerges))
      onProgress({ phase: "merge", done, total: numMerges });
  }
}

async function countWords(
  corpus: Corpus,
  split: (text: string, add: (piece: string) => void) => void,
  onProgress?: (p: TrainProgress) => void,
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const add = (p: string) => counts.set(p, (counts.get(p) ?? 0) + 1);
  let read = 0;
  for await (const text of chunks(corpus)) {
    if (typeof text !== "string") throw invalidArg("corpus item", "a string", text);
    split(text, add);
    read += text.length;
    onProgress?.({ phase: "count", done: read });
  }
  return counts;
}

function sortedWords(counts: Map<string, number>): [string, number][] {
  // deterministic order independent of corpus chunking: by word
  return [...counts].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
}

/**
 * Trains a byte-level BPE tokenizer (GPT-2 pre-tokenisation, 256 byte symbols, merges until
 * `vocabSize` including the special tokens). Returns a Hugging Face–compatible tokenizer.
 */
export async function trainBpe(corpus: Corpus, opts: TrainBpeOptions): Promise<HfTokenizer> {
  const specials = opts.specialTokens ?? [];
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < 256 + specials.length)
    throw invalidArg("vocabSize", `an integer ≥ 256 + ${specials.length} special tokens`, opts.vocabSize);
  const pattern = opts.pattern ?? GPT2_PATTERN;
  const scan = scannerFor(pattern);
  const counts = await countWords(
    corpus,
    (text, add) => {
      for (let i = 0; i < text.length; ) {
        const e = scan(text, i);
        if (e < 0) {
          i = -e - 1;
          continue;
        }
        add(text.slice(i, e));
        i = e;
      }
    },
    opts.onProgress,
  );
  // ids: specials, then the 256 byte symbols in byte-level character order, then merges
  const tokens: string[] = [...specials];
  const alphabet = [...BYTE_TO_UNICODE].sort();
  const byteId = new Int32Array(256);
  for (const ch of alphabet) {
    byteId[BYTE_TO_UNICODE.indexOf(ch)] = tokens.length;
    tokens.push(ch);
  }
  const words: Words = { syms: [], freq: [] };
  for (const [w, f] of sortedWords(counts)) {
    const b = utf8Binary(w);
    const s = new Array<number>(b.length);
    for (let i = 0; i < b.length; i++) s[i] = byteId[b.charCodeAt(i)];
    words.syms.push(s);
    words.freq.push(f);
  }
  counts.clear();
  const merges: [string, string][] = [];
  learnMerges(
    words,
    opts.vocabSize - tokens.length,
    tokens.length,
    opts.minFrequency ?? 2,
    (a, b, id) => {
      merges.push([tokens[a], tokens[b]]);
      tokens[id] = tokens[a] + tokens[b];
    },
    opts.onProgress,
  );
  opts.onProgress?.({ phase: "done", done: merges.length, total: merges.length });
  const json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer:
      pattern === GPT2_PATTERN
        ? { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true }
        : {
            type: "Sequence",
            pretokenizers: [
              { type: "Split", pattern: { Regex: pattern }, behavior: "Isolated", invert: false },
              { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
            ],
          },
    post_processor: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(tokens.map((t, i) => [t, i])),
      merges,
    },
  };
  const config: Record<string, unknown> = { clean_up_tokenization_spaces: false };
  const eos = specials.find((s) => /end|eos/i.test(s));
  if (eos) config.eos_token = eos;
  const pad = specials.find((s) => /pad/i.test(s));
  if (pad) config.pad_token = pad;
  if (opts.chatTemplate) config.chat_template = opts.chatTemplate;
  return new HfTokenizer(json, config);
}

export interface TrainWordPieceOptions {
  vocabSize: number;
  specialTokens?: string[];
  lowercase?: boolean;
  stripAccents?: boolean;
  minFrequency?: number;
  continuingSubwordPrefix?: string;
  maxInputCharsPerWord?: number;
  onProgress?: (p: TrainProgress) => void;
}

/**
 * Trains a BERT-style WordPiece tokenizer (BertNormalizer, BertPreTokenizer, `##` continuation,
 * `[CLS] $A [SEP]` template). Like Hugging Face's trainer it learns merges over characters whose
 * non-initial copies carry the prefix, and keeps the resulting vocabulary.
 */
export async function trainWordPiece(corpus: Corpus, opts: TrainWordPieceOptions): Promise<HfTokenizer> {
  const specials = opts.specialTokens ?? ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
  const prefix = opts.continuingSubwordPrefix ?? "##";
  const lowercase = opts.lowercase ?? true;
  const normOpts = {
    cleanText: true,
    handleChineseChars: true,
    stripAccents: opts.stripAccents ?? lowercase,
    lowercase,
  };
  const RE_WORD = /[\p{P}!-/:-@[-`{-~]|[^\s\p{P}!-/:-@[-`{-~]+/gu;
  const counts = await countWords(
    corpus,
    (text, add) => {
      for (const m of bertNormalize(text, normOpts).matchAll(RE_WORD)) add(m[0]);
    },
    opts.onProgress,
  );
  const tokens: string[] = [...specials];
  const ids = new Map<string, number>(tokens.map((t, i) => [t, i]));
  const sorted = sortedWords(counts);
  // alphabet: every character, plain and prefixed, in sorted order
  const alpha = new Set<string>();
  for (const [w] of sorted) {
    let first = true;
    for (const ch of w) {
      alpha.add(first ? ch : prefix + ch);
      first = false;
    }
  }
  for (const a of [...alpha].sort()) {
    if (!ids.has(a)) {
      ids.set(a, tokens.length);
      tokens.push(a);
    }
  }
  const words: Words = { syms: [], freq: [] };
  for (const [w, f] of sorted) {
    words.syms.push([...w].map((ch, i) => ids.get(i === 0 ? ch : prefix + ch)!));
    words.freq.push(f);
  }
  counts.clear();
  const target = Math.max(0, opts.vocabSize - tokens.length);
  learnMerges(
    words,
    target,
    tokens.length,
    opts.minFrequency ?? 2,
    (a, b, id) => {
      const tb = tokens[b];
      const t = tokens[a] + (tb.startsWith(prefix) ? tb.slice(prefix.length) : tb);
      tokens[id] = t;
      if (!ids.has(t)) ids.set(t, id);
    },
    opts.onProgress,
  );
  // the same string can arise from two merges: keep first ids, renumber densely
  const vocab: Record<string, number> = {};
  let n = 0;
  for (const t of tokens) if (!(t in vocab)) vocab[t] = n++;
  const idOf = (t: string) => vocab[t];
  const cls = specials.includes("[CLS]") ? "[CLS]" : null;
  const sep = specials.includes("[SEP]") ? "[SEP]" : null;
  const json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map((content) => ({
      id: idOf(content),
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: "BertNormalizer",
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: opts.stripAccents ?? null,
      lowercase,
    },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor:
      cls && sep
        ? {
            type: "TemplateProcessing",
            single: [
              { SpecialToken: { id: cls, type_id: 0 } },
              { Sequence: { id: "A", type_id: 0 } },
              { SpecialToken: { id: sep, type_id: 0 } },
            ],
            pair: [
              { SpecialToken: { id: cls, type_id: 0 } },
              { Sequence: { id: "A", type_id: 0 } },
              { SpecialToken: { id: sep, type_id: 0 } },
              { Sequence: { id: "B", type_id: 1 } },
              { SpecialToken: { id: sep, type_id: 1 } },
            ],
            special_tokens: {
              [cls]: { id: cls, ids: [idOf(cls)], tokens: [cls] },
              [sep]: { id: sep, ids: [idOf(sep)], tokens: [sep] },
            },
          }
        : null,
    decoder: { type: "WordPiece", prefix, cleanup: true },
    model: {
      type: "WordPiece",
      unk_token: specials.includes("[UNK]") ? "[UNK]" : specials[0],
      continuing_subword_prefix: prefix,
      max_input_chars_per_word: opts.maxInputCharsPerWord ?? 100,
      vocab,
    },
  };
  const config: Record<string, unknown> = { do_lower_case: lowercase, clean_up_tokenization_spaces: true };
  for (const [k, t] of [
    ["pad_token", "[PAD]"],
    ["unk_token", "[UNK]"],
    ["cls_token", "[CLS]"],
    ["sep_token", "[SEP]"],
    ["mask_token", "[MASK]"],
  ] as const)
    if (specials.includes(t)) config[k] = t;
  return new HfTokenizer(json, config);
}
