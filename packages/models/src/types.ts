import type { Random, tf } from "@typeformer/core";
import type { Tokenizer } from "@typeformer/tokenizer";

/**
 * Public types of @typeformer/models. The trainer and the server code against these.
 *
 * Conventions: shapes are written (B, T, C) / (B, H, T, D); every function that returns tensors
 * transfers ownership to the caller (dispose them, or run inside `tf.tidy`).
 */

export type ModelFamily = "decoder" | "encoder" | "encoder-decoder";

/**
 * What a model needs of a key/value cache. `@typeformer/attention`'s `KVCache` satisfies it; models
 * only ever call these members, so any cache with the same shape conventions works.
 */
export interface KVCacheLike {
  /**
   * Appends (B, Hkv, t, D) keys/values for `layer` and returns all keys/values so far (B, Hkv, Tk, D),
   * owned by the caller. `mask` (B, t) marks valid new tokens (left padding of a batched prompt).
   */
  update(
    layer: number,
    k: tf.Tensor4D,
    v: tf.Tensor4D,
    mask?: tf.Tensor2D,
  ): { k: tf.Tensor4D; v: tf.Tensor4D };
  /** Valid length per row after the last layer's update of the latest step. */
  readonly lengths: number[];
  /** (B, Tk) 1 = attend, 0 = padding, including the step in progress. */
  keyMask(): tf.Tensor2D;
  /** (B, t) absolute positions of the next t tokens of every row (`mask` marks valid ones). */
  positions(t: number, mask?: tf.Tensor2D): tf.Tensor2D;
  dispose(): void;
}

/** The tokenizer a model carries: @typeformer/tokenizer's `Tokenizer`. */
export type TokenizerLike = Tokenizer;

/** Every config carries its architecture's `modelType` ("gpt2", "llama", "bert", "t5"). */
export interface BaseModelConfig {
  modelType: string;
}

export interface PreTrainedModel<C extends BaseModelConfig = BaseModelConfig> {
  readonly modelType: string;
  readonly family: ModelFamily;
  /** The flat typed config (camelCase fields; `save` writes Hugging Face's snake_case keys). */
  readonly config: Readonly<C>;
  /**
   * Trainable parameters, keyed by Hugging Face tensor name (e.g. `h.0.attn.c_attn.weight`,
   * `model.layers.0.self_attn.q_proj.weight`). Linear (nn.Linear) weights are stored transposed to
   * (in, out) so every dense layer is a plain 2-D matMul; `save` writes them back as HF's (out, in).
   * GPT-2's Conv1D weights are (in, out) in HF already. Shapes: see `hfShape`/`parameterShapes`.
   */
  namedParameters(): Map<string, tf.Variable>;
  /** Writes `config.json` + `model.safetensors` in HF layout (+ the tokenizer when one is attached). */
  save(dir: string, opts?: SaveOptions): Promise<void>;
  /** Frees every variable. The model must not be used afterwards. */
  dispose(): void;
  /** Attached by `fromPretrained` when the directory has a tokenizer.json. */
  tokenizer?: TokenizerLike;
}

export interface SaveOptions {
  /** Tensor dtype in the file: "F32" (default, bit-exact round trip) or "F16". */
  dtype?: "F32" | "F16";
  /** Shard above this many bytes (sharded checkpoints + index). Default: one file. */
  maxShardBytes?: number;
  /** Extra string metadata for the safetensors header. */
  metadata?: Record<string, string>;
}

/** Options common to every forward pass. */
export interface ForwardOptionsBase {
  /** Enables dropout (needs `rng` when any dropout rate > 0). Default false. */
  training?: boolean;
  /** Seeded generator for dropout masks. */
  rng?: Random;
  /** Also return per-layer attention probabilities. */
  outputAttentions?: boolean;
}

