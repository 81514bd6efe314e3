/**
 * A tiny float64 reference path: plain nested arrays, textbook loops, no tf.js. Conformance suites
 * compare float32 kernels against these.
 */
export const f64 = {
  matmul(a: number[][], b: number[][]): number[][] {
    const n = a.length;
    const k = b.length;
    const m = b[0]?.length ?? 0;
    const out: number[][] = [];
    for (let i = 0; i < n; i++) {
      const row = new Array<number>(m).fill(0);
      for (let p = 0; p < k; p++) {
        const aip = a[i][p];
        for (let j = 0; j < m; j++) row[j] += aip * b[p][j];
      }
      out.push(row);
    }
    return out;
  },
  transpose(a: number[][]): number[][] {
    return (a[0] ?? []).map((_, j) => a.map((row) => row[j]));
  },
  softmax(row: number[]): number[] {
    const max = Math.max(...row);
    if (max === Number.NEGATIVE_INFINITY) return row.map(() => 0);
    const e = row.map((x) => Math.exp(x - max));
    const s = e.reduce((x, y) => x + y, 0);
    return e.map((x) => x / s);
  },
  /** Reshapes a flat array into nested arrays of `shape`. */
  reshape(flat: ArrayLike<number>, shape: number[]): unknown {
    if (shape.length === 0) return flat[0];
    const [d, ...rest] = shape;
    const step = rest.reduce((a, b) => a * b, 1);
    return Array.from({ length: d }, (_, i) => {
      const slice = Array.from({ length: step }, (_, j) => flat[i * step + j]);
      return rest.length === 0 ? slice[0] : f64.reshape(slice, rest);
    });
  },
};
