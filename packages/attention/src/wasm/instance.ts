import type { tf } from "@typeformer/core";
import { TypeformerError } from "@typeformer/core";
import { GEMM_WASM_BASE64, GEMM_WASM_RELAXED_BASE64 } from "./gemm-binary.js";

/** The parts of tf.js's `BackendWasm` the kernels use. */
export interface EmscriptenModule {
  HEAPU8: Uint8Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  asm?: { memory?: WebAssembly.Memory };
  wasmExports?: { memory?: WebAssembly.Memory };
  wasmMemory?: WebAssembly.Memory;
}
export interface WasmBackendLike {
  wasm: EmscriptenModule;
  dataIdMap: { get(dataId: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
  refCount(dataId: object): number;
}
/** Functions of our WebAssembly module (see assembly/*.ts); pointers are byte offsets into tf.js's heap. */
export interface KernelExports {
  bmm(
    a: number,
    b: number,
    c: number,
    batch: number,
    strideA: number,
    strideB: number,
    m: number,
    n: number,
    k: number,
    transA: number,
    transB: number,
    scratch: number,
  ): void;
  scratchBytes(): number;
  gemmRows(
    a: number,
    b: number,
    c: number,
    m: number,
    n: number,
    k: number,
    transA: number,
    transB: number,
    m0: number,
    m1: number,
    scratch: number,
  ): void;
  addBias(c: number, bias: number, rows: number, n: number): void;
  columnSum(dy: number, out: number, rows: number, n: number): void;
  geluForward(x: number, y: number, n: number): void;
  geluBackward(x: number, dy: number, dx: number, n: number): void;
  layerNormForward(
    x: number,
    g: number,
    b: number,
    y: number,
    mean: number,
    rstd: number,
    rows: number,
    d: number,
    eps: number,
  ): void;
  layerNormBackward(
    x: number,
    dy: number,
    g: number,
    mean: number,
    rstd: number,
    dx: number,
    dg: number,
    db: number,
    rows: number,
    d: number,
  ): void;
  adamw(
    w: number,
    wOut: number,
    g: number,
    m: number,
    v: number,
    n: number,
    lr: number,
    b1: number,
    b2: number,
    eps: number,
    wd: number,
    bc1: number,
    bc2: number,
  ): void;
  /** Fused flash attention (assembly/attention.ts): `scratch` holds the i32 descriptor first. */
  flashForward(scratch: number, scale: number): void;
  flashBackward(scratch: number, scale: number): void;
  flashScratchBytes(tk: number, d: number, dv: number, backward: number): number;
  decodeAttention(
    q: number,
    k: number,
    v: number,
    kc: number,
    vc: number,
    mask: number,
    out: number,
    scores: number,
    batch: number,
    t: number,
    past: number,
    cap: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    qStride: number,
    kStride: number,
    vStride: number,
    scale: number,
  ): void;
}
export interface KernelInstance {
  exports: KernelExports;
  scratch: number;
}

/**
 * Which build of the kernels runs: `simd` (SIMD128, runs everywhere) or `relaxed-simd` (fused
 * multiply-add, ~25% faster GEMM; default where the engine validates it without flags).
 */
export type WasmKernelVariant = "simd" | "relaxed-simd";

const instances = new WeakMap<EmscriptenModule, Map<WasmKernelVariant, KernelInstance>>();
let variantPreference: WasmKernelVariant | "auto" = "auto";

/** Chooses the build used by instances created from now on. */
export function setVariantPreference(v: WasmKernelVariant | "auto"): void {
  if (v !== variantPreference) {
    variantPreference = v;
    moduleCache = undefined;
  }
}

export function decodeBase64(s: string): Uint8Array<ArrayBuffer> {
  if (typeof Buffer !== "undefined") {
    const buf = Buffer.from(s, "base64");
    const out = new Uint8Array(buf.length);
    out.set(buf);
    return out;
  }
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

let moduleCache: { variant: WasmKernelVariant; module: WebAssembly.Module } | undefined;

/**
 * Node 20 compiles relaxed SIMD only behind `--experimental-wasm-relaxed-simd`; V8 accepts that flag at
 * run time too. Only done when the caller asked for the relaxed build explicitly.
 */
function enableRelaxedSimdFlag(): void {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const v8 = proc?.getBuiltinModule?.("node:v8") as
    | { setFlagsFromString?: (flags: string) => void }
    | undefined;
  v8?.setFlagsFromString?.("--experimental-wasm-relaxed-simd");
}

export function compiledModule(): { variant: WasmKernelVariant; module: WebAssembly.Module } {
  if (moduleCache) return moduleCache;
  const relaxed = decodeBase64(GEMM_WASM_RELAXED_BASE64);
  let useRelaxed = variantPreference !== "simd" && WebAssembly.validate(relaxed);
  if (!useRelaxed && variantPreference === "relaxed-simd") {
    enableRelaxedSimdFlag();
    useRelaxed = WebAssembly.validate(relaxed);
  }
  const variant: WasmKernelVariant = useRelaxed ? "relaxed-simd" : "simd";
  moduleCache = {
    variant,
    module: new WebAssembly.Module(useRelaxed ? relaxed : decodeBase64(GEMM_WASM_BASE64)),
  };
  return moduleCache;
}

/** The tf.js wasm heap as a `WebAssembly.Memory` (what our module imports), if the build exposes it. */
function heapMemory(wasm: EmscriptenModule): WebAssembly.Memory | undefined {
  return wasm.asm?.memory ?? wasm.wasmExports?.memory ?? wasm.wasmMemory;
}

/** Our module instantiated on `backend`'s heap (once per backend). */
export function instanceFor(backend: WasmBackendLike): KernelInstance {
  const wasm = backend.wasm;
  const { variant, module } = compiledModule();
  let perVariant = instances.get(wasm);
  if (!perVariant) {
    perVariant = new Map();
    instances.set(wasm, perVariant);
  }
  let inst = perVariant.get(variant);
  if (inst) return inst;
  const memory = heapMemory(wasm);
  if (!memory) {
    throw new TypeformerError(
      "BACKEND_UNAVAILABLE",
      "the tf.js wasm backend does not expose its WebAssembly.Memory; Typeformer's wasm kernels cannot run",
      { backend: "wasm" },
    );
  }
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  const exports = instance.exports as unknown as KernelExports;
  const scratch = wasm._malloc(exports.scratchBytes()) >>> 0;
  inst = { exports, scratch };
  perVariant.set(variant, inst);
  return inst;
}
