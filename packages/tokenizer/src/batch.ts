/**
 * Batch encoding for models: pairs, truncation, padding (left or right), attention masks, token type
 * ids, special-token masks and offsets (UTF-16 character spans of each token in its input text).
 */
import { invalidArg } from "./errors.js";

/** One encoded sequence before post-processing (no special tokens). */
export interface Parts {
  ids: number[];
  typeIds: number[];
  offsets: [number, number][];
  special: boolean[];
}

export interface BatchEncodeOptions {
  /** Second sequences (sentence pairs), same length as the texts. */
  pairs?: string[];
  /** Add the post-processor's special tokens ([CLS] … [SEP], BOS …). Default true. */
  addSpecialTokens?: boolean;
  /** "longest" pads to the longest row, "max_length" to maxLength, false: no padding. Default "longest". */
  padding?: "longest" | "max_length" | false;
  /** Where padding goes. Default "right" ("left" for decoder-only generation). */
  paddingSide?: "left" | "right";
  /** Pad to a multiple of this (after padding). */
  padToMultipleOf?: number;
  /** Truncate to maxLength (special tokens included). true = "longest_first". Default false. */
  truncation?: boolean | "longest_first" | "only_first" | "only_second";
  maxLength?: number;
  /** Side truncation removes tokens from. Default "right". */
  truncationSide?: "left" | "right";
  /** Pad id; default the tokenizer's padTokenId, else eosTokenId, else 0. */
  padTokenId?: number;
  /** Special tokens recognised in the text (tiktoken semantics). */
  allowedSpecial?: "all" | Set<string>;
}

export interface BatchEncoding {
  inputIds: number[][];
  attentionMask: number[][];
  tokenTypeIds: number[][];
  specialTokensMask: number[][];
  /** [start, end) spans into the row's text (pair tokens: into the pair text); [0, 0] for special and padding tokens. */
  offsets: [number, number][][];
  /** Which input a token came from: 0 = text, 1 = pair, -1 = special or padding. */
  sequenceIds: number[][];
  /** Unpadded lengths. */
  lengths: number[];
}

export interface PartsEncoder {
  encodeParts(text: string, allowedSpecial?: "all" | Set<string>): Parts;
  postProcessParts(a: Parts, b: Parts | null, addSpecialTokens: boolean): Parts & { sequence: number[] };
  readonly padTokenId?: number;
  readonly eosTokenId?: number;
}

function cut(p: Parts, n: number, side: "left" | "right"): Parts {
  if (n <= 0) return p;
  const keep = Math.max(0, p.ids.length - n);
  const sl = <T>(a: T[]) => (side === "right" ? a.slice(0, keep) : a.slice(a.length - keep));
  return { ids: sl(p.ids), typeIds: sl(p.typeIds), offsets: sl(p.offsets), special: sl(p.special) };
}

