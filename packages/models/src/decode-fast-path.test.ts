import { readFileSync } from "node:fs";
import path from "node:path";
import { registerWasmKernels, setInferenceFastPaths, unregisterWasmKernels } from "@typeformer/attention";
import { initBackend, tf } from "@typeformer/core";
import { assertClose, expectNoLeaks, maxAbsDiff } from "@typeformer/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CausalLM, fromPretrained } from "./index.js";

const FIXTURES = path.join(import.meta.dirname, "__fixtures__");

/** Logits of a left-padded 2-row batch: a 4-token prefill, then `steps` single tokens (greedy). */
function cachedRun(model: CausalLM, steps: number): { logits: number[][][]; tokens: number[][] } {
  const cache = model.createCache(2, 4 + steps);
  const ids = tf.tensor2d(
    [
      [5, 9, 2, 7],
      [0, 0, 3, 8],
    ],
    undefined,
    "int32",
  );
  const mask = tf.tensor2d(
    [
      [1, 1, 1, 1],
      [0, 0, 1, 1],
    ],
    undefined,
    "int32",
  );
  const logits: number[][][] = [];
  const tokens: number[][] = [];
  let out = model.forward(ids, { attentionMask: mask, cache }).logits;
  for (let s = 0; s <= steps; s++) {
    const T = out.shape[1];
    logits.push(...(out.arraySync() as number[][][]).map((row) => row[T - 1]).map((r) => [r]));
    if (s === steps) break;
    const next = tf.tidy(() =>
      tf.cast(tf.reshape(tf.argMax(tf.slice(out, [0, T - 1, 0], [2, 1, -1]), -1), [2, 1]), "int32"),
    );
    tokens.push(Array.from(next.dataSync()));
    out.dispose();
    out = model.forward(next as tf.Tensor2D, { cache }).logits;
    next.dispose();
  }
  tf.dispose([out, ids, mask]);
  cache.dispose();
  return { logits, tokens };
}

// The decode fast paths (fused in-place KV-cache attention, fused linear + GELU / + residual, direct
// kernel calls) against the plain path on the same kernels and against the full forward.
describe("decode fast path (wasm kernels)", () => {
  let models: [string, CausalLM][] = [];
  beforeAll(async () => {
    await initBackend({ backend: "wasm" });
    registerWasmKernels();
    models = await Promise.all(
      ["gpt2-tiny", "llama-tiny"].map(
        async (n) => [n, await fromPretrained<CausalLM>(path.join(FIXTURES, n))] as [string, CausalLM],
      ),
    );
  });
  afterAll(() => {
    for (const [, m] of models) m.dispose();
    setInferenceFastPaths(true);
    unregisterWasmKernels();
  });

  it("fused cached decode equals the plain path (left-padded batch, greedy steps)", () => {
    for (const [name, model] of models) {
      const fast = cachedRun(model, 6);
      setInferenceFastPaths(false);
      const plain = cachedRun(model, 6);
      setInferenceFastPaths(true);
      const d = maxAbsDiff(fast.logits.flat(2), plain.logits.flat(2));
      console.log(`${name}: fused vs plain cached decode max |Δ| = ${d.toExponential(2)}`);
      expect(d).toBeLessThan(1e-4);
      expect(fast.tokens).toEqual(plain.tokens);
    }
  });

  it("fused cached decode equals the full forward; the fixtures' reference logits still match", () => {
    for (const [name, model] of models) {
      const expected = JSON.parse(readFileSync(path.join(FIXTURES, name, "expected.json"), "utf8"));
      const seq: number[] = expected.input_ids[0];
      const ids = tf.tensor2d([seq], undefined, "int32");
      const { logits: full } = model.forward(ids);
      assertClose(full, [expected.logits[0]], { atol: 1e-4, rtol: 0, label: `${name} full vs reference` });
      const cache = model.createCache(1, seq.length);
      const parts: tf.Tensor3D[] = [];
      for (const c of [seq.slice(0, 3), ...seq.slice(3).map((t) => [t])]) {
        const x = tf.tensor2d([c], undefined, "int32");
        parts.push(model.forward(x, { cache }).logits);
        x.dispose();
      }
      const inc = tf.concat(parts, 1);
      assertClose(inc, full, { atol: 1e-4, rtol: 0, label: `${name} fused cached vs full` });
      tf.dispose([ids, full, inc, ...parts]);
      cache.dispose();
    }
  });

  it("does not leak tensors (prefill, decode steps, cache dispose)", async () => {
    for (const [, model] of models) {
      cachedRun(model, 1); // warm-up: the cached transposed head
      await expectNoLeaks(() => {
        cachedRun(model, 5);
      });
    }
  });
});
