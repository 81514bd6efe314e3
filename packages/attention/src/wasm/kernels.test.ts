import { initBackend, tf } from "@typeformer/core";
import { assertClose, expectNoLeaks } from "@typeformer/test-utils";
import { beforeAll, describe, expect, it } from "vitest";
import { registerWasmKernels, unregisterWasmKernels } from "./kernels.js";

/** float64 reference of op(A)·op(B) with numpy broadcasting of the batch dimensions. */
function refMatMul(
  a: Float32Array,
  aShape: number[],
  b: Float32Array,
  bShape: number[],
  ta: boolean,
  tb: boolean,
): { values: Float64Array; shape: number[] } {
  const ra = aShape.length;
  const rb = bShape.length;
  const m = ta ? aShape[ra - 1] : aShape[ra - 2];
  const k = ta ? aShape[ra - 2] : aShape[ra - 1];
  const n = tb ? bShape[rb - 2] : bShape[rb - 1];
  const oa = aShape.slice(0, -2);
  const ob = bShape.slice(0, -2);
  const rank = Math.max(oa.length, ob.length);
  const pa = [...new Array(rank - oa.length).fill(1), ...oa];
  const pb = [...new Array(rank - ob.length).fill(1), ...ob];
  const outer = pa.map((d, i) => Math.max(d, pb[i]));
  const batch = outer.reduce((x, y) => x * y, 1);
  const values = new Float64Array(batch * m * n);
  for (let bi = 0; bi < batch; bi++) {
    let rem = bi;
    let ia = 0;
    let ib = 0;
    let sa = 1;
    let sb = 1;
    for (let d = rank - 1; d >= 0; d--) {
      const idx = rem % outer[d];
      rem = Math.floor(rem / outer[d]);
      ia += (pa[d] === 1 ? 0 : idx) * sa;
      ib += (pb[d] === 1 ? 0 : idx) * sb;
      sa *= pa[d];
      sb *= pb[d];
    }
    const offA = ia * m * k;
    const offB = ib * k * n;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          const av = a[offA + (ta ? p * m + i : i * k + p)];
          const bv = b[offB + (tb ? j * k + p : p * n + j)];
          s += av * bv;
        }
        values[bi * m * n + i * n + j] = s;
      }
  }
  return { values, shape: [...outer, m, n] };
}

function rand(shape: number[], seed: number): tf.Tensor {
  return tf.randomUniform(shape, -1, 1, "float32", seed);
}

