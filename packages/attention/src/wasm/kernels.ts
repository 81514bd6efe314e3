import { TypeformerError, tf } from "@typeformer/core";
import { registerAttentionImplementation } from "../registry.js";
import { FLASH_KERNELS, setFlashThread, wasmFusedImplementation } from "./flash-attention.js";
import { FUSED_KERNEL_NAMES, FUSED_KERNELS, setFusedMatMul } from "./fused-kernels.js";
import {
  compiledModule,
  instanceFor,
  type KernelExports,
  setVariantPreference,
  type WasmBackendLike,
  type WasmKernelVariant,
} from "./instance.js";

import { GemmThread } from "./threads.js";

export type { WasmKernelVariant } from "./instance.js";

/** Products below this many flops stay on one thread (copies and the hand-off would eat the gain). */
const PARALLEL_MIN_FLOPS = 8e6;
let thread: GemmThread | undefined;
let threadEnabled = false;

/** Second thread: copy operands to the shared memory, split the batch, copy the worker's half back. */
function batchSplit(
  be: WasmBackendLike,
  t: GemmThread,
  scratch: number,
  pa: number,
  pb: number,
  pc: number,
  batch: number,
  sa: number,
  sb: number,
  m: number,
  n: number,
  k: number,
  ta: number,
  tb: number,
): void {
  const b0 = batch >> 1;
  const nb = batch - b0;
  const aBytes = sa ? nb * sa : m * k * 4;
  const bBytes = sb ? nb * sb : k * n * 4;
  const cBytes = nb * m * n * 4;
  const aS = t.dataBase;
  const bS = aS + ((aBytes + 63) & ~63);
  const cS = bS + ((bBytes + 63) & ~63);
  const view = t.reserve(cS - t.dataBase + cBytes);
  const heap = be.wasm.HEAPU8;
  const srcA = pa + b0 * sa;
  const srcB = pb + b0 * sb;
  view.set(heap.subarray(srcA, srcA + aBytes), aS);
  view.set(heap.subarray(srcB, srcB + bBytes), bS);
  t.post(0, [aS, bS, cS, nb, sa, sb, m, n, k, ta, tb]);
  instanceFor(be).exports.bmm(pa, pb, pc, b0, sa, sb, m, n, k, ta, tb, scratch);
  t.wait();
  be.wasm.HEAPU8.set(view.subarray(cS, cS + cBytes), pc + b0 * m * n * 4);
}

/** Second thread on one product: it computes the lower half of the rows from copies of A and B. */
function rowSplit(
  be: WasmBackendLike,
  t: GemmThread,
  scratch: number,
  pa: number,
  pb: number,
  pc: number,
  m: number,
  n: number,
  k: number,
  ta: number,
  tb: number,
): void {
  const m0 = ((m >> 1) + 3) & ~3;
  const aBytes = m * k * 4;
  const bBytes = k * n * 4;
  const cBytes = (m - m0) * n * 4;
  const aS = t.dataBase;
  const bS = aS + ((aBytes + 63) & ~63);
  const cS = bS + ((bBytes + 63) & ~63);
  const view = t.reserve(cS - t.dataBase + cBytes);
  const heap = be.wasm.HEAPU8;
  view.set(heap.subarray(pa, pa + aBytes), aS);
  view.set(heap.subarray(pb, pb + bBytes), bS);
  t.post(1, [aS, bS, cS - m0 * n * 4, 0, 0, 0, m, n, k, ta, tb, m0, m]);
  instanceFor(be).exports.gemmRows(pa, pb, pc, m, n, k, ta, tb, 0, m0, scratch);
  t.wait();
  be.wasm.HEAPU8.set(view.subarray(cS, cS + cBytes), pc + m0 * n * 4);
}

/**
 * The stock kernels we replaced, shared by every copy of this module in the process (a bundle and
 * the source, two vitest module graphs…) so no copy mistakes another copy's kernel for the stock one.
 */
