/**
 * T5 (Raffel et al. 2020), top-down: config → relative position buckets → attention (unscaled, with
 * a bias shared from the first layer) → feed-forward (ReLU or gated GELU) → encoder → decoder (self-
 * attention with a KV cache, cross-attention with reusable keys/values) → LM head. Weight names are
 * Hugging Face's `T5ForConditionalGeneration`; nn.Linear weights are kept as (in, out).
 */
import { KVCache } from "@typeformer/attention";
import { type Random, TypeformerError, tf } from "@typeformer/core";
import { attend } from "./attend.js";
import { BaseModel } from "./base.js";
import {
  activation,
  dropout,
  embed,
  linear,
  mergeHeads,
  rmsNorm,
  splitHeads,
  TransposedCache,
} from "./layers.js";
import { registerArchitecture } from "./registry.js";
import type {
  ArchitectureSpec,
  CausalLMOutput,
  EncoderForwardOptions,
  EncoderOutput,
  KVCacheLike,
  ParameterSource,
  Seq2SeqCache,
  Seq2SeqDecodeOptions,
  Seq2SeqLM,
} from "./types.js";

// ------------------------------------------------------------------------------------------ config

export interface T5Config {
  modelType: "t5";
  /** `vocab_size` (32128). */
  vocabSize: number;
  /** Residual width (`d_model`, 512). */
  hiddenSize: number;
  /** Size of each head (`d_kv`, 64); attention width = numHeads · headDim. */
  headDim: number;
  /** Feed-forward width (`d_ff`, 2048). */
  intermediateSize: number;
  /** Encoder blocks (`num_layers`, 6). */
  numLayers: number;
  /** Decoder blocks (`num_decoder_layers`); null = numLayers. */
  numDecoderLayers: number | null;
  /** `num_heads` (8). */
  numHeads: number;
  /** Relative position buckets (`relative_attention_num_buckets`, 32). */
  relativeBuckets: number;
  /** Distance beyond which all positions share a bucket (`relative_attention_max_distance`, 128). */
  relativeMaxDistance: number;
  /** `dropout_rate` (0.1): embeddings, sublayer outputs, attention probabilities. */
  dropout: number;
  /** RMS LayerNorm epsilon (`layer_norm_epsilon`, 1e-6). */
  layerNormEpsilon: number;
  /** Init scale (`initializer_factor`, 1). */
  initializerFactor: number;
  /** "relu" (T5 1.0) or "gated-gelu" (T5 1.1, Flan-T5), or "gated-<act>" (`feed_forward_proj`). */
  feedForwardProj: string;
  /** LM head = shared embedding, with outputs scaled by d_model^-0.5 (`tie_word_embeddings`, true). */
  tieWordEmbeddings: boolean;
  /** Longest sequence used for caches (`n_positions`, 512); relative positions have no hard limit. */
  maxPositions: number;
  padTokenId: number;
  eosTokenId: number;
  decoderStartTokenId: number;
}

export const T5_DEFAULTS: T5Config = {
  modelType: "t5",
  vocabSize: 32128,
  hiddenSize: 512,
  headDim: 64,
  intermediateSize: 2048,
  numLayers: 6,
  numDecoderLayers: null,
  numHeads: 8,
  relativeBuckets: 32,
  relativeMaxDistance: 128,
  dropout: 0.1,
  layerNormEpsilon: 1e-6,
  initializerFactor: 1,
  feedForwardProj: "relu",
  tieWordEmbeddings: true,
  maxPositions: 512,
  padTokenId: 0,
  eosTokenId: 1,
  decoderStartTokenId: 0,
};

export const T5_PRESETS: Record<string, Partial<T5Config>> = {
  "t5-small": {},
  "t5-base": { hiddenSize: 768, intermediateSize: 3072, numLayers: 12, numHeads: 12 },
  "t5-v1_1-small": {
    hiddenSize: 512,
    intermediateSize: 1024,
    numLayers: 8,
    numHeads: 6,
    feedForwardProj: "gated-gelu",
    tieWordEmbeddings: false,
  },
  tiny: {
    vocabSize: 97,
    hiddenSize: 32,
    headDim: 8,
    intermediateSize: 64,
    numLayers: 2,
    numHeads: 4,
    relativeBuckets: 8,
    relativeMaxDistance: 16,
  },
};

