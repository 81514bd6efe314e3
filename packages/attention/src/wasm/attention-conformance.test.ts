// The attention conformance suite (float64 reference: forward, gradients, masks, GQA, odd sizes,
// cached decoding, leaks) run again with Typeformer's wasm kernels registered: the naive and tiled
// implementations then run every batched/transposed product, forward and backward, on our GEMM and
// their dense layers on the fused kernels; "wasm-fused" is the fused flash-attention forward/backward.

import type { ConformanceEntry } from "../conformance/implementations.js";
import { attentionConformanceSuite } from "../conformance/suite.js";
import { listAttentionImplementations } from "../registry.js";
import "../naive.js";
import "../tiled.js";
import { wasmFusedImplementation } from "./flash-attention.js";
import { registerWasmKernels } from "./kernels.js";

// the fused flash-attention kernels ("wasm-fused", registered by registerWasmKernels) run the same suite
const impls = listAttentionImplementations().filter((i) => i.name !== wasmFusedImplementation.name);
const entries: ConformanceEntry[] = [...impls, wasmFusedImplementation].map((impl) => ({
  name: `${impl.name}+wasm-kernels`,
  backends: ["wasm"],
  impl: {
    ...impl,
    sdpa: (q, k, v, opts) => {
      registerWasmKernels();
      return impl.sdpa(q, k, v, opts);
    },
  },
}));

attentionConformanceSuite(entries);