const ORIGINALS_KEY = Symbol.for("typeformer.wasmKernels.originals");
const globalSlots = globalThis as Record<symbol, unknown>;
if (!globalSlots[ORIGINALS_KEY]) globalSlots[ORIGINALS_KEY] = new Map<string, tf.KernelConfig>();
const originals = globalSlots[ORIGINALS_KEY] as Map<string, tf.KernelConfig>;
/** Marks kernel functions as Typeformer's (whichever copy of the module made them). */
const OURS = Symbol.for("typeformer.wasmKernel");
const isOurs = (f: unknown) =>
  typeof f === "function" && (f as unknown as Record<symbol, unknown>)[OURS] === true;

const prod = (s: readonly number[]) => s.reduce((x, y) => x * y, 1);

/** Row-major strides of `shape`, with 0 where a dimension of size 1 broadcasts against `target`. */
function broadcastStrides(shape: number[], target: number[]): number[] {
  const padded = new Array<number>(target.length - shape.length).fill(1).concat(shape);
  const strides = new Array<number>(target.length).fill(0);
  let s = 1;
  for (let i = target.length - 1; i >= 0; i--) {
    strides[i] = padded[i] === 1 && target[i] !== 1 ? 0 : s;
    s *= padded[i];
  }
  return strides;
}

// the fused decode attention's QKV projection uses this GEMM
setFusedMatMul((a, b, ta, tb, be) => wasmBatchMatMul(a, b, ta, tb, be));
// the fused flash attention splits large calls with the same worker
setFlashThread(() => (threadEnabled && thread?.ready ? thread : undefined));

/** C = op(A) · op(B) on the wasm heap with our SIMD kernel; tf.js broadcasting of the batch dims. */
export function wasmBatchMatMul(
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  be: WasmBackendLike,
): tf.TensorInfo {
  const backend = be;
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || rb < 2) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `matMul needs rank >= 2 operands, got shapes [${a.shape}] and [${b.shape}]`,
      {
        a: a.shape,
        b: b.shape,
      },
    );
  }
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (k !== kb) {
    throw new TypeformerError(
      "SHAPE_MISMATCH",
      `matMul inner dimensions differ: shapes [${a.shape}] and [${b.shape}] with transposeA=${transposeA}, transposeB=${transposeB}`,
      { a: a.shape, b: b.shape, transposeA, transposeB },
    );
  }
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  const out = backend.makeOutput([...outer, m, n], "float32");
  const batch = prod(outer);
  if (batch === 0 || m === 0 || n === 0) return out;
  const gemm = instanceFor(backend);
  const pa = backend.dataIdMap.get(a.dataId).memoryOffset;
  const pb = backend.dataIdMap.get(b.dataId).memoryOffset;
  const pc = backend.dataIdMap.get(out.dataId).memoryOffset;
  const batchA = prod(outerA);
  const batchB = prod(outerB);
  const ta = transposeA ? 1 : 0;
  const tb = transposeB ? 1 : 0;
  const sa = m * k * 4;
  const sb = k * n * 4;
  const { bmm } = gemm.exports;
  const t =
    threadEnabled && thread?.ready && 2 * batch * m * n * k >= PARALLEL_MIN_FLOPS ? thread : undefined;
  const simple = batchB === 1 && !transposeA;
  if (simple || (batch === 1 && batchA === 1)) {
    // (…, M, K) · (K, N): the batch folds into the rows, one product with B packed once.
    const rows = batch * m;
    if (t && rows >= 16) rowSplit(be, t, gemm.scratch, pa, pb, pc, rows, n, k, ta, tb);
    else bmm(pa, pb, pc, 1, 0, 0, rows, n, k, ta, tb, gemm.scratch);
  } else if ((batchA === batch || batchA === 1) && (batchB === batch || batchB === 1)) {
    const sa2 = batchA === 1 ? 0 : sa;
    const sb2 = batchB === 1 ? 0 : sb;
    if (t && batch >= 2) batchSplit(be, t, gemm.scratch, pa, pb, pc, batch, sa2, sb2, m, n, k, ta, tb);
    else bmm(pa, pb, pc, batch, sa2, sb2, m, n, k, ta, tb, gemm.scratch);
  } else {
    const stA = broadcastStrides(outerA, outer);
    const stB = broadcastStrides(outerB, outer);
    const idx = new Array<number>(outer.length).fill(0);
    for (let i = 0; i < batch; i++) {
      let ia = 0;
      let ib = 0;
      for (let d = 0; d < outer.length; d++) {
        ia += idx[d] * stA[d];
        ib += idx[d] * stB[d];
      }
      bmm(pa + ia * sa, pb + ib * sb, pc + i * m * n * 4, 1, 0, 0, m, n, k, ta, tb, gemm.scratch);
      for (let d = outer.length - 1; d >= 0; d--) {
        if (++idx[d] < outer[d]) break;
        idx[d] = 0;
      }
    }
  }
  return out;
}