// ------------------------------------------------------------------------ relative position buckets

const f32 = Math.fround;

/**
 * HF's `_relative_position_bucket`: half the buckets for exact small distances, the rest
 * logarithmically up to `maxDistance`. `relative = key position - query position`. The log branch
 * repeats torch's float32 arithmetic step by step so bucket boundaries match exactly.
 */
export function relativePositionBucket(
  relative: number,
  bidirectional: boolean,
  numBuckets: number,
  maxDistance: number,
): number {
  let bucket = 0;
  let n = numBuckets;
  let rel = relative;
  if (bidirectional) {
    n = Math.floor(n / 2);
    if (rel > 0) bucket += n;
    rel = Math.abs(rel);
  } else {
    rel = -Math.min(rel, 0);
  }
  const maxExact = Math.floor(n / 2);
  if (rel < maxExact) return bucket + rel;
  const logRatio = f32(Math.log(f32(rel / maxExact)));
  const scaled = f32(f32(logRatio / f32(Math.log(maxDistance / maxExact))) * (n - maxExact));
  return bucket + Math.min(maxExact + Math.trunc(scaled), n - 1);
}

/** Bucket ids (Tq·Tk) for queries at positions offset..offset+Tq-1 against keys 0..Tk-1. */
function bucketTable(
  Tq: number,
  Tk: number,
  offset: number,
  bidirectional: boolean,
  c: T5Config,
): Int32Array {
  const out = new Int32Array(Tq * Tk);
  for (let i = 0; i < Tq; i++) {
    for (let j = 0; j < Tk; j++) {
      out[i * Tk + j] = relativePositionBucket(
        j - (offset + i),
        bidirectional,
        c.relativeBuckets,
        c.relativeMaxDistance,
      );
    }
  }
  return out;
}

// ----------------------------------------------------------------------------------- the model

type Ctx = { training: boolean; rng?: Random; attentions?: tf.Tensor4D[] };

/** Decoder self-attention KV cache + the cross-attention keys/values of the current encoder output. */
export class T5Cache implements Seq2SeqCache {
  cross: { k: tf.Tensor4D; v: tf.Tensor4D }[] | null = null;
  constructor(readonly self: KVCacheLike) {}

  dispose(): void {
    this.self.dispose();
    for (const c of this.cross ?? []) tf.dispose([c.k, c.v]);
    this.cross = null;
  }
}

export class T5Model extends BaseModel<T5Config> implements Seq2SeqLM<T5Config> {
  readonly family = "encoder-decoder" as const;
  readonly vocabSize: number;
  readonly decoderStartTokenId: number;
  readonly eosTokenId: number;
  readonly padTokenId: number;
  readonly numDecoderLayers: number;
  /** `n_positions`: the longest input + output served (relative positions have no hard limit). */
  readonly maxPositions: number;
  private readonly head = new TransposedCache();

  constructor(config: T5Config, values: ParameterSource) {
    super(T5_SPEC, config, values);
    this.vocabSize = config.vocabSize;
    this.decoderStartTokenId = config.decoderStartTokenId;
    this.maxPositions = config.maxPositions;
    this.eosTokenId = config.eosTokenId;
    this.padTokenId = config.padTokenId;
    this.numDecoderLayers = config.numDecoderLayers ?? config.numLayers;
  }

  private norm(x: tf.Tensor2D, name: string): tf.Tensor2D {
    return rmsNorm(x, this.p(`${name}.weight`), this.config.layerNormEpsilon);
  }

  /** (1, H, Tq, Tk) bias from the first block's bucket table (`relative_attention_bias`). */
  private positionBias(stack: "encoder" | "decoder", Tq: number, Tk: number, offset: number): tf.Tensor4D {
    const table = this.p(`${stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`); // (NB, H)
    const buckets = tf.tensor1d(bucketTable(Tq, Tk, offset, stack === "encoder", this.config), "int32");
    const values = tf.reshape(tf.gather(table, buckets), [Tq, Tk, this.config.numHeads]); // (Tq, Tk, H)
    return tf.expandDims(tf.transpose(values, [2, 0, 1]), 0) as tf.Tensor4D; // (1, H, Tq, Tk)
  }

