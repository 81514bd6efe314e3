import {
  gelu as fusedGelu,
  fusedKernelsActive,
  layerNorm as fusedLayerNorm,
  linear as fusedLinear,
  linearAddLayerNorm,
  linearInference,
} from "@typeformer/attention";
import { type Random, TypeformerError, tf } from "@typeformer/core";

/**
 * The small building blocks every architecture file uses. Activations live as (N, C) 2-D tensors
 * between blocks (N = B·T), so every dense layer is one plain 2-D matMul (N, C) × (C, out): the fast
 * path of tf.js's wasm backend. When @typeformer/attention's wasm kernels are registered
 * (`registerWasmKernels()`), dense layers with a bias, LayerNorm and GELU-tanh run as its fused
 * kernels (one pass forward and backward); otherwise as the plain tf.js ops below.
 */

/**
 * A hook on one linear layer, keyed by its weight variable: receives the layer's input x (N, in) and
 * output y (N, out) and returns the output to use (e.g. y + LoRA's x·A·B·s). Used by fine-tuning.
 */
export type LinearHook = (x: tf.Tensor2D, y: tf.Tensor2D) => tf.Tensor2D;

const linearHooks = new WeakMap<object, LinearHook>();

/**
 * Installs (or, with `null`, removes) a hook on the linear layer whose weight is `weight` (a variable
 * from `namedParameters()`). Every architecture's dense layers go through {@link linear}, so a hook
 * sees that layer's input and output on every forward pass.
 */
export function setLinearHook(weight: tf.Variable, hook: LinearHook | null): void {
  if (hook) linearHooks.set(weight, hook);
  else linearHooks.delete(weight);
}

/** Whether a hook is installed on the linear layer of `weight` (fused paths must then not bypass it). */
export function hasLinearHook(weight: tf.Tensor): boolean {
  return linearHooks.has(weight);
}

/** y = x·W (+ b). x (N, in), W (in, out), b (out) → (N, out). */
export function linear(x: tf.Tensor2D, w: tf.Tensor, b?: tf.Tensor): tf.Tensor2D {
  let y: tf.Tensor2D;
  if (b && fusedKernelsActive()) y = fusedLinear(x, w, b);
  else {
    const y0 = tf.matMul(x, w as tf.Tensor2D) as tf.Tensor2D;
    y = b ? (tf.add(y0, b) as tf.Tensor2D) : y0;
  }
  const hook = linearHooks.get(w);
  return hook ? hook(x, y) : y;
}

/**
 * residual + (x·W + b): on wasm with the kernels and outside gradient tapes one fused call (the
 * residual added in the GEMM's output pass); else (or with a hook on W) `residual + linear(x, W, b)`.
 * No dropout: for inference.
 */
export function linearAdd(residual: tf.Tensor2D, x: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor): tf.Tensor2D {
  if (!linearHooks.has(w) && fusedKernelsActive()) return linearInference(x, w, b, { residual });
  return tf.add(residual, linear(x, w, b)) as tf.Tensor2D;
}

/**
 * [s, layerNorm(s)] with s = residual + (x·W + b): a residual projection and the next pre-norm, one
 * fused call like {@link linearAdd}. For inference.
 */
export function linearAddNorm(
  residual: tf.Tensor2D,
  x: tf.Tensor2D,
  w: tf.Tensor,
  b: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  eps: number,
): [tf.Tensor2D, tf.Tensor2D] {
  if (!linearHooks.has(w) && fusedKernelsActive())
    return linearAddLayerNorm(residual, x, w, b, gamma, beta, eps);
  const sum = linearAdd(residual, x, w, b);
  return [sum, layerNorm(sum, gamma, beta, eps)];
}

/** geluTanh(x·W + b), fused like {@link linearAdd}. */
export function linearGelu(x: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor): tf.Tensor2D {
  if (!linearHooks.has(w) && fusedKernelsActive()) return linearInference(x, w, b, { gelu: true });
  return geluTanh(linear(x, w, b)) as tf.Tensor2D;
}

/** LayerNorm over the last axis: (x - mean) / sqrt(var + eps) · w + b. */
export function layerNorm(x: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor, eps: number): tf.Tensor2D {
  if (fusedKernelsActive()) return fusedLayerNorm(x, w, b, eps);
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const variance = tf.mean(tf.square(xc), -1, true);
  return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, eps))), w), b) as tf.Tensor2D;
}

/** RMSNorm (Llama) / T5LayerNorm: x / sqrt(mean(x²) + eps) · w, no mean subtraction, no bias. */
export function rmsNorm(x: tf.Tensor2D, w: tf.Tensor, eps: number): tf.Tensor2D {
  const ms = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), w) as tf.Tensor2D;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * GELU, tanh approximation ("gelu_new", "gelu_pytorch_tanh"): GPT-2, T5 v1.1.
 * 0.5·x·(1 + tanh(u)) computed as x·σ(2u) (the same function): tf.js wasm's Sigmoid kernel is ~8×
 * faster than its Tanh, and x³ as x·x·x avoids the slow Pow.
 */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  if (fusedKernelsActive()) return fusedGelu(x);
  const u = tf.mul(tf.add(x, tf.mul(tf.mul(tf.mul(x, x), x), 0.044715)), 2 * SQRT_2_OVER_PI);
  return tf.mul(x, tf.sigmoid(u));
}