describe("wasm SIMD kernels: BatchMatMul / _FusedMatMul", () => {
  beforeAll(async () => {
    await initBackend({ backend: "wasm" });
    const { registered } = registerWasmKernels();
    expect(registered).toEqual(expect.arrayContaining(["BatchMatMul", "_FusedMatMul", "TypeformerGelu"]));
  });

  const sizes: [number, number, number][] = [
    [1, 1, 1],
    [1, 37, 300], // one row: 16-wide, 4-wide and scalar column chunks, K over one block
    [3, 17, 5],
    [17, 3, 129],
    [4, 8, 300],
    [129, 17, 1],
    [2, 1030, 3],
  ];
  for (const [m, n, k] of sizes) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        it(`M=${m} N=${n} K=${k} transposeA=${ta} transposeB=${tb} matches float64`, () => {
          const aShape = ta ? [2, k, m] : [2, m, k];
          const bShape = tb ? [2, n, k] : [2, k, n];
          const a = rand(aShape, m * 7 + k);
          const b = rand(bShape, n * 13 + k);
          const c = tf.matMul(a, b, ta, tb);
          const ref = refMatMul(
            a.dataSync() as Float32Array,
            aShape,
            b.dataSync() as Float32Array,
            bShape,
            ta,
            tb,
          );
          expect(c.shape).toEqual(ref.shape);
          assertClose(c, ref.values, { atol: 1e-5 * Math.sqrt(k), rtol: 1e-4, label: "matMul" });
          tf.dispose([a, b, c]);
        });
      }
    }
  }

  const broadcasts: [number[], number[], boolean, boolean][] = [
    [[3, 5, 7], [7, 9], false, false], // batch folds into rows
    [[3, 7, 5], [7, 9], true, false],
    [[5, 7], [4, 7, 9], false, false],
    [[2, 1, 5, 7], [1, 3, 9, 7], false, true], // general broadcast
    [[2, 3, 5, 7], [3, 7, 9], false, false],
    [[1, 5, 7], [4, 9, 7], false, true],
  ];
  for (const [aShape, bShape, ta, tb] of broadcasts) {
    it(`broadcasts [${aShape}] x [${bShape}] (tA=${ta}, tB=${tb})`, () => {
      const a = rand(aShape, 1);
      const b = rand(bShape, 2);
      const c = tf.matMul(a, b, ta, tb);
      const ref = refMatMul(
        a.dataSync() as Float32Array,
        aShape,
        b.dataSync() as Float32Array,
        bShape,
        ta,
        tb,
      );
      expect(c.shape).toEqual(ref.shape);
      assertClose(c, ref.values, { atol: 1e-5, rtol: 1e-4 });
      tf.dispose([a, b, c]);
    });
  }

  it("gradients through tf.grads equal G·Bᵀ and Aᵀ·G in every layout", () => {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        const [m, n, k] = [13, 11, 19];
        const aShape = ta ? [3, k, m] : [3, m, k];
        const bShape = tb ? [3, n, k] : [3, k, n];
        const a = rand(aShape, 3);
        const b = rand(bShape, 4);
        const g = rand([3, m, n], 5);
        const [da, db] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y, ta, tb).mul(g).sum())([
          a,
          b,
        ]);
        // Reference: dA = G·op(B)ᵀ (transposed back when A was transposed), dB likewise.
        const av = a.dataSync() as Float32Array;
        const bv = b.dataSync() as Float32Array;
        const gv = g.dataSync() as Float32Array;
        const daRef = ta
          ? refMatMul(bv, bShape, gv, [3, m, n], tb, true) // dAᵀ... (k x m) = op(B)·Gᵀ
          : refMatMul(gv, [3, m, n], bv, bShape, false, !tb); // (m x k) = G·op(B)ᵀ
        const dbRef = tb
          ? refMatMul(gv, [3, m, n], av, aShape, true, ta) // (n x k) = Gᵀ·op(A)
          : refMatMul(av, aShape, gv, [3, m, n], !ta, false); // (k x n) = op(A)ᵀ·G
        assertClose(da, daRef.values, { atol: 1e-4, rtol: 1e-4, label: `dA tA=${ta} tB=${tb}` });
        assertClose(db, dbRef.values, { atol: 1e-4, rtol: 1e-4, label: `dB tA=${ta} tB=${tb}` });
        tf.dispose([a, b, g, da, db]);
      }
    }
  });

  it("dense-layer gradient (rows folded to 2-D) sums over every row", () => {
    // tf.js's own BatchMatMul gradient does not reduce broadcast batch dims (stock kernels fail the
    // same way), so layers fold (B, T, C) to (B*T, C) before the product.
    const a = rand([4, 6, 5], 6);
    const w = rand([5, 3], 7);
    const dw = tf.grad((x: tf.Tensor) => tf.matMul(a.reshape([24, 5]), x).sum())(w);
    const ones = new Float32Array(24 * 3).fill(1);
    const ref = refMatMul(a.dataSync() as Float32Array, [24, 5], ones, [24, 3], true, false);
    assertClose(dw, ref.values, { atol: 1e-4 });
    tf.dispose([a, w, dw]);
  });

  it("fused matMul with bias and activations equals the unfused ops", () => {
    const a = rand([2, 9, 6], 8);
    const b = rand([6, 10], 9);
    const bias = rand([10], 10);
    const alpha = rand([10], 11);
    for (const activation of ["linear", "relu", "relu6", "elu", "sigmoid", "leakyrelu", "prelu"] as const) {
      const fused = tf.fused.matMul({
        a,
        b,
        bias,
        activation,
        preluActivationWeights: activation === "prelu" ? alpha : undefined,
        leakyreluAlpha: 0.1,
      });
      const lin = tf.matMul(a, b).add(bias);
      const expected = {
        linear: () => lin.clone(),
        relu: () => tf.relu(lin),
        relu6: () => tf.relu6(lin),
        elu: () => tf.elu(lin),
        sigmoid: () => tf.sigmoid(lin),
        leakyrelu: () => tf.leakyRelu(lin, 0.1),
        prelu: () => tf.prelu(lin, alpha),
      }[activation]();
      assertClose(fused, expected, { atol: 1e-5, label: activation });
      tf.dispose([fused, lin, expected]);
    }
    tf.dispose([a, b, bias, alpha]);
  });

  it("leaks neither tensors nor heap memory (forward, fused, gradients)", async () => {
    const a = rand([14, 5], 12);
    const b = rand([5, 9], 13);
    const bias = rand([9], 14);
    const run = () => {
      tf.matMul(a, b).dispose();
      tf.matMul(b, a, true, true).dispose();
      tf.fused.matMul({ a, b, bias, activation: "relu" }).dispose();
      tf.dispose(tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y).sum())([a, b]));
    };
    run();
    const bytes = tf.memory().numBytes;
    await expectNoLeaks(run);
    expect(tf.memory().numBytes).toBe(bytes);
    tf.dispose([a, b, bias]);
  });

  it("unregisterWasmKernels restores the stock kernels and registering again is idempotent", () => {
    const a = rand([3, 4, 5], 15);
    const b = rand([3, 6, 5], 16);
    const ours = tf.matMul(a, b, false, true);
    unregisterWasmKernels();
    const stock = tf.matMul(a, b, false, true);
    expect(registerWasmKernels().registered).toContain("BatchMatMul");
    expect(registerWasmKernels().registered).toContain("BatchMatMul");
    assertClose(ours, stock, { atol: 1e-5 });
    tf.dispose([a, b, ours, stock]);
  });

  it("rejects mismatched inner dimensions with a typed error naming the shapes", () => {
    const a = rand([3, 4], 17);
    const b = rand([5, 6], 18);
    expect(() => tf.matMul(a, b)).toThrow(/inner/);
    tf.dispose([a, b]);
  });
});

