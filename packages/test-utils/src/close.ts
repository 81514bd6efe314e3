import { tf } from "@typeformer/core";

export interface CloseOptions {
  /** Absolute tolerance (default 1e-5). */
  atol?: number;
  /** Relative tolerance (default 1e-4). */
  rtol?: number;
  /** Label used in the failure message. */
  label?: string;
}

type Numeric = tf.Tensor | ArrayLike<number> | number[][] | number;

function flatten(x: Numeric): { values: Float64Array; shape: number[] } {
  if (typeof x === "number") return { values: Float64Array.of(x), shape: [] };
  if (x instanceof tf.Tensor) return { values: Float64Array.from(x.dataSync()), shape: x.shape };
  const out: number[] = [];
  const shape: number[] = [];
  const walk = (v: unknown, depth: number) => {
    if (Array.isArray(v) || ArrayBuffer.isView(v)) {
      const arr = v as ArrayLike<unknown>;
      if (shape.length <= depth) shape.push(arr.length);
      for (let i = 0; i < arr.length; i++) walk(arr[i], depth + 1);
    } else out.push(Number(v));
  };
  walk(x, 0);
  return { values: Float64Array.from(out), shape };
}

/** Largest |a - b| over all elements. */
export function maxAbsDiff(a: Numeric, b: Numeric): number {
  const x = flatten(a).values;
  const y = flatten(b).values;
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

/**
 * Asserts |actual - expected| <= atol + rtol * |expected| elementwise (numpy's allclose), with a message
 * that names the worst element, both values and the tolerances. Sizes must match.
 */
export function assertClose(actual: Numeric, expected: Numeric, opts: CloseOptions = {}): void {
  const { atol = 1e-5, rtol = 1e-4, label = "values" } = opts;
  const a = flatten(actual);
  const e = flatten(expected);
  if (a.values.length !== e.values.length) {
    throw new Error(
      `${label}: size ${a.values.length} (shape ${a.shape}) != expected ${e.values.length} (shape ${e.shape})`,
    );
  }
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < a.values.length; i++) {
    const diff = Math.abs(a.values[i] - e.values[i]);
    const tol = atol + rtol * Math.abs(e.values[i]);
    const excess = Number.isNaN(diff) ? Number.POSITIVE_INFINITY : diff - tol;
    if (excess > worstExcess || (Number.isNaN(a.values[i]) !== Number.isNaN(e.values[i]) && worst < 0)) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    throw new Error(
      `${label}: element ${worst} is ${a.values[worst]}, expected ${e.values[worst]} ` +
        `(|Δ| ${Math.abs(a.values[worst] - e.values[worst]).toExponential(3)} > atol ${atol} + rtol ${rtol}·|expected|); ` +
        `max |Δ| over all ${a.values.length} = ${maxAbsDiff(actual, expected).toExponential(3)}`,
    );
  }
}