  /** Query / key / value projections into heads: (B·T, C) → (B, H, T, Dkv). */
  private heads(x: tf.Tensor2D, w: string, B: number, T: number): tf.Tensor4D {
    return splitHeads(linear(x, this.p(w)), B, T, this.config.numHeads, this.config.headDim);
  }

  /** Unscaled multi-head attention + output projection (T5 folds the 1/√d into the init). */
  private mha(
    prefix: string,
    q: tf.Tensor4D,
    k: tf.Tensor4D,
    v: tf.Tensor4D,
    opts: { bias?: tf.Tensor; keyMask?: tf.Tensor2D; causal?: boolean },
    ctx: Ctx,
  ): tf.Tensor2D {
    const { output, weights } = attend(q, k, v, {
      ...opts,
      scale: 1,
      dropout: ctx.training ? this.config.dropout : 0,
      rng: ctx.rng,
      returnWeights: ctx.attentions !== undefined,
    });
    if (weights) ctx.attentions?.push(weights); // (B, H, Tq, Tk)
    return linear(mergeHeads(output), this.p(`${prefix}o.weight`)); // (B·T, C)
  }

  /** x + FF(norm(x)), FF = wo(act(wi x)) or wo(act(wi_0 x) · wi_1 x). */
  private feedForward(x: tf.Tensor2D, prefix: string, ctx: Ctx): tf.Tensor2D {
    const h = this.norm(x, `${prefix}layer_norm`);
    const d = `${prefix}DenseReluDense.`;
    const { gated, act } = parseFeedForward(this.config.feedForwardProj);
    const f = activation(act);
    let u = gated
      ? (tf.mul(f(linear(h, this.p(`${d}wi_0.weight`))), linear(h, this.p(`${d}wi_1.weight`))) as tf.Tensor2D)
      : (f(linear(h, this.p(`${d}wi.weight`))) as tf.Tensor2D); // (B·T, F)
    u = dropout(u, this.config.dropout, ctx.training, ctx.rng);
    const out = linear(u, this.p(`${d}wo.weight`)); // (B·T, C)
    return tf.add(x, dropout(out, this.config.dropout, ctx.training, ctx.rng));
  }

  /** The encoder stack → (B·Ts, C). */
  private runEncoder(ids: tf.Tensor2D, mask: tf.Tensor2D | undefined, ctx: Ctx): tf.Tensor2D {
    const [B, T] = checkIds(ids, "inputIds");
    const drop = (t: tf.Tensor2D) => dropout(t, this.config.dropout, ctx.training, ctx.rng);
    let x = drop(embed(this.p("shared.weight"), ids)); // (B·T, C)
    const bias = this.positionBias("encoder", T, T, 0); // (1, H, T, T), shared by every block
    for (let i = 0; i < this.config.numLayers; i++) {
      const a = `encoder.block.${i}.layer.0.`;
      const h = this.norm(x, `${a}layer_norm`);
      const s = `${a}SelfAttention.`;
      const q = this.heads(h, `${s}q.weight`, B, T);
      const k = this.heads(h, `${s}k.weight`, B, T);
      const v = this.heads(h, `${s}v.weight`, B, T);
      x = tf.add(x, drop(this.mha(s, q, k, v, { bias, keyMask: mask }, ctx)));
      x = this.feedForward(x, `encoder.block.${i}.layer.1.`, ctx);
    }
    return drop(this.norm(x, "encoder.final_layer_norm"));
  }

  encode(inputIds: tf.Tensor2D, opts: EncoderForwardOptions = {}): EncoderOutput {
    this.assertLive();
    const ctx: Ctx = { training: opts.training ?? false, rng: opts.rng };
    if (opts.outputAttentions) ctx.attentions = [];
    const hidden = tf.tidy(() => {
      const [B, T] = inputIds.shape;
      const x = this.runEncoder(inputIds, opts.attentionMask, ctx);
      for (const a of ctx.attentions ?? []) tf.keep(a);
      return tf.reshape(x, [B, T, this.config.hiddenSize]) as tf.Tensor3D; // (B, Ts, C)
    });
    return ctx.attentions ? { hidden, attentions: ctx.attentions } : { hidden };
  }

