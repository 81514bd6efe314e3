import { fusedKernelsActive, registerWasmKernels, unregisterWasmKernels } from "@typeformer/attention";
import { tf } from "@typeformer/core";
import { assertClose, describeEachBackend, expectNoLeaks } from "@typeformer/test-utils";
import { expect, it } from "vitest";
import ref from "./__fixtures__/adamw.json" with { type: "json" };
import { AdamW, defaultDecayRule } from "./optimizer.js";
import { learningRate } from "./schedule.js";

describeEachBackend("AdamW", (backend) => {
  for (const fusedKernels of backend === "wasm" ? [false, true] : [false])
    it(`matches torch.optim.AdamW (decoupled decay on the weight, none on the bias) over 4 steps${fusedKernels ? " (fused wasm kernel)" : ""}`, async () => {
      if (fusedKernels) registerWasmKernels();
      expect(fusedKernelsActive()).toBe(fusedKernels);
      const w = tf.variable(tf.tensor2d(ref.init.weight as number[][]), true, undefined, "float32");
      const b = tf.variable(tf.tensor1d(ref.init.bias), true, undefined, "float32");
      const params = new Map<string, tf.Variable>([
        ["h.0.mlp.c_fc.weight", w],
        ["h.0.mlp.c_fc.bias", b],
      ]);
      const opt = new AdamW(params, {
        beta1: ref.betas[0],
        beta2: ref.betas[1],
        eps: ref.eps,
        weightDecay: 0.1,
      });
      expect([...opt.decayed]).toEqual(["h.0.mlp.c_fc.weight"]);
      for (let s = 0; s < ref.lrs.length; s++) {
        const grads = new Map<string, tf.Tensor>([
          ["h.0.mlp.c_fc.weight", tf.tensor2d(ref.grads[s].weight as number[][])],
          ["h.0.mlp.c_fc.bias", tf.tensor1d(ref.grads[s].bias)],
        ]);
        await expectNoLeaks(() => opt.step(grads, ref.lrs[s]));
        tf.dispose([...grads.values()]);
        assertClose(w, ref.after[s].weight, { atol: 2e-6, rtol: 1e-5, label: `weight after step ${s + 1}` });
        assertClose(b, ref.after[s].bias, { atol: 2e-6, rtol: 1e-5, label: `bias after step ${s + 1}` });
      }
      // snapshot → restore into a fresh optimizer gives identical next updates
      const snap = await opt.snapshot();
      const opt2 = new AdamW(params, { beta1: 0.9, beta2: 0.99, weightDecay: 0.1 });
      opt2.restore(snap);
      expect(opt2.t).toBe(4);
      const m1 = await opt.snapshot();
      const m2 = await opt2.snapshot();
      for (const [k, v] of m1.tensors)
        expect(Array.from(m2.tensors.get(k)!.data)).toEqual(Array.from(v.data));
      opt.dispose();
      opt2.dispose();
      w.dispose();
      b.dispose();
      if (fusedKernels) unregisterWasmKernels();
    });

  it("gradScale multiplies gradients before the update (loss normalisation / clipping)", () => {
    const a = tf.variable(tf.tensor1d([1, 2, 3]));
    const c = tf.variable(tf.tensor1d([1, 2, 3]));
    const o1 = new AdamW(new Map([["x.weight", a]]), { weightDecay: 0 });
    const o2 = new AdamW(new Map([["x.weight", c]]), { weightDecay: 0 });
    const g = tf.tensor1d([0.5, -1, 2]);
    const g4 = tf.mul(g, 4);
    o1.step(new Map([["x.weight", g]]), 0.1);
    o2.step(new Map([["x.weight", g4]]), 0.1, 0.25);
    assertClose(c, a.dataSync(), { atol: 1e-7 });
    tf.dispose([a, c, g, g4]);
    o1.dispose();
    o2.dispose();
  });
});

it("default decay rule skips biases, norms and embeddings; a RegExp or function overrides it", () => {
  const v = (shape: number[]) => ({ rank: shape.length }) as unknown as tf.Variable;
  const rule = defaultDecayRule();
  const names: [string, number[], boolean][] = [
    ["transformer.h.0.attn.c_attn.weight", [4, 12], true],
    ["transformer.h.0.attn.c_attn.bias", [12], false],
    ["transformer.h.0.ln_1.weight", [4], false],
    ["transformer.ln_f.weight", [4], false],
    ["transformer.wte.weight", [65, 4], false],
    ["transformer.wpe.weight", [64, 4], false],
    ["model.embed_tokens.weight", [65, 4], false],
    ["model.layers.0.input_layernorm.weight", [4], false],
    ["model.layers.0.self_attn.q_proj.weight", [4, 4], true],
    ["bert.embeddings.word_embeddings.weight", [30, 4], false],
    ["bert.encoder.layer.0.attention.output.LayerNorm.weight", [4], false],
    ["lm_head.weight", [4, 65], true],
  ];
  for (const [n, s, want] of names) expect([n, rule(n, v(s))]).toEqual([n, want]);
});

it("learningRate follows nanoGPT's get_lr: linear warmup, cosine to the floor, then the floor", () => {
  const o = { maxLr: 1e-3, minLr: 1e-4, warmupSteps: 100, decaySteps: 2000 };
  // nanoGPT: lr * (it+1)/(warmup+1) for it < warmup
  expect(learningRate(0, o)).toBeCloseTo(1e-3 / 101, 12);
  expect(learningRate(99, o)).toBeCloseTo(1e-3 * (100 / 101), 12);
  expect(learningRate(100, o)).toBeCloseTo(1e-3, 12);
  expect(learningRate(1050, o)).toBeCloseTo(1e-4 + 0.5 * (1e-3 - 1e-4), 12);
  expect(learningRate(2000, o)).toBeCloseTo(1e-4, 12);
  expect(learningRate(5000, o)).toBeCloseTo(1e-4, 12);
  expect(() => learningRate(0, { maxLr: 0, decaySteps: 1 })).toThrow(/maxLr must be > 0; received 0/);
});
