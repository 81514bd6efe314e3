// The fused flash-attention kernels beyond the shared conformance suite (attention-conformance.test.ts
// runs "wasm-fused" through every case there): several key and query blocks with the online-softmax
// rescale, inputs that are views (transposes, slices, reshapes), routing by "auto", leaks, errors.
import { initBackend, Random, TypeformerError, tf } from "@typeformer/core";
import { assertClose, expectNoLeaks } from "@typeformer/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { refAttention, refAttentionGrads } from "../conformance/reference.js";
import { scaledDotProductAttention, selectAttentionImplementation } from "../registry.js";
import type { AttentionOptions } from "../types.js";
import {
  flashAttention,
  flashKernelsActive,
  setWasmFusedAttention,
  wasmFusedImplementation,
} from "./flash-attention.js";
import { registerWasmKernels, unregisterWasmKernels, wasmThreadJobs, wasmThreadsReady } from "./kernels.js";

const FWD = { atol: 2e-5, rtol: 2e-4 };
const GRAD = { atol: 1e-4, rtol: 2e-3 };

function gradsOf(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  bias: tf.Tensor | undefined,
  dOut: tf.Tensor,
  opts: AttentionOptions,
): tf.Tensor[] {
  const xs: tf.Tensor[] = bias ? [q, k, v, bias] : [q, k, v];
  return tf.grads((...ins: tf.Tensor[]) =>
    tf.sum(
      tf.mul(
        flashAttention(ins[0] as tf.Tensor4D, ins[1] as tf.Tensor4D, ins[2] as tf.Tensor4D, {
          ...opts,
          bias: ins[3],
        }).output,
        dOut,
      ),
    ),
  )(xs);
}

