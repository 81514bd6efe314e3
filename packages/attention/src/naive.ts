import { tf } from "@typeformer/core";
import { dropoutMultipliers, dropoutSeed } from "./dropout.js";
import type { AttentionImplementation, AttentionOptions, AttentionResult } from "./types.js";
import { type AttentionDims, attentionDims, NEG_INF, staticVisibility } from "./validate.js";

/** Masks of one call as tensors: additive (0 / -1e30) and, where rows can be fully masked, 0/1. */
export interface MaskTensors {
  /** Broadcastable to (B, 1, Tq, Tk); undefined when nothing is masked. */
  additive?: tf.Tensor;
  /** 0/1 multiplier for the probabilities, set only when some query row may see no key at all. */
  visible?: tf.Tensor;
}

/** Builds the masks of a call (static causal/window part from sizes, key mask from the tensor). */
export function buildMasks(dims: AttentionDims, opts: AttentionOptions): MaskTensors {
  const { B, Tq, Tk } = dims;
  const causal = opts.causal === true;
  const off = Tk - Tq;
  const vis = staticVisibility(0, Tq, 0, Tk, off, causal, opts.window);
  const staticVis = vis ? tf.tensor2d(vis, [Tq, Tk]) : undefined;
  const keyVis = opts.keyMask
    ? tf.tidy(() =>
        tf.reshape(tf.cast(tf.notEqual(opts.keyMask as tf.Tensor2D, 0), "float32"), [B, 1, 1, Tk]),
      )
    : undefined;
  let visible: tf.Tensor | undefined;
  if (staticVis && keyVis) visible = tf.mul(staticVis, keyVis);
  else visible = staticVis ?? keyVis;
  if (staticVis && keyVis) {
    staticVis.dispose();
    keyVis.dispose();
  }
  if (!visible) return {};
  const additive = tf.tidy(() => tf.mul(tf.sub(1, visible as tf.Tensor), NEG_INF));
  // rows can only be fully masked by a key mask, or by causal/window when Tq > Tk
  const rowsCanBeEmpty = opts.keyMask !== undefined || ((causal || opts.window !== undefined) && Tq > Tk);
  if (!rowsCanBeEmpty) {
    visible.dispose();
    return { additive };
  }
  return { additive, visible };
}

/** Applies a (B, Hkv, Tk, ·) tensor to (B, H, Tq, Tk) weights, without repeating it for GQA. */
function weightedSum(p: tf.Tensor4D, v: tf.Tensor4D, dims: AttentionDims): tf.Tensor4D {
  const { B, H, Hkv, G, Tq, Tk, Dv } = dims;
  if (G === 1) return tf.matMul(p, v);
  return tf.reshape(tf.matMul(tf.reshape(p, [B, Hkv, G * Tq, Tk]), v), [B, H, Tq, Dv]);
}

/** The textbook path: scores = q·kᵀ, masks and bias, softmax, dropout, ·v. Forms (B, H, Tq, Tk). */
export function naiveAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  opts: AttentionOptions = {},
): AttentionResult {
  const dims = attentionDims(q, k, v, opts);
  const { B, H, Hkv, G, Tq, Tk, D } = dims;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const dropout = opts.dropout ?? 0;
  const keep =
    dropout > 0 && opts.rng
      ? dropoutMultipliers(dropoutSeed(opts.rng), dropout, dims, 0, Tq, 0, Tk)
      : undefined;
  return tf.tidy(() => {
    // scale the smaller of q and the scores
    const scaleQ = scale !== 1 && D <= Tk;
    const qs = scaleQ ? tf.mul(q, scale) : q;
    let s: tf.Tensor4D =
      G === 1
        ? tf.matMul(qs, k, false, true)
        : tf.reshape(tf.matMul(tf.reshape(qs, [B, Hkv, G * Tq, D]), k, false, true), [B, H, Tq, Tk]);
    if (scale !== 1 && !scaleQ) s = tf.mul(s, scale);
    const masks = buildMasks(dims, opts);
    if (masks.additive) s = tf.add(s, masks.additive);
    if (opts.bias) s = tf.add(s, opts.bias);
    let p = tf.softmax(s) as tf.Tensor4D;
    if (masks.visible) p = tf.mul(p, masks.visible) as tf.Tensor4D;
    const pd = keep ? (tf.mul(p, tf.tensor4d(keep, [B, H, Tq, Tk])) as tf.Tensor4D) : p;
    const output = weightedSum(pd, v, dims);
    return opts.returnWeights ? { output, weights: p } : { output };
  });
}

export const naiveImplementation: AttentionImplementation = {
  name: "naive",
  sdpa: naiveAttention,
  supports: () => true,
  autoPriority: 0,
};
