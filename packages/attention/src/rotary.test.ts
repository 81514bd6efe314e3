import { Random, tf } from "@typeformer/core";
import { assertClose, describeEachBackend, expectNoLeaks } from "@typeformer/test-utils";
import { expect, it } from "vitest";
import fixtures from "./__fixtures__/rotary-alibi.json";
import { applyRotary } from "./rotary.js";

interface RotaryFixture {
  layout: "half" | "interleaved";
  theta: number;
  rotaryDim: number;
  shape: [number, number, number, number];
  offset: number | null;
  positions: number[][] | null;
  x: number[];
  y: number[];
}

describeEachBackend("applyRotary", () => {
  for (const c of fixtures.rotary as RotaryFixture[]) {
    const label = `${c.layout}, theta ${c.theta}, rotaryDim ${c.rotaryDim}, ${c.offset !== null ? `offset ${c.offset}` : "positions tensor"}`;
    it(`matches Hugging Face (PyTorch) golden values: ${label}`, async () => {
      const x = tf.tensor4d(c.x, c.shape);
      const pos = c.positions ? tf.tensor2d(c.positions, [c.shape[0], c.shape[2]], "int32") : undefined;
      await expectNoLeaks(() => {
        const y = applyRotary(x, {
          positions: pos ?? (c.offset as number),
          theta: c.theta,
          layout: c.layout,
          rotaryDim: c.rotaryDim,
        });
        assertClose(y, c.y, { atol: 2e-5, rtol: 1e-4, label });
        y.dispose();
      });
      tf.dispose([x, pos as tf.Tensor]);
    });
  }

  it("gradient equals the float64 transpose of the rotation (finite differences of a linear map)", async () => {
    const rng = new Random(3);
    const shape: [number, number, number, number] = [2, 2, 4, 6];
    const xa = rng.normalArray(96);
    const dy = rng.normalArray(96);
    const x = tf.tensor4d(xa, shape);
    const dyT = tf.tensor4d(dy, shape);
    for (const layout of ["half", "interleaved"] as const) {
      const opts = { positions: 5, layout, theta: 100, rotaryDim: 4 };
      // rotary is linear in x: grad_i = Σ_j dy_j ∂y_j/∂x_i, computed by probing with basis vectors
      const want = new Float64Array(96);
      const base = applyRotary(tf.zeros(shape) as tf.Tensor4D, opts);
      for (let i = 0; i < 96; i++) {
        const e = new Float32Array(96);
        e[i] = 1;
        const y = applyRotary(tf.tensor4d(e, shape), opts).dataSync();
        let s = 0;
        for (let j = 0; j < 96; j++) s += dy[j] * y[j];
        want[i] = s;
      }
      base.dispose();
      await expectNoLeaks(() => {
        const g = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(applyRotary(xx as tf.Tensor4D, opts), dyT)))(x);
        assertClose(g, want, { atol: 1e-5, rtol: 1e-4, label: `${layout} grad` });
        g.dispose();
      });
    }
    tf.dispose([x, dyT]);
  });

  it("offset positions equal an explicit positions tensor, and (1, T) broadcasts over the batch", () => {
    const x = tf.tensor4d(new Random(1).normalArray(2 * 2 * 3 * 4), [2, 2, 3, 4]);
    const p = tf.tensor2d([[7, 8, 9]], [1, 3], "int32");
    const a = applyRotary(x, { positions: 7 });
    const b = applyRotary(x, { positions: p });
    assertClose(a, b, { atol: 1e-6 });
    tf.dispose([x, p, a, b]);
  });

  it("rejects bad arguments with typed errors naming the value", () => {
    const x = tf.zeros([1, 1, 2, 6]) as tf.Tensor4D;
    expect(() => applyRotary(x, { positions: 0, rotaryDim: 5 })).toThrow(/rotaryDim.*received 5/);
    expect(() => applyRotary(x, { positions: 0, rotaryDim: 8 })).toThrow(/rotaryDim.*received 8/);
    expect(() => applyRotary(x, { positions: 0, layout: "zigzag" as "half" })).toThrow(/layout.*zigzag/);
    expect(() => applyRotary(x, { positions: 1.5 })).toThrow(/positions.*1.5/);
    expect(() => applyRotary(tf.zeros([2, 3]) as unknown as tf.Tensor4D, { positions: 0 })).toThrow(
      /4-D.*\[2,3\]/,
    );
    x.dispose();
  });
});
