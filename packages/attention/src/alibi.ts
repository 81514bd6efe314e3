import { describeValue, TypeformerError, tf } from "@typeformer/core";

/**
 * ALiBi slopes for any head count (Press et al.; the BLOOM / Hugging Face algorithm): for a power of
 * two n, 2^(-8i/n), i = 1..n; otherwise the slopes of the closest lower power of two followed by every
 * other slope of the next power of two.
 */
export function alibiSlopes(numHeads: number): Float32Array {
  if (!(Number.isInteger(numHeads) && numHeads >= 1)) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `numHeads must be a positive integer; received ${describeValue(numHeads)}`,
      {
        numHeads,
      },
    );
  }
  const closest = 2 ** Math.floor(Math.log2(numHeads));
  const base = 2 ** -(2 ** -(Math.log2(closest) - 3));
  const out = new Float32Array(numHeads);
  for (let i = 0; i < closest; i++) out[i] = base ** (i + 1);
  if (closest !== numHeads) {
    const extraBase = 2 ** -(2 ** -(Math.log2(2 * closest) - 3));
    const extra = numHeads - closest;
    for (let i = 0; i < extra; i++) out[closest + i] = extraBase ** (2 * i + 1);
  }
  return out;
}

export interface AlibiBiasOptions {
  /** Number of queries (default tk); queries are bottom-right aligned like the causal mask. */
  tq?: number;
  /** -slope·|i - j| in both directions (encoders) instead of the causal -slope·(i - j). Default false. */
  symmetric?: boolean;
}

/**
 * ALiBi additive bias (1, H, Tq, Tk): -slope_h · (p_i - j) where p_i = i + Tk - Tq is the query's key
 * position (future keys get +slope·distance; the causal mask removes them). Pass it as `bias` to
 * scaledDotProductAttention.
 */
export function alibiBias(
  slopesOrHeads: number | Float32Array,
  tk: number,
  opts: AlibiBiasOptions = {},
): tf.Tensor4D {
  const slopes = typeof slopesOrHeads === "number" ? alibiSlopes(slopesOrHeads) : slopesOrHeads;
  const tq = opts.tq ?? tk;
  if (!(Number.isInteger(tk) && tk >= 1)) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `tk must be a positive integer; received ${describeValue(tk)}`,
      { tk },
    );
  }
  if (!(Number.isInteger(tq) && tq >= 1)) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `tq must be a positive integer; received ${describeValue(tq)}`,
      { tq },
    );
  }
  const H = slopes.length;
  const off = tk - tq;
  const out = new Float32Array(H * tq * tk);
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < tq; i++) {
      const base = (h * tq + i) * tk;
      for (let j = 0; j < tk; j++) {
        const d = i + off - j;
        out[base + j] = -slopes[h] * (opts.symmetric ? Math.abs(d) : d);
      }
    }
  }
  return tf.tensor4d(out, [1, H, tq, tk]);
}
