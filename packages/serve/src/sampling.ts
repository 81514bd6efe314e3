import { assertArg, Random } from "@typeformer/core";

/**
 * Sampling parameters of one sequence. Every field is optional; the defaults sample from the model's
 * distribution unchanged (temperature 1, no filtering, no penalties).
 */
export interface SamplingParams {
  /** 0 selects greedy decoding; otherwise logits are divided by it. Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or undefined = off). */
  topK?: number;
  /** Nucleus sampling: keep the smallest set of tokens whose probability sums to at least p (1 = off). */
  topP?: number;
  /** Drop tokens whose probability is below minP × the top token's probability (0 = off). */
  minP?: number;
  /** CTRL/HF repetition penalty over prompt and generated tokens (1 = off): positive logits are divided by it, negative ones multiplied. */
  repetitionPenalty?: number;
  /** OpenAI presence penalty: subtracted once from the logit of every token already generated. */
  presencePenalty?: number;
  /** OpenAI frequency penalty: subtracted count times from the logit of every token already generated. */
  frequencyPenalty?: number;
  /** Added to the logits of the given token ids (OpenAI `logit_bias`; -100 effectively bans a token). */
  logitBias?: Record<number, number>;
  /** Seed of this sequence's own generator: the same seed gives the same tokens, alone or batched. */
  seed?: number;
}

/** One alternative token with its log-probability. */
export interface TokenLogprob {
  tokenId: number;
  logprob: number;
}

/** Validates sampling parameters, throwing INVALID_ARGUMENT naming the field and value. */
export function validateSamplingParams(p: SamplingParams, vocabSize?: number): void {
  const num = (v: unknown) => typeof v === "number" && Number.isFinite(v);
  if (p.temperature !== undefined)
    assertArg(num(p.temperature) && p.temperature >= 0, "temperature", p.temperature, "a number >= 0");
  if (p.topK !== undefined)
    assertArg(Number.isInteger(p.topK) && p.topK >= 0, "topK", p.topK, "an integer >= 0");
  if (p.topP !== undefined)
    assertArg(num(p.topP) && p.topP > 0 && p.topP <= 1, "topP", p.topP, "a number in (0, 1]");
  if (p.minP !== undefined) assertArg(num(p.minP) && p.minP >= 0 && p.minP <= 1, "minP", p.minP, "in [0, 1]");
  if (p.repetitionPenalty !== undefined)
    assertArg(
      num(p.repetitionPenalty) && p.repetitionPenalty > 0,
      "repetitionPenalty",
      p.repetitionPenalty,
      "a number > 0",
    );
  if (p.presencePenalty !== undefined)
    assertArg(num(p.presencePenalty), "presencePenalty", p.presencePenalty, "a finite number");
  if (p.frequencyPenalty !== undefined)
    assertArg(num(p.frequencyPenalty), "frequencyPenalty", p.frequencyPenalty, "a finite number");
  if (p.seed !== undefined) assertArg(num(p.seed), "seed", p.seed, "a finite number");
  if (p.logitBias !== undefined) {
    for (const [k, v] of Object.entries(p.logitBias)) {
      const id = Number(k);
      const okId = Number.isInteger(id) && id >= 0 && (vocabSize === undefined || id < vocabSize);
      assertArg(okId, `logitBias key`, k, `a token id in [0, ${vocabSize ?? "vocabSize"})`);
      assertArg(num(v), `logitBias[${k}]`, v, "a finite number");
    }
  }
}

/** Adds `bias[id]` to `logits[id]` in place. */
export function applyLogitBias(logits: Float32Array, bias: Record<number, number>): void {
  for (const [k, v] of Object.entries(bias)) {
    const id = Number(k);
    if (id >= 0 && id < logits.length) logits[id] += v;
  }
}

/** CTRL repetition penalty in place over the distinct ids in `seen`. */
export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of seen) {
    if (id < 0 || id >= logits.length) continue;
    const l = logits[id];
    logits[id] = l > 0 ? l / penalty : l * penalty;
  }
}

/** OpenAI presence/frequency penalties in place: `logit -= count * frequency + (count > 0) * presence`. */
export function applyPresenceFrequencyPenalty(
  logits: Float32Array,
  counts: ReadonlyMap<number, number>,
  presence: number,
  frequency: number,
): void {
  if (presence === 0 && frequency === 0) return;
  for (const [id, c] of counts) {
    if (c > 0 && id >= 0 && id < logits.length) logits[id] -= c * frequency + presence;
  }
}

/** Divides logits by `t` in place (t > 0). */
export function applyTemperature(logits: Float32Array, t: number): void {
  if (t === 1) return;
  for (let i = 0; i < logits.length; i++) logits[i] /= t;
}

/** Indices of finite logits sorted by logit descending (ties: lower index first). */
function sortedFinite(logits: Float32Array): Uint32Array {
  let n = 0;
  for (let i = 0; i < logits.length; i++) if (logits[i] > -Infinity) n++;
  const idx = new Uint32Array(n);
  let j = 0;
  for (let i = 0; i < logits.length; i++) if (logits[i] > -Infinity) idx[j++] = i;
  idx.sort((a, b) => logits[b] - logits[a] || a - b);
  return idx;
}

/** Keeps the `k` largest logits (ties broken by lower index), the rest become -Infinity. */
export function topKFilter(logits: Float32Array, k: number): void {
  if (k <= 0 || k >= logits.length) return;
  const order = sortedFinite(logits);
  for (let i = k; i < order.length; i++) logits[order[i]] = -Infinity;
}

/**
 * Nucleus filter: keeps the smallest prefix of tokens (most likely first) whose probabilities sum to
 * at least `p`; always keeps the most likely token.
 */
