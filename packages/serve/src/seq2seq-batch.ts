import { TypeformerError, tf } from "@typeformer/core";
import type { ServeSeq2SeqCachedLM } from "./seq2seq.js";
import type { ServeCausalLM, ServeKVCache } from "./types.js";

/** What the batch needs of a model's decoder cache (models' `Seq2SeqCache` with attention's `KVCache`). */
interface Seq2SeqCacheParts {
  readonly self: ServeKVCache;
  cross: { k: tf.Tensor4D; v: tf.Tensor4D }[] | null;
  dispose(): void;
}

function isParts(c: unknown): c is Seq2SeqCacheParts {
  const self = (c as Seq2SeqCacheParts | null)?.self as Partial<ServeKVCache> | undefined;
  return (
    typeof self?.removeRows === "function" &&
    typeof self.concatRows === "function" &&
    "cross" in (c as object) &&
    typeof (c as Seq2SeqCacheParts).dispose === "function"
  );
}

/** Keeps the rows `rows` (in that order) of a (B, ...) tensor; the input is disposed. */
function takeRows<T extends tf.Tensor>(x: T, rows: number[]): T {
  const out = tf.tidy(() => tf.gather(x, tf.tensor1d(rows, "int32"), 0)) as T;
  x.dispose();
  return out;
}

/** Pads axis `axis` of `x` at the end to `len` (zeros); returns `x` itself when it is long enough. */
function padAxis<T extends tf.Tensor>(x: T, axis: number, len: number): T {
  const n = x.shape[axis];
  if (n === len) return x;
  const pads = x.shape.map((_, i) => [0, i === axis ? len - n : 0] as [number, number]);
  return tf.pad(x, pads) as T;
}

/**
 * The rows of a batch of encoder-decoder generations, as the engine's continuous batching sees them:
 * each row's decoder self-attention cache (right-aligned, as for decoder-only models), its encoder's
 * cross-attention keys/values, and the mask of its encoder input. Rows of different encoder lengths are
 * zero-padded at the end to the longest one and masked.
 */
export class Seq2SeqBatchCache implements ServeKVCache {
  /** (B, Ts) 1 = real encoder token; null until the rows' first (prefill) step. */
  encoderMask: tf.Tensor2D | null = null;

  constructor(readonly inner: Seq2SeqCacheParts) {}

  get lengths(): readonly number[] {
    return this.inner.self.lengths;
  }

  /** True once the rows' encoder outputs are in (after the prefill step). */
  get primed(): boolean {
    return this.inner.cross !== null;
  }

  removeRows(rows: number[]): void {
    const B = this.encoderMask?.shape[0] ?? 0;
    const drop = new Set(rows);
    const keep = [...Array(B).keys()].filter((b) => !drop.has(b));
    this.inner.self.removeRows(rows);
    if (!this.inner.cross || !this.encoderMask) return;
    this.inner.cross = this.inner.cross.map(({ k, v }) => ({ k: takeRows(k, keep), v: takeRows(v, keep) }));
    this.encoderMask = takeRows(this.encoderMask, keep);
  }

  concatRows(other: ServeKVCache): void {
    // the engine only joins prefilled caches (its running batch starts as a prefilled one)
    if (
      !(other instanceof Seq2SeqBatchCache) ||
      !other.inner.cross ||
      !other.encoderMask ||
      !this.inner.cross ||
      !this.encoderMask
    ) {
      throw new TypeformerError("INVALID_ARGUMENT", "concatRows needs two prefilled Seq2SeqBatchCaches", {});
    }
    this.inner.self.concatRows(other.inner.self);
    const Ts = Math.max(this.encoderMask.shape[1], other.encoderMask.shape[1]);
    const join = <T extends tf.Tensor>(a: T, b: T, axis: number): T =>
      tf.tidy(() => tf.concat([padAxis(a, axis, Ts), padAxis(b, axis, Ts)], 0)) as T;
    this.inner.cross = this.inner.cross.map(({ k, v }, i) => {
      const o = other.inner.cross![i];
      const out = { k: join(k, o.k, 2), v: join(v, o.v, 2) }; // (B, H, Ts, Dkv)
      tf.dispose([k, v]);
      return out;
    });
    const m = join(this.encoderMask, other.encoderMask, 1); // (B, Ts)
    this.encoderMask.dispose();
    this.encoderMask = m;
  }

  dispose(): void {
    this.inner.dispose();
    this.encoderMask?.dispose();
    this.encoderMask = null;
  }
}

/**
 * Presents an encoder-decoder model (t5) as the decoder-only contract the {@link GenerationEngine}
 * drives, so encoder-decoder requests get continuous batching, streaming, sampling, log-probabilities
 * and cancellation from the same scheduler. A request's prompt is the encoder input. The first
 * `forward` of a cache (the engine's prefill, prompts left-padded with an attention mask) encodes the
 * prompts and decodes the decoder start token; later calls decode one token per row against the kept
 * cross-attention keys/values. `maxPositions` (default the model's, else 512) bounds encoder input +
 * generated tokens together.
 */
export function seq2seqAsCausal(
  model: ServeSeq2SeqCachedLM,
  maxPositions = model.maxPositions ?? 512,
): ServeCausalLM {
  return {
    modelType: model.modelType,
    family: model.family,
    vocabSize: model.vocabSize,
    maxPositions,
    tokenizer: model.tokenizer,
    createCache(batch: number, maxLength: number): Seq2SeqBatchCache {
      const inner = model.createCache(batch, maxLength);
      if (!isParts(inner)) {
        (inner as { dispose(): void }).dispose();
        throw new TypeformerError(
          "INVALID_ARGUMENT",
          "the model's createCache() must return { self: KVCache with removeRows/concatRows, cross, dispose }",
          { modelType: model.modelType },
        );
      }
      return new Seq2SeqBatchCache(inner);
    },
    forward(inputIds, opts = {}) {
      const cache = opts.cache;
      if (!(cache instanceof Seq2SeqBatchCache)) {
        throw new TypeformerError(
          "INVALID_ARGUMENT",
          "an encoder-decoder model served as a batch needs its Seq2SeqBatchCache",
          {},
        );
      }
      if (cache.primed) {
        // decode step: (B, 1) newest tokens against the cached encoder keys/values
        const { logits } = model.decode(inputIds, null, {
          cache: cache.inner,
          encoderAttentionMask: cache.encoderMask!,
        });
        return { logits };
      }
      // prefill: encode the (left-padded) prompts, then decode the start token of every row
      const [B, Ts] = inputIds.shape;
      const mask = (opts.attentionMask ? tf.clone(opts.attentionMask) : tf.ones([B, Ts])) as tf.Tensor2D;
      const start = tf.fill([B, 1], model.decoderStartTokenId, "int32") as tf.Tensor2D;
      let hidden: tf.Tensor3D | undefined;
      try {
        hidden = model.encode(inputIds, { attentionMask: mask }).hidden;
        const { logits } = model.decode(start, hidden, { cache: cache.inner, encoderAttentionMask: mask });
        cache.encoderMask = mask;
        return { logits };
      } catch (e) {
        mask.dispose();
        throw e;
      } finally {
        tf.dispose(hidden ? [hidden, start] : [start]);
      }
    },
  };
}
