export type { RegisterWasmKernelsOptions, WasmKernelVariant } from "./kernels.js";
export { registerWasmKernels, unregisterWasmKernels, wasmBatchMatMul } from "./kernels.js";