describe("wasm kernel builds", () => {
  it("the relaxed-SIMD build gives the same products as the plain one", async () => {
    await initBackend({ backend: "wasm" });
    const a = tf.randomUniform([3, 37, 45], -1, 1, "float32", 21);
    const b = tf.randomUniform([3, 29, 45], -1, 1, "float32", 22);
    const results: Float32Array[] = [];
    const variants: string[] = [];
    for (const variant of ["simd", "relaxed-simd"] as const) {
      variants.push(registerWasmKernels({ variant }).variant);
      results.push(tf.matMul(a, b, false, true).dataSync() as Float32Array);
    }
    registerWasmKernels({ variant: "auto" });
    expect(variants[0]).toBe("simd");
    assertClose(results[1], results[0], { atol: 1e-5, label: `${variants[1]} vs simd` });
    tf.dispose([a, b]);
  });
});

describe("wasm kernels with a second GEMM thread", () => {
  it("splits rows and batches across two threads with the same results", async () => {
    await initBackend({ backend: "wasm" });
    const { threads } = registerWasmKernels({ threads: 2 });
    expect(threads).toBe(2);
    const { wasmThreadJobs, wasmThreadsReady } = await import("./kernels.js");
    expect(await wasmThreadsReady()).toBe(true);
    try {
      const cases: [number[], number[], boolean, boolean][] = [
        [[261, 190], [190, 90], false, false], // row split
        [[190, 261], [90, 190], true, true], // row split, both transposed
        [[6, 70, 130], [6, 130, 90], false, false], // batch split
        [[7, 130, 70], [130, 90], true, false], // batch split, broadcast B
        [[2, 3, 70, 130], [2, 3, 90, 130], false, true],
      ];
      for (const [aShape, bShape, ta, tb] of cases) {
        const a = rand(aShape, 31);
        const b = rand(bShape, 32);
        const before = tf.memory().numTensors;
        const jobs = wasmThreadJobs();
        const c = tf.matMul(a, b, ta, tb);
        expect(wasmThreadJobs()).toBe(jobs + 1);
        expect(tf.memory().numTensors).toBe(before + 1);
        const ref = refMatMul(
          a.dataSync() as Float32Array,
          aShape,
          b.dataSync() as Float32Array,
          bShape,
          ta,
          tb,
        );
        expect(c.shape).toEqual(ref.shape);
        assertClose(c, ref.values, {
          atol: 1e-4,
          rtol: 1e-4,
          label: `[${aShape}]x[${bShape}] tA=${ta} tB=${tb}`,
        });
        tf.dispose([a, b, c]);
      }
    } finally {
      registerWasmKernels({ threads: 1 });
    }
  });
});

describe("wasm Slice/SplitV reading the heap in place", () => {
  it("equal the stock kernels on contiguous and strided blocks, every rank and dtype", async () => {
    await initBackend({ backend: "wasm" });
    const cases: [number[], number[], number[]][] = [
      [[10], [3], [4]],
      [
        [6, 7],
        [2, 0],
        [3, 7],
      ], // contiguous rows
      [
        [6, 7],
        [1, 2],
        [4, 3],
      ],
      [
        [3, 4, 5],
        [1, 1, 2],
        [2, 3, 3],
      ],
      [
        [2, 3, 4, 5],
        [0, 1, 0, 0],
        [2, 2, 4, 5],
      ],
      [
        [2, 3, 2, 4, 3],
        [1, 0, 1, 1, 0],
        [1, 3, 1, 2, 3],
      ],
      [
        [4, 5],
        [0, 0],
        [0, 5],
      ], // empty
    ];
    const run = () => {
      const out: number[][] = [];
      for (const [shape, begin, size] of cases) {
        for (const dtype of ["float32", "int32", "bool"] as const) {
          const n = shape.reduce((a, b) => a * b, 1);
          const x = tf.tensor(
            Array.from({ length: n }, (_, i) => (dtype === "bool" ? Number(i % 3 === 0) : i)),
            shape,
            dtype,
          );
          const y = tf.slice(x, begin, size);
          expect(y.shape).toEqual(size);
          out.push(Array.from(y.dataSync()));
          tf.dispose([x, y]);
        }
      }
      const x = tf.tensor2d(
        Array.from({ length: 5 * 9 }, (_, i) => i),
        [5, 9],
      );
      for (const axis of [0, 1])
        for (const piece of tf.split(x, axis === 0 ? [2, 3] : 3, axis)) {
          out.push(Array.from(piece.dataSync()));
          piece.dispose();
        }
      x.dispose();
      return out;
    };
    registerWasmKernels();
    const before = tf.memory().numTensors;
    const ours = run();
    expect(tf.memory().numTensors).toBe(before);
    unregisterWasmKernels();
    const stock = run();
    registerWasmKernels();
    expect(ours).toEqual(stock);
  });
});