describe("wasm-fused flash attention", () => {
  beforeAll(async () => {
    await initBackend({ backend: "wasm" });
    registerWasmKernels();
  });
  afterAll(() => {
    unregisterWasmKernels();
  });

  it("matches the float64 reference over several key/query blocks (Tk 300, bias (B,1,Tq,Tk), GQA, key mask)", () => {
    const [B, H, Hkv, Tq, Tk, D, Dv] = [2, 4, 2, 70, 300, 12, 20];
    const rng = new Random("flash-blocks");
    const qa = rng.normalArray(B * H * Tq * D, 0, 2); // larger scores: the running max moves between blocks
    const ka = rng.normalArray(B * Hkv * Tk * D, 0, 2);
    const va = rng.normalArray(B * Hkv * Tk * Dv);
    const ba = rng.normalArray(B * Tq * Tk);
    const mask = new Float32Array(B * Tk).fill(1);
    for (let j = 0; j < 45; j++) mask[Tk + j] = 0; // row 1 left-padded by 45
    const q = tf.tensor4d(qa, [B, H, Tq, D]);
    const k = tf.tensor4d(ka, [B, Hkv, Tk, D]);
    const v = tf.tensor4d(va, [B, Hkv, Tk, Dv]);
    const bias = tf.tensor4d(ba, [B, 1, Tq, Tk]);
    const keyMask = tf.tensor2d(mask, [B, Tk]);
    const p = {
      B,
      H,
      Hkv,
      Tq,
      Tk,
      D,
      Dv,
      q: qa,
      k: ka,
      v: va,
      bias: ba,
      biasShape: [B, 1, Tq, Tk],
      keyMask: mask,
    };
    for (const causal of [false, true]) {
      const opts: AttentionOptions = { causal, keyMask, scale: 0.4 };
      const ref = refAttention({ ...p, causal, scale: 0.4 });
      const { output } = flashAttention(q, k, v, { ...opts, bias });
      assertClose(output, ref.out, { ...FWD, label: `causal=${causal} output` });
      const dOut = rng.normalArray(output.size);
      const dOutT = tf.tensor(dOut, output.shape);
      const g = gradsOf(q, k, v, bias, dOutT, opts);
      const want = refAttentionGrads({ ...p, causal, scale: 0.4 }, dOut);
      assertClose(g[0], want.dq, { ...GRAD, label: `causal=${causal} dq` });
      assertClose(g[1], want.dk, { ...GRAD, label: `causal=${causal} dk` });
      assertClose(g[2], want.dv, { ...GRAD, label: `causal=${causal} dv` });
      expect(g[3].shape).toEqual([B, 1, Tq, Tk]);
      assertClose(g[3], want.dbias as Float64Array, { ...GRAD, label: `causal=${causal} dbias` });
      tf.dispose([output, dOutT, ...g]);
    }
    tf.dispose([q, k, v, bias, keyMask]);
  });

  it("reads inputs that are transposes, slices and reshapes of other tensors (heads split from (B, T, C) rows)", () => {
    const [B, T, H, D] = [2, 19, 3, 8];
    const rng = new Random("flash-views");
    const qkv = tf.tensor3d(rng.normalArray(B * T * 3 * H * D), [B, T, 3 * H * D]);
    const split = (x: tf.Tensor) => tf.transpose(tf.reshape(x, [B, T, H, D]), [0, 2, 1, 3]) as tf.Tensor4D;
    const [q, k, v] = tf.split(qkv, 3, 2).map(split);
    const opts: AttentionOptions = { causal: true };
    const want = scaledDotProductAttention(q, k, v, { ...opts, implementation: "naive" }).output;
    const got = flashAttention(q, k, v, opts).output;
    assertClose(got, want, { ...FWD, label: "views" });
    // gradients flow back through the split and transposes into the fused tensor
    const gFused = tf.grad((x: tf.Tensor) => {
      const [a, b, c] = tf.split(x, 3, 2).map(split);
      return tf.sum(tf.square(flashAttention(a, b, c, opts).output));
    })(qkv);
    const gNaive = tf.grad((x: tf.Tensor) => {
      const [a, b, c] = tf.split(x, 3, 2).map(split);
      return tf.sum(
        tf.square(scaledDotProductAttention(a, b, c, { ...opts, implementation: "naive" }).output),
      );
    })(qkv);
    assertClose(gFused, gNaive, { ...GRAD, label: "gradient through views" });
    tf.dispose([qkv, q, k, v, want, got, gFused, gNaive]);
  });

  it('is what "auto" picks on wasm for training calls (dropout too), not with returnWeights or without the kernels', () => {
    const q = tf.zeros([1, 2, 8, 4]) as tf.Tensor4D;
    expect(flashKernelsActive()).toBe(true);
    expect(selectAttentionImplementation(q, q, q, { causal: true }).name).toBe("wasm-fused");
    expect(selectAttentionImplementation(q, q, q, { dropout: 0.1, rng: new Random(1) }).name).toBe(
      "wasm-fused",
    );
    expect(selectAttentionImplementation(q, q, q, { returnWeights: true }).name).toBe("naive");
    setWasmFusedAttention(false);
    expect(selectAttentionImplementation(q, q, q, { causal: true }).name).not.toBe("wasm-fused");
    setWasmFusedAttention(true);
    unregisterWasmKernels();
    try {
      expect(flashKernelsActive()).toBe(false);
      expect(selectAttentionImplementation(q, q, q, {}).name).not.toBe("wasm-fused");
      expect(() => wasmFusedImplementation.sdpa(q, q, q, {})).toThrow(TypeformerError);
    } finally {
      registerWasmKernels();
      q.dispose();
    }
  });

  it("splits large calls with the worker thread (threads: 2) along the batch or the KV heads, same numbers", async () => {
    const rng = new Random("flash-threads");
    const cases = [
      // B = 2: split along the batch; bias shared by both halves (worker's dBias share added back)
      { B: 2, H: 4, Hkv: 2, T: 128, D: 32, bias: [4, 128, 128] },
      // B = 1: split along the KV heads; per-head bias rows (sliced), key mask
      { B: 1, H: 4, Hkv: 2, T: 160, D: 32, bias: [1, 4, 1, 160] },
    ];
    for (const c of cases) {
      const q = tf.tensor4d(rng.normalArray(c.B * c.H * c.T * c.D), [c.B, c.H, c.T, c.D]);
      const k = tf.tensor4d(rng.normalArray(c.B * c.Hkv * c.T * c.D), [c.B, c.Hkv, c.T, c.D]);
      const v = tf.tensor4d(rng.normalArray(c.B * c.Hkv * c.T * c.D), [c.B, c.Hkv, c.T, c.D]);
      const n = c.bias.reduce((a, b) => a * b, 1);
      const bias = tf.tensor(rng.normalArray(n), c.bias);
      const mask = new Float32Array(c.B * c.T).fill(1);
      mask.fill(0, 0, 7);
      const keyMask = tf.tensor2d(mask, [c.B, c.T]);
      const dOut = tf.tensor(rng.normalArray(c.B * c.H * c.T * c.D), q.shape);
      // dropout: each half regenerates the mask rows of its own global (b, h)
      const opts = (): AttentionOptions => ({
        causal: true,
        keyMask,
        window: 100,
        dropout: 0.2,
        rng: new Random(5),
      });
      const run = () => [
        flashAttention(q, k, v, { ...opts(), bias }).output,
        ...gradsOf(q, k, v, bias, dOut, opts()),
      ];
      registerWasmKernels({ threads: 1 });
      const one = run();
      registerWasmKernels({ threads: 2 });
      if (!(await wasmThreadsReady())) {
        tf.dispose([...one, q, k, v, bias, keyMask, dOut]);
        registerWasmKernels({ threads: 1 });
        return; // no worker threads here (not Node): nothing to compare
      }
      const jobs = wasmThreadJobs();
      const two = run();
      expect(wasmThreadJobs() - jobs).toBeGreaterThanOrEqual(2); // forward and backward went to the worker
      registerWasmKernels({ threads: 1 });
      ["output", "dq", "dk", "dv", "dbias"].forEach((name, i) => {
        assertClose(two[i], one[i], { atol: 1e-5, rtol: 1e-5, label: `B${c.B} ${name}` });
      });
      tf.dispose([...one, ...two, q, k, v, bias, keyMask, dOut]);
    }
  });

  it("the relaxed-SIMD build (fused multiply-add) gives the same forward and gradients as the plain one", () => {
    const rng = new Random("flash-relaxed");
    const q = tf.tensor4d(rng.normalArray(2 * 4 * 37 * 24), [2, 4, 37, 24]);
    const k = tf.tensor4d(rng.normalArray(2 * 2 * 45 * 24), [2, 2, 45, 24]);
    const bias = tf.tensor2d(rng.normalArray(37 * 45), [37, 45]);
    const dOut = tf.tensor(rng.normalArray(q.size), q.shape);
    const opts: AttentionOptions = { causal: true };
    const results: tf.Tensor[][] = [];
    const variants: string[] = [];
    try {
      for (const variant of ["simd", "relaxed-simd"] as const) {
        variants.push(registerWasmKernels({ variant }).variant);
        results.push([
          flashAttention(q, k, k, { ...opts, bias }).output,
          ...gradsOf(q, k, k, bias, dOut, opts),
        ]);
      }
    } finally {
      registerWasmKernels({ variant: "auto" });
    }
    expect(variants[0]).toBe("simd");
    results[0].forEach((t, i) => {
      assertClose(results[1][i], t, { atol: 1e-5, rtol: 1e-4, label: `${variants[1]} vs simd #${i}` });
    });
    tf.dispose([...results.flat(), q, k, bias, dOut]);
  });

  it("rejects returnWeights with a typed error naming the option", () => {
    const q = tf.zeros([1, 1, 4, 4]) as tf.Tensor4D;
    expect(() => flashAttention(q, q, q, { returnWeights: true })).toThrow(/returnWeights/);
    q.dispose();
  });

  it("leaks no tensors forward, in inference (no tape) and with gradients (bias, key mask, GQA)", async () => {
    const rng = new Random("flash-leak");
    const q = tf.tensor4d(rng.normalArray(2 * 4 * 9 * 8), [2, 4, 9, 8]);
    const k = tf.tensor4d(rng.normalArray(2 * 2 * 9 * 8), [2, 2, 9, 8]);
    const bias = tf.tensor3d(rng.normalArray(4 * 9 * 9), [4, 9, 9]);
    const keyMask = tf.tensor2d([1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1], [2, 9], "int32");
    const opts: AttentionOptions = { causal: true, keyMask, window: 5 };
    const ones = tf.onesLike(q);
    const before = tf.memory().numTensors;
    await expectNoLeaks(() => {
      flashAttention(q, k, k, { ...opts, bias }).output.dispose();
    });
    await expectNoLeaks(() => {
      const g = gradsOf(q, k, k, bias, ones, opts);
      expect(g.map((t) => t.shape)).toEqual([q.shape, k.shape, k.shape, bias.shape]);
      tf.dispose(g);
    });
    await expectNoLeaks(() => {
      const vq = tf.variable(q);
      const { value, grads } = tf.variableGrads(() =>
        tf.sum(flashAttention(vq as tf.Tensor4D, k, k, opts).output),
      );
      tf.dispose([value, ...Object.values(grads), vq]);
    });
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([q, k, bias, keyMask, ones]);
  });
});
