import { KVCache, type KVCacheOptions } from "@typeformer/attention";
import { assertArg, TypeformerError, tf } from "@typeformer/core";
import { positionIds } from "./layers.js";
import type { CausalLM, CausalLMForwardOptions, KVCacheLike } from "./types.js";

/** What a decoder's forward needs besides the ids: sizes, positions, the key mask and the cache. */
export interface DecoderInputs {
  B: number;
  T: number;
  /** (B, T) int32 absolute positions of the ids; undefined when they are simply 0..T-1 in every row. */
  positions?: tf.Tensor2D;
  /** (B, Tk) key padding mask, when known before the first layer (no cache). */
  keyMask?: tf.Tensor2D;
  cache?: KVCacheLike;
  /** (B, T) mask of the new tokens, for the cache's first-layer update. */
  newMask?: tf.Tensor2D;
}

/** Validates ids and options and derives positions / masks (call inside tf.tidy). */
export function decoderInputs(
  inputIds: tf.Tensor2D,
  opts: CausalLMForwardOptions,
  maxPositions: number,
): DecoderInputs {
  assertArg(
    inputIds instanceof tf.Tensor && inputIds.rank === 2,
    "inputIds",
    inputIds instanceof tf.Tensor ? `tensor of shape [${inputIds.shape}]` : inputIds,
    "a (B, T) int32 tensor",
  );
  const [B, T] = inputIds.shape;
  assertArg(T > 0 && B > 0, "inputIds", `shape [${inputIds.shape}]`, "non-empty (B, T)");
  const mask = opts.attentionMask;
  if (mask) {
    assertArg(
      mask.rank === 2 && mask.shape[0] === B && (opts.cache ? true : mask.shape[1] === T),
      "attentionMask",
      `shape [${mask.shape}]`,
      `(B, T) = (${B}, ${T}) like inputIds`,
    );
  }
  let positions: tf.Tensor2D | undefined;
  let keyMask: tf.Tensor2D | undefined;
  if (opts.cache) {
    positions = opts.cache.positions(T, mask);
  } else if (mask) {
    positions = positionIds(B, T, mask);
    keyMask = mask;
  }
  const past = opts.cache ? Math.max(0, ...opts.cache.lengths) : 0;
  if (past + T > maxPositions) {
    throw new TypeformerError(
      "LIMIT_EXCEEDED",
      `sequence of ${past + T} tokens (${past} cached + ${T} new) exceeds the model's ${maxPositions} positions`,
      { length: past + T, maxPositions },
    );
  }
  return { B, T, positions, keyMask, cache: opts.cache, newMask: mask };
}

/** A cache with @typeformer/attention's fused in-place decode attention (`KVCache.attendInPlace`). */
export interface InPlaceAttendCache {
  attendInPlace: KVCache["attendInPlace"];
  projectAttendInPlace?: KVCache["projectAttendInPlace"];
}

/**
 * The cache, when the fused decode path can run now: an attention `KVCache` (or anything with its
 * `attendInPlace`), the wasm backend with Typeformer's kernels, and no gradient tape recording.
 * Otherwise undefined: callers take the plain path (update + attend), which gives the same numbers.
 */
export function inPlaceCache(cache: KVCacheLike): InPlaceAttendCache | undefined {
  if (typeof (cache as Partial<InPlaceAttendCache>).attendInPlace !== "function") return undefined;
  if (!KVCache.canAttendInPlace()) return undefined;
  const state = (tf.engine() as unknown as { state?: { gradientDepth?: number } }).state;
  if ((state?.gradientDepth ?? 0) > 0) return undefined;
  return cache as unknown as InPlaceAttendCache;
}

type CacheFactory = (opts: KVCacheOptions) => KVCacheLike;

let cacheFactory: CacheFactory = (o) => new KVCache(o) as unknown as KVCacheLike;

/** Replaces how models build their KV caches (default: @typeformer/attention's `KVCache`). */
export function setKVCacheFactory(f: CacheFactory): void {
  cacheFactory = f;
}

export function createKVCache(model: CausalLM, batch: number, maxLength: number): KVCacheLike {
  assertArg(Number.isInteger(batch) && batch > 0, "batch", batch, "a positive integer");
  assertArg(
    Number.isInteger(maxLength) && maxLength > 0 && maxLength <= model.maxPositions,
    "maxLength",
    maxLength,
    `an integer in [1, ${model.maxPositions}]`,
  );
  return cacheFactory({
    numLayers: model.numLayers,
    batch,
    numKvHeads: model.numKvHeads,
    headDim: model.headDim,
    maxLength,
  });
}