function runOriginal(name: string, args: Parameters<tf.KernelFunc>[0]) {
  const orig = originals.get(name);
  if (!orig)
    throw new TypeformerError("BACKEND_UNAVAILABLE", `no stock wasm kernel ${name} to fall back to`, {
      name,
    });
  return orig.kernelFunc(args);
}

const batchMatMulKernel: tf.KernelFunc = (args) => {
  const { inputs, backend, attrs } = args;
  const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA = false, transposeB = false } = attrs as { transposeA?: boolean; transposeB?: boolean };
  if (a.dtype !== "float32" || b.dtype !== "float32") return runOriginal("BatchMatMul", args);
  return wasmBatchMatMul(a, b, transposeA, transposeB, backend as unknown as WasmBackendLike);
};

function callKernel(
  name: string,
  inputs: tf.NamedTensorInfoMap,
  backend: object,
  attrs: object = {},
): tf.TensorInfo {
  const cfg = tf.getKernel(name, "wasm");
  if (!cfg)
    throw new TypeformerError("BACKEND_UNAVAILABLE", `the wasm backend has no ${name} kernel`, { name });
  return cfg.kernelFunc({
    inputs,
    backend,
    attrs,
  } as unknown as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
}

/**
 * Inference dense layer, one call: y = x (N, in) · w (in, out) + bias (out), then optionally tanh-GELU
 * (`gelu` attr) or + residual (N, out) — in place on y. (A decoder block's c_fc + GELU and
 * c_proj + residual add.)
 */
const linearKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, w, bias, residual } = inputs as Record<string, tf.TensorInfo | undefined>;
  const gelu = (attrs as { gelu?: boolean }).gelu === true;
  const f32 = [x, w, bias, residual].every((t) => t === undefined || t.dtype === "float32");
  if (
    !x ||
    !w ||
    !bias ||
    !f32 ||
    x.shape.length !== 2 ||
    w.shape.length !== 2 ||
    x.shape[1] !== w.shape[0]
  ) {
    throw new TypeformerError(
      "SHAPE_MISMATCH",
      `TypeformerLinear needs float32 x (N, in), w (in, out), bias (out); got x [${x?.shape}], w [${w?.shape}], bias [${bias?.shape}]`,
      { x: x?.shape, w: w?.shape },
    );
  }
  const [N, n] = [x.shape[0], w.shape[1]];
  if (
    prod(bias.shape) !== n ||
    (residual && (residual.shape.length !== 2 || residual.shape[0] !== N || residual.shape[1] !== n))
  ) {
    throw new TypeformerError(
      "SHAPE_MISMATCH",
      `TypeformerLinear bias must have ${n} elements and residual be (${N}, ${n}); got [${bias.shape}], [${residual?.shape}]`,
      { bias: bias.shape, residual: residual?.shape },
    );
  }
  const be = backend as unknown as WasmBackendLike;
  const y = wasmBatchMatMul(x, w, false, false, be);
  if (N * n === 0) return y;
  const ex = instanceFor(be).exports;
  const p = (t: tf.TensorInfo) => be.dataIdMap.get(t.dataId).memoryOffset;
  ex.addBias(p(y), p(bias), N, n);
  if (gelu) ex.geluForward(p(y), p(y), N * n);
  if (residual) ex.addBias(p(y), p(residual), 1, N * n);
  const { gamma, beta } = inputs as Record<string, tf.TensorInfo | undefined>;
  if (!gamma || !beta) return y;
  // + LayerNorm of the result (the next block's pre-norm): outputs [y, layerNorm(y)]
  if (
    gamma.dtype !== "float32" ||
    beta.dtype !== "float32" ||
    prod(gamma.shape) !== n ||
    prod(beta.shape) !== n
  ) {
    be.disposeData(y.dataId);
    throw new TypeformerError(
      "SHAPE_MISMATCH",
      `TypeformerLinear gamma/beta must be float32 (${n}); got [${gamma.shape}], [${beta.shape}]`,
      {
        gamma: gamma.shape,
      },
    );
  }
  const normed = be.makeOutput([N, n], "float32");
  const stats = be.wasm._malloc(N * 8) >>> 0;
  try {
    const eps = (attrs as { epsilon?: number }).epsilon ?? 1e-5;
    ex.layerNormForward(p(y), p(gamma), p(beta), p(normed), stats, stats + N * 4, N, n, eps);
  } finally {
    be.wasm._free(stats);
  }
  return [y, normed];
};