export interface CausalLMForwardOptions extends ForwardOptionsBase {
  /**
   * KV cache from `createCache`: the ids are the next tokens of every row; keys/values are appended
   * and positions continue from the cache's lengths. Without a cache the ids are the whole sequence.
   */
  cache?: KVCacheLike;
  /**
   * (B, T) 1 = real token, 0 = padding, for left-padded batches: masks those keys and shifts positions
   * so every row's first real token sits at position 0. With a cache it describes the new tokens
   * only (prefill a left-padded prompt batch with it); the cache remembers the padding.
   */
  attentionMask?: tf.Tensor2D;
}

export interface CausalLMOutput {
  /** (B, T, V) */
  logits: tf.Tensor3D;
  /** Per layer (B, H, T, Tk) attention probabilities, when `outputAttentions`. */
  attentions?: tf.Tensor4D[];
}

/** Decoder-only language models: gpt2, llama. */
export interface CausalLM<C extends BaseModelConfig = BaseModelConfig> extends PreTrainedModel<C> {
  readonly family: "decoder";
  readonly vocabSize: number;
  /** Longest sequence the model can attend over (learned positions / RoPE context). */
  readonly maxPositions: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  /** Runs the model. `inputIds` is (B, T) int32. */
  forward(inputIds: tf.Tensor2D, opts?: CausalLMForwardOptions): CausalLMOutput;
  /** A fresh KV cache sized for this model (needs @typeformer/attention). */
  createCache(batch: number, maxLength: number): KVCacheLike;
}

export interface EncoderForwardOptions extends ForwardOptionsBase {
  /** (B, T) 1 = real token, 0 = padding. */
  attentionMask?: tf.Tensor2D;
  /** (B, T) int32 segment ids (BERT token types). Default zeros. */
  tokenTypeIds?: tf.Tensor2D;
}

export interface EncoderOutput {
  /** (B, T, C) last hidden states. */
  hidden: tf.Tensor3D;
  attentions?: tf.Tensor4D[];
}

/** Encoder-only models: bert. */
export interface EncoderModel<C extends BaseModelConfig = BaseModelConfig> extends PreTrainedModel<C> {
  readonly family: "encoder";
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly maxPositions: number;
  /** (B, T) → last hidden states (B, T, C). */
  encode(inputIds: tf.Tensor2D, opts?: EncoderForwardOptions): EncoderOutput;
  /** Masked-LM logits (B, T, V) (needs the `cls.predictions` head weights). */
  mlmLogits(inputIds: tf.Tensor2D, opts?: EncoderForwardOptions): tf.Tensor3D;
  /** Masked-LM logits (N, V) at flat positions `b·T + t` only (the head runs on N rows, not B·T). */
  mlmLogitsAt(
    inputIds: tf.Tensor2D,
    positions: ArrayLike<number> | tf.Tensor1D,
    opts?: EncoderForwardOptions,
  ): tf.Tensor2D;
  /** Sequence-classification logits (B, numLabels): pooler (tanh on [CLS]) + classifier. */
  classify(inputIds: tf.Tensor2D, opts?: EncoderForwardOptions): tf.Tensor2D;
  /** Mean of the last hidden states over real (mask = 1) tokens: sentence embeddings (B, C). */
  embed(inputIds: tf.Tensor2D, opts?: EncoderForwardOptions & { normalize?: boolean }): tf.Tensor2D;
}

/** Decoder self-attention cache + reusable cross-attention keys/values (encoder-decoder models). */
export interface Seq2SeqCache {
  readonly self: KVCacheLike;
  /** Cross-attention keys/values per decoder layer, computed on the first decode call and reused. */
  cross: { k: tf.Tensor4D; v: tf.Tensor4D }[] | null;
  dispose(): void;
}

export interface Seq2SeqDecodeOptions extends ForwardOptionsBase {
  /** (B, Ts) mask of the encoder input (1 = real token). */
  encoderAttentionMask?: tf.Tensor2D;
  /** Decoder cache from `createCache`; `decoderIds` are then the next tokens only. */
  cache?: Seq2SeqCache;
}