/** GELU, exact ("gelu"): 0.5·x·(1 + erf(x/√2)). BERT. */
export function geluErf(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

/** SiLU / swish: x·σ(x). Llama's gate. */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

export type ActivationName =
  | "gelu_new"
  | "gelu_pytorch_tanh"
  | "gelu_fast"
  | "gelu"
  | "relu"
  | "silu"
  | "swish";

export const ACTIVATIONS: Record<string, (x: tf.Tensor) => tf.Tensor> = {
  gelu_new: geluTanh,
  gelu_pytorch_tanh: geluTanh,
  gelu_fast: geluTanh,
  gelu: geluErf,
  relu: (x) => tf.relu(x),
  silu,
  swish: silu,
};

/** The activation function for an HF `hidden_act` / `activation_function` name (typed error otherwise). */
export function activation(name: string): (x: tf.Tensor) => tf.Tensor {
  const f = ACTIVATIONS[name];
  if (!f) {
    throw new TypeformerError(
      "INVALID_CONFIG",
      `unsupported activation ${JSON.stringify(name)}; supported: ${Object.keys(ACTIVATIONS).join(", ")}`,
      { activation: name },
    );
  }
  return f;
}

/**
 * Inverted dropout with a seeded mask: zeroes elements with probability `rate` and scales the rest
 * by 1/(1 - rate). Identity unless `training` and rate > 0.
 */
export function dropout<T extends tf.Tensor>(x: T, rate: number, training: boolean, rng?: Random): T {
  if (!training || rate <= 0) return x;
  if (!rng) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `dropout ${rate} while training needs an rng; received undefined`,
      {
        rate,
      },
    );
  }
  const keep = tf.cast(
    tf.greaterEqual(tf.randomUniform(x.shape, 0, 1, "float32", rng.nextUint32()), rate),
    "float32",
  );
  return tf.mul(x, tf.mul(keep, 1 / (1 - rate))) as T;
}

/**
 * Tables up to this many rows are looked up as oneHot(ids)·table (exact, one fast GEMM) instead of
 * tf.gather, whose wasm kernel costs ~0.1 µs per gathered element (FACTS: slow copies on wasm).
 */
export const ONE_HOT_EMBEDDING_MAX_ROWS = 2048;

/** Rows of an embedding table: table (V, C), ids (B, T) → (B·T, C). */
export function embed(table: tf.Tensor, ids: tf.Tensor): tf.Tensor2D {
  const flat = tf.cast(tf.reshape(ids, [-1]), "int32") as tf.Tensor1D; // (B·T)
  const rows = table.shape[0] as number;
  if (rows <= ONE_HOT_EMBEDDING_MAX_ROWS) {
    // int32 oneHot + cast: tf.js wasm's OneHot writes integer bits into a float32 output (tfjs 4.22)
    const oneHot = tf.cast(tf.oneHot(flat, rows), "float32") as tf.Tensor2D; // (B·T, V)
    return tf.matMul(oneHot, table as tf.Tensor2D) as tf.Tensor2D; // (B·T, C)
  }
  return tf.gather(table as tf.Tensor2D, flat) as tf.Tensor2D; // (B·T, C)
}

/** (B·T, H·D) → (B, H, T, D) */
export function splitHeads(x: tf.Tensor2D, B: number, T: number, H: number, D: number): tf.Tensor4D {
  return tf.transpose(tf.reshape(x, [B, T, H, D]), [0, 2, 1, 3]) as tf.Tensor4D; // (B, H, T, D)
}

/** (B, H, T, D) → (B·T, H·D) */
export function mergeHeads(x: tf.Tensor4D): tf.Tensor2D {
  const [B, H, T, D] = x.shape;
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [B * T, H * D]) as tf.Tensor2D; // (B·T, H·D)
}

/**
 * Position ids for a batch: with a (B, T) padding mask, each row counts from its first real token
 * (cumsum(mask) - 1, clamped at 0, as HF's generate does for left padding); else 0..T-1 + offset.
 */
export function positionIds(B: number, T: number, mask?: tf.Tensor2D, offset = 0): tf.Tensor2D {
  if (mask) {
    return tf.maximum(tf.sub(tf.cumsum(tf.cast(mask, "int32"), 1), 1), 0) as tf.Tensor2D;
  }
  return tf.tile(tf.reshape(tf.range(offset, offset + T, 1, "int32"), [1, T]), [B, 1]) as tf.Tensor2D;
}

/**
 * A transposed copy of a tied embedding table for the LM head, `(V, C)` → `(C, V)`, so the head is
 * an untransposed matMul. Kept between inference calls while the variable's data is unchanged
 * (`assign` swaps the data id, which drops the copy); training, and any call under a gradient tape
 * (`tf.grads`/`variableGrads`/`minimize`, even with `training: false`), recomputes it so gradients
 * reach the embedding.
 */
export class TransposedCache {
  private copy: tf.Tensor2D | null = null;
  private source: object | null = null;

  get(v: tf.Variable, training: boolean): tf.Tensor2D {
    if (training || recordingGradients()) return tf.transpose(v) as tf.Tensor2D;
    if (this.copy === null || this.source !== v.dataId || this.copy.isDisposed) {
      this.dispose();
      this.copy = tf.keep(tf.transpose(v) as tf.Tensor2D);
      this.source = v.dataId;
    }
    return this.copy;
  }

  dispose(): void {
    if (this.copy && !this.copy.isDisposed) this.copy.dispose();
    this.copy = null;
    this.source = null;
  }
}

/** Whether a gradient tape is recording (tf.grads / variableGrads / optimizer.minimize). */
function recordingGradients(): boolean {
  const state = (tf.engine() as unknown as { state?: { gradientDepth?: number } }).state;
  return (state?.gradientDepth ?? 0) > 0;
}
