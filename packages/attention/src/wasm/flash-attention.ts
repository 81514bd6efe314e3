import { TypeformerError, tf } from "@typeformer/core";
import { dropoutSeed } from "../dropout.js";
import type { AttentionImplementation, AttentionOptions, AttentionResult } from "../types.js";
import { attentionDims } from "../validate.js";
import { instanceFor, type WasmBackendLike } from "./instance.js";
import type { GemmThread } from "./threads.js";

/** Kernel names of the fused flash attention (registered by `registerWasmKernels`). */
export const FLASH_KERNEL_NAMES = {
  forward: "TypeformerFlashAttention",
  backward: "TypeformerFlashAttentionGrad",
} as const;

/** Attributes of both kernels. */
export interface FlashAttentionAttrs {
  scale: number;
  causal: boolean;
  /** Sliding window (0 = none). */
  window: number;
  /** Attention dropout rate (0 = none) and the call's seed (`dropoutSeed(rng)`: src/dropout.ts's mask). */
  dropout?: number;
  seed?: number;
}

type Args = Parameters<tf.KernelFunc>[0];
const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const ptr = (be: WasmBackendLike, t: tf.TensorInfo) => be.dataIdMap.get(t.dataId).memoryOffset;

// descriptor slots, as in assembly/attention.ts
const D = {
  q: 0,
  k: 1,
  v: 2,
  km: 3,
  bias: 4,
  out: 5,
  lse: 6,
  B: 8,
  H: 9,
  Hkv: 10,
  Tq: 11,
  Tk: 12,
  D: 13,
  Dv: 14,
  qs: 15,
  ks: 18,
  vs: 21,
  bs: 24,
  causal: 28,
  window: 29,
  dO: 30,
  dq: 31,
  dk: 32,
  dv: 33,
  dbias: 34,
  dropSeed: 35,
  dropThreshold: 36,
  dropKeep: 37,
  bh0: 38,
} as const;

function f32(name: string, t: tf.TensorInfo | undefined): tf.TensorInfo {
  if (t?.dtype !== "float32") {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `${name} must be a float32 tensor; received ${t ? `${t.dtype} [${t.shape}]` : "nothing"}`,
      { name, dtype: t?.dtype },
    );
  }
  return t;
}

interface Dims {
  B: number;
  H: number;
  Hkv: number;
  Tq: number;
  Tk: number;
  D: number;
  Dv: number;
}

function checkInputs(
  inputs: Args["inputs"],
): { q: tf.TensorInfo; k: tf.TensorInfo; v: tf.TensorInfo } & Dims {
  const q = f32("flashAttention q", inputs.q);
  const k = f32("flashAttention k", inputs.k);
  const v = f32("flashAttention v", inputs.v);
  const [B, H, Tq, Dq] = q.shape;
  const [Bk, Hkv, Tk, Dk] = k.shape;
  const bad =
    q.shape.length !== 4 ||
    k.shape.length !== 4 ||
    v.shape.length !== 4 ||
    Bk !== B ||
    Dk !== Dq ||
    v.shape[0] !== B ||
    v.shape[1] !== Hkv ||
    v.shape[2] !== Tk ||
    Hkv === 0 ||
    H % Hkv !== 0 ||
    Tk === 0 ||
    (inputs.keyMask !== undefined &&
      (inputs.keyMask.shape.join() !== `${B},${Tk}` || inputs.keyMask.dtype !== "float32"));
  if (bad) {
    throw new TypeformerError(
      "SHAPE_MISMATCH",
      `flashAttention needs q (B, H, Tq, D), k (B, Hkv, Tk, D), v (B, Hkv, Tk, Dv), keyMask float32 (B, Tk); received q [${q.shape}], k [${k.shape}], v [${v.shape}], keyMask [${inputs.keyMask?.shape}]`,
      { q: q.shape, k: k.shape, v: v.shape, keyMask: inputs.keyMask?.shape },
    );
  }
  return { q, k, v, B, H, Hkv, Tq, Tk, D: Dq, Dv: v.shape[3] };
}

