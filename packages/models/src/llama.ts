/**
 * Llama (Touvron et al. 2023), top-down: config → attention (RoPE, grouped-query) → SwiGLU MLP →
 * block → model. Weight names are Hugging Face's `LlamaForCausalLM`; nn.Linear weights are kept
 * transposed to (in, out) so every projection is a plain 2-D x·W.
 */
import { applyRotary, embedInference } from "@typeformer/attention";
import { type Random, TypeformerError, tf } from "@typeformer/core";
import { attend } from "./attend.js";
import { BaseModel } from "./base.js";
import { createKVCache, decoderInputs, inPlaceCache } from "./decoder.js";
import { activation, embed, linear, mergeHeads, rmsNorm, splitHeads, TransposedCache } from "./layers.js";
import { registerArchitecture, rejectUnsupported } from "./registry.js";
import type {
  ArchitectureSpec,
  CausalLM,
  CausalLMForwardOptions,
  CausalLMOutput,
  KVCacheLike,
  ParameterSource,
} from "./types.js";

// ------------------------------------------------------------------------------------------ config

export interface LlamaConfig {
  modelType: "llama";
  /** `vocab_size` (32000). */
  vocabSize: number;
  /** Residual width (`hidden_size`, 4096). */
  hiddenSize: number;
  /** SwiGLU width (`intermediate_size`, 11008). */
  intermediateSize: number;
  /** `num_hidden_layers` (32). */
  numLayers: number;
  /** Query heads (`num_attention_heads`, 32). */
  numHeads: number;
  /** Key/value heads (`num_key_value_heads`); null = numHeads (no grouping). */
  numKvHeads: number | null;
  /** Head size (`head_dim`); null = hiddenSize / numHeads. */
  headDim: number | null;
  /** Gate activation (`hidden_act`, "silu"). */
  activation: string;
  /** RoPE context (`max_position_embeddings`, 2048). */
  maxPositions: number;
  /** RoPE base (`rope_theta`, 10000). */
  ropeTheta: number;
  /** RMSNorm epsilon (`rms_norm_eps`, 1e-6). */
  rmsNormEps: number;
  /** Std of the normal initialiser (`initializer_range`, 0.02). */
  initializerRange: number;
  /** Biases on q/k/v/o (`attention_bias`, false) and on the MLP (`mlp_bias`, false). */
  attentionBias: boolean;
  mlpBias: boolean;
  /** Dropout on attention probabilities (`attention_dropout`, 0). */
  attentionDropout: number;
  /** LM head shares the token embedding (`tie_word_embeddings`, false). */
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenId: number | null;
  padTokenId: number | null;
}

export const LLAMA_DEFAULTS: LlamaConfig = {
  modelType: "llama",
  vocabSize: 32000,
  hiddenSize: 4096,
  intermediateSize: 11008,
  numLayers: 32,
  numHeads: 32,
  numKvHeads: null,
  headDim: null,
  activation: "silu",
  maxPositions: 2048,
  ropeTheta: 10000,
  rmsNormEps: 1e-6,
  initializerRange: 0.02,
  attentionBias: false,
  mlpBias: false,
  attentionDropout: 0,
  tieWordEmbeddings: false,
  bosTokenId: 1,
  eosTokenId: 2,
  padTokenId: null,
};

export const LLAMA_PRESETS: Record<string, Partial<LlamaConfig>> = {
  "llama-2-7b": { maxPositions: 4096 },
  "tinyllama-1.1b": {
    hiddenSize: 2048,
    intermediateSize: 5632,
    numLayers: 22,
    numHeads: 32,
    numKvHeads: 4,
    rmsNormEps: 1e-5,
  },
  small: {
    hiddenSize: 512,
    intermediateSize: 1376,
    numLayers: 8,
    numHeads: 8,
    numKvHeads: 4,
    maxPositions: 1024,
  },
  tiny: {
    vocabSize: 97,
    hiddenSize: 32,
    intermediateSize: 64,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    maxPositions: 64,
  },
};

// ----------------------------------------------------------------------------------- the model

