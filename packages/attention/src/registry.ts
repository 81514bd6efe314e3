import { describeValue, TypeformerError, type tf } from "@typeformer/core";
import { naiveImplementation } from "./naive.js";
import { tiledImplementation } from "./tiled.js";
import type { AttentionImplementation, AttentionOptions, AttentionResult } from "./types.js";
import { attentionDims } from "./validate.js";

const registry = new Map<string, AttentionImplementation>([
  [naiveImplementation.name, naiveImplementation],
  [tiledImplementation.name, tiledImplementation],
]);

/**
 * Adds (or replaces) an attention implementation: selectable by name through
 * `implementation`, eligible for "auto" through `supports`/`autoPriority`, and run by the
 * conformance suite. Returns a function that unregisters it.
 */
export function registerAttentionImplementation(impl: AttentionImplementation): () => void {
  if (!impl || typeof impl.name !== "string" || impl.name === "" || impl.name === "auto") {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `an attention implementation needs a name other than "auto"; received ${describeValue(impl?.name)}`,
      { name: impl?.name },
    );
  }
  if (typeof impl.sdpa !== "function") {
    throw new TypeformerError("INVALID_ARGUMENT", `implementation ${impl.name} has no sdpa function`, {
      name: impl.name,
    });
  }
  registry.set(impl.name, impl);
  return () => {
    if (registry.get(impl.name) === impl) registry.delete(impl.name);
  };
}

/** Every registered implementation, in registration order. */
export function listAttentionImplementations(): AttentionImplementation[] {
  return [...registry.values()];
}

/** The implementation registered under `name`; throws NOT_FOUND naming the known ones. */
export function getAttentionImplementation(name: string): AttentionImplementation {
  const impl = registry.get(name);
  if (!impl) {
    throw new TypeformerError(
      "NOT_FOUND",
      `unknown attention implementation ${describeValue(name)}; known: ${[...registry.keys()].join(", ")}`,
      { name, known: [...registry.keys()] },
    );
  }
  return impl;
}

/** The implementation "auto" picks for this call. */
export function selectAttentionImplementation(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  opts: AttentionOptions,
): AttentionImplementation {
  let best: AttentionImplementation = naiveImplementation;
  let bestPriority = Number.NEGATIVE_INFINITY;
  for (const impl of registry.values()) {
    const pr = impl.autoPriority ?? 0;
    if (pr > bestPriority && impl.supports?.(q, k, v, opts)) {
      best = impl;
      bestPriority = pr;
    }
  }
  return best;
}

/**
 * Scaled dot-product attention: softmax(q·kᵀ·scale + masks + bias)·v.
 * q (B, H, Tq, D), k (B, Hkv, Tk, D), v (B, Hkv, Tk, Dv) with H a multiple of Hkv (GQA/MQA share
 * each key/value head among H/Hkv query heads without repeating them). Returns the output
 * (B, H, Tq, Dv) and, with `returnWeights`, the probabilities; the caller owns them.
 */
export function scaledDotProductAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  opts: AttentionOptions = {},
): AttentionResult {
  attentionDims(q, k, v, opts);
  const name = opts.implementation ?? "auto";
  const impl =
    name === "auto" ? selectAttentionImplementation(q, k, v, opts) : getAttentionImplementation(name);
  return impl.sdpa(q, k, v, opts);
}
