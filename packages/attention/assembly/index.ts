// Entry of Typeformer's WebAssembly kernel module (built by scripts/build-wasm.mjs).
export { bmm, gemmRows, KC, NC, scratchBytes } from "./gemm";
export { adamw, addBias, columnSum, geluBackward, geluForward, layerNormBackward, layerNormForward } from "./ops";
export { decodeAttention } from "./decode";
export { flashBackward, flashForward, flashScratchBytes } from "./attention";
