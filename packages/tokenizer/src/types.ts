import type { BatchEncodeOptions, BatchEncoding } from "./batch.js";

export interface EncodeOptions {
  /** Add the post-processor's special tokens ([CLS] … [SEP], BOS …). Default true for HF tokenizers, ignored by tiktoken encodings. */
  addSpecialTokens?: boolean;
  /** Special tokens recognised in the text. Default: none (tiktoken) / all added tokens (HF tokenizers). */
  allowedSpecial?: "all" | Set<string>;
  /** Special tokens whose presence in the text throws (tiktoken semantics). Default "all" minus allowed. */
  disallowedSpecial?: "all" | Set<string>;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

export interface ChatMessage {
  role: string;
  content: string;
}

export interface ChatTemplateOptions {
  addGenerationPrompt?: boolean;
  /** Override the tokenizer's template (a Jinja string). */
  chatTemplate?: string;
  /** Extra variables for the template. */
  extra?: Record<string, unknown>;
}

export interface StreamDecoder {
  /** Feeds one id; returns the newly completed text (never a broken UTF-8 sequence). */
  push(id: number): string;
  /** Returns whatever is pending (invalid trailing bytes become U+FFFD). */
  flush(): string;
}

export interface StreamDecoderOptions {
  skipSpecialTokens?: boolean;
}

/** The one tokenizer interface every Typeformer package codes against. */
export interface Tokenizer {
  readonly vocabSize: number;
  encode(text: string, opts?: EncodeOptions): number[];
  decode(ids: ArrayLike<number>, opts?: DecodeOptions): string;
  encodeBatch(texts: string[], opts?: EncodeOptions): number[][];
  countTokens(text: string, opts?: EncodeOptions): number;
  /** Batch encoding for models: pairs, truncation, padding, attention masks, offsets. */
  encodeBatchForModel?(texts: string[], opts?: BatchEncodeOptions): BatchEncoding;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  readonly specialTokens: Record<string, number>;
  readonly eosTokenId?: number;
  readonly bosTokenId?: number;
  readonly padTokenId?: number;
  createStreamDecoder(opts?: StreamDecoderOptions): StreamDecoder;
  applyChatTemplate(messages: ChatMessage[], opts?: ChatTemplateOptions): string;
  /** Hugging Face tokenizer.json object. */
  toJSON(): object;
  /** Writes tokenizer.json + tokenizer_config.json (with chat_template). */
  save(dir: string): Promise<void>;
}
