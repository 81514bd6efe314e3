import { assertArg, Random, TypeformerError, tf } from "@typeformer/core";
import { beamSearchSeq2Seq, type ServeSeq2SeqLM } from "./beam.js";
import type { GenerationResult } from "./engine.js";
import { Sampler, type SamplingParams } from "./sampling.js";
import { StopMatcher } from "./stop.js";
import type { ServeTokenizer } from "./types.js";

/** An encoder-decoder model with a decoder KV cache (models' `Seq2SeqLM`, e.g. t5). */
export interface ServeSeq2SeqCachedLM extends ServeSeq2SeqLM {
  readonly family?: string;
  readonly modelType?: string;
  /** Longest encoder input + generated tokens served (t5: `n_positions`); default 512. */
  readonly maxPositions?: number;
  tokenizer?: object;
  createCache(batch: number, maxLength: number): { dispose(): void };
  decode(
    decoderIds: tf.Tensor2D,
    /** null once `opts.cache` holds the cross-attention keys/values. */
    encoderHidden: tf.Tensor3D | null,
    opts?: { encoderAttentionMask?: tf.Tensor2D; cache?: unknown },
  ): { logits: tf.Tensor3D };
}

export interface Seq2SeqGenerateOptions {
  maxTokens: number;
  sampling?: SamplingParams;
  /** > 1 runs beam search (sampling is then ignored); returns the best beam. */
  numBeams?: number;
  stop?: readonly string[];
  signal?: AbortSignal;
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
let nextId = 0;

/**
 * Generates with an encoder-decoder model, one request at a time: the input is encoded once and the
 * decoder runs KV-cached (greedy or sampled with the same samplers as the engine), or beam search when
 * `numBeams > 1`. Yields to the event loop between steps; an abort ends it with "cancelled".
 */
export async function generateSeq2Seq(
  model: ServeSeq2SeqCachedLM,
  tokenizer: ServeTokenizer,
  inputIds: readonly number[],
  opts: Seq2SeqGenerateOptions,
): Promise<GenerationResult> {
  assertArg(inputIds.length > 0, "prompt", inputIds, "at least one token");
  assertArg(
    Number.isInteger(opts.maxTokens) && opts.maxTokens >= 1,
    "max_tokens",
    opts.maxTokens,
    "an integer >= 1",
  );
  const started = performance.now();
  const id = `s2s-${++nextId}`;
  const finish = (
    tokenIds: number[],
    text: string,
    finishReason: GenerationResult["finishReason"],
    ttft?: number,
  ): GenerationResult => ({
    id,
    text,
    tokenIds,
    finishReason,
    promptTokens: inputIds.length,
    completionTokens: tokenIds.length,
    timeToFirstTokenMs: ttft,
    durationMs: performance.now() - started,
  });
  if ((opts.numBeams ?? 1) > 1) {
    const [best] = beamGenerateSeq2Seq(model, tokenizer, inputIds, {
      numBeams: opts.numBeams!,
      maxTokens: opts.maxTokens,
      stop: opts.stop,
    });
    return { ...best, id, durationMs: performance.now() - started };
  }
  const sampler = new Sampler(opts.sampling ?? {}, [], new Random(opts.sampling?.seed ?? Date.now()));
  const decoder = tokenizer.createStreamDecoder({ skipSpecialTokens: true });
  const stop = new StopMatcher(opts.stop ?? []);
  const hidden = tf.tidy(() => model.encode(tf.tensor2d([Array.from(inputIds)], undefined, "int32")).hidden);
  const cache = model.createCache(1, opts.maxTokens + 1);
  const tokenIds: number[] = [];
  let text = "";
  let ttft: number | undefined;
  let last = model.decoderStartTokenId;
  try {
    for (let step = 0; step < opts.maxTokens; step++) {
      if (opts.signal?.aborted) return finish(tokenIds, text, "cancelled", ttft);
      const row = tf.tidy(() => {
        const { logits } = model.decode(tf.tensor2d([[last]], [1, 1], "int32"), hidden, { cache });
        return logits.reshape([-1]);
      });
      const data = row.dataSync() as Float32Array;
      row.dispose();
      const { tokenId } = sampler.sample(data);
      ttft ??= performance.now() - started;
      if (tokenId === model.eosTokenId) return finish(tokenIds, text + stop.flush(), "stop", ttft);
      tokenIds.push(tokenId);
      last = tokenId;
      const r = stop.push(decoder.push(tokenId));
      text += r.text;
      if (r.stopped) return finish(tokenIds, text, "stop", ttft);
      await yieldToLoop();
    }
    const tail = stop.push(decoder.flush());
    text += tail.text + (tail.stopped ? "" : stop.flush());
    return finish(tokenIds, text, tail.stopped ? "stop" : "length", ttft);
  } catch (e) {
    throw e instanceof TypeformerError
      ? e
      : new TypeformerError(
          "INTERNAL",
          `seq2seq generation failed: ${(e as Error).message}`,
          {},
          { cause: e },
        );
  } finally {
    hidden.dispose();
    cache.dispose();
  }
}

/**
 * Beam search for an encoder-decoder model, as generation results: the `numReturnSequences` best
 * hypotheses (default 1), best first, EOS dropped, stop strings applied to the decoded text.
 */
export function beamGenerateSeq2Seq(
  model: ServeSeq2SeqLM,
  tokenizer: ServeTokenizer,
  inputIds: readonly number[],
  opts: { numBeams: number; maxTokens: number; numReturnSequences?: number; stop?: readonly string[] },
): GenerationResult[] {
  const started = performance.now();
  const hyps = beamSearchSeq2Seq(model, inputIds, {
    numBeams: opts.numBeams,
    maxTokens: opts.maxTokens,
    numReturnSequences: opts.numReturnSequences,
  });
  const ms = performance.now() - started;
  return hyps.map((h) => {
    const ids = h.finished ? h.tokenIds.slice(0, -1) : h.tokenIds;
    let text = tokenizer.decode(ids, { skipSpecialTokens: true });
    let finishReason: GenerationResult["finishReason"] = h.finished ? "stop" : "length";
    if (opts.stop?.length) {
      const m = new StopMatcher(opts.stop);
      const r = m.push(text);
      if (r.stopped) finishReason = "stop";
      text = r.text + (r.stopped ? "" : m.flush());
    }
    return {
      id: `s2s-${++nextId}`,
      text,
      tokenIds: ids,
      finishReason,
      promptTokens: inputIds.length,
      completionTokens: ids.length,
      timeToFirstTokenMs: ms,
      durationMs: ms,
    };
  });
}
