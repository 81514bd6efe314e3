/**
 * BERT (Devlin et al. 2019), top-down: config → embeddings → self-attention → post-LN block →
 * encoder → heads (masked LM, pooler + classifier, mean-pooled embeddings). Weight names are Hugging
 * Face's (`bert.…`, `cls.predictions.…`, `classifier.…`); nn.Linear weights are kept as (in, out).
 */
import { type Random, TypeformerError, tf } from "@typeformer/core";
import { attend } from "./attend.js";
import { BaseModel } from "./base.js";
import {
  activation,
  dropout,
  embed,
  layerNorm,
  linear,
  mergeHeads,
  splitHeads,
  TransposedCache,
} from "./layers.js";
import { registerArchitecture, rejectUnsupported } from "./registry.js";
import type {
  ArchitectureSpec,
  EncoderForwardOptions,
  EncoderModel,
  EncoderOutput,
  ParameterSource,
} from "./types.js";

// ------------------------------------------------------------------------------------------ config

export interface BertConfig {
  modelType: "bert";
  /** `vocab_size` (30522). */
  vocabSize: number;
  /** `hidden_size` (768). */
  hiddenSize: number;
  /** `num_hidden_layers` (12). */
  numLayers: number;
  /** `num_attention_heads` (12). */
  numHeads: number;
  /** `intermediate_size` (3072). */
  intermediateSize: number;
  /** `hidden_act` ("gelu" = exact erf GELU). */
  activation: string;
  /** `hidden_dropout_prob` (0.1). */
  hiddenDropout: number;
  /** `attention_probs_dropout_prob` (0.1). */
  attentionDropout: number;
  /** Learned absolute positions (`max_position_embeddings`, 512). */
  maxPositions: number;
  /** Segment ids (`type_vocab_size`, 2). */
  typeVocabSize: number;
  /** `layer_norm_eps` (1e-12). */
  layerNormEps: number;
  /** `initializer_range` (0.02). */
  initializerRange: number;
  /** `pad_token_id` (0). */
  padTokenId: number | null;
  /** Classes of the sequence-classification head (from `id2label`; 2). */
  numLabels: number;
  /** `classifier_dropout` (null = hiddenDropout). */
  classifierDropout: number | null;
  /**
   * What the pooler reads (`classifier_pooling`, "cls"): the first token, as Hugging Face's
   * BertForSequenceClassification does, or "mean" over real tokens (as in ModernBERT's config). Transformers'
   * BERT ignores this key, so a "mean" classifier only reproduces its logits in Typeformer.
   */
  classifierPooling: "cls" | "mean";
  /** The MLM decoder shares the word embeddings (`tie_word_embeddings`, true). */
  tieWordEmbeddings: boolean;
  /** Which heads the model carries (not in config.json: read from the checkpoint's tensors). */
  withPooler: boolean;
  withMlmHead: boolean;
  withClassifier: boolean;
}

export const BERT_DEFAULTS: BertConfig = {
  modelType: "bert",
  vocabSize: 30522,
  hiddenSize: 768,
  numLayers: 12,
  numHeads: 12,
  intermediateSize: 3072,
  activation: "gelu",
  hiddenDropout: 0.1,
  attentionDropout: 0.1,
  maxPositions: 512,
  typeVocabSize: 2,
  layerNormEps: 1e-12,
  initializerRange: 0.02,
  padTokenId: 0,
  numLabels: 2,
  classifierDropout: null,
  classifierPooling: "cls",
  tieWordEmbeddings: true,
  withPooler: true,
  withMlmHead: true,
  withClassifier: true,
};

export const BERT_PRESETS: Record<string, Partial<BertConfig>> = {
  "bert-base": {},
  "bert-large": { hiddenSize: 1024, numLayers: 24, numHeads: 16, intermediateSize: 4096 },
  "bert-mini": { hiddenSize: 256, numLayers: 4, numHeads: 4, intermediateSize: 1024 },
  tiny: {
    vocabSize: 97,
    hiddenSize: 32,
    numLayers: 2,
    numHeads: 4,
    intermediateSize: 64,
    maxPositions: 40,
    numLabels: 3,
  },
};

