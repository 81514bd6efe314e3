import { registerWasmKernels, unregisterWasmKernels } from "@typeformer/attention";
import { initBackend, tf } from "@typeformer/core";
import { type CausalLM, createModel } from "@typeformer/models";
import { afterAll, beforeAll, expect, it } from "vitest";
import { CausalLMObjective, type TokenBatch } from "./objectives.js";
import { Trainer } from "./trainer.js";

// Regression test for bench/nanogpt.ts reporting val loss 1.970 instead of 1.887: the fused AdamW kernel
// once updated weights in place, so the tied LM head's transposed copy, cached by the first
// evaluation (a gradient-free, training: false forward), was never refreshed and every later
// evaluation scored a stale head. Evaluations after updates must score the current weights.
beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  registerWasmKernels();
});
afterAll(() => {
  unregisterWasmKernels();
});

it("evaluations after fused AdamW updates score the current tied head", async () => {
  const V = 23;
  const model = createModel<CausalLM>(
    { modelType: "gpt2", preset: "tiny", vocabSize: V, residDropout: 0, attnDropout: 0, embdDropout: 0 },
    { seed: 7 },
  );
  const batch = (s: number): TokenBatch => {
    const tokens = new Int32Array(4 * 17);
    for (let i = 0; i < tokens.length; i++) tokens[i] = (i * 7 + s * 3 + ((i * i) % 5)) % V;
    return { tokens, batchSize: 4, length: 17 };
  };
  let k = 0;
  const objective = new CausalLMObjective(model);
  const evals: number[] = [];
  const trainer = new Trainer({
    model,
    objective,
    train: {
      next: () => batch(k++),
      getState: () => k,
      setState: (s) => {
        k = s as number;
      },
    },
    val: { batches: (n) => Array.from({ length: n }, (_, i) => batch(100 + i)) },
    steps: 4,
    lr: { maxLr: 1e-2, warmupSteps: 0, decaySteps: 4 },
    optimizer: { weightDecay: 0.1, decay: (_n, v) => v.rank >= 2 }, // wte decays too
    evalEvery: 1,
    evalBatches: 2,
    seed: 1,
    callbacks: { onEval: (e) => void evals.push(e.valLoss) },
  });
  await trainer.train();
  expect(evals).toHaveLength(4);
  // reference: the same batches scored under a gradient tape, which never uses the cached head
  let sum = 0;
  let count = 0;
  for (const b of [batch(100), batch(101)]) {
    const { value } = tf.variableGrads(() => {
      const r = objective.loss(b, { training: false, rng: trainer.rng });
      count += r.count;
      return r.loss;
    });
    sum += value.dataSync()[0];
    value.dispose();
  }
  const reference = sum / count;
  expect(Math.abs(evals[3] - reference)).toBeLessThan(1e-5);
  expect(Math.abs(evals[3] - evals[0])).toBeGreaterThan(1e-3); // the weights did move
  trainer.dispose();
  model.dispose();
});
