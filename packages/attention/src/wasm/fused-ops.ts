import { TypeformerError, tf } from "@typeformer/core";
import { FUSED_KERNEL_NAMES } from "./fused-kernels.js";
import { instanceFor, type WasmBackendLike } from "./instance.js";

/** Whether the fused wasm kernels serve the current backend (wasm, after `registerWasmKernels`). */
export function fusedKernelsActive(): boolean {
  if (tf.getBackend() !== "wasm") return false;
  return tf.getKernel(FUSED_KERNEL_NAMES.gelu, "wasm") !== undefined;
}

const GELU_C = Math.sqrt(2 / Math.PI);

/**
 * Whether a gradient tape is recording (tf.grads / variableGrads / minimize). When none is, the fused
 * ops call their kernels directly: no customGrad scope, no reshapes (fewer tf.js ops per decode step).
 */
function recording(): boolean {
  if (!fastPaths) return true;
  const state = (tf.engine() as unknown as { state?: { gradientDepth?: number } }).state;
  return (state?.gradientDepth ?? 0) > 0;
}

let fastPaths = true;

/**
 * Turns the inference fast paths on (default) or off: direct fused-kernel calls outside gradient
 * tapes and `KVCache.attendInPlace` (the fused in-place decode attention models use). Off, the
 * models take the plain path (customGrad ops, cache concat, tf.js attention) — same numbers within
 * float32 rounding; for tests and benchmarks that compare the two.
 */
export function setInferenceFastPaths(enabled: boolean): void {
  fastPaths = enabled;
}

/** Whether the inference fast paths are on (see {@link setInferenceFastPaths}). */
export function inferenceFastPaths(): boolean {
  return fastPaths;
}