// ----------------------------------------------------------------------------------- the model

/** Mean of (B, T, C) hidden states over the tokens the attention mask keeps (all when none) → (B, C). */
function meanOverTokens(x: tf.Tensor3D, attentionMask: tf.Tensor | undefined): tf.Tensor2D {
  const [B, T] = x.shape;
  const m = tf.reshape(tf.cast(attentionMask ?? tf.ones([B, T]), "float32"), [B, T, 1]); // (B, T, 1)
  return tf.div(tf.sum(tf.mul(x, m), 1), tf.maximum(tf.sum(m, 1), 1e-9)) as tf.Tensor2D; // (B, C)
}

type Ctx = { training: boolean; rng?: Random; attentions?: tf.Tensor4D[] };

export class BertModel extends BaseModel<BertConfig> implements EncoderModel<BertConfig> {
  readonly family = "encoder" as const;
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly maxPositions: number;
  private readonly decoder = new TransposedCache();

  constructor(config: BertConfig, values: ParameterSource) {
    super(BERT_SPEC, config, values);
    this.vocabSize = config.vocabSize;
    this.hiddenSize = config.hiddenSize;
    this.maxPositions = config.maxPositions;
  }

  private ln(x: tf.Tensor2D, name: string): tf.Tensor2D {
    return layerNorm(x, this.p(`${name}.weight`), this.p(`${name}.bias`), this.config.layerNormEps);
  }

  private dense(x: tf.Tensor2D, name: string): tf.Tensor2D {
    return linear(x, this.p(`${name}.weight`), this.p(`${name}.bias`));
  }

  /** word + position + token-type embeddings, LayerNorm, dropout → (B·T, C). */
  private embeddings(ids: tf.Tensor2D, tokenTypes: tf.Tensor2D, ctx: Ctx): tf.Tensor2D {
    const [B, T] = ids.shape;
    const e = "bert.embeddings.";
    const words = embed(this.p(`${e}word_embeddings.weight`), ids); // (B·T, C)
    const types = embed(this.p(`${e}token_type_embeddings.weight`), tokenTypes); // (B·T, C)
    const pos = tf.slice(this.p(`${e}position_embeddings.weight`), [0, 0], [T, -1]); // (T, C)
    const x = tf.add(tf.reshape(tf.add(words, types), [B, T, -1]), pos); // (B, T, C)
    const y = this.ln(tf.reshape(x, [B * T, -1]) as tf.Tensor2D, `${e}LayerNorm`); // (B·T, C)
    return dropout(y, this.config.hiddenDropout, ctx.training, ctx.rng);
  }

  /** Bidirectional self-attention over the non-padding keys. */
  private attention(
    x: tf.Tensor2D,
    i: number,
    B: number,
    T: number,
    mask: tf.Tensor2D | undefined,
    ctx: Ctx,
  ) {
    const { hiddenSize: C, numHeads: H } = this.config;
    const D = C / H;
    const a = `bert.encoder.layer.${i}.attention.self.`;
    const heads = (n: string) => splitHeads(this.dense(x, `${a}${n}`), B, T, H, D); // (B, H, T, D)
    const { output, weights } = attend(heads("query"), heads("key"), heads("value"), {
      keyMask: mask,
      dropout: ctx.training ? this.config.attentionDropout : 0,
      rng: ctx.rng,
      returnWeights: ctx.attentions !== undefined,
    });
    if (weights) ctx.attentions?.push(weights); // (B, H, T, T)
    return mergeHeads(output); // (B·T, C)
  }

