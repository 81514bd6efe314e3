import type { tf } from "@typeformer/core";

/**
 * What the engine needs of a KV cache (the `KVCache` of `@typeformer/attention` satisfies it): rows are
 * sequences, rows leave with `removeRows` and join with `concatRows` between decode steps.
 */
export interface ServeKVCache {
  readonly lengths: readonly number[];
  removeRows(rows: number[]): void;
  concatRows(other: ServeKVCache): void;
  dispose(): void;
}

/** The decoder-only model contract the engine drives (a structural subset of models' `CausalLM`). */
export interface ServeCausalLM {
  readonly modelType?: string;
  readonly family?: string;
  readonly vocabSize: number;
  readonly maxPositions: number;
  forward(
    inputIds: tf.Tensor2D,
    opts?: { cache?: unknown; attentionMask?: tf.Tensor2D; outputAttentions?: boolean },
  ): { logits: tf.Tensor3D; attentions?: tf.Tensor4D[] };
  /** Must return a cache with the {@link ServeKVCache} members (checked at run time). */
  createCache(batch: number, maxLength: number): object;
  tokenizer?: object;
}

/** An encoder model that can embed text (models' `EncoderModel.embed`, mean-pooled). */
export interface ServeEncoder {
  readonly modelType?: string;
  readonly family?: string;
  readonly maxPositions?: number;
  embed(inputIds: tf.Tensor2D, opts?: { attentionMask?: tf.Tensor2D }): tf.Tensor2D;
  tokenizer?: object;
}

/** What the engine needs of a tokenizer (a structural subset of `@typeformer/tokenizer`'s `Tokenizer`). */
export interface ServeTokenizer {
  readonly vocabSize: number;
  readonly eosTokenId?: number;
  readonly padTokenId?: number;
  readonly specialTokens?: Readonly<Record<string, number>>;
  encode(text: string, opts?: { addSpecialTokens?: boolean; allowedSpecial?: "all" | Set<string> }): number[];
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  idToToken?(id: number): string | undefined;
  createStreamDecoder(opts?: { skipSpecialTokens?: boolean }): { push(id: number): string; flush(): string };
  applyChatTemplate?(
    messages: { role: string; content: string }[],
    opts?: { addGenerationPrompt?: boolean },
  ): string;
}
