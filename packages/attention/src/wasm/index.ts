export type { FlashAttentionAttrs } from "./flash-attention.js";
export {
  FLASH_KERNEL_NAMES,
  flashAttention,
  flashKernelsActive,
  flashScratchBytes,
  setWasmFusedAttention,
  wasmFusedImplementation,
} from "./flash-attention.js";
export type { AdamWHyper } from "./fused-ops.js";
export {
  adamwUpdate,
  embedInference,
  fusedKernelsActive,
  gelu,
  inferenceFastPaths,
  layerNorm,
  linear,
  linearAddLayerNorm,
  linearInference,
  setInferenceFastPaths,
} from "./fused-ops.js";
export type { WasmKernelVariant } from "./instance.js";
export type { RegisterWasmKernelsOptions } from "./kernels.js";
export { registerWasmKernels, unregisterWasmKernels, wasmBatchMatMul, wasmThreadsReady } from "./kernels.js";