  /** Post-LN block: x = LN(x + attn(x)); x = LN(x + FF(x)). */
  private layer(x: tf.Tensor2D, i: number, B: number, T: number, mask: tf.Tensor2D | undefined, ctx: Ctx) {
    const l = `bert.encoder.layer.${i}.`;
    const { hiddenDropout: p, training } = { ...this.config, training: ctx.training };
    const a = dropout(
      this.dense(this.attention(x, i, B, T, mask, ctx), `${l}attention.output.dense`),
      p,
      training,
      ctx.rng,
    );
    x = this.ln(tf.add(a, x) as tf.Tensor2D, `${l}attention.output.LayerNorm`);
    const h = activation(this.config.activation)(this.dense(x, `${l}intermediate.dense`)) as tf.Tensor2D; // (B·T, I)
    const o = dropout(this.dense(h, `${l}output.dense`), p, training, ctx.rng); // (B·T, C)
    return this.ln(tf.add(o, x) as tf.Tensor2D, `${l}output.LayerNorm`);
  }

  /** The encoder as (B·T, C); callers reshape. */
  private run(ids: tf.Tensor2D, opts: EncoderForwardOptions, ctx: Ctx): tf.Tensor2D {
    const [B, T] = checkIds(ids, opts, this.maxPositions);
    const types = opts.tokenTypeIds ?? tf.zeros([B, T], "int32");
    let x = this.embeddings(ids, types as tf.Tensor2D, ctx);
    for (let i = 0; i < this.config.numLayers; i++) x = this.layer(x, i, B, T, opts.attentionMask, ctx);
    return x;
  }

  encode(inputIds: tf.Tensor2D, opts: EncoderForwardOptions = {}): EncoderOutput {
    this.assertLive();
    const ctx: Ctx = { training: opts.training ?? false, rng: opts.rng };
    if (opts.outputAttentions) ctx.attentions = [];
    const hidden = tf.tidy(() => {
      const [B, T] = inputIds.shape;
      const x = this.run(inputIds, opts, ctx);
      for (const a of ctx.attentions ?? []) tf.keep(a);
      return tf.reshape(x, [B, T, this.hiddenSize]) as tf.Tensor3D; // (B, T, C)
    });
    return ctx.attentions ? { hidden, attentions: ctx.attentions } : { hidden };
  }

  /** Masked-LM head: dense → GELU → LayerNorm → tied decoder + bias → (B, T, V). */
  mlmLogits(inputIds: tf.Tensor2D, opts: EncoderForwardOptions = {}): tf.Tensor3D {
    this.assertLive();
    this.needHead("withMlmHead", "a masked-LM head (cls.predictions.*)");
    const ctx: Ctx = { training: opts.training ?? false, rng: opts.rng };
    return tf.tidy(() => {
      const [B, T] = inputIds.shape;
      const logits = this.mlmHead(this.run(inputIds, opts, ctx), ctx); // (B·T, V)
      return tf.reshape(logits, [B, T, this.vocabSize]) as tf.Tensor3D; // (B, T, V)
    });
  }

  /**
   * Masked-LM logits at selected positions only → (N, V): the encoder runs on all (B, T) tokens, then
   * the hidden states at the flat positions `b·T + t` are gathered before the head, so the head's
   * transform, the (C, V) decoder GEMM and the softmax cost N rows instead of B·T. Row i equals
   * `mlmLogits(inputIds, opts)` at position `positions[i]`.
   */
  mlmLogitsAt(
    inputIds: tf.Tensor2D,
    positions: ArrayLike<number> | tf.Tensor1D,
    opts: EncoderForwardOptions = {},
  ): tf.Tensor2D {
    this.assertLive();
    this.needHead("withMlmHead", "a masked-LM head (cls.predictions.*)");
    const [B, T] = inputIds.shape;
    const pos = positions instanceof tf.Tensor ? positions.dataSync() : positions;
    for (let i = 0; i < pos.length; i++) {
      const p = pos[i];
      if (!Number.isInteger(p) || p < 0 || p >= B * T) {
        throw new TypeformerError(
          "INVALID_ARGUMENT",
          `mlmLogitsAt positions are flat indices b·T + t in [0, ${B * T}); received ${p} at index ${i}`,
          { position: p, index: i, batch: B, length: T },
        );
      }
    }
    const ctx: Ctx = { training: opts.training ?? false, rng: opts.rng };
    return tf.tidy(() => {
      const x = this.run(inputIds, opts, ctx); // (B·T, C)
      const idx = tf.tensor1d(Int32Array.from(pos), "int32"); // (N)
      return this.mlmHead(tf.gather(x, idx) as tf.Tensor2D, ctx); // (N, V)
    });
  }

