import { TypeformerError, type tf } from "@typeformer/core";
import { instanceFor, type WasmBackendLike } from "./instance.js";

/** Kernel names of Typeformer's fused wasm ops (registered by `registerWasmKernels`). */
export const FUSED_KERNEL_NAMES = {
  gelu: "TypeformerGelu",
  geluGrad: "TypeformerGeluGrad",
  layerNorm: "TypeformerLayerNorm",
  layerNormGrad: "TypeformerLayerNormGrad",
  biasGrad: "TypeformerBiasGrad",
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

export const FUSED_KERNELS: Record<string, tf.KernelFunc> = {
  [FUSED_KERNEL_NAMES.gelu]: geluKernel,
  [FUSED_KERNEL_NAMES.geluGrad]: geluGradKernel,
  [FUSED_KERNEL_NAMES.layerNorm]: layerNormKernel,
  [FUSED_KERNEL_NAMES.layerNormGrad]: layerNormGradKernel,
  [FUSED_KERNEL_NAMES.biasGrad]: biasGradKernel,
};
