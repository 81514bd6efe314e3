import { TypeformerError, tf } from "@typeformer/core";

/** The part of a causal LM the evaluators need (any `CausalLM` of `@typeformer/models` fits). */
export interface ScoringModel {
  readonly maxPositions: number;
  forward(inputIds: tf.Tensor2D): { logits: tf.Tensor3D };
}

/** The part of a tokenizer the evaluators need (any `Tokenizer` of `@typeformer/tokenizer` fits). */
export interface EvalTokenizer {
  encode(text: string): number[];
  decode(ids: number[]): string;
  readonly eosTokenId?: number;
  readonly bosTokenId?: number;
}

/** One sequence to score: `ids`, whose tokens at positions `>= start` are the targets. */
export interface ScoreRequest {
  ids: number[];
  /** First target position (≥ 1: position 0 has no prediction). */
  start: number;
  /** Last target position + 1 (default ids.length). */
  end?: number;
}

/** Log-likelihood of the targets of one {@link ScoreRequest}, summed in float64. */
export interface ScoreResult {
  /** Σ ln p(target | prefix), nats. */
  logProb: number;
  /** Number of target tokens. */
  count: number;
  /** Whether every target was the model's argmax (greedy decoding would produce it). */
  greedy: boolean;
  /** Per-target log-probabilities. */
  tokenLogProbs: number[];
}

/**
 * Scores rows in batches of right-padded sequences. Right padding is exact for causal models: a
 * position only attends to earlier positions, so the pad tokens after a row's end change nothing.
 * Rows longer than `maxPositions` keep their last `maxPositions` tokens (the targets must fit).
 */
export function scoreSequences(
  model: ScoringModel,
  requests: ScoreRequest[],
  opts: { batchSize?: number; padId?: number } = {},
): ScoreResult[] {
  const batchSize = opts.batchSize ?? 8;
  const padId = opts.padId ?? 0;
  const rows = requests.map((r, i) => {
    const end = r.end ?? r.ids.length;
    if (!(r.start >= 1) || end > r.ids.length || r.start > end) {
      throw new TypeformerError(
        "INVALID_ARGUMENT",
        `score request ${i}: targets [${r.start}, ${end}) must lie in [1, ${r.ids.length}]`,
        { start: r.start, end, length: r.ids.length },
      );
    }
    let ids = r.ids.slice(0, end);
    let start = r.start;
    if (ids.length > model.maxPositions) {
      const cut = ids.length - model.maxPositions;
      if (start - cut < 1) {
        throw new TypeformerError(
          "INVALID_ARGUMENT",
          `score request ${i}: ${end - start} target tokens do not fit the model's ${model.maxPositions} positions`,
          { targets: end - start, maxPositions: model.maxPositions },
        );
      }
      ids = ids.slice(cut);
      start -= cut;
    }
    return { ids, start };
  });
  const out: ScoreResult[] = new Array(rows.length);
  // group rows of similar length to waste less padding
  const order = rows.map((_, i) => i).sort((a, b) => rows[a].ids.length - rows[b].ids.length);
  for (let b0 = 0; b0 < order.length; b0 += batchSize) {
    const idx = order.slice(b0, b0 + batchSize);
    const T = Math.max(...idx.map((i) => rows[i].ids.length));
    const B = idx.length;
    const flat = new Int32Array(B * T).fill(padId);
    const gatherIdx: number[] = [];
    const argIdx: number[] = [];
    for (let r = 0; r < B; r++) {
      const { ids, start } = rows[idx[r]];
      flat.set(ids, r * T);
      for (let p = start; p < ids.length; p++) {
        argIdx.push(r * T + p - 1);
        gatherIdx.push(ids[p]);
      }
    }
    const [lp, am] = tf.tidy(() => {
      const input = tf.tensor2d(flat, [B, T], "int32");
      const { logits } = model.forward(input);
      const V = logits.shape[2];
      const flatLogits = logits.reshape([B * T, V]);
      const pos = tf.tensor1d(argIdx, "int32");
      const rowsL = tf.gather(flatLogits, pos); // (n, V)
      const logp = tf.logSoftmax(rowsL, -1);
      const flatIdx = Int32Array.from(gatherIdx, (t, i) => i * V + t);
      const picked = tf.gather(logp.reshape([-1]), tf.tensor1d(flatIdx, "int32"));
      return [picked, tf.argMax(rowsL, -1)];
    }) as [tf.Tensor1D, tf.Tensor1D];
    const lpv = lp.dataSync();
    const amv = am.dataSync();
    lp.dispose();
    am.dispose();
    let k = 0;
    for (let r = 0; r < B; r++) {
      const { ids, start } = rows[idx[r]];
      const tokenLogProbs: number[] = [];
      let sum = 0;
      let greedy = true;
      for (let p = start; p < ids.length; p++, k++) {
        tokenLogProbs.push(lpv[k]);
        sum += lpv[k];
        if (amv[k] !== ids[p]) greedy = false;
      }
      out[idx[r]] = { logProb: sum, count: ids.length - start, greedy, tokenLogProbs };
    }
  }
  return out;
}

