import { registerWasmKernels, unregisterWasmKernels } from "@typeformer/attention";
import { initBackend, tf } from "@typeformer/core";
import { type CausalLM, createModel } from "@typeformer/models";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { FakeCharTokenizer } from "./__fixtures__/fake-model.js";
import { type GenerateRequest, GenerationEngine } from "./engine.js";

describe("GenerationEngine on a real tiny GPT-2 with the attention KVCache (wasm)", () => {
  const tok = new FakeCharTokenizer();
  let model: CausalLM;
  beforeAll(async () => {
    await initBackend({ backend: "wasm" });
    model = createModel(
      {
        modelType: "gpt2",
        vocabSize: tok.vocabSize,
        maxPositions: 64,
        hiddenSize: 32,
        numLayers: 2,
        numHeads: 4,
      },
      { seed: 3 },
    ) as CausalLM;
  });
  afterAll(() => model.dispose());

  it.each([
    ["stock tf.js kernels", false],
    ["Typeformer SIMD GEMM kernels", true],
  ])("batched decoding gives the same tokens as decoding alone (%s)", async (_name, fast) => {
    if (fast) registerWasmKernels();
    const engine = new GenerationEngine({ model, tokenizer: tok, maxBatch: 8 });
    const prompts = ["hello", "a longer prompt", "x", "the whale swam", "Q:", "abc abc abc", "ok", "Call me"];
    const reqs: GenerateRequest[] = prompts.map((p, i) => ({
      promptIds: tok.encode(p),
      maxTokens: 12 + i,
      ignoreEos: true,
      sampling: i % 2 === 0 ? { temperature: 0 } : { seed: i, temperature: 1, topP: 0.95 },
    }));
    await engine.generate({ promptIds: [1, 2], maxTokens: 2 }); // warm the model's lazy caches
    const before = tf.memory().numTensors;
    const alone = [];
    for (const r of reqs) alone.push(await engine.generate(r));
    const shapes: number[][] = [];
    const forward = model.forward.bind(model);
    const spy = vi.spyOn(model, "forward").mockImplementation((ids, o) => {
      shapes.push(ids.shape);
      return forward(ids, o);
    });
    const batched = await Promise.all(reqs.map((r) => engine.generate(r)));
    spy.mockRestore();
    // all eight ragged prompts were prefilled in one left-padded forward, then decoded together
    expect(shapes[0]).toEqual([8, Math.max(...prompts.map((p) => p.length))]);
    expect(shapes[1]).toEqual([8, 1]);
    await engine.idle();
    expect(tf.memory().numTensors).toBe(before);
    if (fast) unregisterWasmKernels();
    expect(batched.map((r) => r.tokenIds)).toEqual(alone.map((r) => r.tokenIds));
  });

  it("requests joining and leaving mid-decode still match their solo runs", async () => {
    const engine = new GenerationEngine({ model, tokenizer: tok, maxBatch: 4 });
    const mk = (p: string, n: number, seed: number): GenerateRequest => ({
      promptIds: tok.encode(p),
      maxTokens: n,
      ignoreEos: true,
      sampling: { seed, temperature: 0.9 },
    });
    const plan = [
      mk("first one", 30, 1),
      mk("b", 5, 2),
      mk("third prompt here", 20, 3),
      mk("xyz", 12, 4),
      mk("last", 9, 5),
    ];
    const alone = [];
    for (const r of plan) alone.push((await engine.generate(r)).tokenIds);
    // staggered: each request joins after the first has produced 3·i tokens; short ones leave early
    const first = engine.submit(plan[0]);
    const others: Promise<number[]>[] = [];
    let produced = 0;
    for await (const _ of first) {
      produced++;
      const i = others.length + 1;
      if (i < plan.length && produced === 3 * i)
        others.push(engine.generate(plan[i]).then((r) => r.tokenIds));
    }
    const got = [(await first.result).tokenIds, ...(await Promise.all(others))];
    expect(got).toEqual(alone);
  });

  it("greedy engine output equals a plain cached greedy loop", async () => {
    const engine = new GenerationEngine({ model, tokenizer: tok });
    const prompt = tok.encode("hello world");
    const r = await engine.generate({
      promptIds: prompt,
      maxTokens: 10,
      ignoreEos: true,
      sampling: { temperature: 0 },
    });
    // reference: no cache, full forward each step
    const ids = [...prompt];
    for (let i = 0; i < 10; i++) {
      const next = tf.tidy(() => {
        const { logits } = model.forward(tf.tensor2d([ids], undefined, "int32"));
        return tf.argMax(logits.slice([0, ids.length - 1, 0], [1, 1, -1]), -1).dataSync()[0];
      });
      ids.push(next);
    }
    expect(r.tokenIds).toEqual(ids.slice(prompt.length));
  });
});
