import { describeValue, Random, TypeformerError, tf } from "@typeformer/core";
import type { KVCache, RowMask } from "./kv-cache.js";
import { scaledDotProductAttention } from "./registry.js";
import { applyRotary } from "./rotary.js";
import type { AttentionOptions } from "./types.js";

export interface MultiHeadAttentionConfig {
  /** Model width (input and output features). */
  dModel: number;
  numHeads: number;
  /** Key/value heads (GQA/MQA); default numHeads. Must divide numHeads. */
  numKvHeads?: number;
  /** Per-head size; default dModel / numHeads. */
  headDim?: number;
  /** Biases on the q/k/v projections (default true). */
  qkvBias?: boolean;
  /** Bias on the output projection (default true). */
  outBias?: boolean;
  /** Causal self-attention (default true). */
  causal?: boolean;
  /** Sliding window (see AttentionOptions.window). */
  window?: number;
  /** Attention scale; default 1/sqrt(headDim) (T5 uses 1). */
  scale?: number;
  /** Rotary embedding of q and k; omit for none. */
  rope?: { theta?: number; layout?: "half" | "interleaved"; rotaryDim?: number };
  /** Attention dropout rate while training. */
  dropout?: number;
  /** Std of the normal weight init (default 0.02); biases start at 0. */
  initStd?: number;
  /** Attention implementation (see AttentionOptions.implementation). */
  implementation?: AttentionOptions["implementation"];
}

export interface MultiHeadAttentionCall {
  /** (B, Tk) key mask of the (new) tokens when no cache is used; with a cache, the new tokens' mask. */
  attentionMask?: tf.Tensor2D;
  /** Cache to append to (self-attention), with the layer index. */
  cache?: KVCache;
  layer?: number;
  /** Rotary positions (B, T) or offset; default from the cache (or 0). */
  positions?: tf.Tensor2D | number;
  /** Cross-attention: keys/values come from this (B, Tk, dModel) tensor instead of x (not causal). */
  context?: tf.Tensor3D;
  /** Additive attention bias (ALiBi, T5 relative bias). */
  bias?: tf.Tensor;
  training?: boolean;
  rng?: Random;
  returnWeights?: boolean;
}

/**
 * Multi-head (GQA/MQA-capable) attention layer: q/k/v projections, optional rotary, scaled dot-product
 * attention, output projection. Weights are tf.Variables stored (in, out), i.e. the transpose of a
 * Hugging Face `nn.Linear.weight`; `namedParameters()` names them q_proj/k_proj/v_proj/o_proj.
 */
export class MultiHeadAttention {
  readonly config: Required<Omit<MultiHeadAttentionConfig, "rope" | "window" | "scale" | "implementation">> &
    Pick<MultiHeadAttentionConfig, "rope" | "window" | "scale" | "implementation">;
  readonly qWeight: tf.Variable;
  readonly kWeight: tf.Variable;
  readonly vWeight: tf.Variable;
  readonly oWeight: tf.Variable;
  readonly qBias?: tf.Variable;
  readonly kBias?: tf.Variable;
  readonly vBias?: tf.Variable;
  readonly oBias?: tf.Variable;

  constructor(config: MultiHeadAttentionConfig, opts: { rng?: Random; seed?: number } = {}) {
    const dModel = config?.dModel;
    const numHeads = config?.numHeads;
    const check = (name: string, v: unknown, ok: boolean, exp: string) => {
      if (!ok) {
        throw new TypeformerError("INVALID_CONFIG", `${name} must be ${exp}; received ${describeValue(v)}`, {
          name,
          value: v,
        });
      }
    };
    check("dModel", dModel, Number.isInteger(dModel) && dModel > 0, "a positive integer");
    check("numHeads", numHeads, Number.isInteger(numHeads) && numHeads > 0, "a positive integer");
    const numKvHeads = config.numKvHeads ?? numHeads;
    check(
      "numKvHeads",
      numKvHeads,
      Number.isInteger(numKvHeads) && numKvHeads > 0 && numHeads % numKvHeads === 0,
      `a divisor of numHeads ${numHeads}`,
    );
    const headDim = config.headDim ?? dModel / numHeads;
    check(
      "headDim",
      headDim,
      Number.isInteger(headDim) && headDim > 0,
      `a positive integer (dModel / numHeads = ${dModel / numHeads})`,
    );
    this.config = {
      dModel,
      numHeads,
      numKvHeads,
      headDim,
      qkvBias: config.qkvBias ?? true,
      outBias: config.outBias ?? true,
      causal: config.causal ?? true,
      dropout: config.dropout ?? 0,
      initStd: config.initStd ?? 0.02,
      rope: config.rope,
      window: config.window,
      scale: config.scale,
      implementation: config.implementation,
    };
    const rng = opts.rng ?? new Random(opts.seed ?? 0);
    const std = this.config.initStd;
    const w = (rows: number, cols: number) =>
      tf.variable(tf.tensor2d(rng.normalArray(rows * cols, 0, std), [rows, cols]));
    const b = (n: number) => tf.variable(tf.zeros([n]));
    this.qWeight = w(dModel, numHeads * headDim);
    this.kWeight = w(dModel, numKvHeads * headDim);
    this.vWeight = w(dModel, numKvHeads * headDim);
    this.oWeight = w(numHeads * headDim, dModel);
    if (this.config.qkvBias) {
      this.qBias = b(numHeads * headDim);
      this.kBias = b(numKvHeads * headDim);
      this.vBias = b(numKvHeads * headDim);
    }
    if (this.config.outBias) this.oBias = b(dModel);
  }

