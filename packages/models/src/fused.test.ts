import { readFileSync } from "node:fs";
import path from "node:path";
import { fusedKernelsActive, registerWasmKernels, unregisterWasmKernels } from "@typeformer/attention";
import { initBackend, Random, tf } from "@typeformer/core";
import { assertClose, expectNoLeaks, maxAbsDiff } from "@typeformer/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CausalLM, createModel, fromPretrained } from "./index.js";

const FIXTURES = path.join(import.meta.dirname, "__fixtures__");

// The same models with @typeformer/attention's fused wasm kernels (linear, LayerNorm, GELU, GEMM).
describe("models on the fused wasm kernels", () => {
  beforeAll(async () => {
    await initBackend({ backend: "wasm" });
    registerWasmKernels();
  });
  afterAll(() => {
    unregisterWasmKernels();
  });

  it("gpt2-tiny and llama-tiny reproduce the reference logits (max |Δ| ≤ 1e-4)", async () => {
    expect(fusedKernelsActive()).toBe(true);
    for (const name of ["gpt2-tiny", "llama-tiny"]) {
      const expected = JSON.parse(readFileSync(path.join(FIXTURES, name, "expected.json"), "utf8"));
      const model = await fromPretrained<CausalLM>(path.join(FIXTURES, name));
      const ids = tf.tensor2d(expected.input_ids, undefined, "int32");
      const { logits } = model.forward(ids);
      console.log(
        `${name} (fused kernels) max |Δ| = ${maxAbsDiff(logits, expected.logits).toExponential(2)}`,
      );
      assertClose(logits, expected.logits, { atol: 1e-4, rtol: 0, label: name });
      tf.dispose([ids, logits]);
      model.dispose();
    }
  });

  it("training gradients match the unfused ops and nothing leaks", async () => {
    const model = createModel<CausalLM>({ modelType: "gpt2", preset: "tiny" }, { seed: 5 });
    const ids = tf.tensor2d([[1, 2, 3, 4, 5, 6]], undefined, "int32");
    const params = [...model.namedParameters().values()];
    const loss = () => tf.sum(tf.square(model.forward(ids).logits)) as tf.Scalar;
    const grads = () => {
      const { value, grads } = tf.variableGrads(loss, params);
      const out = params.map((p) => grads[p.name].dataSync().slice());
      tf.dispose([value, ...Object.values(grads)]);
      return out;
    };
    const fused = grads();
    unregisterWasmKernels();
    const plain = grads();
    registerWasmKernels();
    for (let i = 0; i < params.length; i++) {
      const scale = Math.max(...plain[i].map(Math.abs), 1e-6);
      expect(maxAbsDiff(fused[i], plain[i]) / scale, params[i].name).toBeLessThan(1e-3);
    }
    tf.dispose(model.forward(ids).logits);
    await expectNoLeaks(() => {
      const r = model.forward(ids, { training: true, rng: new Random(1) });
      tf.dispose(r.logits);
    });
    ids.dispose();
    model.dispose();
  });
});