/** Element strides (b, h, i, j) of a bias broadcast to (B, H, Tq, Tk): 0 along broadcast axes. */
function biasStrides(bias: tf.TensorInfo, dims: Dims): number[] {
  const s = bias.shape;
  const full = [dims.B, dims.H, dims.Tq, dims.Tk];
  const s4 = [...new Array(4 - s.length).fill(1), ...s];
  if (s.length > 4 || s4.some((n, i) => n !== 1 && n !== full[i])) {
    throw new TypeformerError(
      "SHAPE_MISMATCH",
      `flashAttention bias must broadcast to [${full}]; received [${s}]`,
      { bias: s, target: full },
    );
  }
  const strides = [0, 0, 0, 0];
  let st = 1;
  for (let i = 3; i >= 0; i--) {
    strides[i] = s4[i] === 1 ? 0 : st;
    st *= s4[i];
  }
  return strides;
}

/** Row-major strides (b, h, t) of a contiguous (B, H, T, D) tensor. */
const strides4 = (shape: number[]) => [shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3]];

type Ptrs = Partial<Record<keyof typeof D, number>>;
interface Shapes {
  q: number[];
  k: number[];
  v: number[];
  biasStrides?: number[];
  /** Elements of the bias (whole-bias copies for the worker thread). */
  biasSize?: number;
}

function fillDesc(
  desc: Int32Array,
  dims: Dims,
  attrs: FlashAttentionAttrs,
  ptrs: Ptrs,
  shapes: Shapes,
  bh0 = 0,
): void {
  desc.fill(0);
  for (const [name, p] of Object.entries(ptrs)) desc[D[name as keyof typeof D]] = p as number;
  desc[D.B] = dims.B;
  desc[D.H] = dims.H;
  desc[D.Hkv] = dims.Hkv;
  desc[D.Tq] = dims.Tq;
  desc[D.Tk] = dims.Tk;
  desc[D.D] = dims.D;
  desc[D.Dv] = dims.Dv;
  desc.set(strides4(shapes.q), D.qs);
  desc.set(strides4(shapes.k), D.ks);
  desc.set(strides4(shapes.v), D.vs);
  if (shapes.biasStrides) desc.set(shapes.biasStrides, D.bs);
  desc[D.causal] = attrs.causal ? 1 : 0;
  desc[D.window] = Math.max(attrs.window, 0);
  const rate = attrs.dropout ?? 0;
  if (rate > 0) {
    desc[D.dropSeed] = (attrs.seed ?? 0) | 0;
    desc[D.dropThreshold] = Math.floor(rate * 4294967296) | 0;
    desc[D.dropKeep] = new Int32Array(new Float32Array([1 / (1 - rate)]).buffer)[0];
  }
  desc[D.bh0] = bh0;
}

/** Calls below this many flops stay on one thread (copies and the hand-off would eat the gain). */
const PARALLEL_MIN_FLOPS = 8e6;
let threadProvider: (() => GemmThread | undefined) | undefined;
/** kernels.ts hands over its worker thread (while `threads: 2` is on). */
export function setFlashThread(provider: () => GemmThread | undefined): void {
  threadProvider = provider;
}

/** Runs one kernel on the tf.js heap (the whole call, or the main thread's half). */
function runHere(
  be: WasmBackendLike,
  backward: boolean,
  dims: Dims,
  attrs: FlashAttentionAttrs,
  ptrs: Ptrs,
  shapes: Shapes,
): void {
  const ex = instanceFor(be).exports;
  const raw = be.wasm._malloc(ex.flashScratchBytes(dims.Tk, dims.D, dims.Dv, backward ? 1 : 0)) >>> 0;
  if (raw === 0) {
    throw new TypeformerError(
      "LIMIT_EXCEEDED",
      "flashAttention could not allocate its scratch on the wasm heap",
      {
        dims,
      },
    );
  }
  try {
    const base = (raw + 15) & ~15;
    fillDesc(new Int32Array(be.wasm.HEAPU8.buffer, base, 64), dims, attrs, ptrs, shapes);
    if (backward) ex.flashBackward(base, attrs.scale);
    else ex.flashForward(base, attrs.scale);
  } finally {
    be.wasm._free(raw);
  }
}

