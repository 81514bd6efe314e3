import type { Random, tf } from "@typeformer/core";

/** Options of {@link scaledDotProductAttention}. Shapes are (B, H, T, D). */
export interface AttentionOptions {
  /** Causal mask; bottom-right aligned when Tq < Tk (query i sits at key position i + Tk - Tq). Default false. */
  causal?: boolean;
  /** (B, Tk): 1 = attend, 0 = padding. Any dtype; non-zero counts as 1. */
  keyMask?: tf.Tensor2D;
  /**
   * Sliding window (implies the causal upper bound): query at key position p sees keys j with
   * p - window < j <= p (Mistral's `sliding_window`).
   */
  window?: number;
  /** Additive bias broadcastable to (B, H, Tq, Tk) (ALiBi, T5 relative bias). Gradients flow into it. */
  bias?: tf.Tensor;
  /** Multiplier of q·kᵀ; default 1/sqrt(D). */
  scale?: number;
  /** Attention dropout rate in [0, 1); needs `rng`. Only pass it while training. */
  dropout?: number;
  /** Seeded generator for dropout masks. */
  rng?: Random;
  /** Also return the attention probabilities (B, H, Tq, Tk), before dropout. */
  returnWeights?: boolean;
  /** Which registered implementation runs: "auto" (default), "naive", "tiled", or a registered name. */
  implementation?: "auto" | "naive" | "tiled" | (string & {});
  /** Block sizes of the tiled implementation (queries, keys); default 256 each. */
  blockSize?: number | [number, number];
}

/** What {@link scaledDotProductAttention} returns; the caller owns (and disposes) every tensor. */
export interface AttentionResult {
  /** (B, H, Tq, Dv). */
  output: tf.Tensor4D;
  /** (B, H, Tq, Tk) probabilities, when `returnWeights` was set. */
  weights?: tf.Tensor4D;
}

/**
 * One attention implementation. The registry ({@link registerAttentionImplementation}) holds every
 * implementation; "auto" picks the one with the highest `autoPriority` whose `supports` accepts the call;
 * the conformance suite runs every registered implementation on every backend.
 */
export interface AttentionImplementation {
  name: string;
  /** Computes attention; receives already validated inputs. */
  sdpa(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, opts: AttentionOptions): AttentionResult;
  /**
   * Whether "auto" may route this call here (backend, options, sizes). Explicit selection by name
   * ignores it. Missing = never chosen by "auto".
   */
  supports?(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, opts: AttentionOptions): boolean;
  /** Higher wins in "auto"; naive is 0 (and the fallback), tiled 10. */
  autoPriority?: number;
  /** Options this implementation does not handle (the conformance suite skips those cases). */
  unsupported?: ReadonlyArray<"returnWeights" | "dropout" | "bias" | "keyMask" | "window" | "gqa">;
}
