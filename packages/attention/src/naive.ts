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

/** Sums x over the axes where `shape` (right-aligned, rank ≤ 4) broadcasts, and reshapes to it. */
function reduceToShape(x: tf.Tensor, shape: number[]): tf.Tensor {
  const s4 = [...new Array(4 - shape.length).fill(1), ...shape];
  const axes: number[] = [];
  for (let a = 0; a < 4; a++) if (s4[a] === 1 && x.shape[a] !== 1) axes.push(a);
  return tf.reshape(axes.length ? tf.sum(x, axes, true) : x, shape);
}

/**
 * The textbook path: scores = q·kᵀ·scale + masks + bias, softmax, dropout, ·v. Forms (B, H, Tq, Tk).
 * Its gradient is written out (dS = P ⊙ (dP − rowsum(dO ⊙ O))), so only the probabilities are kept
 * for the backward pass instead of every intermediate (B, H, Tq, Tk) tensor autodiff would hold.
 * `weights` are the probabilities as a plain tensor (no gradient flows back through them).
 */
export function naiveAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  opts: AttentionOptions = {},
): AttentionResult {
  const dims = attentionDims(q, k, v, opts);
  const { B, H, Hkv, G, Tq, Tk, D, Dv } = dims;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const dropout = opts.dropout ?? 0;
  const keep =
    dropout > 0 && opts.rng
      ? dropoutMultipliers(dropoutSeed(opts.rng), dropout, dims, 0, Tq, 0, Tk)
      : undefined;
  const bias = opts.bias;
  const biasShape = bias?.shape;
  let weights: tf.Tensor4D | undefined;
  const free = (x: tf.Tensor, y: tf.Tensor): tf.Tensor => {
    x.dispose();
    return y;
  };
  // a reshape shares its input's data: dispose the input so the data goes with the reshaped tensor
  // reshapes only where GQA needs them: a reshape shares data but tf.memory() counts it again, so
  // the owned variant disposes its input right away
  const view = (x: tf.Tensor, shape: number[]): tf.Tensor =>
    G === 1 && x.rank === shape.length ? x : tf.reshape(x, shape);
  const viewOwned = (x: tf.Tensor, shape: number[]): tf.Tensor => {
    const y = view(x, shape);
    if (y !== x) x.dispose();
    return y;
  };
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [qi, ki, vi] = args as tf.Tensor4D[];
    const bi = bias ? (args[3] as tf.Tensor) : undefined;
    const save = args[bias ? 4 : 3] as tf.GradSaveFunc;
    // scale the smaller of q and the scores
    const scaleQ = scale !== 1 && D <= Tk;
    const qs = scaleQ ? tf.mul(qi, scale) : qi;
    let s = viewOwned(tf.matMul(view(qs, [B, Hkv, G * Tq, D]), ki, false, true), [B, H, Tq, Tk]);
    if (scale !== 1 && !scaleQ) s = free(s, tf.mul(s, scale));
    const masks = buildMasks(dims, opts);
    if (masks.additive) s = free(s, tf.add(s, masks.additive));
    if (bi) s = free(s, tf.add(s, bi));
    let p = free(s, tf.softmax(s));
    if (masks.visible) p = free(p, tf.mul(p, masks.visible));
    tf.dispose([masks.additive, masks.visible] as tf.Tensor[]);
    const pd = keep ? tf.mul(p, tf.tensor4d(keep, [B, H, Tq, Tk])) : p;
    const out = viewOwned(tf.matMul(view(pd, [B, Hkv, G * Tq, Tk]), vi), [B, H, Tq, Dv]) as tf.Tensor4D;
    if (opts.returnWeights) weights = tf.keep(tf.clone(p)) as tf.Tensor4D;
    save([qi, ki, vi, p, out]);
    return {
      value: out,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [sq, sk, sv, sp, so] = saved;
          const keepT = keep ? tf.tensor4d(keep, [B, H, Tq, Tk]) : undefined;
          const dO = view(dy, [B, Hkv, G * Tq, Dv]);
          const spd = keepT ? tf.mul(sp, keepT) : sp;
          const dv = tf.matMul(view(spd, [B, Hkv, G * Tq, Tk]), dO, true, false);
          if (spd !== sp) spd.dispose();
          // dP = dO·vᵀ (⊙ dropout), dS = P ⊙ (dP − rowsum(dO ⊙ O))
          let dP = viewOwned(tf.matMul(dO, sv, false, true), [B, H, Tq, Tk]);
          if (keepT) dP = free(dP, tf.mul(dP, keepT));
          const rowDot = tf.sum(tf.mul(dy, so), 3, true);
          dP = free(dP, tf.sub(dP, rowDot));
          const dS = free(dP, tf.mul(sp, dP));
          const dS3 = view(dS, [B, Hkv, G * Tq, Tk]);
          const dq = tf.mul(viewOwned(tf.matMul(dS3, sk), [B, H, Tq, D]), scale);
          const dk = tf.mul(tf.matMul(dS3, view(sq, [B, Hkv, G * Tq, D]), true, false), scale);
          const grads: tf.Tensor[] = [dq, dk, dv];
          if (biasShape) grads.push(reduceToShape(dS, biasShape));
          return grads;
        }),
    };
  });
  const inputs: tf.Tensor[] = bias ? [q, k, v, bias] : [q, k, v];
  const output = f(...inputs) as tf.Tensor4D;
  if (!weights) return { output };
  // a clone made here belongs to the caller's scope (tf.tidy), unlike the one kept out of the forward
  const kept: tf.Tensor4D = weights;
  const mine = tf.clone(kept);
  kept.dispose();
  return { output, weights: mine };
}

export const naiveImplementation: AttentionImplementation = {
  name: "naive",
  sdpa: naiveAttention,
  supports: () => true,
  autoPriority: 0,
};