  /** dense → activation → LayerNorm → tied decoder + bias: (N, C) → (N, V). */
  private mlmHead(x: tf.Tensor2D, ctx: Ctx): tf.Tensor2D {
    const t = "cls.predictions.transform.";
    const h = this.ln(
      activation(this.config.activation)(this.dense(x, `${t}dense`)) as tf.Tensor2D,
      `${t}LayerNorm`,
    );
    const w = this.decoder.get(this.p("bert.embeddings.word_embeddings.weight"), ctx.training); // (C, V)
    return tf.add(tf.matMul(h, w), this.p("cls.predictions.bias")) as tf.Tensor2D; // (N, V)
  }

  /** Pooler (tanh dense on the first token, or on the token mean) + classifier → (B, numLabels). */
  classify(inputIds: tf.Tensor2D, opts: EncoderForwardOptions = {}): tf.Tensor2D {
    this.assertLive();
    this.needHead("withClassifier", "a classification head (bert.pooler.*, classifier.*)");
    const ctx: Ctx = { training: opts.training ?? false, rng: opts.rng };
    return tf.tidy(() => {
      const [B, T] = inputIds.shape;
      const x = tf.reshape(this.run(inputIds, opts, ctx), [B, T, -1]) as tf.Tensor3D; // (B, T, C)
      const read =
        this.config.classifierPooling === "mean"
          ? meanOverTokens(x, opts.attentionMask)
          : (tf.reshape(tf.slice(x, [0, 0, 0], [B, 1, -1]), [B, -1]) as tf.Tensor2D); // (B, C)
      const pooled = tf.tanh(this.dense(read, "bert.pooler.dense")) as tf.Tensor2D;
      const p = this.config.classifierDropout ?? this.config.hiddenDropout;
      return this.dense(dropout(pooled, p, ctx.training, ctx.rng), "classifier"); // (B, numLabels)
    });
  }

  /** Mean of the last hidden states over real tokens (optionally L2-normalised) → (B, C). */
  embed(inputIds: tf.Tensor2D, opts: EncoderForwardOptions & { normalize?: boolean } = {}): tf.Tensor2D {
    this.assertLive();
    const ctx: Ctx = { training: opts.training ?? false, rng: opts.rng };
    return tf.tidy(() => {
      const [B, T] = inputIds.shape;
      const x = tf.reshape(this.run(inputIds, opts, ctx), [B, T, -1]) as tf.Tensor3D; // (B, T, C)
      let mean = meanOverTokens(x, opts.attentionMask); // (B, C)
      if (opts.normalize) mean = tf.div(mean, tf.maximum(tf.norm(mean, 2, 1, true), 1e-12)) as tf.Tensor2D;
      return mean;
    });
  }

  private needHead(flag: "withMlmHead" | "withClassifier", what: string): void {
    if (!this.config[flag] || (flag === "withClassifier" && !this.config.withPooler)) {
      throw new TypeformerError(
        "INVALID_ARGUMENT",
        `this BERT model has no ${what}; its checkpoint did not include one`,
        {
          head: flag,
        },
      );
    }
  }

  protected override disposeCaches(): void {
    this.decoder.dispose();
  }
}

