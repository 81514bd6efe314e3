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
    encoderHidden: tf.Tensor3D,
    opts?: { encoderAttentionMask?: tf.Tensor2D },
  ): { logits: tf.Tensor3D };
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
 * Beam search over any next-token scorer: `next(prefixes)` returns the logits of the next token of
 * each prefix (rows of length `vocabSize`, concatenated). Follows Hugging Face's BeamSearchScorer:
 * 2·numBeams candidates per step, EOS candidates among the top numBeams become finished hypotheses,
 * the rest fill the next beams.
 */
export function beamSearchCore(
  next: (prefixes: number[][]) => Float32Array,
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
  let beams: { ids: number[]; sum: number }[] = [{ ids: [], sum: 0 }];
  const done: BeamHypothesis[] = [];
  const addDone = (h: BeamHypothesis) => {
    done.push(h);
    done.sort((a, b) => b.score - a.score);
    if (done.length > K) done.pop();
  };
  let stopped = false;
  for (let step = 0; step < opts.maxTokens && !stopped; step++) {
    const rows = next(beams.map((b) => b.ids));
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
    const nextBeams: { ids: number[]; sum: number }[] = [];
    for (let r = 0; r < cands.length && nextBeams.length < K; r++) {
      const c = cands[r];
      const ids = [...beams[c.beam].ids, c.token];
      if (eos !== null && c.token === eos) {
        if (r < K)
          addDone({ tokenIds: ids, sumLogprob: c.sum, score: rank(c.sum, ids.length), finished: true });
        continue;
      }
      nextBeams.push({ ids, sum: c.sum });
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

/**
 * Beam search for encoder-decoder models (t5): encodes the input once, then scores every beam's
 * decoder prefix each step (no decoder cache: beams are re-ranked every step and the cache cannot
 * reorder rows, so prefixes are recomputed — fine for the short outputs seq2seq tasks produce).
 */
export function beamSearchSeq2Seq(
  model: ServeSeq2SeqLM,
  inputIds: readonly number[],
  opts: BeamSearchOptions,
): BeamHypothesis[] {
  assertArg(inputIds.length > 0, "inputIds", inputIds, "at least one token");
  const hidden = tf.tidy(() => model.encode(tf.tensor2d([Array.from(inputIds)], undefined, "int32")).hidden);
  const tiled = new Map<number, tf.Tensor3D>();
  try {
    const next = (prefixes: number[][]) => {
      const B = prefixes.length;
      let enc = tiled.get(B);
      if (!enc) {
        enc = tf.tile(hidden, [B, 1, 1]) as tf.Tensor3D;
        tiled.set(B, enc);
      }
      const e = enc;
      const ids = prefixes.map((p) => [model.decoderStartTokenId, ...p]);
      const logits = tf.tidy(() => model.decode(tf.tensor2d(ids, undefined, "int32"), e).logits);
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
  }
}

/** Beam search for decoder-only models (each step re-runs prompt + prefix; no cache). */
export function beamSearchCausal(
  model: ServeCausalLM,
  promptIds: readonly number[],
  opts: BeamSearchOptions,
): BeamHypothesis[] {
  assertArg(promptIds.length > 0, "promptIds", promptIds, "at least one token");
  assertArg(
    promptIds.length + opts.maxTokens <= model.maxPositions,
    "maxTokens",
    opts.maxTokens,
    `at most ${model.maxPositions - promptIds.length} (context ${model.maxPositions} - prompt ${promptIds.length})`,
  );
  const next = (prefixes: number[][]) => {
    const ids = prefixes.map((p) => [...promptIds, ...p]);
    const { logits } = tf.tidy(() => model.forward(tf.tensor2d(ids, undefined, "int32")));
    try {
      return lastLogits(logits);
    } finally {
      logits.dispose();
    }
  };
  return beamSearchCore(next, model.vocabSize, { ...opts, eosTokenId: opts.eosTokenId ?? null });
}