/** GELU, tanh approximation (GPT-2's `gelu_new`): one fused wasm pass forward and backward where available. */
export function gelu<T extends tf.Tensor>(x: T): T {
  if (!fusedKernelsActive() || x.dtype !== "float32") {
    return tf.tidy(() => {
      const inner = x.add(x.pow(3).mul(0.044715)).mul(GELU_C);
      return x.mul(0.5).mul(tf.tanh(inner).add(1)) as T;
    });
  }
  if (!recording()) return tf.engine().runKernel(FUSED_KERNEL_NAMES.gelu, { x }) as T;
  const f = tf.customGrad(((xi: tf.Tensor, save: tf.GradSaveFunc) => {
    const y = tf.engine().runKernel(FUSED_KERNEL_NAMES.gelu, { x: xi }) as tf.Tensor;
    save([xi]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.engine().runKernel(FUSED_KERNEL_NAMES.geluGrad, { x: saved[0], dy }) as tf.Tensor,
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (f as (x: tf.Tensor) => tf.Tensor)(x) as T;
}

/** LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta; fused on wasm. */
export function layerNorm<T extends tf.Tensor>(x: T, gamma: tf.Tensor, beta: tf.Tensor, epsilon = 1e-5): T {
  if (!fusedKernelsActive() || x.dtype !== "float32") {
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      return x
        .sub(mean)
        .mul(tf.rsqrt(variance.add(epsilon)))
        .mul(gamma)
        .add(beta) as T;
    });
  }
  if (!recording()) {
    const [y, mean, rstd] = tf
      .engine()
      .runKernel(FUSED_KERNEL_NAMES.layerNorm, { x, gamma, beta }, { epsilon }) as tf.Tensor[];
    mean.dispose();
    rstd.dispose();
    return y as T;
  }
  const f = tf.customGrad(((xi: tf.Tensor, g: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const [y, mean, rstd] = tf
      .engine()
      .runKernel(FUSED_KERNEL_NAMES.layerNorm, { x: xi, gamma: g, beta: b }, { epsilon }) as tf.Tensor[];
    save([xi, g, mean, rstd]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sg, smean, srstd] = saved;
        const [dx, dg, db] = tf.engine().runKernel(FUSED_KERNEL_NAMES.layerNormGrad, {
          x: sx,
          dy,
          gamma: sg,
          mean: smean,
          rstd: srstd,
        }) as tf.Tensor[];
        return [dx, dg.reshape(g.shape), db.reshape(b.shape)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (f as (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor)(x, gamma, beta) as T;
}

/**
 * Dense layer x (…, in) · w (in, out) + b (out): on wasm one fused kernel forward (bias added in the
 * GEMM's output pass) and, backward, two GEMMs plus one column-sum pass for the bias.
 */
export function linear<T extends tf.Tensor>(x: T, w: tf.Tensor, b?: tf.Tensor): T {
  const inDim = x.shape[x.shape.length - 1] as number;
  if (w.rank !== 2 || w.shape[0] !== inDim || (b && b.size !== w.shape[1])) {
    throw new TypeformerError(
      "SHAPE_MISMATCH",
      `linear needs x (…, ${inDim}), w (${inDim}, out), b (out); got x [${x.shape}], w [${w.shape}], b [${b?.shape}]`,
      { x: x.shape, w: w.shape, b: b?.shape },
    );
  }
  const outShape = [...x.shape.slice(0, -1), w.shape[1] as number];
  if (!fusedKernelsActive() || x.dtype !== "float32" || !b) {
    return tf.tidy(() => {
      const y = tf.matMul(x.reshape([-1, inDim]), w);
      return (b ? y.add(b) : y).reshape(outShape) as T;
    });
  }
  if (!recording() && x.rank === 2) {
    return tf
      .engine()
      .runKernel(
        "_FusedMatMul",
        { a: x, b: w, bias: b },
        { transposeA: false, transposeB: false, activation: "linear" },
      ) as T;
  }
  const f = tf.customGrad(((x2: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor, save: tf.GradSaveFunc) => {
    const y = tf
      .engine()
      .runKernel(
        "_FusedMatMul",
        { a: x2, b: wi, bias: bi },
        { transposeA: false, transposeB: false, activation: "linear" },
      ) as tf.Tensor;
    save([x2, wi]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sw] = saved;
        return [
          tf.matMul(dy, sw, false, true),
          tf.matMul(sx, dy, true, false),
          (tf.engine().runKernel(FUSED_KERNEL_NAMES.biasGrad, { dy }) as tf.Tensor).reshape(bi.shape),
        ];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return tf.tidy(() =>
    (f as (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.Tensor)(x.reshape([-1, inDim]), w, b).reshape(
      outShape,
    ),
  ) as T;
}

/**
 * Inference dense layer in one fused wasm call where the fast paths run (wasm with the kernels, no
 * gradient tape): x (N, in) · w (in, out) + b, then tanh-GELU (`gelu`) and/or + `residual` (N, out).
 * Elsewhere the same with plain tf ops (GELU in its sigmoid form, as the fused kernel).
 */
export function linearInference(
  x: tf.Tensor2D,
  w: tf.Tensor,
  b: tf.Tensor,
  opts: { gelu?: boolean; residual?: tf.Tensor2D } = {},
): tf.Tensor2D {
  if (fusedKernelsActive() && !recording() && x.dtype === "float32" && x.rank === 2) {
    const inputs: tf.NamedTensorMap = { x, w, bias: b };
    if (opts.residual) inputs.residual = opts.residual;
    return tf
      .engine()
      .runKernel(FUSED_KERNEL_NAMES.linear, inputs, { gelu: opts.gelu === true }) as tf.Tensor2D;
  }
  return tf.tidy(() => {
    let y = linear(x, w, b) as tf.Tensor;
    if (opts.gelu) y = gelu(y);
    if (opts.residual) y = tf.add(opts.residual, y);
    return y as tf.Tensor2D;
  });
}

/**
 * s = residual + (x·W + b) and its LayerNorm (gamma, beta, epsilon) — a residual projection followed
 * by the next pre-norm — in one fused wasm call where the fast paths run; elsewhere plain ops.
 * Returns [s, layerNorm(s)].
 */
export function linearAddLayerNorm(
  residual: tf.Tensor2D,
  x: tf.Tensor2D,
  w: tf.Tensor,
  b: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  epsilon = 1e-5,
): [tf.Tensor2D, tf.Tensor2D] {
  if (fusedKernelsActive() && !recording() && x.dtype === "float32" && x.rank === 2) {
    return tf
      .engine()
      .runKernel(
        FUSED_KERNEL_NAMES.linear,
        { x, w, bias: b, residual, gamma, beta },
        { gelu: false, epsilon },
      ) as [tf.Tensor2D, tf.Tensor2D];
  }
  const sum = linearInference(x, w, b, { residual });
  return [sum, layerNorm(sum, gamma, beta, epsilon)];
}

/**
 * Inference embedding in one wasm call where the fast paths run: rows table[ids] (+ posTable[positions],
 * positions default 0..T-1 per row) as (B·T, C). Returns null elsewhere (no gradient flows through
 * it): callers then use their plain lookup.
 */
export function embedInference(
  table: tf.Tensor,
  ids: tf.Tensor2D,
  pos?: { table: tf.Tensor; positions?: tf.Tensor2D },
): tf.Tensor2D | null {
  if (!fusedKernelsActive() || recording() || ids.dtype !== "int32" || table.dtype !== "float32") return null;
  const inputs: tf.NamedTensorMap = { ids, table };
  if (pos) {
    inputs.posTable = pos.table;
    if (pos.positions) inputs.positions = pos.positions;
  }
  return tf.engine().runKernel(FUSED_KERNEL_NAMES.embed, inputs) as tf.Tensor2D;
}

export interface AdamWHyper {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (applied as w *= 1 - lr * weightDecay). */
  weightDecay?: number;
  /** 1-based step count (for bias correction). */
  step: number;
}

/**
 * One AdamW update of `w` with gradient `g` and moment variables `m`, `v` (same shape as `w`). On wasm
 * with the kernels registered it is one pass: `w` is assigned a new buffer (like `assign`), `m` and `v`
 * are updated in place (when nothing else shares their memory); elsewhere it uses tf ops and `assign`.
 */
export function adamwUpdate(
  w: tf.Variable,
  g: tf.Tensor,
  m: tf.Variable,
  v: tf.Variable,
  hyper: AdamWHyper,
): void {
  const { lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0, step } = hyper;
  if (!(step >= 1))
    throw new TypeformerError("INVALID_ARGUMENT", `adamw step must be >= 1, got ${step}`, { step });
  const n = w.size;
  if (g.size !== n || m.size !== n || v.size !== n) {
    throw new TypeformerError(
      "SHAPE_MISMATCH",
      `adamw needs w, g, m, v of one size; got [${w.shape}], [${g.shape}], [${m.shape}], [${v.shape}]`,
      { w: w.shape, g: g.shape, m: m.shape, v: v.shape },
    );
  }
  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  if (fusedKernelsActive() && [w, g, m, v].every((t) => t.dtype === "float32")) {
    const be = tf.backend() as unknown as WasmBackendLike;
    const exclusive = [m, v].every((t) => be.refCount(t.dataId) === 1);
    if (exclusive && new Set([w, m, v].map((t) => t.dataId)).size === 3) {
      // w gets a new buffer, as `assign` would give it (anything keyed on w's data, e.g. a cached
      // transposed head, sees the change); m and v are the optimizer's own and change in place.
      const out = be.makeOutput([...w.shape], "float32");
      const p = (t: { dataId: object }) => be.dataIdMap.get(t.dataId).memoryOffset;
      instanceFor(be).exports.adamw(
        p(w),
        p(out),
        p(g),
        p(m),
        p(v),
        n,
        lr,
        beta1,
        beta2,
        eps,
        weightDecay,
        bc1,
        bc2,
      );
      const next = tf.engine().makeTensorFromTensorInfo(out);
      w.assign(next);
      next.dispose();
      return;
    }
  }
  tf.tidy(() => {
    const nm = m.mul(beta1).add(g.mul(1 - beta1));
    const nv = v.mul(beta2).add(g.square().mul(1 - beta2));
    const upd = nm.div(nv.div(bc2).sqrt().add(eps)).mul(lr / bc1);
    const decayed = weightDecay ? w.mul(1 - lr * weightDecay) : w;
    w.assign(decayed.sub(upd));
    m.assign(nm);
    v.assign(nv);
  });
}