/**
 * Embedding lookup for inference, one call: out[r] = table[ids[r]] (+ posTable[positions[r]], where
 * positions default to r mod T). ids/positions int32 (B, T); tables (rows, C) float32 → (B·T, C). An
 * id outside the table gives a zero row (as oneHot · table does).
 */
const embedKernel: tf.KernelFunc = ({ inputs, backend }) => {
  const { ids, table, posTable, positions } = inputs as Record<string, tf.TensorInfo | undefined>;
  if (
    !ids ||
    !table ||
    ids.dtype !== "int32" ||
    ids.shape.length !== 2 ||
    table.dtype !== "float32" ||
    table.shape.length !== 2 ||
    (posTable &&
      (posTable.dtype !== "float32" ||
        posTable.shape.length !== 2 ||
        posTable.shape[1] !== table.shape[1])) ||
    (positions && (positions.dtype !== "int32" || prod(positions.shape) !== prod(ids.shape)))
  ) {
    throw new TypeformerError(
      "SHAPE_MISMATCH",
      `TypeformerEmbed needs int32 ids (B, T) and float32 tables (rows, C); got ids ${ids?.dtype} [${ids?.shape}], table [${table?.shape}], posTable [${posTable?.shape}], positions [${positions?.shape}]`,
      { ids: ids?.shape, table: table?.shape },
    );
  }
  const be = backend as unknown as WasmBackendLike;
  const [N, T, V, C] = [prod(ids.shape), ids.shape[1], table.shape[0], table.shape[1]];
  const out = be.makeOutput([N, C], "float32");
  const buf = be.wasm.HEAPU8.buffer;
  const at = (t: tf.TensorInfo) => be.dataIdMap.get(t.dataId).memoryOffset;
  const idv = new Int32Array(buf, at(ids), N);
  const posv = positions ? new Int32Array(buf, at(positions), N) : undefined;
  const o = new Float32Array(buf, at(out), N * C);
  const tab = new Float32Array(buf, at(table), V * C);
  const P = posTable ? posTable.shape[0] : 0;
  const ptab = posTable ? new Float32Array(buf, at(posTable), P * C) : undefined;
  for (let r = 0; r < N; r++) {
    const id = idv[r];
    const row = o.subarray(r * C, (r + 1) * C);
    if (id >= 0 && id < V) row.set(tab.subarray(id * C, (id + 1) * C));
    else row.fill(0);
    if (ptab) {
      const p = posv ? posv[r] : r % T;
      if (p >= 0 && p < P) {
        const src = ptab.subarray(p * C, (p + 1) * C);
        for (let c = 0; c < C; c++) row[c] += src[c];
      }
    }
  }
  return out;
};

