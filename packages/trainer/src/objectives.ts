import { type Random, TypeformerError, tf } from "@typeformer/core";
import { crossEntropySum, IGNORE_INDEX, targetWeights } from "./loss.js";
import type { Objective, ObjectiveContext, ObjectiveResult } from "./types.js";

/** A batch of token windows, row-major (batchSize × length). */
export interface TokenBatch {
  tokens: Int32Array;
  batchSize: number;
  length: number;
  /** Optional loss mask over the same positions (1 = counts). */
  lossMask?: Uint8Array;
}

/** Structural view of `@typeformer/models`' CausalLM. */
export interface CausalLMLike {
  forward(
    inputIds: tf.Tensor2D,
    opts?: { training?: boolean; rng?: Random; attentionMask?: tf.Tensor2D },
  ): { logits: tf.Tensor3D };
}

/** Structural view of `@typeformer/models`' EncoderModel (BERT). */
export interface MaskedLMLike {
  mlmLogits(
    inputIds: tf.Tensor2D,
    opts?: { training?: boolean; rng?: Random; attentionMask?: tf.Tensor2D },
  ): tf.Tensor3D;
  /** Optional: logits (N, V) at flat positions `b·T + t` only; used when present (the head skips unmasked rows). */
  mlmLogitsAt?(
    inputIds: tf.Tensor2D,
    positions: ArrayLike<number>,
    opts?: { training?: boolean; rng?: Random; attentionMask?: tf.Tensor2D },
  ): tf.Tensor2D;
}

/** Structural view of `@typeformer/models`' Seq2SeqLM (T5). */
export interface Seq2SeqLike {
  readonly decoderStartTokenId: number;
  forward(
    inputIds: tf.Tensor2D,
    decoderIds: tf.Tensor2D,
    opts?: {
      training?: boolean;
      rng?: Random;
      attentionMask?: tf.Tensor2D;
      decoderAttentionMask?: tf.Tensor2D;
    },
  ): { logits: tf.Tensor3D };
}

function lossOverLogits(logits: tf.Tensor3D, targets: Int32Array, mask?: ArrayLike<number>): ObjectiveResult {
  const [b, t, v] = logits.shape;
  const tw = targetWeights(targets, mask);
  const loss = crossEntropySum(tf.reshape(logits, [b * t, v]) as tf.Tensor2D, tw.targets, tw.weights);
  return { loss, count: tw.count };
}

/**
 * Next-token prediction: each window of `length` tokens gives inputs `w[0..L-2]` and targets `w[1..L-1]`
 * (so sample windows of context + 1 tokens). `lossMask` (aligned with the window) masks targets, e.g.
 * prompt tokens; targets equal to `ignoreIndex` never count.
 */
export class CausalLMObjective implements Objective<TokenBatch> {
  readonly name = "causal-lm";
  constructor(
    readonly model: CausalLMLike,
    readonly opts: { ignoreIndex?: number } = {},
  ) {}

  loss(batch: TokenBatch, ctx: ObjectiveContext): ObjectiveResult {
    const { batchSize: b, length: l, tokens } = batch;
    if (l < 2) {
      throw new TypeformerError("DATA_INVALID", `causal LM windows need >= 2 tokens; received length ${l}`, {
        length: l,
      });
    }
    const t = l - 1;
    const inputs = new Int32Array(b * t);
    const targets = new Int32Array(b * t);
    const mask = batch.lossMask ? new Uint8Array(b * t) : undefined;
    const ignore = this.opts.ignoreIndex ?? IGNORE_INDEX;
    for (let r = 0; r < b; r++) {
      for (let i = 0; i < t; i++) {
        inputs[r * t + i] = tokens[r * l + i];
        const y = tokens[r * l + i + 1];
        targets[r * t + i] = y === ignore ? IGNORE_INDEX : y;
        if (mask) mask[r * t + i] = batch.lossMask![r * l + i + 1];
      }
    }
    const ids = tf.tensor2d(inputs, [b, t], "int32");
    const { logits } = this.model.forward(ids, { training: ctx.training, rng: ctx.rng });
    return lossOverLogits(logits, targets, mask);
  }
}

export interface MaskingOptions {
  vocabSize: number;
  maskTokenId: number;
  /** Fraction of tokens selected for prediction (default 0.15). */
  probability?: number;
  /** Token ids never selected (CLS, SEP, PAD...). */
  specialTokenIds?: Iterable<number>;
  /** Token ids never drawn as random replacements (default: specialTokenIds). */
  randomExclude?: Iterable<number>;
}