/**
 * Runs a kernel, split with the worker thread where one is on and the call is large: along the batch
 * (B >= 2) or, for B = 1, along the KV heads. The worker's half of every operand is copied to its shared
 * memory and its outputs copied back (a bias shared by both halves is copied whole, and the worker's
 * share of its gradient added to the main thread's).
 */
function run(
  be: WasmBackendLike,
  backward: boolean,
  dims: Dims,
  attrs: FlashAttentionAttrs,
  ptrs: Ptrs,
  shapes: Shapes,
  zeroFill: tf.TensorInfo[] = [],
): void {
  {
    const heap = be.wasm.HEAPU8.buffer;
    for (const t of zeroFill) new Float32Array(heap, ptr(be, t), prod(t.shape)).fill(0);
  }
  const { B, H, Hkv, Tq, Tk, D: Dk, Dv } = dims;
  const G = H / Hkv;
  const t = threadProvider?.();
  const flops = 4 * B * H * Tq * Tk * (Dk + Dv) * (backward ? 2 : 1);
  const byBatch = B >= 2;
  if (!t || flops < PARALLEL_MIN_FLOPS || (!byBatch && Hkv < 2)) {
    runHere(be, backward, dims, attrs, ptrs, shapes);
    return;
  }
  const N = byBatch ? B : Hkv;
  const n0 = N >> 1;
  const n1 = N - n0;
  const bs = shapes.biasStrides ?? [0, 0, 0, 0];
  const biasUnit = byBatch ? bs[0] : bs[1] * G;
  // floats per unit (one batch row, or one KV head with its G query heads, at B = 1)
  const u = byBatch
    ? { q: H * Tq * Dk, k: Hkv * Tk * Dk, v: Hkv * Tk * Dv, out: H * Tq * Dv, lse: H * Tq, km: Tk }
    : { q: G * Tq * Dk, k: Tk * Dk, v: Tk * Dv, out: G * Tq * Dv, lse: G * Tq, km: 0 };
  const unit: Partial<Record<keyof typeof D, number>> = {
    q: u.q,
    k: u.k,
    v: u.v,
    km: u.km,
    bias: biasUnit,
    out: u.out,
    lse: u.lse,
    dO: u.out,
    dq: u.q,
    dk: u.k,
    dv: u.v,
    dbias: biasUnit,
  };
  const whole: Partial<Record<keyof typeof D, number>> = {
    km: Tk,
    bias: shapes.biasSize,
    dbias: shapes.biasSize,
  };
  type Slot = keyof typeof D;
  const ins: Slot[] = backward
    ? ["q", "k", "v", "km", "bias", "out", "lse", "dO"]
    : ["q", "k", "v", "km", "bias"];
  const outs: Slot[] = backward ? ["dq", "dk", "dv", "dbias"] : ["out", "lse"];
  // shared-memory layout: the worker's operands, then its descriptor + scratch
  const seg: Partial<Record<keyof typeof D, { src: number; at: number; bytes: number; add: boolean }>> = {};
  let at = t.dataBase;
  for (const name of [...ins, ...outs]) {
    const p = ptrs[name];
    if (!p) continue;
    const per = unit[name] ?? 0;
    const bytes = 4 * (per > 0 ? per * n1 : (whole[name] ?? 0));
    seg[name] = { src: per > 0 ? p + 4 * per * n0 : p, at, bytes, add: per === 0 };
    at += (bytes + 63) & ~63;
  }
  const scratchAt = at;
  const ex = instanceFor(be).exports;
  const view = t.reserve(at - t.dataBase + ex.flashScratchBytes(Tk, Dk, Dv, backward ? 1 : 0) + 64);
  let heap = be.wasm.HEAPU8;
  for (const name of ins) {
    const sg = seg[name];
    if (sg) view.set(heap.subarray(sg.src, sg.src + sg.bytes), sg.at);
  }
  for (const name of outs) {
    const sg = seg[name];
    if (sg && name === "dbias") view.fill(0, sg.at, sg.at + sg.bytes); // the kernel accumulates into it
  }
  const part = (n: number): Dims => (byBatch ? { ...dims, B: n } : { ...dims, Hkv: n, H: n * G });
  const workerPtrs: Ptrs = {};
  for (const [name, sg] of Object.entries(seg)) if (sg) workerPtrs[name as keyof typeof D] = sg.at;
  // the dropout hash is keyed on the global (b·H + h) of each row
  const bh0 = byBatch ? n0 * H : n0 * G;
  fillDesc(new Int32Array(t.memory.buffer, scratchAt, 64), part(n1), attrs, workerPtrs, shapes, bh0);
  const scaleBits = new Int32Array(new Float32Array([attrs.scale]).buffer)[0];
  t.post(backward ? 3 : 2, [scratchAt, scaleBits]);
  try {
    runHere(be, backward, part(n0), attrs, ptrs, shapes);
  } finally {
    t.wait();
  }
  heap = be.wasm.HEAPU8; // the main half's scratch may have grown the heap
  const shared = new Uint8Array(t.memory.buffer);
  for (const name of outs) {
    const sg = seg[name];
    const dst = ptrs[name];
    if (!sg || !dst) continue;
    if (!sg.add) heap.set(shared.subarray(sg.at, sg.at + sg.bytes), sg.src);
    else {
      const mine = new Float32Array(heap.buffer, dst, sg.bytes / 4);
      const theirs = new Float32Array(t.memory.buffer, sg.at, sg.bytes / 4);
      for (let i = 0; i < mine.length; i++) mine[i] += theirs[i];
    }
  }
}