const fusedMatMulKernel: tf.KernelFunc = (args) => {
  const { inputs, backend, attrs } = args;
  const { a, b, bias, preluActivationWeights } = inputs as Record<string, tf.TensorInfo | undefined>;
  const {
    transposeA = false,
    transposeB = false,
    activation = "linear",
    leakyreluAlpha = 0.2,
  } = attrs as {
    transposeA?: boolean;
    transposeB?: boolean;
    activation?: string;
    leakyreluAlpha?: number;
  };
  if (!a || !b || a.dtype !== "float32" || b.dtype !== "float32") return runOriginal("_FusedMatMul", args);
  const be = backend as unknown as WasmBackendLike;
  let y = wasmBatchMatMul(a, b, transposeA, transposeB, be);
  const replace = (next: tf.TensorInfo) => {
    be.disposeData(y.dataId);
    y = next;
  };
  if (bias) {
    const n = y.shape[y.shape.length - 1];
    if (bias.dtype === "float32" && prod(bias.shape) === n && bias.shape.length <= 1) {
      const rows = prod(y.shape) / n;
      if (rows > 0)
        instanceFor(be).exports.addBias(
          be.dataIdMap.get(y.dataId).memoryOffset,
          be.dataIdMap.get(bias.dataId).memoryOffset,
          rows,
          n,
        );
    } else replace(callKernel("Add", { a: y, b: bias }, backend));
  }
  switch (activation) {
    case "linear":
      break;
    case "relu":
      replace(callKernel("Relu", { x: y }, backend));
      break;
    case "relu6":
      replace(callKernel("Relu6", { x: y }, backend));
      break;
    case "elu":
      replace(callKernel("Elu", { x: y }, backend));
      break;
    case "sigmoid":
      replace(callKernel("Sigmoid", { x: y }, backend));
      break;
    case "leakyrelu":
      replace(callKernel("LeakyRelu", { x: y }, backend, { alpha: leakyreluAlpha }));
      break;
    case "prelu":
      if (!preluActivationWeights)
        throw new TypeformerError("INVALID_ARGUMENT", "prelu activation needs weights", {});
      replace(callKernel("Prelu", { x: y, alpha: preluActivationWeights }, backend));
      break;
    default:
      be.disposeData(y.dataId);
      throw new TypeformerError(
        "INVALID_ARGUMENT",
        `unknown fused activation ${JSON.stringify(activation)}`,
        {
          activation,
        },
      );
  }
  return y;
};

/**
 * Identity without the copy. tf.js clones (Identity) every tensor a gradient saves for the backward
 * pass; the stock wasm kernel copies the whole buffer each time (hundreds of copies per training step).
 * Sharing the buffer with a reference count is what the wasm Reshape kernel and the cpu backend's
 * Identity already do; wasm kernels never write to their inputs.
 */
const identityKernel: tf.KernelFunc = (args) => {
  const { inputs, backend } = args;
  const x = (inputs as { x: tf.TensorInfo }).x;
  if (x.dtype === "string") return runOriginal("Identity", args);
  (backend as unknown as { incRef(dataId: object): void }).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};

type HeapArray = Float32Array | Int32Array | Uint8Array;
interface HeapViews {
  typedArrayFromHeap(t: tf.TensorInfo): HeapArray;
}

