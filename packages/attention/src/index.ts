export type { AcceleratedBackendOptions, AcceleratedBackendResult } from "./accelerated-backend.js";
export { initAcceleratedBackend } from "./accelerated-backend.js";
export type { AlibiBiasOptions } from "./alibi.js";
export { alibiBias, alibiSlopes } from "./alibi.js";
export { dropoutMultipliers, dropoutSeed } from "./dropout.js";
export type { AttendInPlaceOptions, KVCacheOptions, RowMask } from "./kv-cache.js";
export { KVCache } from "./kv-cache.js";
export type { MultiHeadAttentionCall, MultiHeadAttentionConfig } from "./multi-head-attention.js";
export { MultiHeadAttention } from "./multi-head-attention.js";
export type { MaskTensors } from "./naive.js";
export { buildMasks, naiveAttention, naiveImplementation } from "./naive.js";
export {
  getAttentionImplementation,
  listAttentionImplementations,
  registerAttentionImplementation,
  scaledDotProductAttention,
  selectAttentionImplementation,
} from "./registry.js";
export type { RotaryOptions } from "./rotary.js";
export { applyRotary, rotaryInverseFrequencies } from "./rotary.js";
export { tiledAttention, tiledImplementation } from "./tiled.js";
export type { AttentionImplementation, AttentionOptions, AttentionResult } from "./types.js";
export type { AttentionDims } from "./validate.js";
export { attentionDims, blockKind, NEG_INF, staticVisibility } from "./validate.js";
export type {
  AdamWHyper,
  FlashAttentionAttrs,
  RegisterWasmKernelsOptions,
  WasmKernelVariant,
} from "./wasm/index.js";
export {
  adamwUpdate,
  embedInference,
  FLASH_KERNEL_NAMES,
  flashAttention,
  flashKernelsActive,
  flashScratchBytes,
  fusedKernelsActive,
  gelu,
  inferenceFastPaths,
  layerNorm,
  linear,
  linearAddLayerNorm,
  linearInference,
  registerWasmKernels,
  setInferenceFastPaths,
  setWasmFusedAttention,
  unregisterWasmKernels,
  wasmBatchMatMul,
  wasmFusedImplementation,
  wasmThreadsReady,
} from "./wasm/index.js";