  /** Cross-attention keys/values of every decoder block for an encoder output (B, Ts, C). */
  private crossKeysValues(encoderHidden: tf.Tensor3D): { k: tf.Tensor4D; v: tf.Tensor4D }[] {
    const [B, Ts, C] = encoderHidden.shape;
    const e = tf.reshape(encoderHidden, [B * Ts, C]) as tf.Tensor2D; // (B·Ts, C)
    return Array.from({ length: this.numDecoderLayers }, (_, i) => {
      const s = `decoder.block.${i}.layer.1.EncDecAttention.`;
      return { k: this.heads(e, `${s}k.weight`, B, Ts), v: this.heads(e, `${s}v.weight`, B, Ts) }; // (B, H, Ts, Dkv)
    });
  }

  decode(
    decoderIds: tf.Tensor2D,
    encoderHidden: tf.Tensor3D | null,
    opts: Seq2SeqDecodeOptions = {},
  ): CausalLMOutput {
    return this.runDecoder(decoderIds, encoderHidden, opts);
  }

  private runDecoder(
    decoderIds: tf.Tensor2D,
    encoderHidden: tf.Tensor3D | null,
    opts: Seq2SeqDecodeOptions & { decoderAttentionMask?: tf.Tensor2D },
  ): CausalLMOutput {
    this.assertLive();
    const ctx: Ctx = { training: opts.training ?? false, rng: opts.rng };
    if (opts.outputAttentions) ctx.attentions = [];
    const cache = opts.cache;
    const logits = tf.tidy(() => {
      const [B, T] = checkIds(decoderIds, "decoderIds");
      const stored = cache?.cross;
      if (stored ? stored[0].k.shape[0] !== B : encoderHidden?.rank !== 3 || encoderHidden.shape[0] !== B) {
        throw new TypeformerError(
          "INVALID_ARGUMENT",
          stored
            ? `the cache's cross-attention keys have ${stored[0].k.shape[0]} rows; decoderIds has ${B}`
            : `encoderHidden must be (${B}, Ts, ${this.config.hiddenSize}); received ${encoderHidden ? `shape [${encoderHidden.shape}]` : "null (and no cross-attention keys in the cache)"}`,
          { shape: encoderHidden?.shape ?? null },
        );
      }
      // the encoder's keys/values are computed once per cache (encoderHidden is then not read again)
      if (cache && !cache.cross)
        cache.cross = this.crossKeysValues(encoderHidden!).map(({ k, v }) => ({
          k: tf.keep(k),
          v: tf.keep(v),
        }));
      const cross = cache?.cross ?? this.crossKeysValues(encoderHidden!);
      const drop = (t: tf.Tensor2D) => dropout(t, this.config.dropout, ctx.training, ctx.rng);
      let x = drop(embed(this.p("shared.weight"), decoderIds)); // (B·T, C)
      let bias: tf.Tensor4D | undefined;
      let keyMask = cache ? undefined : opts.decoderAttentionMask;
      for (let i = 0; i < this.numDecoderLayers; i++) {
        const a = `decoder.block.${i}.layer.`;
        const h = this.norm(x, `${a}0.layer_norm`);
        const s = `${a}0.SelfAttention.`;
        const q = this.heads(h, `${s}q.weight`, B, T); // (B, H, T, Dkv)
        let k = this.heads(h, `${s}k.weight`, B, T);
        let v = this.heads(h, `${s}v.weight`, B, T);
        if (cache) {
          ({ k, v } = cache.self.update(i, k, v)); // (B, H, Tk, Dkv)
          if (i === 0) keyMask = cache.self.keyMask();
        }
        const Tk = k.shape[2];
        bias ??= this.positionBias("decoder", T, Tk, Tk - T); // (1, H, T, Tk), queries are the last T
        x = tf.add(x, drop(this.mha(s, q, k, v, { bias, keyMask, causal: true }, ctx)));
        const hc = this.norm(x, `${a}1.layer_norm`);
        const c = `${a}1.EncDecAttention.`;
        const qc = this.heads(hc, `${c}q.weight`, B, T);
        x = tf.add(
          x,
          drop(this.mha(c, qc, cross[i].k, cross[i].v, { keyMask: opts.encoderAttentionMask }, ctx)),
        );
        x = this.feedForward(x, `${a}2.`, ctx);
      }
      x = drop(this.norm(x, "decoder.final_layer_norm"));
      let logits: tf.Tensor2D;
      if (this.config.tieWordEmbeddings) {
        const w = this.head.get(this.p("shared.weight"), ctx.training); // (C, V)
        logits = tf.matMul(tf.mul(x, this.config.hiddenSize ** -0.5), w); // rescaled before the tied head
      } else {
        logits = tf.matMul(x, this.p("lm_head.weight")); // (B·T, V)
      }
      for (const att of ctx.attentions ?? []) tf.keep(att);
      return tf.reshape(logits, [B, T, this.vocabSize]) as tf.Tensor3D; // (B, T, V)
    });
    return ctx.attentions ? { logits, attentions: ctx.attentions } : { logits };
  }

