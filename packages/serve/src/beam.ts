import { assertArg, tf } from "@typeformer/core";
import { logSoftmax } from "./sampling.js";
import type { ServeCausalLM } from "./types.js";

/** What beam search needs of an encoder-decoder model (models' `Seq2SeqLM`, e.g. t5). */
export interface ServeSeq2SeqLM {
  readonly vocabSize: number;
  readonly decoderStartTokenId: number;
  readonly eosTokenId: number;
  encode(inputIds: tf.Tensor2D, opts?: { attentionMask?: tf.Tensor2D }): { hidden: tf.Tensor3D };
  decode(
    decoderIds: tf.Tensor2D,
    /** null once `opts.cache` holds the cross-attention keys/values. */
    encoderHidden: tf.Tensor3D | null,
    opts?: { encoderAttentionMask?: tf.Tensor2D; cache?: unknown },
  ): { logits: tf.Tensor3D };
  /** Decoder cache (models' `Seq2SeqCache`); beam search uses it when its `self` rows can be reordered. */
  createCache?(batch: number, maxLength: number): object;
}

export interface BeamSearchOptions {
  /** Beams kept per step (1 = greedy). */
  numBeams: number;
  /** Most tokens generated (EOS included). */
  maxTokens: number;
  /** Finished hypotheses are ranked by sumLogprob / length^lengthPenalty. Default 1. */
  lengthPenalty?: number;
  /** Stop as soon as `numBeams` hypotheses finished (true) or when no running beam can beat them (false, default). */
  earlyStopping?: boolean;
  /** End-of-sequence id (default: the model's). `null` disables finishing early. */
  eosTokenId?: number | null;
  /** How many hypotheses to return, best first. Default 1. */
  numReturnSequences?: number;
}

export interface BeamHypothesis {
  /** Generated ids (EOS included when it finished). */
  tokenIds: number[];
  /** Sum of log-probabilities of the generated tokens. */
  sumLogprob: number;
  /** sumLogprob / length^lengthPenalty: the ranking score. */
  score: number;
  /** Whether it ended with EOS (false: cut at maxTokens). */
  finished: boolean;
}

/**
 * Beam search over any next-token scorer: `next(prefixes, parents)` returns the logits of the next token
 * of each prefix (rows of length `vocabSize`, concatenated); `parents[i]` is the row of the previous call
 * whose prefix prefix i extends (null on the first call), so a scorer with a KV cache can reorder it.
 * Follows Hugging Face's BeamSearchScorer:
 * 2·numBeams candidates per step, EOS candidates among the top numBeams become finished hypotheses,
 * the rest fill the next beams.
 */
