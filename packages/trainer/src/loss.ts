import { TypeformerError, tf } from "@typeformer/core";

/** Targets equal to this are ignored (PyTorch's convention). */
export const IGNORE_INDEX = -100;

/**
 * Summed softmax cross-entropy over the rows of `logits` (N, V) with integer `targets` (length N) and
 * per-row `weights` (a loss mask; 0 ignores the row). One fused op: the forward pass computes
 * `logsumexp(x) - x[target]` and the gradient is `(softmax(x) - onehot(target)) · weight` directly,
 * instead of the chain of log-softmax, one-hot, multiply and sum gradients.
 */
export function crossEntropySum(logits: tf.Tensor2D, targets: Int32Array, weights: Float32Array): tf.Scalar {
  const [n, v] = logits.shape;
  if (targets.length !== n || weights.length !== n) {
    throw new TypeformerError(
      "SHAPE_MISMATCH",
      `crossEntropySum: logits have ${n} rows but targets ${targets.length} and weights ${weights.length}`,
      { rows: n, targets: targets.length, weights: weights.length },
    );
  }
  const flatIdx = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const t = targets[i];
    if (weights[i] !== 0 && (t < 0 || t >= v || !Number.isInteger(t))) {
      throw new TypeformerError(
        "DATA_INVALID",
        `target ${t} at row ${i} is outside the vocabulary [0, ${v})`,
        {
          target: t,
          row: i,
          vocabSize: v,
        },
      );
    }
    flatIdx[i] = i * v + (weights[i] === 0 ? 0 : t);
  }
  const fn = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const w = tf.tensor1d(weights, "float32");
    const logZ = tf.logSumExp(x, 1);
    const picked = tf.gather(tf.reshape(x, [-1]), tf.tensor1d(flatIdx, "int32"));
    const value = tf.sum(tf.mul(tf.sub(logZ, picked), w)) as tf.Scalar;
    save([x, w]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws] = saved;
        // one-hot of the targets scaled by the weights, as a scatter (wasm's float OneHot is broken)
        const idx = new Int32Array(2 * n);
        for (let i = 0; i < n; i++) {
          idx[2 * i] = i;
          idx[2 * i + 1] = flatIdx[i] - i * v;
        }
        const wdy = tf.mul(ws, dy);
        const hot = tf.scatterND(tf.tensor2d(idx, [n, 2], "int32"), wdy, [n, v]);
        const g = tf.sub(tf.mul(tf.softmax(xs), tf.reshape(wdy, [n, 1])), hot);
        return [g];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return fn(logits) as tf.Scalar;
}

/** Builds (targets, weights, count) from a target array using {@link IGNORE_INDEX} and an optional mask. */
export function targetWeights(
  targets: Int32Array,
  mask?: ArrayLike<number>,
): { targets: Int32Array; weights: Float32Array; count: number } {
  const w = new Float32Array(targets.length);
  let count = 0;
  for (let i = 0; i < targets.length; i++) {
    const ok = targets[i] !== IGNORE_INDEX && (mask === undefined || mask[i] !== 0);
    if (ok) {
      w[i] = 1;
      count++;
    }
  }
  return { targets, weights: w, count };
}