/** Forward: inputs q, k, v, keyMask? (float32 0/1), bias?; outputs out (B, H, Tq, Dv), lse (B, H, Tq). */
const flashForwardKernel: tf.KernelFunc = ({ inputs, backend, attrs }: Args) => {
  const be = backend as unknown as WasmBackendLike;
  const a = attrs as unknown as FlashAttentionAttrs;
  const x = checkInputs(inputs);
  const bias = inputs.bias ? f32("flashAttention bias", inputs.bias) : undefined;
  const bs = bias ? biasStrides(bias, x) : undefined;
  const out = be.makeOutput([x.B, x.H, x.Tq, x.Dv], "float32");
  const lse = be.makeOutput([x.B, x.H, x.Tq], "float32");
  if (x.B * x.H * x.Tq === 0) return [out, lse];
  run(
    be,
    false,
    x,
    a,
    {
      q: ptr(be, x.q),
      k: ptr(be, x.k),
      v: ptr(be, x.v),
      km: inputs.keyMask ? ptr(be, inputs.keyMask) : 0,
      bias: bias ? ptr(be, bias) : 0,
      out: ptr(be, out),
      lse: ptr(be, lse),
    },
    { q: x.q.shape, k: x.k.shape, v: x.v.shape, biasStrides: bs, biasSize: bias ? prod(bias.shape) : 0 },
  );
  return [out, lse];
};