export function topPFilter(logits: Float32Array, p: number): void {
  if (p >= 1) return;
  const order = sortedFinite(logits);
  if (order.length === 0) return;
  const max = logits[order[0]];
  let z = 0;
  for (let i = 0; i < order.length; i++) z += Math.exp(logits[order[i]] - max);
  let cum = 0;
  let keep = order.length;
  for (let i = 0; i < order.length; i++) {
    cum += Math.exp(logits[order[i]] - max) / z;
    if (cum >= p) {
      keep = i + 1;
      break;
    }
  }
  for (let i = keep; i < order.length; i++) logits[order[i]] = -Infinity;
}

/** Min-p filter: drops tokens with probability below `p × max probability`. */
export function minPFilter(logits: Float32Array, p: number): void {
  if (p <= 0) return;
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  if (max === -Infinity) return;
  const threshold = max + Math.log(p); // prob_i / prob_max = exp(l_i - max) >= p
  for (let i = 0; i < logits.length; i++) if (logits[i] < threshold) logits[i] = -Infinity;
}

/** Index of the largest logit (lowest index on ties). */
export function argmax(logits: Float32Array): number {
  let best = 0;
  let bv = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > bv) {
      bv = logits[i];
      best = i;
    }
  }
  return best;
}

/** Log-softmax in float64 accumulation, returned as float64. */
export function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i] - max);
  const lz = max + Math.log(z);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - lz;
  return out;
}

/** Softmax with float64 accumulation. */
export function softmax(logits: Float32Array): Float64Array {
  const ls = logSoftmax(logits);
  for (let i = 0; i < ls.length; i++) ls[i] = Math.exp(ls[i]);
  return ls;
}

/** Draws one index from softmax(logits) using one `rng.float()` (inverse CDF in index order). */
export function sampleCategorical(logits: Float32Array, rng: Random): number {
  const probs = softmax(logits);
  const u = rng.float();
  let cum = 0;
  let last = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    cum += probs[i];
    last = i;
    if (u < cum) return i;
  }
  return last; // rounding: u >= the accumulated sum
}

/** The `k` entries with the largest log-probabilities, most likely first (ties: lower id first). */
export function topLogprobs(logprobs: Float64Array | Float32Array, k: number): TokenLogprob[] {
  if (k <= 0) return [];
  const best: TokenLogprob[] = [];
  for (let i = 0; i < logprobs.length; i++) {
    const lp = logprobs[i];
    if (best.length === k && lp <= best[k - 1].logprob) continue;
    let j = best.length === k ? k - 1 : best.length;
    if (best.length < k) best.push({ tokenId: i, logprob: lp });
    while (j > 0 && best[j - 1].logprob < lp) {
      best[j] = best[j - 1];
      j--;
    }
    best[j] = { tokenId: i, logprob: lp };
  }
  return best;
}

/** Result of one sampling step. */
export interface SampleResult {
  tokenId: number;
  /** log p(token) under the model's own (unprocessed) distribution; set when logprobs were asked for. */
  logprob?: number;
  /** The most likely alternatives under the model's distribution; set when `topLogprobs > 0`. */
  topLogprobs?: TokenLogprob[];
}

/**
 * The per-sequence sampler: owns the sequence's seeded generator and token counts and turns one row
 * of logits into one token. Processing order: logit bias → repetition penalty → presence/frequency
 * penalties → (greedy when temperature is 0) → temperature → top-k → top-p → min-p → draw.
 * Log-probabilities are reported from the model's raw distribution (before any processing).
 */
export class Sampler {
  readonly params: Readonly<SamplingParams>;
  readonly rng: Random;
  private readonly seen = new Set<number>();
  private readonly counts = new Map<number, number>();

  constructor(params: SamplingParams = {}, promptIds: readonly number[] = [], rng?: Random) {
    validateSamplingParams(params);
    this.params = { ...params };
    this.rng = rng ?? new Random(params.seed ?? 0);
    for (const id of promptIds) this.seen.add(id);
  }

  /** Records a generated token (penalties see it from the next step on). */
  observe(tokenId: number): void {
    this.seen.add(tokenId);
    this.counts.set(tokenId, (this.counts.get(tokenId) ?? 0) + 1);
  }

  /**
   * Picks the next token from `row` (left unchanged) and records it. `logprobs`: undefined = none,
   * 0 = the chosen token's only, k > 0 = also the top-k alternatives.
   */
  sample(row: Float32Array, logprobs?: number): SampleResult {
    const p = this.params;
    const x = new Float32Array(row);
    if (p.logitBias) applyLogitBias(x, p.logitBias);
    if (p.repetitionPenalty !== undefined) applyRepetitionPenalty(x, this.seen, p.repetitionPenalty);
    applyPresenceFrequencyPenalty(x, this.counts, p.presencePenalty ?? 0, p.frequencyPenalty ?? 0);
    let tokenId: number;
    const t = p.temperature ?? 1;
    if (t === 0) {
      tokenId = argmax(x);
    } else {
      applyTemperature(x, t);
      if (p.topK) topKFilter(x, p.topK);
      if (p.topP !== undefined) topPFilter(x, p.topP);
      if (p.minP) minPFilter(x, p.minP);
      tokenId = sampleCategorical(x, this.rng);
    }
    this.observe(tokenId);
    const out: SampleResult = { tokenId };
    if (logprobs !== undefined) {
      const lp = logSoftmax(row);
      out.logprob = lp[tokenId];
      if (logprobs > 0) out.topLogprobs = topLogprobs(lp, logprobs);
    }
    return out;
  }
}
