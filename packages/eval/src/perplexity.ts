import { TypeformerError } from "@typeformer/core";
import { type EvalTokenizer, type ScoreRequest, type ScoringModel, scoreSequences } from "./scoring.js";

export interface PerplexityOptions {
  /** Tokens per forward window (default: the model's `maxPositions`). */
  contextLength?: number;
  /**
   * New tokens scored per window (default contextLength / 2). Each scored token sees at least
   * `contextLength - stride` tokens of context; stride = contextLength - 1 is the cheapest, 1 the most
   * faithful (every token gets the full context). Must be ≤ contextLength - 1.
   */
  stride?: number;
  /**
   * Token put before each text so its first token is scored too: "auto" (default) = BOS, else EOS
   * (GPT-2's document separator), else none; a number; or false. Without one the first token of each
   * text is not scored and its bytes are left out of the byte count.
   */
  prefixToken?: "auto" | number | false;
  batchSize?: number;
}

export interface PerplexityResult {
  /** Σ −ln p over scored tokens (nats). */
  nll: number;
  /** Tokens scored. */
  tokens: number;
  /** UTF-8 bytes covered by the scored tokens. */
  bytes: number;
  /** exp(nll / tokens). Depends on the tokenizer: compare models only at equal tokenizers. */
  perplexity: number;
  /** nll / tokens (nats per token). */
  lossPerToken: number;
  /** nll / (ln 2 · bytes): bits per UTF-8 byte, comparable across tokenizers. */
  bitsPerByte: number;
  /** Windows (forward passes) used. */
  windows: number;
  contextLength: number;
  stride: number;
  texts: number;
}

/**
 * Perplexity and bits per byte of held-out text, with sliding windows for texts longer than the
 * context: window w covers tokens [end − contextLength, end) and scores only the tokens no earlier
 * window scored, so each token is counted exactly once with at least contextLength − stride tokens
 * of left context.
 */
export function evaluatePerplexity(
  model: ScoringModel,
  tokenizer: EvalTokenizer,
  texts: string | string[],
  opts: PerplexityOptions = {},
): PerplexityResult {
  const list = typeof texts === "string" ? [texts] : texts;
  const L = opts.contextLength ?? model.maxPositions;
  if (!Number.isInteger(L) || L < 2 || L > model.maxPositions) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `contextLength must be an integer in [2, ${model.maxPositions}]; received ${L}`,
      { contextLength: L },
    );
  }
  const stride = opts.stride ?? Math.max(1, Math.floor(L / 2));
  if (!Number.isInteger(stride) || stride < 1 || stride > L - 1) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `stride must be an integer in [1, ${L - 1}] (contextLength − 1); received ${stride}`,
      { stride, contextLength: L },
    );
  }
  const prefix =
    opts.prefixToken === false
      ? undefined
      : typeof opts.prefixToken === "number"
        ? opts.prefixToken
        : (tokenizer.bosTokenId ?? tokenizer.eosTokenId);
  let bytes = 0;
  let tokens = 0;
  const reqs: ScoreRequest[] = [];
  for (const text of list) {
    let ids = tokenizer.encode(text);
    let textBytes = Buffer.byteLength(text, "utf8");
    if (prefix !== undefined) ids = [prefix, ...ids];
    else if (ids.length > 0) textBytes -= Buffer.byteLength(tokenizer.decode([ids[0]]), "utf8");
    if (ids.length < 2) continue;
    bytes += Math.max(0, textBytes);
    tokens += ids.length - 1;
    for (let next = 1; next < ids.length; ) {
      const end = Math.min(next + stride, ids.length);
      const start = Math.max(0, end - L);
      reqs.push({ ids: ids.slice(start, end), start: next - start });
      next = end;
    }
  }
  if (tokens === 0) {
    throw new TypeformerError("INVALID_ARGUMENT", `no tokens to score in ${list.length} text(s)`, {
      texts: list.length,
    });
  }
  const scores = scoreSequences(model, reqs, { batchSize: opts.batchSize ?? 4 });
  let nll = 0;
  for (const s of scores) nll -= s.logProb;
  return {
    nll,
    tokens,
    bytes,
    perplexity: Math.exp(nll / tokens),
    lossPerToken: nll / tokens,
    bitsPerByte: bytes > 0 ? nll / (Math.LN2 * bytes) : Number.NaN,
    windows: reqs.length,
    contextLength: L,
    stride,
    texts: list.length,
  };
}