/** Log-likelihood of `continuation` after `context` (tokenised separately, then joined). */
export function scoreContinuations(
  model: ScoringModel,
  tokenizer: EvalTokenizer,
  pairs: { context: string; continuation: string }[],
  opts: { batchSize?: number } = {},
): ScoreResult[] {
  const reqs = pairs.map(({ context, continuation }) => {
    let ctx = tokenizer.encode(context);
    if (ctx.length === 0) {
      const bos = tokenizer.bosTokenId ?? tokenizer.eosTokenId;
      if (bos === undefined) {
        throw new TypeformerError(
          "INVALID_ARGUMENT",
          `empty context and the tokenizer has no BOS/EOS token to condition on (continuation ${JSON.stringify(continuation)})`,
          { continuation },
        );
      }
      ctx = [bos];
    }
    const cont = tokenizer.encode(continuation);
    if (cont.length === 0) {
      throw new TypeformerError(
        "INVALID_ARGUMENT",
        `continuation ${JSON.stringify(continuation)} has no tokens`,
        {
          continuation,
        },
      );
    }
    return { ids: [...ctx, ...cont], start: ctx.length };
  });
  return scoreSequences(model, reqs, opts);
}

/**
 * Greedy decoding (argmax at each step, no KV cache: answers are a few tokens) until `stop` appears,
 * EOS, or `maxNewTokens`. Returns the generated text without the stop string.
 */
export function greedyGenerate(
  model: ScoringModel,
  tokenizer: EvalTokenizer,
  prompt: string,
  opts: { maxNewTokens?: number; stop?: string[] } = {},
): string {
  const maxNew = opts.maxNewTokens ?? 16;
  const stop = opts.stop ?? ["\n"];
  const ids = tokenizer.encode(prompt);
  if (ids.length === 0) {
    const bos = tokenizer.bosTokenId ?? tokenizer.eosTokenId;
    if (bos === undefined)
      throw new TypeformerError("INVALID_ARGUMENT", "empty prompt and no BOS/EOS token", { prompt });
    ids.push(bos);
  }
  const promptLen = ids.length;
  for (let i = 0; i < maxNew; i++) {
    const window = ids.slice(-model.maxPositions);
    const next = tf.tidy(() => {
      const { logits } = model.forward(tf.tensor2d(window, [1, window.length], "int32"));
      const last = logits.slice([0, window.length - 1, 0], [1, 1, logits.shape[2]]);
      return tf.argMax(last.reshape([-1]));
    });
    const id = next.dataSync()[0];
    next.dispose();
    if (id === tokenizer.eosTokenId) break;
    ids.push(id);
    const text = tokenizer.decode(ids.slice(promptLen));
    for (const s of stop) {
      const at = text.indexOf(s);
      if (at >= 0) return text.slice(0, at);
    }
  }
  return tokenizer.decode(ids.slice(promptLen));
}
