import { TypeformerError, type tf } from "@typeformer/core";
import { instanceFor, type WasmBackendLike } from "./instance.js";

/** Kernel names of Typeformer's fused wasm ops (registered by `registerWasmKernels`). */
export const FUSED_KERNEL_NAMES = {
  gelu: "TypeformerGelu",
  geluGrad: "TypeformerGeluGrad",
  layerNorm: "TypeformerLayerNorm",
  layerNormGrad: "TypeformerLayerNormGrad",
  biasGrad: "TypeformerBiasGrad",
  decodeAttention: "TypeformerDecodeAttention",
  linear: "TypeformerLinear",
  embed: "TypeformerEmbed",
} as const;

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function f32(name: string, t: tf.TensorInfo | undefined): tf.TensorInfo {
  if (t?.dtype !== "float32") {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `${name} must be a float32 tensor, got ${t ? t.dtype : "nothing"}`,
      {
        name,
      },
    );
  }
  return t;
}

type Args = Parameters<tf.KernelFunc>[0];
const ptr = (be: WasmBackendLike, t: tf.TensorInfo) => be.dataIdMap.get(t.dataId).memoryOffset;

const geluKernel: tf.KernelFunc = ({ inputs, backend }: Args) => {
  const be = backend as unknown as WasmBackendLike;
  const x = f32("gelu input", inputs.x);
  const y = be.makeOutput(x.shape, "float32");
  const n = size(x.shape);
  if (n > 0) instanceFor(be).exports.geluForward(ptr(be, x), ptr(be, y), n);
  return y;
};

const geluGradKernel: tf.KernelFunc = ({ inputs, backend }: Args) => {
  const be = backend as unknown as WasmBackendLike;
  const x = f32("gelu input", inputs.x);
  const dy = f32("gelu gradient", inputs.dy);
  const dx = be.makeOutput(x.shape, "float32");
  const n = size(x.shape);
  if (n > 0) instanceFor(be).exports.geluBackward(ptr(be, x), ptr(be, dy), ptr(be, dx), n);
  return dx;
};

function rowsOf(x: tf.TensorInfo, gamma: tf.TensorInfo): { rows: number; d: number } {
  const d = x.shape[x.shape.length - 1] ?? 1;
  if (size(gamma.shape) !== d) {
    throw new TypeformerError(
      "SHAPE_MISMATCH",
      `layerNorm gamma/beta need ${d} elements (last dim of x [${x.shape}]), got shape [${gamma.shape}]`,
      { x: x.shape, gamma: gamma.shape },
    );
  }
  return { rows: d === 0 ? 0 : size(x.shape) / d, d };
}

const layerNormKernel: tf.KernelFunc = ({ inputs, backend, attrs }: Args) => {
  const be = backend as unknown as WasmBackendLike;
  const x = f32("layerNorm input", inputs.x);
  const gamma = f32("layerNorm gamma", inputs.gamma);
  const beta = f32("layerNorm beta", inputs.beta);
  rowsOf(x, beta);
  const { rows, d } = rowsOf(x, gamma);
  const eps = (attrs as { epsilon?: number }).epsilon ?? 1e-5;
  const y = be.makeOutput(x.shape, "float32");
  const mean = be.makeOutput(x.shape.slice(0, -1), "float32");
  const rstd = be.makeOutput(x.shape.slice(0, -1), "float32");
  if (rows > 0)
    instanceFor(be).exports.layerNormForward(
      ptr(be, x),
      ptr(be, gamma),
      ptr(be, beta),
      ptr(be, y),
      ptr(be, mean),
      ptr(be, rstd),
      rows,
      d,
      eps,
    );
  return [y, mean, rstd];
};

const layerNormGradKernel: tf.KernelFunc = ({ inputs, backend }: Args) => {
  const be = backend as unknown as WasmBackendLike;
  const x = f32("layerNorm input", inputs.x);
  const dy = f32("layerNorm gradient", inputs.dy);
  const gamma = f32("layerNorm gamma", inputs.gamma);
  const mean = f32("layerNorm mean", inputs.mean);
  const rstd = f32("layerNorm rstd", inputs.rstd);
  const { rows, d } = rowsOf(x, gamma);
  const dx = be.makeOutput(x.shape, "float32");
  const dg = be.makeOutput(gamma.shape, "float32");
  const db = be.makeOutput(gamma.shape, "float32");
  instanceFor(be).exports.layerNormBackward(
    ptr(be, x),
    ptr(be, dy),
    ptr(be, gamma),
    ptr(be, mean),
    ptr(be, rstd),
    ptr(be, dx),
    ptr(be, dg),
    ptr(be, db),
    rows,
    d,
  );
  return [dx, dg, db];
};

/** Sum of dy (…, n) over every axis but the last: the gradient of a bias. */
const biasGradKernel: tf.KernelFunc = ({ inputs, backend }: Args) => {
  const be = backend as unknown as WasmBackendLike;
  const dy = f32("bias gradient", inputs.dy);
  const n = dy.shape[dy.shape.length - 1] ?? 1;
  const out = be.makeOutput([n], "float32");
  const rows = n === 0 ? 0 : size(dy.shape) / n;
  instanceFor(be).exports.columnSum(ptr(be, dy), ptr(be, out), rows, n);
  return out;
};

type MatMul = (
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  ta: boolean,
  tb: boolean,
  be: WasmBackendLike,
) => tf.TensorInfo;
let matMul: MatMul | undefined;
/** kernels.ts hands over its GEMM (set at its load; avoids an import cycle). */
export function setFusedMatMul(f: MatMul): void {
  matMul = f;
}

