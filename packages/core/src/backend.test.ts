import { assertClose, expectNoLeaks } from "@typeformer/test-utils";
import { describe, expect, it } from "vitest";
import { BACKEND_ORDER, initBackend, TypeformerError, tf } from "./index.js";

describe("initBackend", () => {
  it("falls back past the tfjs-node packages and says why", async () => {
    const r = await initBackend({ env: {} });
    expect(["node-gpu", "node", "wasm", "cpu"]).toContain(r.backend);
    expect(tf.getBackend()).toBe(r.tfBackend);
    const order = BACKEND_ORDER.indexOf(r.backend);
    expect(r.skipped.map((s) => s.backend)).toEqual(BACKEND_ORDER.slice(0, order));
    for (const s of r.skipped) expect(s.reason.length).toBeGreaterThan(10);
  });

  it("honours TYPEFORMER_BACKEND and the backend option", async () => {
    expect((await initBackend({ env: { TYPEFORMER_BACKEND: "cpu" } })).backend).toBe("cpu");
    expect(tf.getBackend()).toBe("cpu");
    const r = await initBackend({ backend: "wasm", env: { TYPEFORMER_BACKEND: "cpu" } });
    expect(r).toMatchObject({ backend: "wasm", forcedBy: "option" });
    expect(tf.getBackend()).toBe("wasm");
  });

  it("rejects an unknown backend name with the value and the known names", async () => {
    const err = await initBackend({ env: { TYPEFORMER_BACKEND: "gpu" } }).catch((e) => e);
    expect(err).toBeInstanceOf(TypeformerError);
    expect(err.code).toBe("INVALID_ARGUMENT");
    expect(err.message).toContain('"gpu"');
    expect(err.message).toContain("wasm");
  });

  it("reports a missing forced node backend as BACKEND_UNAVAILABLE", async () => {
    const err = await initBackend({ backend: "node" }).catch((e) => e);
    if (err instanceof TypeformerError) {
      expect(err.code).toBe("BACKEND_UNAVAILABLE");
      expect(err.message).toContain("@tensorflow/tfjs-node");
    } else {
      expect(tf.getBackend()).toBe("tensorflow"); // a machine that has tfjs-node
    }
  });
});

describe("training on wasm out of the box", () => {
  const gatherGrad = (backend: "wasm" | "cpu") => {
    const table = tf.tensor2d([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [4, 3]);
    const ids = tf.tensor2d([0, 2, 2, 3, 0, 1], [2, 3], "int32");
    const w = tf.tensor3d(
      Array.from({ length: 18 }, (_, i) => (i % 5) - 2),
      [2, 3, 3],
    );
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, ids), w)))(table);
    const out = g.arraySync();
    tf.dispose([table, ids, w, g]);
    return { backend, out };
  };

  it("gather's gradient (UnsortedSegmentSum) works on wasm and equals cpu", async () => {
    await initBackend({ backend: "cpu" });
    const cpu = gatherGrad("cpu").out;
    await initBackend({ backend: "wasm" });
    const wasm = await expectNoLeaks(() => gatherGrad("wasm").out);
    assertClose(wasm as number[][], cpu as number[][], { atol: 0, rtol: 0 });
    // row 0 is gathered at (0,0) and (1,1): w[0,0,0] + w[1,1,0] = -2 + 0
    expect((wasm as number[][])[0][0]).toBe(-2);
  });

  it("a small embedding + dense model's loss goes down on wasm", async () => {
    await initBackend({ backend: "wasm" });
    const emb = tf.variable(tf.randomNormal([10, 8], 0, 0.1, "float32", 1));
    const w = tf.variable(tf.randomNormal([8, 10], 0, 0.1, "float32", 2));
    const ids = tf.tensor1d([1, 2, 3, 4, 5, 6], "int32");
    const targets = tf.oneHot(tf.tensor1d([2, 3, 4, 5, 6, 7], "int32"), 10);
    const opt = tf.train.adam(0.05);
    const loss = () => tf.losses.softmaxCrossEntropy(targets, tf.matMul(tf.gather(emb, ids), w)) as tf.Scalar;
    const first = tf.tidy(() => loss().dataSync()[0]);
    for (let i = 0; i < 30; i++) tf.dispose(opt.minimize(loss, true) ?? []);
    const last = tf.tidy(() => loss().dataSync()[0]);
    expect(last).toBeLessThan(first * 0.5);
    opt.dispose();
    tf.dispose([emb, w, ids, targets]);
  });
});
