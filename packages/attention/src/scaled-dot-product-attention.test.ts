import { isTypeformerError, Random, tf } from "@typeformer/core";
import { assertClose, describeEachBackend, expectNoLeaks } from "@typeformer/test-utils";
import { expect, it } from "vitest";
import {
  listAttentionImplementations,
  registerAttentionImplementation,
  scaledDotProductAttention,
  selectAttentionImplementation,
} from "./registry.js";
import type { AttentionImplementation } from "./types.js";

function randn(shape: number[], seed: number): tf.Tensor4D {
  return tf.tensor4d(
    new Random(seed).normalArray(shape.reduce((a, b) => a * b, 1)),
    shape as [number, number, number, number],
  );
}

describeEachBackend("scaledDotProductAttention", () => {
  it("auto routes small or weight-returning calls to naive and long ones (dropout too) to tiled, with equal results", async () => {
    const q = randn([1, 2, 600, 8], 1);
    const k = randn([1, 2, 600, 8], 2);
    const small = randn([1, 2, 4, 8], 3);
    expect(selectAttentionImplementation(small, small, small, {}).name).toBe("naive");
    expect(selectAttentionImplementation(q, k, k, { causal: true }).name).toBe("tiled");
    expect(selectAttentionImplementation(q, k, k, { returnWeights: true }).name).toBe("naive");
    expect(selectAttentionImplementation(q, k, k, { dropout: 0.1, rng: new Random(1) }).name).toBe("tiled");
    await expectNoLeaks(() => {
      const a = scaledDotProductAttention(q, k, k, { causal: true }).output;
      const b = scaledDotProductAttention(q, k, k, { causal: true, implementation: "naive" }).output;
      assertClose(a, b, { atol: 1e-5, rtol: 1e-4 });
      tf.dispose([a, b]);
    });
    tf.dispose([q, k, small]);
  });

  it("registered implementations are listed, selectable by name and by auto priority, and unregister", () => {
    const calls: string[] = [];
    const fake: AttentionImplementation = {
      name: "test-fake",
      sdpa: (q, k, v, o) => {
        calls.push("fake");
        return listAttentionImplementations()[0].sdpa(q, k, v, o);
      },
      supports: (q) => q.shape[2] === 3,
      autoPriority: 100,
    };
    const unregister = registerAttentionImplementation(fake);
    const x = randn([1, 1, 3, 4], 1);
    const y = randn([1, 1, 5, 4], 1);
    expect(listAttentionImplementations().map((i) => i.name)).toContain("test-fake");
    tf.dispose(scaledDotProductAttention(x, x, x).output);
    tf.dispose(scaledDotProductAttention(y, y, y).output);
    tf.dispose(scaledDotProductAttention(y, y, y, { implementation: "test-fake" }).output);
    expect(calls).toEqual(["fake", "fake"]);
    unregister();
    expect(listAttentionImplementations().map((i) => i.name)).not.toContain("test-fake");
    expect(() => scaledDotProductAttention(x, x, x, { implementation: "test-fake" })).toThrow(
      /unknown attention implementation "test-fake"; known: naive, tiled/,
    );
    expect(() => registerAttentionImplementation({ ...fake, name: "auto" })).toThrow(/received "auto"/);
    tf.dispose([x, y]);
  });

  it("throws typed errors that name the received shapes and values", () => {
    const q = randn([2, 4, 3, 8], 1);
    const k = randn([2, 3, 5, 8], 2);
    const k2 = randn([2, 2, 5, 8], 3);
    const check = (fn: () => unknown, re: RegExp, code: string) => {
      let err: unknown;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect((err as Error).message).toMatch(re);
      expect(isTypeformerError(err, code)).toBe(true);
    };
    check(
      () => scaledDotProductAttention(q, k, k),
      /k.shape\[1\] must be a divisor of the 4 query heads; received 3/,
      "SHAPE_MISMATCH",
    );
    const km = tf.ones([2, 4]) as tf.Tensor2D;
    check(
      () => scaledDotProductAttention(q, k2, k2, { keyMask: km }),
      /keyMask.shape must be \[2, 5\].*received \[2,4\]/,
      "SHAPE_MISMATCH",
    );
    const bias = tf.zeros([4, 5]);
    check(
      () => scaledDotProductAttention(q, k2, k2, { bias }),
      /bias.shape must be broadcastable to \[2,4,3,5\]; received \[4,5\]/,
      "SHAPE_MISMATCH",
    );
    check(
      () => scaledDotProductAttention(q, k2, k2, { window: 0 }),
      /window must be a positive integer; received 0/,
      "INVALID_ARGUMENT",
    );
    check(
      () => scaledDotProductAttention(q, k2, k2, { dropout: 0.2 }),
      /rng must be a Random when dropout > 0/,
      "INVALID_ARGUMENT",
    );
    check(
      () => scaledDotProductAttention(q, k2, k2, { dropout: 1 }),
      /dropout must be in \[0, 1\); received 1/,
      "INVALID_ARGUMENT",
    );
    check(
      () => scaledDotProductAttention(q, k2, k2, { implementation: "tiled", returnWeights: true }),
      /tiled attention does not support returnWeights/,
      "INVALID_ARGUMENT",
    );
    check(
      () => scaledDotProductAttention(q, k2, k2, { implementation: "tiled", blockSize: 0 }),
      /blockSize\[0\].*received 0/,
      "INVALID_ARGUMENT",
    );
    tf.dispose([q, k, k2, km, bias]);
  });

  it("tiled forward+backward peak memory grows linearly in T, naive quadratically (tf.profile)", async () => {
    const peak = async (impl: "naive" | "tiled", T: number) => {
      // one head: memory per head is what scales with T; a second head doubled the time, not the ratios
      const q = randn([1, 1, T, 16], 1);
      const k = randn([1, 1, T, 16], 2);
      const base = tf.memory().numBytes;
      const prof = await tf.profile(() => {
        const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(
            scaledDotProductAttention(a as tf.Tensor4D, b as tf.Tensor4D, b as tf.Tensor4D, {
              causal: true,
              implementation: impl,
              blockSize: 64,
            }).output,
          ),
        )([q, k]);
        tf.dispose(grads);
      });
      tf.dispose([q, k]);
      return prof.peakBytes - base;
    };
    const [n1, n2, t1, t2] = [
      await peak("naive", 256),
      await peak("naive", 512),
      await peak("tiled", 256),
      await peak("tiled", 512),
    ];
    expect(n2 / n1).toBeGreaterThan(3.2); // quadratic: ×4 when T doubles
    expect(t2 / t1).toBeLessThan(2.3); // linear: ×2
    expect(t2).toBeLessThan(n2 / 4);
  });
});