/**
 * BERT masking: each non-special token is selected with probability p (15%); a selected token is replaced
 * by [MASK] 80% of the time, by a random token 10%, and kept 10%. Returns the corrupted inputs and the
 * targets (original id where selected, {@link IGNORE_INDEX} elsewhere). Uses `rng` only (deterministic).
 */
export function maskTokens(
  tokens: Int32Array,
  o: MaskingOptions,
  rng: Random,
): { inputs: Int32Array; targets: Int32Array; selected: number } {
  const p = o.probability ?? 0.15;
  const special = new Set(o.specialTokenIds ?? []);
  const exclude = new Set(o.randomExclude ?? special);
  const inputs = Int32Array.from(tokens);
  const targets = new Int32Array(tokens.length).fill(IGNORE_INDEX);
  let selected = 0;
  for (let i = 0; i < tokens.length; i++) {
    if (special.has(tokens[i])) continue;
    if (rng.float() >= p) continue;
    selected++;
    targets[i] = tokens[i];
    const u = rng.float();
    if (u < 0.8) inputs[i] = o.maskTokenId;
    else if (u < 0.9) {
      let r = rng.int(o.vocabSize);
      while (exclude.has(r)) r = rng.int(o.vocabSize);
      inputs[i] = r;
    }
  }
  return { inputs, targets, selected };
}

/**
 * Masked-LM pretraining for encoders (BERT): masks each window with {@link maskTokens}. When the model has
 * `mlmLogitsAt`, the head runs only at the counted (selected, unmasked-by-`lossMask`) positions, ~15% of
 * the tokens; the loss is the same as over full logits (`gatherHead: false` forces the full path).
 */
export class MaskedLMObjective implements Objective<TokenBatch> {
  readonly name = "masked-lm";
  constructor(
    readonly model: MaskedLMLike,
    readonly masking: MaskingOptions,
    readonly opts: { gatherHead?: boolean } = {},
  ) {}

  loss(batch: TokenBatch, ctx: ObjectiveContext): ObjectiveResult {
    const { batchSize: b, length: l } = batch;
    const { inputs, targets } = maskTokens(batch.tokens, this.masking, ctx.rng);
    const ids = tf.tensor2d(inputs, [b, l], "int32");
    const fwd = { training: ctx.training, rng: ctx.rng };
    if (this.model.mlmLogitsAt && this.opts.gatherHead !== false) {
      const tw = targetWeights(targets, batch.lossMask);
      const positions: number[] = [];
      for (let i = 0; i < tw.weights.length; i++) if (tw.weights[i] !== 0) positions.push(i);
      if (positions.length > 0) {
        const logits = this.model.mlmLogitsAt(ids, positions, fwd); // (N, V)
        const picked = Int32Array.from(positions, (i) => targets[i]);
        const loss = crossEntropySum(logits, picked, new Float32Array(positions.length).fill(1));
        return { loss, count: tw.count };
      }
    }
    return lossOverLogits(this.model.mlmLogits(ids, fwd), targets, batch.lossMask);
  }
}

/** Padded (B, T) id matrices with their masks, for sequence-to-sequence batches. */
export interface Seq2SeqBatch {
  inputs: number[][];
  targets: number[][];
}

export interface SpanCorruptionOptions {
  /** Fraction of tokens corrupted (default 0.15). */
  noiseDensity?: number;
  /** Mean corrupted span length (default 3). */
  meanSpanLength?: number;
  /** Id of the first sentinel (<extra_id_0>); sentinel k is `firstSentinelId - k` (T5's layout). */
  firstSentinelId: number;
  eosTokenId: number;
}

function randomPartition(total: number, parts: number, rng: Random): number[] {
  // `parts` positive integers summing to `total` (parts <= total)
  const cuts = new Set<number>();
  while (cuts.size < parts - 1) cuts.add(1 + rng.int(total - 1));
  const sorted = [...cuts].sort((a, b) => a - b);
  const out: number[] = [];
  let prev = 0;
  for (const c of [...sorted, total]) {
    out.push(c - prev);
    prev = c;
  }
  return out;
}

/**
 * T5 span corruption of one sequence: about `noiseDensity` of the tokens, in spans of mean length
 * `meanSpanLength`, are each replaced by one sentinel in the input; the target lists each sentinel
 * followed by the tokens it replaced; both end with EOS.
 */