type Ctx = { training: boolean; rng?: Random };

interface Step {
  cache?: KVCacheLike;
  newMask?: tf.Tensor2D;
  keyMask?: tf.Tensor2D;
  /** (B, T) positions, or 0 when they are 0..T-1 in every row (applyRotary's offset form). */
  positions: tf.Tensor2D | number;
  attentions?: tf.Tensor4D[];
}

export class LlamaModel extends BaseModel<LlamaConfig> implements CausalLM<LlamaConfig> {
  readonly family = "decoder" as const;
  readonly vocabSize: number;
  readonly maxPositions: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  private readonly head = new TransposedCache();

  constructor(config: LlamaConfig, values: ParameterSource) {
    super(LLAMA_SPEC, config, values);
    this.vocabSize = config.vocabSize;
    this.maxPositions = config.maxPositions;
    this.numLayers = config.numLayers;
    this.numHeads = config.numHeads;
    this.numKvHeads = config.numKvHeads ?? config.numHeads;
    this.headDim = headDim(config);
  }

  private bias(name: string): tf.Variable | undefined {
    return this.params.get(name);
  }

  /** Self-attention with rotary positions on q and k and grouped key/value heads. */
  private attention(x: tf.Tensor2D, i: number, B: number, T: number, s: Step, ctx: Ctx): tf.Tensor2D {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this;
    const a = `model.layers.${i}.self_attn.`;
    const proj = (n: string) => linear(x, this.p(`${a}${n}.weight`), this.bias(`${a}${n}.bias`));
    const rope = { positions: s.positions, theta: this.config.ropeTheta, layout: "half" as const };
    const q = applyRotary(splitHeads(proj("q_proj"), B, T, H, D), rope); // (B, H, T, D)
    let k = applyRotary(splitHeads(proj("k_proj"), B, T, Hkv, D), rope); // (B, Hkv, T, D)
    const fused = s.cache && !ctx.training && !s.attentions ? inPlaceCache(s.cache) : undefined;
    if (fused) {
      // decode fast path: one wasm call appends K/V in place and attends for all heads (GQA)
      const rows = (t: tf.Tensor4D) =>
        T === 1 ? (tf.reshape(t, [B, t.shape[1] * D]) as tf.Tensor2D) : mergeHeads(t); // (B·T, heads·D)
      const y = fused.attendInPlace(i, rows(q), rows(k), proj("v_proj"), { numHeads: H, mask: s.newMask });
      return linear(y, this.p(`${a}o_proj.weight`), this.bias(`${a}o_proj.bias`)); // (B·T, C)
    }
    let v = splitHeads(proj("v_proj"), B, T, Hkv, D); // (B, Hkv, T, D)
    if (s.cache) {
      ({ k, v } = s.cache.update(i, k, v, s.newMask)); // (B, Hkv, Tk, D)
      if (i === 0) s.keyMask = s.cache.keyMask(); // (B, Tk)
    }
    const { output, weights } = attend(q, k, v, {
      causal: true,
      keyMask: s.keyMask,
      dropout: ctx.training ? this.config.attentionDropout : 0,
      rng: ctx.rng,
      returnWeights: s.attentions !== undefined,
    });
    if (weights) s.attentions?.push(weights); // (B, H, T, Tk)
    return linear(mergeHeads(output), this.p(`${a}o_proj.weight`), this.bias(`${a}o_proj.bias`)); // (B·T, C)
  }

  /** SwiGLU: down(silu(gate(x)) · up(x)). */
  private mlp(x: tf.Tensor2D, i: number): tf.Tensor2D {
    const m = `model.layers.${i}.mlp.`;
    const act = activation(this.config.activation);
    const proj = (n: string, t: tf.Tensor2D) =>
      linear(t, this.p(`${m}${n}.weight`), this.bias(`${m}${n}.bias`));
    const h = tf.mul(act(proj("gate_proj", x)), proj("up_proj", x)) as tf.Tensor2D; // (B·T, I)
    return proj("down_proj", h); // (B·T, C)
  }

