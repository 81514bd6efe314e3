import { type BackendInitResult, type InitBackendOptions, initBackend } from "@typeformer/core";
import { type RegisterWasmKernelsOptions, registerWasmKernels } from "./wasm/index.js";

export interface AcceleratedBackendOptions extends InitBackendOptions {
  /** Keep tf.js's stock wasm kernels (for comparisons); default false. */
  stockKernels?: boolean;
  /** Options for {@link registerWasmKernels} (variant, threads). */
  kernels?: RegisterWasmKernelsOptions;
}

export interface AcceleratedBackendResult extends BackendInitResult {
  /** Kernel names Typeformer registered for the backend (empty off wasm or with `stockKernels`). */
  kernels: string[];
}

/**
 * `initBackend()` from core, plus Typeformer's own SIMD kernels when the backend is wasm. Core cannot
 * register them itself (core ← attention), so every entry point that runs models calls this instead.
 */
export async function initAcceleratedBackend(
  options: AcceleratedBackendOptions = {},
): Promise<AcceleratedBackendResult> {
  const { stockKernels, kernels, ...init } = options;
  const result = await initBackend(init);
  if (result.tfBackend !== "wasm" || stockKernels) return { ...result, kernels: [] };
  return { ...result, kernels: registerWasmKernels(kernels).registered };
}