export function spanCorrupt(
  tokens: ArrayLike<number>,
  o: SpanCorruptionOptions,
  rng: Random,
): { input: number[]; target: number[] } {
  const n = tokens.length;
  const density = o.noiseDensity ?? 0.15;
  const mean = o.meanSpanLength ?? 3;
  const numNoise = Math.min(Math.max(1, Math.round(n * density)), n - 1);
  const numSpans = Math.max(1, Math.min(Math.round(numNoise / mean), numNoise, n - numNoise));
  if (n < 2) {
    throw new TypeformerError("DATA_INVALID", `span corruption needs >= 2 tokens; received ${n}`, {
      length: n,
    });
  }
  const noiseLens = randomPartition(numNoise, numSpans, rng);
  const keepLens = randomPartition(n - numNoise, numSpans, rng);
  const input: number[] = [];
  const target: number[] = [];
  let pos = 0;
  for (let s = 0; s < numSpans; s++) {
    for (let i = 0; i < keepLens[s]; i++) input.push(tokens[pos++]);
    const sentinel = o.firstSentinelId - s;
    input.push(sentinel);
    target.push(sentinel);
    for (let i = 0; i < noiseLens[s]; i++) target.push(tokens[pos++]);
  }
  input.push(o.eosTokenId);
  target.push(o.eosTokenId);
  return { input, target };
}

function pad(rows: number[][], padId: number): { ids: Int32Array; mask: Float32Array; t: number } {
  const t = Math.max(1, ...rows.map((r) => r.length));
  const ids = new Int32Array(rows.length * t).fill(padId);
  const mask = new Float32Array(rows.length * t);
  rows.forEach((r, i) => {
    for (let j = 0; j < r.length; j++) {
      ids[i * t + j] = r[j];
      mask[i * t + j] = 1;
    }
  });
  return { ids, mask, t };
}

/**
 * Supervised sequence-to-sequence pairs with teacher forcing: decoder inputs are the targets shifted
 * right behind `decoderStartTokenId`; padding never counts.
 */
export class Seq2SeqObjective implements Objective<Seq2SeqBatch> {
  readonly name: string = "seq2seq";
  constructor(
    readonly model: Seq2SeqLike,
    readonly opts: { padTokenId: number },
  ) {}

  loss(batch: Seq2SeqBatch, ctx: ObjectiveContext): ObjectiveResult {
    const b = batch.inputs.length;
    if (b === 0 || batch.targets.length !== b) {
      throw new TypeformerError(
        "DATA_INVALID",
        `seq2seq batch needs as many targets as inputs (> 0); received ${b} inputs, ${batch.targets.length} targets`,
        { inputs: b, targets: batch.targets.length },
      );
    }
    const enc = pad(batch.inputs, this.opts.padTokenId);
    const tgt = pad(batch.targets, this.opts.padTokenId);
    const dec = pad(
      batch.targets.map((r) => [this.model.decoderStartTokenId, ...r.slice(0, -1)]),
      this.opts.padTokenId,
    );
    const targets = Int32Array.from(tgt.ids);
    const { logits } = this.model.forward(
      tf.tensor2d(enc.ids, [b, enc.t], "int32"),
      tf.tensor2d(dec.ids, [b, tgt.t], "int32"),
      {
        training: ctx.training,
        rng: ctx.rng,
        attentionMask: tf.tensor2d(enc.mask, [b, enc.t], "float32"),
        decoderAttentionMask: tf.tensor2d(dec.mask, [b, tgt.t], "float32"),
      },
    );
    return lossOverLogits(logits, targets, tgt.mask);
  }
}

/** T5 pretraining: span-corrupts each token window, then trains as {@link Seq2SeqObjective}. */
export class SpanCorruptionObjective implements Objective<TokenBatch> {
  readonly name = "span-corruption";
  private readonly inner: Seq2SeqObjective;
  constructor(
    readonly model: Seq2SeqLike,
    readonly opts: SpanCorruptionOptions & { padTokenId: number },
  ) {
    this.inner = new Seq2SeqObjective(model, { padTokenId: opts.padTokenId });
  }

  loss(batch: TokenBatch, ctx: ObjectiveContext): ObjectiveResult {
    const inputs: number[][] = [];
    const targets: number[][] = [];
    for (let r = 0; r < batch.batchSize; r++) {
      const row = batch.tokens.subarray(r * batch.length, (r + 1) * batch.length);
      const { input, target } = spanCorrupt(row, this.opts, ctx.rng);
      inputs.push(input);
      targets.push(target);
    }
    return this.inner.loss({ inputs, targets }, ctx);
  }
}