  /** Pre-norm block with RMSNorm. */
  private block(x: tf.Tensor2D, i: number, B: number, T: number, s: Step, ctx: Ctx): tf.Tensor2D {
    const eps = this.config.rmsNormEps;
    const l = `model.layers.${i}.`;
    x = tf.add(x, this.attention(rmsNorm(x, this.p(`${l}input_layernorm.weight`), eps), i, B, T, s, ctx));
    return tf.add(x, this.mlp(rmsNorm(x, this.p(`${l}post_attention_layernorm.weight`), eps), i));
  }

  forward(inputIds: tf.Tensor2D, opts: CausalLMForwardOptions = {}): CausalLMOutput {
    this.assertLive();
    const ctx: Ctx = { training: opts.training ?? false, rng: opts.rng };
    const attentions: tf.Tensor4D[] | undefined = opts.outputAttentions ? [] : undefined;
    const logits = tf.tidy(() => {
      const { B, T, positions, keyMask, cache, newMask } = decoderInputs(inputIds, opts, this.maxPositions);
      const s: Step = { cache, keyMask, newMask, positions: positions ?? 0, attentions };
      const table = this.p("model.embed_tokens.weight");
      let x = (ctx.training ? null : embedInference(table, inputIds)) ?? embed(table, inputIds); // (B·T, C)
      for (let i = 0; i < this.numLayers; i++) x = this.block(x, i, B, T, s, ctx);
      x = rmsNorm(x, this.p("model.norm.weight"), this.config.rmsNormEps);
      const w = this.config.tieWordEmbeddings
        ? this.head.get(this.p("model.embed_tokens.weight"), ctx.training)
        : this.p("lm_head.weight"); // (C, V)
      const logits = tf.matMul(x, w); // (B·T, V)
      for (const a of attentions ?? []) tf.keep(a);
      return tf.reshape(logits, [B, T, this.vocabSize]) as tf.Tensor3D; // (B, T, V)
    });
    return attentions ? { logits, attentions } : { logits };
  }

  createCache(batch: number, maxLength: number): KVCacheLike {
    return createKVCache(this, batch, maxLength);
  }

  protected override disposeCaches(): void {
    this.head.dispose();
  }
}

// ------------------------------------------------------------------------------- registration

function headDim(c: LlamaConfig): number {
  return c.headDim ?? c.hiddenSize / c.numHeads;
}