export function beamSearchCore(
  next: (prefixes: number[][], parents: number[] | null) => Float32Array,
  vocabSize: number,
  opts: BeamSearchOptions,
): BeamHypothesis[] {
  const K = opts.numBeams;
  assertArg(Number.isInteger(K) && K >= 1, "numBeams", K, "an integer >= 1");
  assertArg(
    Number.isInteger(opts.maxTokens) && opts.maxTokens >= 1,
    "maxTokens",
    opts.maxTokens,
    "an integer >= 1",
  );
  const lp = opts.lengthPenalty ?? 1;
  const eos = opts.eosTokenId ?? null;
  const nReturn = opts.numReturnSequences ?? 1;
  assertArg(
    Number.isInteger(nReturn) && nReturn >= 1 && nReturn <= K,
    "numReturnSequences",
    nReturn,
    `an integer in [1, numBeams = ${K}]`,
  );
  const rank = (sum: number, len: number) => sum / len ** lp;
  let beams: { ids: number[]; sum: number; parent: number }[] = [{ ids: [], sum: 0, parent: -1 }];
  const done: BeamHypothesis[] = [];
  const addDone = (h: BeamHypothesis) => {
    done.push(h);
    done.sort((a, b) => b.score - a.score);
    if (done.length > K) done.pop();
  };
  let stopped = false;
  for (let step = 0; step < opts.maxTokens && !stopped; step++) {
    const rows = next(
      beams.map((b) => b.ids),
      step === 0 ? null : beams.map((b) => b.parent),
    );
    // candidates: the 2K best (beam, token) pairs by cumulative log-probability
    const cands: { beam: number; token: number; sum: number }[] = [];
    const want = 2 * K;
    for (let b = 0; b < beams.length; b++) {
      const lps = logSoftmax(rows.subarray(b * vocabSize, (b + 1) * vocabSize));
      for (let t = 0; t < vocabSize; t++) {
        const sum = beams[b].sum + lps[t];
        if (cands.length === want && sum <= cands[want - 1].sum) continue;
        let i = cands.length === want ? want - 1 : cands.length;
        if (cands.length < want) cands.push({ beam: b, token: t, sum });
        while (i > 0 && cands[i - 1].sum < sum) {
          cands[i] = cands[i - 1];
          i--;
        }
        cands[i] = { beam: b, token: t, sum };
      }
    }
    const nextBeams: { ids: number[]; sum: number; parent: number }[] = [];
    for (let r = 0; r < cands.length && nextBeams.length < K; r++) {
      const c = cands[r];
      const ids = [...beams[c.beam].ids, c.token];
      if (eos !== null && c.token === eos) {
        if (r < K)
          addDone({ tokenIds: ids, sumLogprob: c.sum, score: rank(c.sum, ids.length), finished: true });
        continue;
      }
      nextBeams.push({ ids, sum: c.sum, parent: c.beam });
    }
    beams = nextBeams;
    if (done.length >= K) {
      const bestRunning = Math.max(...beams.map((b) => rank(b.sum, b.ids.length)));
      stopped = opts.earlyStopping === true || done[done.length - 1].score >= bestRunning;
    }
    if (beams.length === 0) stopped = true;
  }
  // beams still running when maxTokens is reached compete too (as HF's finalize does)
  if (!stopped) {
    for (const b of beams)
      addDone({ tokenIds: b.ids, sumLogprob: b.sum, score: rank(b.sum, b.ids.length), finished: false });
  }
  return done.slice(0, nReturn);
}

function lastLogits(logits: tf.Tensor3D): Float32Array {
  const [b, t, v] = logits.shape;
  const row = tf.tidy(() => logits.slice([0, t - 1, 0], [b, 1, v]).reshape([b, v]));
  try {
    return row.dataSync() as Float32Array;
  } finally {
    row.dispose();
  }
}

/** A seq2seq decoder cache: reorderable self-attention rows + the encoder's cross-attention keys/values. */
interface ReorderableSeq2SeqCache {
  self: ReorderableCache;
  cross: { k: tf.Tensor4D; v: tf.Tensor4D }[] | null;
  dispose(): void;
}

function isReorderableSeq2Seq(c: unknown): c is ReorderableSeq2SeqCache {
  return (
    typeof c === "object" &&
    c !== null &&
    isReorderable((c as ReorderableSeq2SeqCache).self) &&
    typeof (c as ReorderableSeq2SeqCache).dispose === "function"
  );
}

/**
 * Beam search for encoder-decoder models (t5): encodes the input once. With a decoder cache whose rows
 * can be reordered (the models' T5 cache) each step feeds only the beams' newest tokens, the cache rows
 * following their parents; otherwise (or with `cache: false`) every beam's decoder prefix is re-run.
 */