  forward(
    inputIds: tf.Tensor2D,
    decoderIds: tf.Tensor2D,
    opts: EncoderForwardOptions & { decoderAttentionMask?: tf.Tensor2D } = {},
  ): CausalLMOutput {
    const { hidden } = this.encode(inputIds, { ...opts, outputAttentions: false });
    try {
      return this.runDecoder(decoderIds, hidden, { ...opts, encoderAttentionMask: opts.attentionMask });
    } finally {
      hidden.dispose();
    }
  }

  createCache(batch: number, maxLength: number): T5Cache {
    const self = new KVCache({
      numLayers: this.numDecoderLayers,
      batch,
      numKvHeads: this.config.numHeads,
      headDim: this.config.headDim,
      maxLength,
    });
    return new T5Cache(self as unknown as KVCacheLike);
  }

  protected override disposeCaches(): void {
    this.head.dispose();
  }
}

function checkIds(ids: tf.Tensor2D, name: string): [number, number] {
  if (!(ids instanceof tf.Tensor) || ids.rank !== 2 || ids.size === 0) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `${name} must be a non-empty (B, T) int32 tensor; received ${ids instanceof tf.Tensor ? `shape [${ids.shape}]` : typeof ids}`,
      { name },
    );
  }
  return [ids.shape[0], ids.shape[1]];
}

/** "relu" → plain ReLU; "gated-gelu" → gated GELU-tanh (HF maps it to gelu_new); "gated-X" → gated X. */
export function parseFeedForward(proj: string): { gated: boolean; act: string } {
  const parts = proj.split("-");
  const gated = parts[0] === "gated";
  if ((gated && parts.length !== 2) || (!gated && parts.length !== 1)) {
    throw new TypeformerError(
      "INVALID_CONFIG",
      `feed_forward_proj must be "<act>" or "gated-<act>"; received ${JSON.stringify(proj)}`,
      { feedForwardProj: proj },
    );
  }
  const act = parts[parts.length - 1];
  return { gated, act: proj === "gated-gelu" ? "gelu_new" : act };
}

// ------------------------------------------------------------------------------- registration

