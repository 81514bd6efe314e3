import { initBackend, Random, tf } from "@typeformer/core";
import { assertClose, expectNoLeaks } from "@typeformer/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KVCache } from "../kv-cache.js";
import { scaledDotProductAttention } from "../registry.js";
import { linearAddLayerNorm, linearInference, setInferenceFastPaths } from "./fused-ops.js";
import { registerWasmKernels, unregisterWasmKernels } from "./kernels.js";

const rand = (rng: Random, shape: number[]) =>
  tf.tensor(
    rng.normalArray(
      shape.reduce((a, b) => a * b, 1),
      0,
      1,
    ),
    shape,
  );
/** (B·t, G·D) → (B, G, t, D) */
const heads = (x: tf.Tensor2D, B: number, t: number, G: number, D: number) =>
  tf.transpose(tf.reshape(x, [B, t, G, D]), [0, 2, 1, 3]) as tf.Tensor4D;

describe("fused in-place decode attention (KVCache.attendInPlace)", () => {
  beforeAll(async () => {
    await initBackend({ backend: "wasm" });
    registerWasmKernels();
  });
  afterAll(() => {
    unregisterWasmKernels();
  });

  it("equals update + masked attention over steps of 3, 1, 1… tokens, GQA, left padding, capacity growth", () => {
    const [B, H, Hkv, D, L] = [2, 4, 2, 8, 2];
    const rng = new Random(3);
    const opts = { numLayers: L, batch: B, numKvHeads: Hkv, headDim: D, maxLength: 40 };
    const fast = new KVCache(opts);
    const plain = new KVCache(opts);
    expect(KVCache.canAttendInPlace()).toBe(true);
    const steps = [3, 1, 1, 5, ...Array(20).fill(1)]; // 30 slots: buffers grow 16 → 32
    steps.forEach((t, step) => {
      const mask =
        step === 0
          ? [
              [0, 1, 1],
              [1, 1, 1],
            ]
          : undefined; // row 0 left-padded
      for (let l = 0; l < L; l++) {
        // one fused (B·t, (H + 2·Hkv)·D) tensor, like a QKV projection
        const qkv = rand(rng, [B * t, (H + 2 * Hkv) * D]) as tf.Tensor2D;
        const got = fast.attendInPlace(l, qkv, qkv, qkv, {
          numHeads: H,
          qOffset: 0,
          kOffset: H * D,
          vOffset: (H + Hkv) * D,
          mask,
        });
        const want = tf.tidy(() => {
          const [q, k, v] = tf.split(qkv, [H * D, Hkv * D, Hkv * D], 1) as tf.Tensor2D[];
          const all = plain.update(l, heads(k, B, t, Hkv, D), heads(v, B, t, Hkv, D), mask);
          const { output } = scaledDotProductAttention(heads(q, B, t, H, D), all.k, all.v, {
            causal: true,
            keyMask: plain.keyMask(),
            implementation: "naive",
          });
          return tf.reshape(tf.transpose(output, [0, 2, 1, 3]), [B * t, H * D]);
        });
        assertClose(got, want, { atol: 1e-5, rtol: 0, label: `step ${step} layer ${l}` });
        tf.dispose([qkv, got, want]);
      }
    });
    expect(fast.lengths).toEqual(plain.lengths);
    expect(fast.length).toBe(plain.length);
    // get() hands out copies: a later in-place step does not change them
    const snap = fast.get(1)!;
    const ref = plain.get(1)!;
    assertClose(snap.k, ref.k, { atol: 0, rtol: 0 });
    const before = snap.k.dataSync().slice();
    const qkv = rand(rng, [B, (H + 2 * Hkv) * D]) as tf.Tensor2D;
    for (let l = 0; l < L; l++)
      tf.dispose(
        fast.attendInPlace(l, qkv, qkv, qkv, { numHeads: H, kOffset: H * D, vOffset: (H + Hkv) * D }),
      );
    expect(snap.k.dataSync()).toEqual(before);
    tf.dispose([snap.k, snap.v, ref.k, ref.v, qkv]);
    fast.dispose();
    plain.dispose();
  });

  it("works with removeRows / concatRows / trim between steps (serving) and does not leak", async () => {
    const [B, H, D] = [3, 2, 4];
    const rng = new Random(9);
    const mk = (batch: number) =>
      new KVCache({ numLayers: 1, batch, numKvHeads: H, headDim: D, maxLength: 24 });
    await expectNoLeaks(() => {
      const fast = mk(B);
      const plain = mk(B);
      const step = (rows: number, t: number) => {
        const qkv = rand(rng, [rows * t, 3 * H * D]) as tf.Tensor2D;
        const got = fast.attendInPlace(0, qkv, qkv, qkv, { numHeads: H, kOffset: H * D, vOffset: 2 * H * D });
        const want = tf.tidy(() => {
          const [q, k, v] = tf.split(qkv, 3, 1) as tf.Tensor2D[];
          const all = plain.update(0, heads(k, rows, t, H, D), heads(v, rows, t, H, D));
          const { output } = scaledDotProductAttention(heads(q, rows, t, H, D), all.k, all.v, {
            causal: true,
            keyMask: plain.keyMask(),
          });
          return tf.reshape(tf.transpose(output, [0, 2, 1, 3]), [rows * t, H * D]);
        });
        assertClose(got, want, { atol: 1e-5, rtol: 0 });
        tf.dispose([qkv, got, want]);
      };
      step(3, 4);
      step(3, 1);
      fast.removeRows([1]);
      plain.removeRows([1]);
      step(2, 1);
      const extraF = mk(1);
      const extraP = mk(1);
      const qkv = rand(rng, [2, 3 * H * D]) as tf.Tensor2D;
      tf.dispose(extraF.attendInPlace(0, qkv, qkv, qkv, { numHeads: H, kOffset: H * D, vOffset: 2 * H * D }));
      tf.tidy(() => {
        const [, k, v] = tf.split(qkv, 3, 1) as tf.Tensor2D[];
        extraP.update(0, heads(k, 1, 2, H, D), heads(v, 1, 2, H, D));
      });
      fast.concatRows(extraF);
      plain.concatRows(extraP);
      step(3, 1);
      fast.trim(4);
      plain.trim(4);
      step(3, 2);
      tf.dispose(qkv);
      for (const c of [fast, plain, extraF, extraP]) c.dispose();
    });
  });

  it("a cache filled in place continues with plain update() (history moved back exactly)", () => {
    const [B, H, D] = [2, 2, 4];
    const rng = new Random(11);
    const opts = { numLayers: 1, batch: B, numKvHeads: H, headDim: D, maxLength: 12 };
    const mixed = new KVCache(opts);
    const plain = new KVCache(opts);
    for (let step = 0; step < 6; step++) {
      const qkv = rand(rng, [B, 3 * H * D]) as tf.Tensor2D;
      tf.tidy(() => {
        const [, k, v] = tf.split(qkv, 3, 1) as tf.Tensor2D[];
        const ref = plain.update(0, heads(k, B, 1, H, D), heads(v, B, 1, H, D));
        if (step < 3) {
          tf.keep(
            mixed.attendInPlace(0, qkv, qkv, qkv, { numHeads: H, kOffset: H * D, vOffset: 2 * H * D }),
          ).dispose();
        } else {
          const got = mixed.update(0, heads(k, B, 1, H, D), heads(v, B, 1, H, D));
          assertClose(got.k, ref.k, { atol: 0, rtol: 0, label: `keys at step ${step}` });
          assertClose(got.v, ref.v, { atol: 0, rtol: 0, label: `values at step ${step}` });
        }
      });
      qkv.dispose();
    }
    mixed.dispose();
    plain.dispose();
  });

  it("is off with the fast paths off and on other backends; linearInference equals the plain ops", async () => {
    setInferenceFastPaths(false);
    expect(KVCache.canAttendInPlace()).toBe(false);
    setInferenceFastPaths(true);
    const rng = new Random(4);
    const [x, w, b, r] = [
      rand(rng, [5, 16]),
      rand(rng, [16, 24]),
      rand(rng, [24]),
      rand(rng, [5, 24]),
    ] as tf.Tensor2D[];
    const fused = [linearInference(x, w, b, { gelu: true }), linearInference(x, w, b, { residual: r })];
    setInferenceFastPaths(false);
    const plain = [linearInference(x, w, b, { gelu: true }), linearInference(x, w, b, { residual: r })];
    setInferenceFastPaths(true);
    const ref = tf.tidy(() => {
      const y = tf.add(tf.matMul(x, w), b);
      const gelu = tf.mul(
        tf.mul(y, 0.5),
        tf.add(tf.tanh(tf.mul(tf.add(y, tf.mul(tf.pow(y, 3), 0.044715)), Math.sqrt(2 / Math.PI))), 1),
      );
      return [gelu, tf.add(r, y)];
    });
    for (let i = 0; i < 2; i++) {
      assertClose(fused[i], ref[i], { atol: 1e-5, rtol: 1e-5 });
      assertClose(plain[i], ref[i], { atol: 1e-5, rtol: 1e-5 });
    }
    // + the next LayerNorm: fused [s, LN(s)] equals the plain ops
    const [g, be] = [rand(rng, [24]), rand(rng, [24])];
    const both = linearAddLayerNorm(r, x, w, b, g, be, 1e-5);
    const lnRef = tf.tidy(() => {
      const s = tf.add(r, tf.add(tf.matMul(x, w), b));
      const { mean, variance } = tf.moments(s, -1, true);
      return tf.add(tf.mul(tf.div(tf.sub(s, mean), tf.sqrt(tf.add(variance, 1e-5))), g), be);
    });
    assertClose(both[0], ref[1], { atol: 1e-5, rtol: 1e-5 });
    assertClose(both[1], lnRef, { atol: 1e-4, rtol: 1e-4 });
    tf.dispose([x, w, b, r, g, be, lnRef, ...both, ...fused, ...plain, ...ref]);
    await initBackend({ backend: "cpu" });
    expect(KVCache.canAttendInPlace()).toBe(false);
    await initBackend({ backend: "wasm" });
  });
});