/** Backward: inputs as forward plus out, lse, dy; outputs dq, dk, dv (and dbias with a bias). */
const flashBackwardKernel: tf.KernelFunc = ({ inputs, backend, attrs }: Args) => {
  const be = backend as unknown as WasmBackendLike;
  const a = attrs as unknown as FlashAttentionAttrs;
  const x = checkInputs(inputs);
  const out = f32("flashAttention out", inputs.out);
  const lse = f32("flashAttention lse", inputs.lse);
  const dy = f32("flashAttention dy", inputs.dy);
  const want = [x.B, x.H, x.Tq, x.Dv].join();
  if (out.shape.join() !== want || dy.shape.join() !== want || lse.shape.join() !== [x.B, x.H, x.Tq].join()) {
    throw new TypeformerError(
      "SHAPE_MISMATCH",
      `flashAttention backward needs out and dy [${want}], lse [${x.B},${x.H},${x.Tq}]; received [${out.shape}], [${dy.shape}], [${lse.shape}]`,
      { out: out.shape, dy: dy.shape, lse: lse.shape },
    );
  }
  const bias = inputs.bias ? f32("flashAttention bias", inputs.bias) : undefined;
  const bs = bias ? biasStrides(bias, x) : undefined;
  const dq = be.makeOutput([...x.q.shape], "float32");
  const dk = be.makeOutput([...x.k.shape], "float32");
  const dv = be.makeOutput([...x.v.shape], "float32");
  const dbias = bias ? be.makeOutput([...bias.shape], "float32") : undefined;
  const outs = dbias ? [dq, dk, dv, dbias] : [dq, dk, dv];
  if (x.B * x.H * x.Tq === 0) {
    const heap = be.wasm.HEAPU8.buffer;
    for (const t of outs) new Float32Array(heap, ptr(be, t), prod(t.shape)).fill(0);
    return outs;
  }
  run(
    be,
    true,
    x,
    a,
    {
      q: ptr(be, x.q),
      k: ptr(be, x.k),
      v: ptr(be, x.v),
      km: inputs.keyMask ? ptr(be, inputs.keyMask) : 0,
      bias: bias ? ptr(be, bias) : 0,
      out: ptr(be, out),
      lse: ptr(be, lse),
      dO: ptr(be, dy),
      dq: ptr(be, dq),
      dk: ptr(be, dk),
      dv: ptr(be, dv),
      dbias: dbias ? ptr(be, dbias) : 0,
    },
    { q: x.q.shape, k: x.k.shape, v: x.v.shape, biasStrides: bs, biasSize: bias ? prod(bias.shape) : 0 },
    dbias ? [dbias] : [],
  );
  return outs;
};

export const FLASH_KERNELS: Record<string, tf.KernelFunc> = {
  [FLASH_KERNEL_NAMES.forward]: flashForwardKernel,
  [FLASH_KERNEL_NAMES.backward]: flashBackwardKernel,
};

/** Whether the fused flash-attention kernels serve the current backend (wasm, after `registerWasmKernels`). */
export function flashKernelsActive(): boolean {
  return tf.getBackend() === "wasm" && tf.getKernel(FLASH_KERNEL_NAMES.forward, "wasm") !== undefined;
}

let autoEnabled = true;

/**
 * Whether "auto" may pick the fused kernels (default true); explicit `implementation: "wasm-fused"`
 * works either way. Benchmarks turn it off to compare against the tiled/naive paths in one run.
 */
export function setWasmFusedAttention(enabled: boolean): void {
  autoEnabled = enabled;
}

/**
 * Bytes of wasm heap scratch one forward (or backward) call allocates outside tf.js's tensors (and
 * frees before returning): linear in Tk. Benchmarks add it to tf.js's peak-memory figures.
 */
export function flashScratchBytes(tk: number, d: number, dv: number, backward: boolean): number {
  const be = tf.findBackend("wasm") as unknown as WasmBackendLike | undefined;
  if (!be?.wasm) {
    throw new TypeformerError("BACKEND_UNAVAILABLE", "flashScratchBytes needs the wasm backend", {});
  }
  return instanceFor(be).exports.flashScratchBytes(tk, d, dv, backward ? 1 : 0);
}

function recording(): boolean {
  const state = (tf.engine() as unknown as { state?: { gradientDepth?: number } }).state;
  return (state?.gradientDepth ?? 0) > 0;
}

/**
 * Fused flash attention on the wasm backend (`registerWasmKernels` first): one WebAssembly call
 * forward (online softmax over key blocks; saves only the output and the row log-sum-exp) and one
 * backward (blocks recomputed from the log-sum-exp), memory linear in T. Supports causal
 * (bottom-right aligned), sliding window, keyMask, bias broadcastable to (B, H, Tq, Tk) with its
 * gradient, GQA/MQA, a custom scale and attention dropout (src/dropout.ts's mask); not returnWeights.
 */
