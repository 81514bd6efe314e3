import { Random, tf } from "@typeformer/core";
import { assertClose, describeEachBackend, expectNoLeaks, f64 } from "@typeformer/test-utils";
import { expect, it } from "vitest";
import { refAttention } from "./conformance/reference.js";
import { KVCache } from "./kv-cache.js";
import { MultiHeadAttention } from "./multi-head-attention.js";

/** (B*T, in) @ (in, out) + bias in float64, back to heads (B, H, T, hd) flat. */
function projectHeads(
  x: number[][],
  w: tf.Tensor,
  b: tf.Tensor | undefined,
  B: number,
  T: number,
  heads: number,
) {
  const W = f64.reshape(w.dataSync(), w.shape) as number[][];
  const y = f64.matmul(x, W);
  const bias = b ? Array.from(b.dataSync()) : undefined;
  const hd = W[0].length / heads;
  const out = new Float64Array(B * heads * T * hd);
  for (let bt = 0; bt < B * T; bt++) {
    const bb = Math.floor(bt / T);
    const t = bt % T;
    for (let h = 0; h < heads; h++)
      for (let d = 0; d < hd; d++)
        out[((bb * heads + h) * T + t) * hd + d] = y[bt][h * hd + d] + (bias ? bias[h * hd + d] : 0);
  }
  return out;
}

describeEachBackend("MultiHeadAttention", () => {
  it("equals projections + float64 reference attention + output projection (GQA, causal, key mask)", async () => {
    const mha = new MultiHeadAttention({ dModel: 12, numHeads: 4, numKvHeads: 2, initStd: 0.3 }, { seed: 5 });
    for (const v of [mha.qBias, mha.kBias, mha.vBias, mha.oBias])
      v?.assign(tf.randomNormal(v.shape, 0, 0.1, "float32", 3));
    const B = 2;
    const T = 5;
    const xa = new Random(2).normalArray(B * T * 12);
    const x = tf.tensor3d(xa, [B, T, 12]);
    const mask = tf.tensor2d([1, 1, 1, 1, 1, 0, 0, 1, 1, 1], [B, T]);
    await expectNoLeaks(() => {
      const { output } = mha.apply(x, { attentionMask: mask });
      const X = f64.reshape(xa, [B * T, 12]) as number[][];
      const q = projectHeads(X, mha.qWeight, mha.qBias, B, T, 4);
      const k = projectHeads(X, mha.kWeight, mha.kBias, B, T, 2);
      const v = projectHeads(X, mha.vWeight, mha.vBias, B, T, 2);
      const att = refAttention({
        B,
        H: 4,
        Hkv: 2,
        Tq: T,
        Tk: T,
        D: 3,
        Dv: 3,
        q,
        k,
        v,
        causal: true,
        keyMask: mask.dataSync(),
      });
      const merged: number[][] = [];
      for (let b = 0; b < B; b++)
        for (let t = 0; t < T; t++) {
          const row: number[] = [];
          for (let h = 0; h < 4; h++)
            for (let d = 0; d < 3; d++) row.push(att.out[((b * 4 + h) * T + t) * 3 + d]);
          merged.push(row);
        }
      const y = f64.matmul(merged, f64.reshape(mha.oWeight.dataSync(), [12, 12]) as number[][]);
      const ob = Array.from((mha.oBias as tf.Variable).dataSync());
      assertClose(
        output,
        y.flat().map((val, i) => val + ob[i % 12]),
        { atol: 1e-5, rtol: 1e-4 },
      );
      output.dispose();
    });
    expect([...mha.namedParameters("layers.0.self_attn.").keys()]).toContain(
      "layers.0.self_attn.o_proj.bias",
    );
    tf.dispose([x, mask]);
    mha.dispose();
  });

  it("cached decoding with rotary equals the full pass; gradients flow to every weight without leaks", async () => {
    const mha = new MultiHeadAttention(
      { dModel: 8, numHeads: 2, numKvHeads: 1, rope: { theta: 1000 }, qkvBias: false, initStd: 0.4 },
      { seed: 9 },
    );
    const T = 6;
    const x = tf.tensor3d(new Random(4).normalArray(T * 8), [1, T, 8]);
    const full = mha.apply(x).output;
    const cache = new KVCache({ numLayers: 1, batch: 1, numKvHeads: 1, headDim: 4, maxLength: T });
    const parts: tf.Tensor[] = [];
    for (let t = 0; t < T; t++) {
      const xt = tf.slice(x, [0, t, 0], [1, 1, 8]);
      parts.push(mha.apply(xt, { cache, layer: 0 }).output);
      xt.dispose();
    }
    const stepwise = tf.concat(parts, 1);
    assertClose(stepwise, full, { atol: 1e-5, rtol: 1e-4 });
    tf.dispose([full, stepwise, ...parts]);
    cache.dispose();
    await expectNoLeaks(() => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(mha.apply(x).output)));
      expect(Object.keys(grads).length).toBe(5);
      for (const g of Object.values(grads))
        expect(Math.max(...Array.from(g.dataSync(), Math.abs))).toBeGreaterThan(0);
      tf.dispose([value, ...Object.values(grads)]);
    });
    x.dispose();
    mha.dispose();
  });

  it("rejects bad configs naming the value", () => {
    expect(() => new MultiHeadAttention({ dModel: 10, numHeads: 3 })).toThrow(/headDim.*received 3.33/);
    expect(() => new MultiHeadAttention({ dModel: 8, numHeads: 4, numKvHeads: 3 })).toThrow(
      /numKvHeads.*received 3/,
    );
  });
});