export function encodeBatchForModel(
  tok: PartsEncoder,
  texts: string[],
  opts: BatchEncodeOptions = {},
): BatchEncoding {
  if (!Array.isArray(texts)) throw invalidArg("texts", "an array of strings", texts);
  const pairs = opts.pairs;
  if (pairs && pairs.length !== texts.length)
    throw invalidArg("pairs", `an array of ${texts.length} strings (one per text)`, pairs.length);
  const add = opts.addSpecialTokens ?? true;
  const truncation = opts.truncation === true ? "longest_first" : (opts.truncation ?? false);
  const maxLength = opts.maxLength;
  if ((truncation || opts.padding === "max_length") && (maxLength === undefined || !(maxLength > 0)))
    throw invalidArg("maxLength", "a positive integer when truncating or padding to max_length", maxLength);
  const side = opts.truncationSide ?? "right";
  const empty: Parts = { ids: [], typeIds: [], offsets: [], special: [] };
  const specialsSingle = tok.postProcessParts(empty, null, add).ids.length;
  const specialsPair = pairs ? tok.postProcessParts(empty, empty, add).ids.length : 0;
  const rows: (Parts & { sequence: number[] })[] = [];
  for (let i = 0; i < texts.length; i++) {
    let a = tok.encodeParts(texts[i], opts.allowedSpecial);
    let b = pairs ? tok.encodeParts(pairs[i], opts.allowedSpecial) : null;
    if (truncation && maxLength !== undefined) {
      const budget = maxLength - (b ? specialsPair : specialsSingle);
      let over = a.ids.length + (b?.ids.length ?? 0) - Math.max(0, budget);
      if (over > 0) {
        if (!b || truncation === "only_first") a = cut(a, over, side);
        else if (truncation === "only_second") b = cut(b, over, side);
        else {
          // longest_first: remove one token at a time from the longer sequence
          let na = a.ids.length;
          let nb = b.ids.length;
          while (over > 0 && na + nb > 0) {
            if (na > nb) na--;
            else nb--;
            over--;
          }
          a = cut(a, a.ids.length - na, side);
          b = cut(b, b.ids.length - nb, side);
        }
      }
    }
    rows.push(tok.postProcessParts(a, b, add));
  }
  let target = 0;
  if (opts.padding === "max_length") target = maxLength!;
  else if (opts.padding !== false) for (const r of rows) target = Math.max(target, r.ids.length);
  if (opts.padToMultipleOf && target % opts.padToMultipleOf)
    target += opts.padToMultipleOf - (target % opts.padToMultipleOf);
  const pad = opts.padTokenId ?? tok.padTokenId ?? tok.eosTokenId ?? 0;
  const left = opts.paddingSide === "left";
  const out: BatchEncoding = {
    inputIds: [],
    attentionMask: [],
    tokenTypeIds: [],
    specialTokensMask: [],
    offsets: [],
    sequenceIds: [],
    lengths: [],
  };
  for (const r of rows) {
    const n = Math.max(0, (opts.padding === false ? r.ids.length : target) - r.ids.length);
    const padded = <T>(a: T[], v: T): T[] => {
      if (n === 0) return a;
      const p = new Array<T>(n).fill(v);
      return left ? [...p, ...a] : [...a, ...p];
    };
    out.inputIds.push(padded(r.ids, pad));
    out.attentionMask.push(
      padded(
        r.ids.map(() => 1),
        0,
      ),
    );
    out.tokenTypeIds.push(padded(r.typeIds, 0));
    out.specialTokensMask.push(
      padded(
        r.special.map((s) => (s ? 1 : 0)),
        1,
      ),
    );
    out.offsets.push(padded(r.offsets, [0, 0] as [number, number]));
    out.sequenceIds.push(padded(r.sequence, -1));
    out.lengths.push(r.ids.length);
  }
  return out;
}

/** Post-processing without special tokens: concatenation, pair tokens get type id 1. */
export function concatParts(a: Parts, b: Parts | null): Parts & { sequence: number[] } {
  const seqA = a.ids.map((_, i) => (a.special[i] ? -1 : 0));
  if (!b) return { ...a, sequence: seqA };
  return {
    ids: [...a.ids, ...b.ids],
    typeIds: [...a.typeIds, ...b.ids.map(() => 1)],
    offsets: [...a.offsets, ...b.offsets],
    special: [...a.special, ...b.special],
    sequence: [...seqA, ...b.ids.map((_, i) => (b.special[i] ? -1 : 1))],
  };
}

/**
 * Offsets from per-token UTF-8 byte lengths: a token covers the characters whose bytes it holds
 * (a character split across tokens is given to each of them).
 */
export function offsetsFromByteLengths(text: string, byteLens: number[]): [number, number][] {
  // byte → UTF-16 index of the character containing it
  const starts: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.codePointAt(i)!;
    const n = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    for (let k = 0; k < n; k++) starts.push(i);
    if (c > 0xffff) i++;
  }
  const charEnd = (b: number) => {
    // end (exclusive) of the character holding byte b-1
    if (b <= 0) return 0;
    const s = starts[b - 1];
    return s + (text.codePointAt(s)! > 0xffff ? 2 : 1);
  };
  const out: [number, number][] = [];
  let pos = 0;
  for (const len of byteLens) {
    const a = pos < starts.length ? starts[pos] : text.length;
    pos += len;
    out.push([a, Math.min(text.length, charEnd(pos))]);
  }
  return out;
}