export function flashAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  opts: AttentionOptions = {},
): AttentionResult {
  const dims = attentionDims(q, k, v, opts);
  if (opts.returnWeights) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      'the wasm-fused attention does not support returnWeights; use "naive"',
      { implementation: "wasm-fused", option: "returnWeights" },
    );
  }
  if (!flashKernelsActive()) {
    throw new TypeformerError(
      "BACKEND_UNAVAILABLE",
      `the wasm-fused attention needs the wasm backend with registerWasmKernels(); current backend ${tf.getBackend()}`,
      { backend: tf.getBackend() },
    );
  }
  const { B, H, Tq, D: Dk, Dv } = dims;
  if (Tq === 0) return { output: tf.zeros([B, H, 0, Dv]) as tf.Tensor4D };
  const attrs: FlashAttentionAttrs = {
    scale: opts.scale ?? 1 / Math.sqrt(Dk),
    causal: opts.causal === true,
    window: opts.window ?? 0,
  };
  if ((opts.dropout ?? 0) > 0 && opts.rng) {
    // one draw per call; the backward kernel regenerates the same mask from it
    attrs.dropout = opts.dropout;
    attrs.seed = dropoutSeed(opts.rng);
  }
  const owned: tf.Tensor[] = [];
  const f32 = (t: tf.Tensor) => {
    if (t.dtype === "float32") return t;
    const c = tf.cast(t, "float32");
    owned.push(c);
    return c;
  };
  const names = ["q", "k", "v"];
  const inputs: tf.Tensor[] = [f32(q), f32(k), f32(v)];
  if (opts.keyMask) {
    names.push("keyMask");
    inputs.push(f32(opts.keyMask));
  }
  if (opts.bias) {
    names.push("bias");
    inputs.push(f32(opts.bias));
  }
  const named = (xs: tf.Tensor[]) => Object.fromEntries(names.map((n, i) => [n, xs[i]])) as tf.NamedTensorMap;
  const n = inputs.length;
  try {
    if (!recording()) {
      const [out, lse] = tf
        .engine()
        .runKernel(FLASH_KERNEL_NAMES.forward, named(inputs), { ...attrs }) as tf.Tensor[];
      lse.dispose();
      return { output: out as tf.Tensor4D };
    }
    const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const save = args[n] as tf.GradSaveFunc;
      const xs = args.slice(0, n) as tf.Tensor[];
      const [out, lse] = tf
        .engine()
        .runKernel(FLASH_KERNEL_NAMES.forward, named(xs), { ...attrs }) as tf.Tensor[];
      save([...xs, out, lse]);
      return {
        value: out,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const g = tf
            .engine()
            .runKernel(
              FLASH_KERNEL_NAMES.backward,
              { ...named(saved.slice(0, n)), out: saved[n], lse: saved[n + 1], dy },
              { ...attrs },
            ) as tf.Tensor[];
          const grads = [g[0], g[1], g[2]];
          if (names.includes("keyMask")) grads.push(tf.zerosLike(saved[names.indexOf("keyMask")]));
          if (names.includes("bias")) grads.push(g[3]);
          return grads;
        },
      };
    });
    return { output: f(...inputs) as tf.Tensor4D };
  } finally {
    tf.dispose(owned);
  }
}

/**
 * The fused wasm kernels as an attention implementation ("wasm-fused"): registered by
 * `registerWasmKernels`, chosen by "auto" on the wasm backend ahead of tiled and naive.
 */
export const wasmFusedImplementation: AttentionImplementation = {
  name: "wasm-fused",
  sdpa: flashAttention,
  supports: (q, k, v, opts) =>
    autoEnabled &&
    flashKernelsActive() &&
    !opts.returnWeights &&
    q.dtype === "float32" &&
    k.dtype === "float32" &&
    v.dtype === "float32" &&
    (!opts.bias || opts.bias.dtype === "float32"),
  autoPriority: 20,
  unsupported: ["returnWeights"],
};