export function beamSearchSeq2Seq(
  model: ServeSeq2SeqLM,
  inputIds: readonly number[],
  opts: BeamSearchOptions & { cache?: boolean },
): BeamHypothesis[] {
  assertArg(inputIds.length > 0, "inputIds", inputIds, "at least one token");
  const hidden = tf.tidy(() => model.encode(tf.tensor2d([Array.from(inputIds)], undefined, "int32")).hidden);
  const tiled = new Map<number, tf.Tensor3D>();
  const cache =
    opts.cache === false || !model.createCache
      ? null
      : openCache(model.createCache(1, opts.maxTokens + 1), isReorderableSeq2Seq);
  try {
    const next = (prefixes: number[][], parents: number[] | null) => {
      const B = prefixes.length;
      let enc = tiled.get(B);
      if (!enc) {
        enc = tf.tile(hidden, [B, 1, 1]) as tf.Tensor3D;
        tiled.set(B, enc);
      }
      const e = enc;
      let ids: number[][];
      if (!cache) ids = prefixes.map((p) => [model.decoderStartTokenId, ...p]);
      else if (parents === null)
        ids = [[model.decoderStartTokenId]]; // (1, 1)
      else {
        cache.self.selectRows(parents); // row i continues its parent's self-attention keys/values
        // every beam reads the same encoder output: the cross-attention rows only follow the beam count
        if (cache.cross && cache.cross[0].k.shape[0] !== B)
          cache.cross = cache.cross.map(({ k, v }) => {
            const out = tf.tidy(() => ({
              k: tf.keep(tf.tile(k.slice(0, 1), [B, 1, 1, 1]) as tf.Tensor4D),
              v: tf.keep(tf.tile(v.slice(0, 1), [B, 1, 1, 1]) as tf.Tensor4D),
            }));
            tf.dispose([k, v]);
            return out;
          });
        ids = prefixes.map((p) => [p[p.length - 1]]); // (B, 1): each beam's newest token
      }
      const logits = tf.tidy(
        () => model.decode(tf.tensor2d(ids, undefined, "int32"), e, cache ? { cache } : undefined).logits,
      );
      try {
        return lastLogits(logits);
      } finally {
        logits.dispose();
      }
    };
    return beamSearchCore(next, model.vocabSize, {
      ...opts,
      eosTokenId: opts.eosTokenId === undefined ? model.eosTokenId : opts.eosTokenId,
    });
  } finally {
    hidden.dispose();
    for (const t of tiled.values()) t.dispose();
    cache?.dispose();
  }
}

/** A cache whose rows can be reordered and duplicated (attention's `KVCache.selectRows`). */
interface ReorderableCache {
  selectRows(rows: number[]): void;
  dispose(): void;
}

function isReorderable(c: unknown): c is ReorderableCache {
  return (
    typeof c === "object" &&
    c !== null &&
    typeof (c as ReorderableCache).selectRows === "function" &&
    typeof (c as ReorderableCache).dispose === "function"
  );
}

/** The model's fresh cache when `usable` accepts it; otherwise it is disposed and beam search re-runs prefixes. */
function openCache<C>(made: object, usable: (c: unknown) => c is C): C | null {
  if (usable(made)) return made;
  (made as { dispose?: () => void }).dispose?.();
  return null;
}

/**
 * Beam search for decoder-only models. With a KV cache whose rows can be reordered (`selectRows`, as the
 * models' caches have) the prompt is run once and each step feeds only the beams' newest tokens, the cache
 * rows following their parents; otherwise (or with `cache: false`) every step re-runs prompt + prefix.
 */
export function beamSearchCausal(
  model: ServeCausalLM,
  promptIds: readonly number[],
  opts: BeamSearchOptions & { cache?: boolean },
): BeamHypothesis[] {
  assertArg(promptIds.length > 0, "promptIds", promptIds, "at least one token");
  assertArg(
    promptIds.length + opts.maxTokens <= model.maxPositions,
    "maxTokens",
    opts.maxTokens,
    `at most ${model.maxPositions - promptIds.length} (context ${model.maxPositions} - prompt ${promptIds.length})`,
  );
  const core = { ...opts, eosTokenId: opts.eosTokenId ?? null };
  const cache =
    opts.cache === false
      ? null
      : openCache(model.createCache(1, promptIds.length + opts.maxTokens), isReorderable);
  if (cache === null) {
    const next = (prefixes: number[][]) => {
      const ids = prefixes.map((p) => [...promptIds, ...p]);
      const { logits } = tf.tidy(() => model.forward(tf.tensor2d(ids, undefined, "int32")));
      try {
        return lastLogits(logits);
      } finally {
        logits.dispose();
      }
    };
    return beamSearchCore(next, model.vocabSize, core);
  }
  try {
    const next = (prefixes: number[][], parents: number[] | null) => {
      let ids: number[][];
      if (parents === null)
        ids = [Array.from(promptIds)]; // (1, P): the prompt, once
      else {
        cache.selectRows(parents); // row i continues its parent's keys/values
        ids = prefixes.map((p) => [p[p.length - 1]]); // (B, 1): each beam's newest token
      }
      const { logits } = tf.tidy(() => model.forward(tf.tensor2d(ids, undefined, "int32"), { cache }));
      try {
        return lastLogits(logits);
      } finally {
        logits.dispose();
      }
    };
    return beamSearchCore(next, model.vocabSize, core);
  } finally {
    cache.dispose();
  }
}