/** Attributes of {@link FUSED_KERNEL_NAMES.decodeAttention}. */
export interface DecodeAttentionAttrs {
  /** Filled cache slots before this call; the t new tokens go to slots [past, past + t). */
  past: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Column offsets (floats) of query head 0 / KV head 0 in q, k, v (one fused QKV tensor can serve all three). */
  qOffset: number;
  kOffset: number;
  vOffset: number;
  scale: number;
}

/**
 * Decode attention over an in-place KV cache: q (B·t, ≥ qOffset + H·D), k/v (B·t, ≥ off + Hkv·D),
 * kCache/vCache (B, Hkv, cap, D) — WRITTEN IN PLACE at slots [past, past + t): only a cache that owns
 * those tensors outright may call this — optional mask (B, past + t) 0/1 → (B·t, H·D).
 */
const decodeAttentionKernel: tf.KernelFunc = ({ inputs, backend, attrs }: Args) => {
  const be = backend as unknown as WasmBackendLike;
  const a = attrs as unknown as DecodeAttentionAttrs;
  let q = f32("decodeAttention q", inputs.q);
  let k = f32("decodeAttention k", inputs.k);
  let v = f32("decodeAttention v", inputs.v);
  // with w and bias: q (= k = v) is the layer input x and the fused QKV rows are x·w + bias, made here
  let projected: tf.TensorInfo | undefined;
  if (inputs.w && inputs.bias) {
    const w = f32("decodeAttention w", inputs.w);
    const bias = f32("decodeAttention bias", inputs.bias);
    if (w.shape.length !== 2 || q.shape[1] !== w.shape[0] || size(bias.shape) !== w.shape[1]) {
      throw new TypeformerError(
        "SHAPE_MISMATCH",
        `decodeAttention projection needs x (N, in), w (in, out), bias (out); got [${q.shape}], [${w.shape}], [${bias.shape}]`,
        { x: q.shape, w: w.shape, bias: bias.shape },
      );
    }
    if (!matMul)
      throw new TypeformerError("UNSUPPORTED", "decodeAttention projection needs the wasm GEMM", {});
    projected = matMul(q, w, false, false, be);
    if (size(projected.shape) > 0)
      instanceFor(be).exports.addBias(ptr(be, projected), ptr(be, bias), projected.shape[0], w.shape[1]);
    q = k = v = projected;
  }
  try {
    return decodeAttentionCore(be, a, q, k, v, inputs);
  } finally {
    if (projected) be.disposeData(projected.dataId);
  }
};

function decodeAttentionCore(
  be: WasmBackendLike,
  a: DecodeAttentionAttrs,
  q: tf.TensorInfo,
  k: tf.TensorInfo,
  v: tf.TensorInfo,
  inputs: Args["inputs"],
): tf.TensorInfo {
  const kc = f32("decodeAttention kCache", inputs.kCache);
  const vc = f32("decodeAttention vCache", inputs.vCache);
  const [B, Hkv, cap, D] = kc.shape;
  const H = a.numHeads;
  const rows = q.shape[0];
  const t = B === 0 ? 0 : rows / B;
  const bad =
    kc.shape.length !== 4 ||
    vc.shape.join() !== kc.shape.join() ||
    Hkv !== a.numKvHeads ||
    D !== a.headDim ||
    H % Hkv !== 0 ||
    !Number.isInteger(t) ||
    a.past + t > cap ||
    k.shape[0] !== rows ||
    v.shape[0] !== rows ||
    q.shape[1] < a.qOffset + H * D ||
    k.shape[1] < a.kOffset + Hkv * D ||
    v.shape[1] < a.vOffset + Hkv * D ||
    (inputs.mask !== undefined && size(inputs.mask.shape) !== B * (a.past + t));
  if (bad) {
    throw new TypeformerError(
      "SHAPE_MISMATCH",
      `decodeAttention got q [${q.shape}], k [${k.shape}], v [${v.shape}], caches [${kc.shape}] / [${vc.shape}], past ${a.past}, heads ${H}/${a.numKvHeads}, headDim ${a.headDim}`,
      { q: q.shape, k: k.shape, v: v.shape, kCache: kc.shape, past: a.past },
    );
  }
  const out = be.makeOutput([rows, H * D], "float32");
  if (rows === 0) return out;
  const inst = instanceFor(be);
  const Tk = a.past + t;
  const own = Tk * 4 > inst.exports.scratchBytes();
  const scores = own ? be.wasm._malloc(Tk * 4) >>> 0 : inst.scratch;
  try {
    inst.exports.decodeAttention(
      ptr(be, q) + a.qOffset * 4,
      ptr(be, k) + a.kOffset * 4,
      ptr(be, v) + a.vOffset * 4,
      ptr(be, kc),
      ptr(be, vc),
      inputs.mask ? ptr(be, f32("decodeAttention mask", inputs.mask)) : 0,
      ptr(be, out),
      scores,
      B,
      t,
      a.past,
      cap,
      H,
      Hkv,
      D,
      q.shape[1],
      k.shape[1],
      v.shape[1],
      a.scale,
    );
  } finally {
    if (own) be.wasm._free(scores);
  }
  return out;
}

export const FUSED_KERNELS: Record<string, tf.KernelFunc> = {
  [FUSED_KERNEL_NAMES.gelu]: geluKernel,
  [FUSED_KERNEL_NAMES.geluGrad]: geluGradKernel,
  [FUSED_KERNEL_NAMES.layerNorm]: layerNormKernel,
  [FUSED_KERNEL_NAMES.layerNormGrad]: layerNormGradKernel,
  [FUSED_KERNEL_NAMES.biasGrad]: biasGradKernel,
  [FUSED_KERNEL_NAMES.decodeAttention]: decodeAttentionKernel,
};