  /** Parameters by Hugging Face-style names (weights stored (in, out)). */
  namedParameters(prefix = ""): Map<string, tf.Variable> {
    const m = new Map<string, tf.Variable>();
    const add = (name: string, v?: tf.Variable) => {
      if (v) m.set(`${prefix}${name}`, v);
    };
    add("q_proj.weight", this.qWeight);
    add("q_proj.bias", this.qBias);
    add("k_proj.weight", this.kWeight);
    add("k_proj.bias", this.kBias);
    add("v_proj.weight", this.vWeight);
    add("v_proj.bias", this.vBias);
    add("o_proj.weight", this.oWeight);
    add("o_proj.bias", this.oBias);
    return m;
  }

  /** (B, T, d) → (B, heads, T, headDim) through one 2-D product. */
  private project(x: tf.Tensor3D, w: tf.Variable, bias: tf.Variable | undefined, heads: number): tf.Tensor4D {
    const [B, T, d] = x.shape;
    let y: tf.Tensor = tf.matMul(tf.reshape(x, [B * T, d]), w);
    if (bias) y = tf.add(y, bias);
    return tf.transpose(tf.reshape(y, [B, T, heads, this.config.headDim]), [0, 2, 1, 3]);
  }

  /** x (B, T, dModel) → (B, T, dModel); with `returnWeights` also the probabilities. */
  apply(x: tf.Tensor3D, call: MultiHeadAttentionCall = {}): { output: tf.Tensor3D; weights?: tf.Tensor4D } {
    const cfg = this.config;
    if (x?.rank !== 3 || x.shape[2] !== cfg.dModel) {
      throw new TypeformerError(
        "SHAPE_MISMATCH",
        `x must be (B, T, ${cfg.dModel}); received ${describeValue(x?.shape)}`,
        {
          shape: x?.shape,
        },
      );
    }
    const [B, T] = x.shape;
    const cache = call.context ? undefined : call.cache;
    const layer = call.layer ?? 0;
    let positions = call.positions;
    let ownedPositions: tf.Tensor2D | undefined;
    if (cfg.rope && positions === undefined) {
      if (cache) {
        ownedPositions = cache.positions(T, call.attentionMask as RowMask | undefined);
        positions = ownedPositions;
      } else positions = 0;
    }
    const result = tf.tidy(() => {
      const src = call.context ?? x;
      let q = this.project(x, this.qWeight, this.qBias, cfg.numHeads);
      let k = this.project(src, this.kWeight, this.kBias, cfg.numKvHeads);
      let v = this.project(src, this.vWeight, this.vBias, cfg.numKvHeads);
      if (cfg.rope && !call.context && positions !== undefined) {
        q = applyRotary(q, { positions, ...cfg.rope });
        k = applyRotary(k, { positions, ...cfg.rope });
      }
      let keyMask = call.attentionMask;
      if (cache) {
        ({ k, v } = cache.update(layer, k, v, call.attentionMask));
        keyMask = cache.keyMask();
      }
      const { output, weights } = scaledDotProductAttention(q, k, v, {
        causal: cfg.causal && !call.context,
        window: cfg.window,
        scale: cfg.scale,
        keyMask,
        bias: call.bias,
        dropout: call.training ? cfg.dropout : 0,
        rng: call.rng,
        returnWeights: call.returnWeights,
        implementation: cfg.implementation,
      });
      const merged = tf.reshape(tf.transpose(output, [0, 2, 1, 3]), [B * T, cfg.numHeads * cfg.headDim]);
      let y: tf.Tensor = tf.matMul(merged, this.oWeight);
      if (this.oBias) y = tf.add(y, this.oBias);
      const out = tf.reshape(y, [B, T, cfg.dModel]) as tf.Tensor3D;
      return weights ? { output: out, weights } : { output: out };
    });
    ownedPositions?.dispose();
    return result;
  }

  dispose(): void {
    for (const v of this.namedParameters().values()) v.dispose();
  }
}
