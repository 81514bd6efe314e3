import { tf } from "@typeformer/core";
import { describe, expect, it } from "vitest";
import { initAcceleratedBackend, unregisterWasmKernels } from "./index.js";

describe("initAcceleratedBackend", () => {
  it("registers Typeformer's kernels on wasm and reports them", async () => {
    const r = await initAcceleratedBackend({ backend: "wasm" });
    expect(r.backend).toBe("wasm");
    expect(r.kernels).toContain("BatchMatMul");
    // the registered GEMM serves a transposed batched product (stock wasm's slow path) correctly
    const a = tf.tensor3d([1, 2, 3, 4, 5, 6], [1, 3, 2]);
    const b = tf.tensor3d([1, 0, 2, 1, 0, 3], [1, 3, 2]);
    const c = tf.matMul(a, b, true, false);
    expect(Array.from(c.dataSync())).toEqual([7, 18, 10, 22]);
    tf.dispose([a, b, c]);
    unregisterWasmKernels();
  });

  it("registers nothing off wasm or when stock kernels are asked for", async () => {
    expect((await initAcceleratedBackend({ backend: "cpu" })).kernels).toEqual([]);
    expect((await initAcceleratedBackend({ backend: "wasm", stockKernels: true })).kernels).toEqual([]);
  });
});