export const T5_SPEC: ArchitectureSpec<T5Config> = {
  modelType: "t5",
  family: "encoder-decoder",
  defaults: T5_DEFAULTS,
  presets: T5_PRESETS,
  fields: [
    { key: "vocabSize", hf: "vocab_size", type: "integer" },
    { key: "hiddenSize", hf: "d_model", type: "integer" },
    { key: "headDim", hf: "d_kv", type: "integer" },
    { key: "intermediateSize", hf: "d_ff", type: "integer" },
    { key: "numLayers", hf: "num_layers", type: "integer" },
    { key: "numDecoderLayers", hf: "num_decoder_layers", type: "integer|null" },
    { key: "numHeads", hf: "num_heads", type: "integer" },
    { key: "relativeBuckets", hf: "relative_attention_num_buckets", type: "integer" },
    { key: "relativeMaxDistance", hf: "relative_attention_max_distance", type: "integer" },
    { key: "dropout", hf: "dropout_rate", type: "number" },
    { key: "layerNormEpsilon", hf: "layer_norm_epsilon", type: "number" },
    { key: "initializerFactor", hf: "initializer_factor", type: "number" },
    { key: "feedForwardProj", hf: "feed_forward_proj", type: "string" },
    { key: "tieWordEmbeddings", hf: "tie_word_embeddings", type: "boolean" },
    { key: "maxPositions", hf: "n_positions", type: "integer" },
    { key: "padTokenId", hf: "pad_token_id", type: "integer" },
    { key: "eosTokenId", hf: "eos_token_id", type: "integer" },
    { key: "decoderStartTokenId", hf: "decoder_start_token_id", type: "integer" },
  ],
  hfExtras: (c) => {
    const { gated, act } = parseFeedForward(c.feedForwardProj);
    return {
      architectures: ["T5ForConditionalGeneration"],
      num_decoder_layers: c.numDecoderLayers ?? c.numLayers,
      dense_act_fn: act,
      is_gated_act: gated,
      is_encoder_decoder: true,
      use_cache: true,
      classifier_dropout: 0.0,
    };
  },
  validate(c) {
    activation(parseFeedForward(c.feedForwardProj).act);
  },
  parameterShapes(c) {
    const { hiddenSize: C, intermediateSize: F } = c;
    const inner = c.numHeads * c.headDim;
    const { gated } = parseFeedForward(c.feedForwardProj);
    const m = new Map<string, number[]>([["shared.weight", [c.vocabSize, C]]]);
    const attn = (p: string, bias: boolean) => {
      for (const n of ["q", "k", "v"]) m.set(`${p}${n}.weight`, [C, inner]); // (in, out)
      m.set(`${p}o.weight`, [inner, C]);
      if (bias) m.set(`${p}relative_attention_bias.weight`, [c.relativeBuckets, c.numHeads]);
    };
    const ff = (p: string) => {
      if (gated)
        m.set(`${p}DenseReluDense.wi_0.weight`, [C, F]).set(`${p}DenseReluDense.wi_1.weight`, [C, F]);
      else m.set(`${p}DenseReluDense.wi.weight`, [C, F]);
      m.set(`${p}DenseReluDense.wo.weight`, [F, C]).set(`${p}layer_norm.weight`, [C]);
    };
    for (let i = 0; i < c.numLayers; i++) {
      const b = `encoder.block.${i}.layer.`;
      attn(`${b}0.SelfAttention.`, i === 0);
      m.set(`${b}0.layer_norm.weight`, [C]);
      ff(`${b}1.`);
    }
    m.set("encoder.final_layer_norm.weight", [C]);
    for (let i = 0; i < (c.numDecoderLayers ?? c.numLayers); i++) {
      const b = `decoder.block.${i}.layer.`;
      attn(`${b}0.SelfAttention.`, i === 0);
      m.set(`${b}0.layer_norm.weight`, [C]);
      attn(`${b}1.EncDecAttention.`, false);
      m.set(`${b}1.layer_norm.weight`, [C]);
      ff(`${b}2.`);
    }
    m.set("decoder.final_layer_norm.weight", [C]);
    if (!c.tieWordEmbeddings) m.set("lm_head.weight", [C, c.vocabSize]);
    return m;
  },
  hfTranspose: (name) => /\.(q|k|v|o|wi|wi_0|wi_1|wo)\.weight$|^lm_head\.weight$/.test(name),
  mapCheckpointName(name, c) {
    if (name === "encoder.embed_tokens.weight" || name === "decoder.embed_tokens.weight") return null; // tied to shared
    if (name === "lm_head.weight") return c.tieWordEmbeddings ? null : name;
    if (/^decoder\.block\.\d+\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight$/.test(name))
      return null; // unused
    return /^(shared|encoder|decoder)\./.test(name) ? name : undefined;
  },
  create: (config, values) => new T5Model(config, values),
  init(name, shape, c, rng) {
    // HF's T5 init: factor·d^-0.5 for q/k/v/embeddings, with q also ·d_kv^-0.5; o by inner^-0.5
    const n = shape.reduce((a, b) => a * b, 1);
    const f = c.initializerFactor;
    if (/layer_norm\.weight$/.test(name)) return new Float32Array(n).fill(f);
    const C = c.hiddenSize;
    let std = f * C ** -0.5;
    if (/\.q\.weight$/.test(name)) std = f * (C * c.headDim) ** -0.5;
    else if (/\.o\.weight$/.test(name)) std = f * (c.numHeads * c.headDim) ** -0.5;
    else if (/\.wo\.weight$/.test(name)) std = f * c.intermediateSize ** -0.5;
    else if (/shared\.weight$/.test(name)) std = f;
    return rng.normalArray(n, 0, std);
  },
  attentionFlopsPerToken: (c, T) =>
    4 * (c.numLayers + 2 * (c.numDecoderLayers ?? c.numLayers)) * c.numHeads * c.headDim * T,
};

registerArchitecture(T5_SPEC);
