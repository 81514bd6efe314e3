import { initBackend, tf } from "@typeformer/core";
import { assertClose, expectNoLeaks } from "@typeformer/test-utils";
import { beforeAll, describe, expect, it } from "vitest";
import { adamwUpdate, fusedKernelsActive, gelu, layerNorm, linear } from "./fused-ops.js";
import { registerWasmKernels } from "./kernels.js";

const C = Math.sqrt(2 / Math.PI);
const geluRef = (x: tf.Tensor) => x.mul(0.5).mul(tf.tanh(x.add(x.pow(3).mul(0.044715)).mul(C)).add(1));
const lnRef = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
  const { mean, variance } = tf.moments(x, -1, true);
  return x
    .sub(mean)
    .mul(tf.rsqrt(variance.add(1e-5)))
    .mul(g)
    .add(b);
};

describe("fused wasm ops: gelu, layerNorm, adamwUpdate", () => {
  beforeAll(async () => {
    await initBackend({ backend: "wasm" });
    registerWasmKernels();
    expect(fusedKernelsActive()).toBe(true);
  });

  it("gelu forward and gradient match the tanh-GELU formula (odd size, large |x|)", () => {
    const vals = new Float32Array(1031);
    for (let i = 0; i < vals.length; i++) vals[i] = (i - 515) / 40; // [-12.9, 12.9]
    const x = tf.tensor1d(vals);
    const dy = tf.randomUniform([1031], -1, 1, "float32", 3);
    assertClose(gelu(x), geluRef(x), { atol: 2e-6, rtol: 1e-5, label: "gelu" });
    const g = tf.grad((t: tf.Tensor) => gelu(t).mul(dy).sum())(x);
    const gRef = tf.grad((t: tf.Tensor) => geluRef(t).mul(dy).sum())(x);
    assertClose(g, gRef, { atol: 1e-5, rtol: 1e-4, label: "gelu grad" });
  });

  for (const d of [128, 7, 1]) {
    it(`layerNorm forward and gradients (x, gamma, beta) match tf ops, d=${d}`, () => {
      const x = tf.randomNormal([3, 5, d], 0.5, 2, "float32", 4);
      const g = tf.randomUniform([d], 0.5, 1.5, "float32", 5);
      const b = tf.randomUniform([d], -1, 1, "float32", 6);
      const dy = tf.randomNormal([3, 5, d], 0, 1, "float32", 7);
      assertClose(layerNorm(x, g, b), lnRef(x, g, b), { atol: 1e-5, rtol: 1e-4, label: "layerNorm" });
      const ours = tf.grads((a: tf.Tensor, c: tf.Tensor, e: tf.Tensor) => layerNorm(a, c, e).mul(dy).sum())([
        x,
        g,
        b,
      ]);
      const ref = tf.grads((a: tf.Tensor, c: tf.Tensor, e: tf.Tensor) => lnRef(a, c, e).mul(dy).sum())([
        x,
        g,
        b,
      ]);
      for (let i = 0; i < 3; i++) {
        expect(ours[i].shape).toEqual(ref[i].shape);
        assertClose(ours[i], ref[i], { atol: 1e-4, rtol: 1e-4, label: ["dx", "dgamma", "dbeta"][i] });
      }
    });
  }

  it("linear (bias fused in the GEMM) forward and gradients match matMul + add, rank 3 input", () => {
    const x = tf.randomNormal([2, 9, 13], 0, 1, "float32", 8);
    const w = tf.randomNormal([13, 11], 0, 1, "float32", 9);
    const b = tf.randomNormal([11], 0, 1, "float32", 10);
    const dy = tf.randomNormal([2, 9, 11], 0, 1, "float32", 11);
    const ref = (a: tf.Tensor, c: tf.Tensor, e: tf.Tensor) =>
      tf
        .matMul(a.reshape([18, 13]), c)
        .add(e)
        .reshape([2, 9, 11]);
    const y = linear(x, w, b);
    expect(y.shape).toEqual([2, 9, 11]);
    assertClose(y, ref(x, w, b), { atol: 1e-5, label: "linear" });
    const ours = tf.grads((a: tf.Tensor, c: tf.Tensor, e: tf.Tensor) => linear(a, c, e).mul(dy).sum())([
      x,
      w,
      b,
    ]);
    const want = tf.grads((a: tf.Tensor, c: tf.Tensor, e: tf.Tensor) => ref(a, c, e).mul(dy).sum())([
      x,
      w,
      b,
    ]);
    for (let i = 0; i < 3; i++) assertClose(ours[i], want[i], { atol: 1e-4, label: ["dx", "dw", "db"][i] });
    expect(() => linear(x, b, w)).toThrow(/linear needs/);
  });

  it("layerNorm rejects gamma of the wrong size, naming the shapes", () => {
    const x = tf.ones([2, 4]);
    const g = tf.ones([3]);
    expect(() => layerNorm(x, g, g)).toThrow(/\[3\]/);
    tf.dispose([x, g]);
  });

  it("adamwUpdate matches the AdamW formula (fused and tf-ops paths) and never writes a shared buffer", () => {
    const n = 10;
    const w0 = Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1));
    const g0 = Float32Array.from({ length: n }, (_, i) => Math.cos(3 * i));
    const hyper = { lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 };
    // float64 reference, 3 steps
    const w = Float64Array.from(w0);
    const m = new Float64Array(n);
    const v = new Float64Array(n);
    for (let t = 1; t <= 3; t++)
      for (let i = 0; i < n; i++) {
        m[i] = 0.9 * m[i] + 0.1 * g0[i];
        v[i] = 0.99 * v[i] + 0.01 * g0[i] ** 2;
        w[i] =
          w[i] * (1 - 0.01 * 0.1) -
          (0.01 * m[i]) / (1 - 0.9 ** t) / (Math.sqrt(v[i] / (1 - 0.99 ** t)) + 1e-8);
      }
    const run = (fused: boolean) => {
      const wv = tf.variable(tf.tensor1d(w0));
      const mv = tf.variable(tf.zeros([n]));
      const vv = tf.variable(tf.zeros([n]));
      const gt = tf.tensor1d(g0);
      // A second reference to w's memory must keep the old values (w gets a new buffer).
      const alias = fused ? undefined : wv.reshape([n]);
      for (let t = 1; t <= 3; t++) adamwUpdate(wv, gt, mv, vv, { ...hyper, step: t });
      const out = wv.dataSync().slice();
      if (alias) assertClose(alias, w0, { atol: 0, rtol: 0, label: "aliased tensor untouched" });
      tf.dispose([wv, mv, vv, gt, alias]);
      return out;
    };
    assertClose(run(true), w, { atol: 1e-6, rtol: 1e-5, label: "fused adamw" });
    assertClose(run(false), w, { atol: 1e-6, rtol: 1e-5, label: "tf-ops adamw" });
  });

  it("leak no tensors (forward, gradients, optimizer)", async () => {
    const x = tf.randomNormal([4, 8]);
    const g = tf.ones([8]);
    const b = tf.zeros([8]);
    const wv = tf.variable(tf.ones([8]));
    const mv = tf.variable(tf.zeros([8]));
    const vv = tf.variable(tf.zeros([8]));
    const run = () => {
      gelu(x).dispose();
      layerNorm(x, g, b).dispose();
      tf.dispose(tf.grads((a: tf.Tensor, c: tf.Tensor) => gelu(layerNorm(a, c, b)).sum())([x, g]));
      tf.dispose(tf.grads((a: tf.Tensor, c: tf.Tensor) => linear(a, tf.eye(8), c).sum())([x, g]));
      adamwUpdate(wv, g, mv, vv, { lr: 0.1, step: 1 });
    };
    run();
    await expectNoLeaks(run);
    tf.dispose([x, g, b, wv, mv, vv]);
  });
});