/** Encoder-decoder models: t5. */
export interface Seq2SeqLM<C extends BaseModelConfig = BaseModelConfig> extends PreTrainedModel<C> {
  readonly family: "encoder-decoder";
  readonly vocabSize: number;
  readonly decoderStartTokenId: number;
  readonly eosTokenId: number;
  readonly padTokenId: number;
  /** Encoder: (B, Ts) → (B, Ts, C). */
  encode(inputIds: tf.Tensor2D, opts?: EncoderForwardOptions): EncoderOutput;
  /**
   * Decoder: (B, Tt) decoder ids + encoder states → logits (B, Tt, V). `encoderHidden` may be null once
   * `opts.cache` holds the cross-attention keys/values (after the cache's first decode call).
   */
  decode(
    decoderIds: tf.Tensor2D,
    encoderHidden: tf.Tensor3D | null,
    opts?: Seq2SeqDecodeOptions,
  ): CausalLMOutput;
  /** encode + decode in one call (teacher forcing for training). */
  forward(
    inputIds: tf.Tensor2D,
    decoderIds: tf.Tensor2D,
    opts?: EncoderForwardOptions & { decoderAttentionMask?: tf.Tensor2D },
  ): CausalLMOutput;
  createCache(batch: number, maxLength: number): Seq2SeqCache;
}

export type AnyModel = CausalLM | EncoderModel | Seq2SeqLM;

export interface CreateModelOptions {
  /** Seed of the parameter initialisation (default 0). */
  seed?: number;
}

/**
 * One architecture, registered by its own file with `registerArchitecture`. `fromPretrained`,
 * `createModel`, `parameterCount` and `flopsPerToken` dispatch through this registry.
 */
export interface ArchitectureSpec<C extends BaseModelConfig = BaseModelConfig> {
  modelType: string;
  family: ModelFamily;
  /** A complete config with the defaults (HF's defaults for the architecture). */
  defaults: C;
  /** Named sizes, e.g. "gpt2-medium", "tiny". */
  presets: Record<string, Partial<C>>;
  /** The mapping between our camelCase fields and config.json keys, with the field types. */
  fields: ConfigField<C>[];
  /** Reads config.json values that are not plain fields (e.g. BERT's label count from id2label). */
  readHF?(json: Record<string, unknown>, config: C): C;
  /** Extra fixed keys written into config.json (architectures, model_type, ...). */
  hfExtras?(config: C): Record<string, unknown>;
  /** Checks cross-field invariants (heads divide width, ...); throws INVALID_CONFIG. */
  validate?(config: C): void;
  /** Parameter name → shape, in Typeformer's layout (see `hfTranspose`). */
  parameterShapes(config: C): Map<string, number[]>;
  /** Names stored transposed relative to HF (nn.Linear weights): HF shape = reversed shape. */
  hfTranspose(name: string, config: C): boolean;
  /**
   * Maps a checkpoint tensor name to our parameter name, `null` to ignore it (stored buffers, tied
   * heads), or `undefined` when unknown (reported as unexpected).
   */
  mapCheckpointName(name: string, config: C): string | null | undefined;
  /**
   * Adjusts the config to the tensors a checkpoint holds (names already mapped), e.g. BERT without
   * an MLM head or classifier. Optional.
   */
  adaptToCheckpoint?(config: C, names: Set<string>): C;
  /** Builds the module from parameter values (from a checkpoint or an initialiser). */
  create(config: C, values: ParameterSource): PreTrainedModel<C>;
  /** Initial values for `createModel` (HF's init: normal(0, initializer_range), zeros, ones...). */
  init(name: string, shape: number[], config: C, rng: Random): Float32Array;
  /** Forward FLOPs for one token with `contextLength` keys, ×3 for training (see flopsPerToken). */
  attentionFlopsPerToken?(config: C, contextLength: number): number;
}

/** Values for a parameter in Typeformer's layout: data, or a tensor whose ownership passes to the model. */
export type ParameterSource = (name: string, shape: number[]) => Float32Array | tf.Tensor;

export interface ConfigField<C> {
  /** Our field name. */
  key: keyof C & string;
  /** The config.json key (first one is written; the rest are accepted aliases on read); null = not in config.json. */
  hf: string | string[] | null;
  type: "number" | "integer" | "boolean" | "string" | "number|null" | "string|null" | "integer|null";
}