export const LLAMA_SPEC: ArchitectureSpec<LlamaConfig> = {
  modelType: "llama",
  family: "decoder",
  defaults: LLAMA_DEFAULTS,
  presets: LLAMA_PRESETS,
  fields: [
    { key: "vocabSize", hf: "vocab_size", type: "integer" },
    { key: "hiddenSize", hf: "hidden_size", type: "integer" },
    { key: "intermediateSize", hf: "intermediate_size", type: "integer" },
    { key: "numLayers", hf: "num_hidden_layers", type: "integer" },
    { key: "numHeads", hf: "num_attention_heads", type: "integer" },
    { key: "numKvHeads", hf: "num_key_value_heads", type: "integer|null" },
    { key: "headDim", hf: "head_dim", type: "integer|null" },
    { key: "activation", hf: "hidden_act", type: "string" },
    { key: "maxPositions", hf: "max_position_embeddings", type: "integer" },
    { key: "ropeTheta", hf: "rope_theta", type: "number" },
    { key: "rmsNormEps", hf: "rms_norm_eps", type: "number" },
    { key: "initializerRange", hf: "initializer_range", type: "number" },
    { key: "attentionBias", hf: "attention_bias", type: "boolean" },
    { key: "mlpBias", hf: "mlp_bias", type: "boolean" },
    { key: "attentionDropout", hf: "attention_dropout", type: "number" },
    { key: "tieWordEmbeddings", hf: "tie_word_embeddings", type: "boolean" },
    { key: "bosTokenId", hf: "bos_token_id", type: "integer|null" },
    { key: "eosTokenId", hf: "eos_token_id", type: "integer|null" },
    { key: "padTokenId", hf: "pad_token_id", type: "integer|null" },
  ],
  readHF(json, c) {
    rejectUnsupported(json, "rope_scaling", [null], "llama");
    rejectUnsupported(json, "pretraining_tp", [1], "llama");
    return c;
  },
  hfExtras: (c) => ({
    architectures: ["LlamaForCausalLM"],
    num_key_value_heads: c.numKvHeads ?? c.numHeads,
    head_dim: headDim(c),
    pretraining_tp: 1,
    rope_scaling: null,
    use_cache: true,
  }),
  validate(c) {
    const kv = c.numKvHeads ?? c.numHeads;
    if (c.headDim === null && c.hiddenSize % c.numHeads !== 0) {
      throw new TypeformerError(
        "INVALID_CONFIG",
        `hidden_size (${c.hiddenSize}) must be divisible by num_attention_heads (${c.numHeads})`,
        { hiddenSize: c.hiddenSize, numHeads: c.numHeads },
      );
    }
    if (c.numHeads % kv !== 0) {
      throw new TypeformerError(
        "INVALID_CONFIG",
        `num_attention_heads (${c.numHeads}) must be a multiple of num_key_value_heads (${kv})`,
        { numHeads: c.numHeads, numKvHeads: kv },
      );
    }
    if (headDim(c) % 2 !== 0) {
      throw new TypeformerError("INVALID_CONFIG", `RoPE needs an even head size; received ${headDim(c)}`, {
        headDim: headDim(c),
      });
    }
    activation(c.activation);
  },
  parameterShapes(c) {
    const C = c.hiddenSize;
    const D = headDim(c);
    const H = c.numHeads;
    const Hkv = c.numKvHeads ?? H;
    const I = c.intermediateSize;
    const m = new Map<string, number[]>([["model.embed_tokens.weight", [c.vocabSize, C]]]);
    const lin = (name: string, inDim: number, outDim: number, bias: boolean) => {
      m.set(`${name}.weight`, [inDim, outDim]); // (in, out): HF's (out, in) transposed
      if (bias) m.set(`${name}.bias`, [outDim]);
    };
    for (let i = 0; i < c.numLayers; i++) {
      const l = `model.layers.${i}.`;
      m.set(`${l}input_layernorm.weight`, [C]);
      lin(`${l}self_attn.q_proj`, C, H * D, c.attentionBias);
      lin(`${l}self_attn.k_proj`, C, Hkv * D, c.attentionBias);
      lin(`${l}self_attn.v_proj`, C, Hkv * D, c.attentionBias);
      lin(`${l}self_attn.o_proj`, H * D, C, c.attentionBias);
      m.set(`${l}post_attention_layernorm.weight`, [C]);
      lin(`${l}mlp.gate_proj`, C, I, c.mlpBias);
      lin(`${l}mlp.up_proj`, C, I, c.mlpBias);
      lin(`${l}mlp.down_proj`, I, C, c.mlpBias);
    }
    m.set("model.norm.weight", [C]);
    if (!c.tieWordEmbeddings) m.set("lm_head.weight", [C, c.vocabSize]);
    return m;
  },
  hfTranspose: (name) => /_proj\.weight$|^lm_head\.weight$/.test(name),
  mapCheckpointName(name, c) {
    if (name === "lm_head.weight") return c.tieWordEmbeddings ? null : name;
    if (/\.rotary_emb\.inv_freq$/.test(name)) return null; // stored RoPE buffer of older checkpoints
    if (name.startsWith("model.")) return name;
    // a bare LlamaModel checkpoint (no "model." prefix)
    return /^(embed_tokens|layers|norm)\./.test(name) ? `model.${name}` : undefined;
  },
  create: (config, values) => new LlamaModel(config, values),
  init(name, shape, c, rng) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (/(layernorm|norm)\.weight$/.test(name)) return new Float32Array(n).fill(1);
    if (name.endsWith(".bias")) return new Float32Array(n);
    return rng.normalArray(n, 0, c.initializerRange);
  },
  attentionFlopsPerToken: (c, T) => 4 * c.numLayers * c.numHeads * headDim(c) * T,
};

registerArchitecture(LLAMA_SPEC);