function checkIds(ids: tf.Tensor2D, opts: EncoderForwardOptions, maxPositions: number): [number, number] {
  if (!(ids instanceof tf.Tensor) || ids.rank !== 2) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `inputIds must be a (B, T) int32 tensor; received ${ids instanceof tf.Tensor ? `shape [${ids.shape}]` : typeof ids}`,
      {},
    );
  }
  const [B, T] = ids.shape;
  if (T > maxPositions) {
    throw new TypeformerError(
      "LIMIT_EXCEEDED",
      `sequence of ${T} tokens exceeds the model's ${maxPositions} positions`,
      {
        length: T,
        maxPositions,
      },
    );
  }
  for (const [name, t] of [
    ["attentionMask", opts.attentionMask],
    ["tokenTypeIds", opts.tokenTypeIds],
  ] as const) {
    if (t && (t.rank !== 2 || t.shape[0] !== B || t.shape[1] !== T)) {
      throw new TypeformerError(
        "INVALID_ARGUMENT",
        `${name} must be (${B}, ${T}) like inputIds; received shape [${t.shape}]`,
        {
          name,
          shape: t.shape,
        },
      );
    }
  }
  return [B, T];
}

// ------------------------------------------------------------------------------- registration

export const BERT_SPEC: ArchitectureSpec<BertConfig> = {
  modelType: "bert",
  family: "encoder",
  defaults: BERT_DEFAULTS,
  presets: BERT_PRESETS,
  fields: [
    { key: "vocabSize", hf: "vocab_size", type: "integer" },
    { key: "hiddenSize", hf: "hidden_size", type: "integer" },
    { key: "numLayers", hf: "num_hidden_layers", type: "integer" },
    { key: "numHeads", hf: "num_attention_heads", type: "integer" },
    { key: "intermediateSize", hf: "intermediate_size", type: "integer" },
    { key: "activation", hf: "hidden_act", type: "string" },
    { key: "hiddenDropout", hf: "hidden_dropout_prob", type: "number" },
    { key: "attentionDropout", hf: "attention_probs_dropout_prob", type: "number" },
    { key: "maxPositions", hf: "max_position_embeddings", type: "integer" },
    { key: "typeVocabSize", hf: "type_vocab_size", type: "integer" },
    { key: "layerNormEps", hf: "layer_norm_eps", type: "number" },
    { key: "initializerRange", hf: "initializer_range", type: "number" },
    { key: "padTokenId", hf: "pad_token_id", type: "integer|null" },
    { key: "numLabels", hf: null, type: "integer" },
    { key: "classifierDropout", hf: "classifier_dropout", type: "number|null" },
    { key: "classifierPooling", hf: "classifier_pooling", type: "string" },
    { key: "tieWordEmbeddings", hf: "tie_word_embeddings", type: "boolean" },
    { key: "withPooler", hf: null, type: "boolean" },
    { key: "withMlmHead", hf: null, type: "boolean" },
    { key: "withClassifier", hf: null, type: "boolean" },
  ],
  readHF(json, c) {
    rejectUnsupported(json, "position_embedding_type", ["absolute"], "bert");
    rejectUnsupported(json, "is_decoder", [false], "bert");
    rejectUnsupported(json, "classifier_pooling", ["cls", "mean"], "bert");
    const labels = json.id2label;
    if (labels !== undefined && (typeof labels !== "object" || labels === null || Array.isArray(labels))) {
      throw new TypeformerError(
        "INVALID_CONFIG",
        `config field id2label must be an object; received ${JSON.stringify(labels)}`,
        {
          field: "id2label",
          value: labels,
        },
      );
    }
    const n = labels
      ? Object.keys(labels).length
      : typeof json.num_labels === "number"
        ? json.num_labels
        : c.numLabels;
    return { ...c, numLabels: n };
  },
  hfExtras: (c) => ({
    architectures: [
      c.withMlmHead ? "BertForMaskedLM" : c.withClassifier ? "BertForSequenceClassification" : "BertModel",
    ],
    id2label: Object.fromEntries(Array.from({ length: c.numLabels }, (_, i) => [String(i), `LABEL_${i}`])),
    label2id: Object.fromEntries(Array.from({ length: c.numLabels }, (_, i) => [`LABEL_${i}`, i])),
    position_embedding_type: "absolute",
    use_cache: true,
  }),
  validate(c) {
    if (c.hiddenSize % c.numHeads !== 0) {
      throw new TypeformerError(
        "INVALID_CONFIG",
        `hidden_size (${c.hiddenSize}) must be divisible by num_attention_heads (${c.numHeads})`,
        { hiddenSize: c.hiddenSize, numHeads: c.numHeads },
      );
    }
    activation(c.activation);
  },
  parameterShapes(c) {
    const { hiddenSize: C, intermediateSize: I } = c;
    const m = new Map<string, number[]>();
    const e = "bert.embeddings.";
    m.set(`${e}word_embeddings.weight`, [c.vocabSize, C]);
    m.set(`${e}position_embeddings.weight`, [c.maxPositions, C]);
    m.set(`${e}token_type_embeddings.weight`, [c.typeVocabSize, C]);
    const ln = (n: string) => m.set(`${n}.weight`, [C]).set(`${n}.bias`, [C]);
    const lin = (n: string, i: number, o: number) => m.set(`${n}.weight`, [i, o]).set(`${n}.bias`, [o]); // (in, out)
    ln(`${e}LayerNorm`);
    for (let i = 0; i < c.numLayers; i++) {
      const l = `bert.encoder.layer.${i}.`;
      for (const n of ["query", "key", "value"]) lin(`${l}attention.self.${n}`, C, C);
      lin(`${l}attention.output.dense`, C, C);
      ln(`${l}attention.output.LayerNorm`);
      lin(`${l}intermediate.dense`, C, I);
      lin(`${l}output.dense`, I, C);
      ln(`${l}output.LayerNorm`);
    }
    if (c.withPooler) lin("bert.pooler.dense", C, C);
    if (c.withMlmHead) {
      lin("cls.predictions.transform.dense", C, C);
      ln("cls.predictions.transform.LayerNorm");
      m.set("cls.predictions.bias", [c.vocabSize]);
    }
    if (c.withClassifier) lin("classifier", C, c.numLabels);
    return m;
  },
  hfTranspose: (name) => name.endsWith(".weight") && !/embeddings\.|LayerNorm\./.test(name),
  mapCheckpointName(name) {
    let n = name.replace(/\.gamma$/, ".weight").replace(/\.beta$/, ".bias"); // TF-era names
    if (/^(embeddings|encoder|pooler)\./.test(n)) n = `bert.${n}`; // a bare BertModel checkpoint
    if (n === "bert.embeddings.position_ids") return null; // stored buffer
    if (/^cls\.predictions\.decoder\.(weight|bias)$/.test(n)) return null; // tied to word embeddings / cls.predictions.bias
    if (n.startsWith("cls.seq_relationship.")) return null; // next-sentence head of BertForPreTraining
    return /^(bert\.(embeddings|encoder|pooler)\.|cls\.predictions\.|classifier\.)/.test(n) ? n : undefined;
  },
  adaptToCheckpoint(c, names) {
    return {
      ...c,
      withPooler: names.has("bert.pooler.dense.weight"),
      withMlmHead: names.has("cls.predictions.transform.dense.weight") || names.has("cls.predictions.bias"),
      withClassifier: names.has("classifier.weight"),
    };
  },
  create: (config, values) => new BertModel(config, values),
  init(name, shape, c, rng) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (/LayerNorm\.weight$/.test(name)) return new Float32Array(n).fill(1);
    if (name.endsWith(".bias")) return new Float32Array(n);
    return rng.normalArray(n, 0, c.initializerRange);
  },
  attentionFlopsPerToken: (c, T) => 4 * c.numLayers * c.hiddenSize * T,
};

registerArchitecture(BERT_SPEC);