/** Copies the block `begin`/`size` of x into a new tensor, reading the heap in place. */
function sliceOnHeap(be: WasmBackendLike & HeapViews, x: tf.TensorInfo, begin: number[], size: number[]) {
  const out = be.makeOutput(size, x.dtype);
  const total = prod(size);
  if (total === 0) return out;
  // views after makeOutput: an allocation may have grown (and replaced) the heap buffer
  const src = be.typedArrayFromHeap(x);
  const dst = be.typedArrayFromHeap(out);
  const rank = x.shape.length;
  if (rank === 0) {
    dst[0] = src[0];
    return out;
  }
  const strides = new Array<number>(rank);
  let st = 1;
  for (let d = rank - 1; d >= 0; d--) {
    strides[d] = st;
    st *= x.shape[d];
  }
  // merge the trailing dimensions the block spans in full into one contiguous run
  let inner = rank - 1;
  let run = size[inner];
  while (inner > 0 && size[inner] === x.shape[inner] && begin[inner] === 0) {
    inner--;
    run *= size[inner];
  }
  const outer = total / run;
  const idx = new Array<number>(inner).fill(0);
  let base = 0;
  for (let d = 0; d < rank; d++) base += begin[d] * strides[d];
  for (let r = 0; r < outer; r++) {
    let off = base;
    for (let d = 0; d < inner; d++) off += idx[d] * strides[d];
    dst.set(src.subarray(off, off + run), r * run);
    for (let d = inner - 1; d >= 0; d--) {
      if (++idx[d] < size[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

/**
 * Slice without the stock kernel's copy of the whole input out of the heap (it reads the input with
 * `readSync` on every call: `tf.split` of a fused QKV projection copied it three times).
 */
const sliceKernel: tf.KernelFunc = (args) => {
  const { inputs, attrs, backend } = args;
  const x = (inputs as { x: tf.TensorInfo }).x;
  if (x.dtype === "string") return runOriginal("Slice", args);
  const { begin, size } = attrs as unknown as { begin: number | number[]; size?: number | number[] };
  const [b, s] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
  return sliceOnHeap(backend as unknown as WasmBackendLike & HeapViews, x, b, s);
};

const splitVKernel: tf.KernelFunc = (args) => {
  const { inputs, attrs, backend } = args;
  const x = (inputs as { x: tf.TensorInfo }).x;
  if (x.dtype === "string") return runOriginal("SplitV", args);
  const { numOrSizeSplits, axis } = attrs as unknown as { numOrSizeSplits: number | number[]; axis: number };
  const ax = tf.util.parseAxisParam(axis, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, ax);
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((n) => {
    const size = [...x.shape];
    size[ax] = n;
    const piece = sliceOnHeap(backend as unknown as WasmBackendLike & HeapViews, x, [...begin], size);
    begin[ax] += n;
    return piece;
  });
};

const KERNELS: Record<string, tf.KernelFunc> = {
  BatchMatMul: batchMatMulKernel,
  Identity: identityKernel,
  Slice: sliceKernel,
  SplitV: splitVKernel,
  _FusedMatMul: fusedMatMulKernel,
  [FUSED_KERNEL_NAMES.linear]: linearKernel,
  [FUSED_KERNEL_NAMES.embed]: embedKernel,
  ...FUSED_KERNELS,
  ...FLASH_KERNELS,
};

/** Unregisters the "wasm-fused" attention implementation, while registered. */
let unregisterFused: (() => void) | undefined;

export interface RegisterWasmKernelsOptions {
  /**
   * `auto` (default): relaxed SIMD where the engine accepts it as is, else plain SIMD. `relaxed-simd`:
   * in Node 20 also switches on V8's `--experimental-wasm-relaxed-simd` at run time (falls back to
   * `simd`, reported in the result, where that does not work). `simd`: plain SIMD128.
   */
  variant?: WasmKernelVariant | "auto";
  /**
   * 2: a worker thread computes half of every large product (Node only; tf.js's heap is not shared, so
   * operands are copied to a shared memory and the worker's half copied back). 1: single thread.
   * Default: keep the current setting (1 at first).
   */
  threads?: 1 | 2;
}

function scratchSize(): number {
  const probe = new WebAssembly.Instance(compiledModule().module, {
    env: { memory: new WebAssembly.Memory({ initial: 1 }) },
  });
  return (probe.exports as unknown as KernelExports).scratchBytes();
}

/** Products the worker thread has taken so far (tests check the split really happens). */
export function wasmThreadJobs(): number {
  return thread?.jobs ?? 0;
}

/** Resolves true once the GEMM worker thread (threads: 2) is running; false if there is none. */
export async function wasmThreadsReady(timeoutMs = 5000): Promise<boolean> {
  const t0 = Date.now();
  while (threadEnabled && thread && !thread.ready && Date.now() - t0 < timeoutMs)
    await new Promise((r) => setTimeout(r, 5));
  return (threadEnabled && thread?.ready) ?? false;
}

/**
 * Replaces the tf.js wasm backend's `BatchMatMul` and `_FusedMatMul` with Typeformer's SIMD kernels
 * (every transpose layout and batch broadcast, ~15x the stock kernel on transposed/batched products).
 * Safe to call before or after the wasm backend initialises, and more than once.
 */
export function registerWasmKernels(options: RegisterWasmKernelsOptions = {}): {
  registered: string[];
  variant: WasmKernelVariant;
  threads: 1 | 2;
} {
  if (options.variant) setVariantPreference(options.variant);
  const { variant } = compiledModule();
  const registered: string[] = [];
  for (const [name, kernelFunc] of Object.entries(KERNELS)) {
    (kernelFunc as unknown as Record<symbol, unknown>)[OURS] = true;
    const current = tf.getKernel(name, "wasm");
    if (current?.kernelFunc === kernelFunc) {
      registered.push(name);
      continue;
    }
    if (current) {
      if (!isOurs(current.kernelFunc) && !originals.has(name)) originals.set(name, current);
      tf.unregisterKernel(name, "wasm");
    }
    tf.registerKernel({ kernelName: name, backendName: "wasm", kernelFunc });
    registered.push(name);
  }
  // the fused flash attention joins the registry: "auto" picks it on wasm (its supports() checks the kernels)
  unregisterFused ??= registerAttentionImplementation(wasmFusedImplementation);
  const wantThreads = options.threads ?? (threadEnabled ? 2 : 1);
  if (wantThreads === 2) {
    if (thread?.variant !== variant) {
      thread?.stop();
      thread = GemmThread.start(variant, scratchSize());
    }
    threadEnabled = thread !== undefined;
  } else threadEnabled = false; // a started worker stays parked (blocked in Atomics.wait) for reuse
  return { registered, variant, threads: threadEnabled ? 2 : 1 };
}

/** Puts the stock tf.js wasm kernels back (benchmarks compare both in one run). */
export function unregisterWasmKernels(): void {
  threadEnabled = false; // the worker, if any, stays parked (unref'd) for a later registerWasmKernels
  unregisterFused?.();
  unregisterFused = undefined;

  for (const name of Object.keys(KERNELS)) {
    const current = tf.getKernel(name, "wasm");
    if (!isOurs(current?.kernelFunc)) continue;
    tf.unregisterKernel(name, "wasm");
    const orig = originals.get(name);
    if (orig) {
      tf.registerKernel(orig);
      // tf.js runs a kernel's setupFunc only when the backend initialises; a stock kernel replaced
      // before that (registerWasmKernels ahead of initBackend) needs it now or it is unusable.
      const live = (tf.engine() as unknown as { registry: Record<string, object | undefined> }).registry.wasm;
      if (live && orig.setupFunc)
        orig.setupFunc(live as Parameters<NonNullable<tf.KernelConfig["setupFunc"]>>[0]);
    }
  }
}
