/**
 * GPT-2 (Radford et al. 2019), reading top-down like nanoGPT's model.py: config → attention → MLP →
 * block → model. Weight names and layouts are Hugging Face's `GPT2LMHeadModel` (Conv1D weights are
 * stored (in, out), so every projection is a plain x·W + b).
 */
import { embedInference } from "@typeformer/attention";
import { type Random, TypeformerError, tf } from "@typeformer/core";
import { attend } from "./attend.js";
import { BaseModel } from "./base.js";
import { createKVCache, decoderInputs, inPlaceCache } from "./decoder.js";
import {
  activation,
  dropout,
  embed,
  geluTanh,
  hasLinearHook,
  layerNorm,
  linear,
  linearAdd,
  linearAddNorm,
  linearGelu,
  mergeHeads,
  splitHeads,
  TransposedCache,
} from "./layers.js";
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

export interface GPT2Config {
  modelType: "gpt2";
  /** Tokens in the vocabulary (HF `vocab_size`, 50257). */
  vocabSize: number;
  /** Longest context: rows of the learned position table (`n_positions`, 1024). */
  maxPositions: number;
  /** Residual stream width (`n_embd`, 768). */
  hiddenSize: number;
  /** Transformer blocks (`n_layer`, 12). */
  numLayers: number;
  /** Attention heads (`n_head`, 12); head size = hiddenSize / numHeads. */
  numHeads: number;
  /** MLP width (`n_inner`); null = 4 · hiddenSize. */
  intermediateSize: number | null;
  /** MLP activation (`activation_function`, "gelu_new" = GELU with the tanh approximation). */
  activation: string;
  /** Dropout on the residual branches (`resid_pdrop`, 0.1). */
  residDropout: number;
  /** Dropout on the embeddings (`embd_pdrop`, 0.1). */
  embdDropout: number;
  /** Dropout on the attention probabilities (`attn_pdrop`, 0.1). */
  attnDropout: number;
  /** LayerNorm epsilon (`layer_norm_epsilon`, 1e-5). */
  layerNormEpsilon: number;
  /** Std of the normal initialiser (`initializer_range`, 0.02). */
  initializerRange: number;
  /** `bos_token_id` / `eos_token_id` (50256 = <|endoftext|>). */
  bosTokenId: number | null;
  eosTokenId: number | null;
  /** GPT-2's LM head is always the token embedding (`tie_word_embeddings`, true). */
  tieWordEmbeddings: boolean;
}

export const GPT2_DEFAULTS: GPT2Config = {
  modelType: "gpt2",
  vocabSize: 50257,
  maxPositions: 1024,
  hiddenSize: 768,
  numLayers: 12,
  numHeads: 12,
  intermediateSize: null,
  activation: "gelu_new",
  residDropout: 0.1,
  embdDropout: 0.1,
  attnDropout: 0.1,
  layerNormEpsilon: 1e-5,
  initializerRange: 0.02,
  bosTokenId: 50256,
  eosTokenId: 50256,
  tieWordEmbeddings: true,
};

/** Sizes as data: the four released GPT-2s, nanoGPT's CPU config, and tiny ones for tests. */
export const GPT2_PRESETS: Record<string, Partial<GPT2Config>> = {
  gpt2: {}, // 124M
  "gpt2-medium": { hiddenSize: 1024, numLayers: 24, numHeads: 16 }, // 350M
  "gpt2-large": { hiddenSize: 1280, numLayers: 36, numHeads: 20 }, // 774M
  "gpt2-xl": { hiddenSize: 1600, numLayers: 48, numHeads: 25 }, // 1558M
  "nanogpt-cpu": {
    maxPositions: 64,
    hiddenSize: 128,
    numLayers: 4,
    numHeads: 4,
    residDropout: 0,
    embdDropout: 0,
    attnDropout: 0,
  },
  tiny: { vocabSize: 97, maxPositions: 32, hiddenSize: 32, numLayers: 2, numHeads: 4 },
  micro: { vocabSize: 16, maxPositions: 8, hiddenSize: 8, numLayers: 1, numHeads: 2 },
};

// ----------------------------------------------------------------------------------- the model

type Ctx = { training: boolean; rng?: Random };

export class GPT2Model extends BaseModel<GPT2Config> implements CausalLM<GPT2Config> {
  readonly family = "decoder" as const;
  readonly vocabSize: number;
  readonly maxPositions: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  private readonly head = new TransposedCache();

  constructor(config: GPT2Config, values: ParameterSource) {
    super(GPT2_SPEC, config, values);
    this.vocabSize = config.vocabSize;
    this.maxPositions = config.maxPositions;
    this.numLayers = config.numLayers;
    this.numHeads = config.numHeads;
    this.numKvHeads = config.numHeads;
    this.headDim = config.hiddenSize / config.numHeads;
  }

  /** Causal self-attention: one fused QKV projection, heads, attention → (B·T, C) before c_proj. */
  private attention(x: tf.Tensor2D, i: number, B: number, T: number, s: Step, ctx: Ctx): tf.Tensor2D {
    const { hiddenSize: C, numHeads: H } = this.config;
    const D = C / H;
    const h = `h.${i}.attn.`;
    const fused = s.cache && !ctx.training && !s.attentions ? inPlaceCache(s.cache) : undefined;
    const wqkv = this.p(`${h}c_attn.weight`);
    if (fused?.projectAttendInPlace && !hasLinearHook(wqkv)) {
      // QKV projection, in-place K/V append and attention for all heads: one wasm call
      return fused.projectAttendInPlace(i, x, wqkv as tf.Tensor2D, this.p(`${h}c_attn.bias`) as tf.Tensor1D, {
        numHeads: H,
        qOffset: 0,
        kOffset: C,
        vOffset: 2 * C,
        mask: s.newMask,
      });
    }
    const qkv = linear(x, wqkv, this.p(`${h}c_attn.bias`)); // (B·T, 3C)
    if (fused) {
      // decode fast path: one wasm call appends K/V in place and attends for all heads, reading the
      // heads straight out of the fused QKV rows (no split / head transposes / concat of the cache)
      return fused.attendInPlace(i, qkv, qkv, qkv, {
        numHeads: H,
        qOffset: 0,
        kOffset: C,
        vOffset: 2 * C,
        mask: s.newMask,
      });
    }
    const [q, k, v] = tf.split(qkv, 3, 1) as tf.Tensor2D[]; // 3 × (B·T, C)
    let keys = splitHeads(k, B, T, H, D); // (B, H, T, D)
    let values = splitHeads(v, B, T, H, D); // (B, H, T, D)
    if (s.cache) {
      ({ k: keys, v: values } = s.cache.update(i, keys, values, s.newMask)); // (B, H, Tk, D)
      if (i === 0) s.keyMask = s.cache.keyMask(); // (B, Tk), valid once the first layer appended
    }
    const { output, weights } = attend(splitHeads(q, B, T, H, D), keys, values, {
      causal: true,
      keyMask: s.keyMask,
      dropout: ctx.training ? this.config.attnDropout : 0,
      rng: ctx.rng,
      returnWeights: s.attentions !== undefined,
    });
    if (weights) s.attentions?.push(weights); // (B, H, T, Tk)
    return mergeHeads(output); // (B·T, C)
  }

  /** residual + dropout(x·W + b); without training one fused call where the kernels allow. */
  private residualProjection(residual: tf.Tensor2D, x: tf.Tensor2D, name: string, ctx: Ctx): tf.Tensor2D {
    const w = this.p(`${name}.weight`);
    const b = this.p(`${name}.bias`);
    if (!ctx.training) return linearAdd(residual, x, w, b);
    return tf.add(residual, dropout(linear(x, w, b), this.config.residDropout, true, ctx.rng)) as tf.Tensor2D;
  }

  /** Position-wise MLP's first half: C → 4C with the activation (c_proj is the residual projection). */
  private mlpHidden(x: tf.Tensor2D, i: number, ctx: Ctx): tf.Tensor2D {
    const h = `h.${i}.mlp.`;
    const act = activation(this.config.activation);
    const w = this.p(`${h}c_fc.weight`);
    const b = this.p(`${h}c_fc.bias`);
    if (!ctx.training && act === geluTanh) return linearGelu(x, w, b);
    return act(linear(x, w, b)) as tf.Tensor2D; // (B·T, 4C)
  }

  /**
   * Every block and ln_f without training: each residual projection also emits the next LayerNorm
   * (ln_2, the next block's ln_1, ln_f) — one fused call on wasm. Same function as block() + ln_f.
   */
  private inferenceBlocks(x: tf.Tensor2D, B: number, T: number, s: Step, ctx: Ctx): tf.Tensor2D {
    const eps = this.config.layerNormEpsilon;
    const L = this.config.numLayers;
    const ln = (name: string) => [this.p(`${name}.weight`), this.p(`${name}.bias`)] as const;
    let h = layerNorm(x, ...ln("h.0.ln_1"), eps);
    for (let i = 0; i < L; i++) {
      const p = `h.${i}.`;
      const a = this.attention(h, i, B, T, s, ctx);
      const proj = (name: string) => [this.p(`${p}${name}.weight`), this.p(`${p}${name}.bias`)] as const;
      [x, h] = linearAddNorm(x, a, ...proj("attn.c_proj"), ...ln(`${p}ln_2`), eps);
      const u = this.mlpHidden(h, i, ctx);
      [x, h] = linearAddNorm(x, u, ...proj("mlp.c_proj"), ...ln(i + 1 < L ? `h.${i + 1}.ln_1` : "ln_f"), eps);
    }
    return h;
  }

  /** Pre-LN block: x + attn(ln_1(x)), then x + mlp(ln_2(x)). */
  private block(x: tf.Tensor2D, i: number, B: number, T: number, s: Step, ctx: Ctx): tf.Tensor2D {
    const eps = this.config.layerNormEpsilon;
    const h = `h.${i}.`;
    const a = this.attention(
      layerNorm(x, this.p(`${h}ln_1.weight`), this.p(`${h}ln_1.bias`), eps),
      i,
      B,
      T,
      s,
      ctx,
    );
    x = this.residualProjection(x, a, `${h}attn.c_proj`, ctx);
    const u = this.mlpHidden(layerNorm(x, this.p(`${h}ln_2.weight`), this.p(`${h}ln_2.bias`), eps), i, ctx);
    return this.residualProjection(x, u, `${h}mlp.c_proj`, ctx);
  }

  forward(inputIds: tf.Tensor2D, opts: CausalLMForwardOptions = {}): CausalLMOutput {
    this.assertLive();
    const ctx: Ctx = { training: opts.training ?? false, rng: opts.rng };
    const attentions: tf.Tensor4D[] | undefined = opts.outputAttentions ? [] : undefined;
    const logits = tf.tidy(() => {
      const { B, T, positions, keyMask, cache, newMask } = decoderInputs(inputIds, opts, this.maxPositions);
      const s: Step = { cache, keyMask, newMask, attentions };
      const wpe = this.p("wpe.weight");
      // inference: one fused lookup of token + position rows (null where it cannot run)
      const fusedEmbed = ctx.training
        ? null
        : embedInference(this.p("wte.weight"), inputIds, { table: wpe, positions });
      let x: tf.Tensor2D;
      if (fusedEmbed) x = fusedEmbed;
      else {
        const tok = embed(this.p("wte.weight"), inputIds); // (B·T, C)
        const pos = positions
          ? embed(wpe, positions) // (B·T, C)
          : tf.tile(tf.slice(wpe, [0, 0], [T, -1]), [B, 1]); // rows 0..T-1 per sequence
        x = dropout(tf.add(tok, pos) as tf.Tensor2D, this.config.embdDropout, ctx.training, ctx.rng);
      }
      if (ctx.training) {
        for (let i = 0; i < this.config.numLayers; i++) x = this.block(x, i, B, T, s, ctx);
        x = layerNorm(x, this.p("ln_f.weight"), this.p("ln_f.bias"), this.config.layerNormEpsilon);
      } else x = this.inferenceBlocks(x, B, T, s, ctx);
      const logits = tf.matMul(x, this.head.get(this.p("wte.weight"), ctx.training)); // (B·T, V), tied head
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

interface Step {
  cache?: KVCacheLike;
  newMask?: tf.Tensor2D;
  keyMask?: tf.Tensor2D;
  attentions?: tf.Tensor4D[];
}

// ------------------------------------------------------------------------------- registration

function intermediate(c: GPT2Config): number {
  return c.intermediateSize ?? 4 * c.hiddenSize;
}

export const GPT2_SPEC: ArchitectureSpec<GPT2Config> = {
  modelType: "gpt2",
  family: "decoder",
  defaults: GPT2_DEFAULTS,
  presets: GPT2_PRESETS,
  fields: [
    { key: "vocabSize", hf: "vocab_size", type: "integer" },
    { key: "maxPositions", hf: ["n_positions", "n_ctx"], type: "integer" },
    { key: "hiddenSize", hf: "n_embd", type: "integer" },
    { key: "numLayers", hf: "n_layer", type: "integer" },
    { key: "numHeads", hf: "n_head", type: "integer" },
    { key: "intermediateSize", hf: "n_inner", type: "integer|null" },
    { key: "activation", hf: "activation_function", type: "string" },
    { key: "residDropout", hf: "resid_pdrop", type: "number" },
    { key: "embdDropout", hf: "embd_pdrop", type: "number" },
    { key: "attnDropout", hf: "attn_pdrop", type: "number" },
    { key: "layerNormEpsilon", hf: "layer_norm_epsilon", type: "number" },
    { key: "initializerRange", hf: "initializer_range", type: "number" },
    { key: "bosTokenId", hf: "bos_token_id", type: "integer|null" },
    { key: "eosTokenId", hf: "eos_token_id", type: "integer|null" },
    { key: "tieWordEmbeddings", hf: "tie_word_embeddings", type: "boolean" },
  ],
  readHF(json, c) {
    rejectUnsupported(json, "scale_attn_weights", [true], "gpt2");
    rejectUnsupported(json, "scale_attn_by_inverse_layer_idx", [false], "gpt2");
    rejectUnsupported(json, "reorder_and_upcast_attn", [false], "gpt2");
    return c;
  },
  hfExtras: (c) => ({
    architectures: ["GPT2LMHeadModel"],
    n_ctx: c.maxPositions,
    scale_attn_weights: true,
    scale_attn_by_inverse_layer_idx: false,
    reorder_and_upcast_attn: false,
    summary_activation: null,
    summary_first_dropout: 0.1,
    summary_proj_to_labels: true,
    summary_type: "cls_index",
    summary_use_proj: true,
    use_cache: true,
  }),
  validate(c) {
    if (c.hiddenSize % c.numHeads !== 0) {
      throw new TypeformerError(
        "INVALID_CONFIG",
        `n_embd (${c.hiddenSize}) must be divisible by n_head (${c.numHeads})`,
        { hiddenSize: c.hiddenSize, numHeads: c.numHeads },
      );
    }
    if (!c.tieWordEmbeddings) {
      throw new TypeformerError(
        "INVALID_CONFIG",
        "GPT-2's LM head is tied: tie_word_embeddings must be true; received false",
        {
          tieWordEmbeddings: false,
        },
      );
    }
    activation(c.activation);
  },
  parameterShapes(c) {
    const C = c.hiddenSize;
    const I = intermediate(c);
    const m = new Map<string, number[]>([
      ["wte.weight", [c.vocabSize, C]],
      ["wpe.weight", [c.maxPositions, C]],
    ]);
    for (let i = 0; i < c.numLayers; i++) {
      const h = `h.${i}.`;
      m.set(`${h}ln_1.weight`, [C]).set(`${h}ln_1.bias`, [C]);
      m.set(`${h}attn.c_attn.weight`, [C, 3 * C]).set(`${h}attn.c_attn.bias`, [3 * C]);
      m.set(`${h}attn.c_proj.weight`, [C, C]).set(`${h}attn.c_proj.bias`, [C]);
      m.set(`${h}ln_2.weight`, [C]).set(`${h}ln_2.bias`, [C]);
      m.set(`${h}mlp.c_fc.weight`, [C, I]).set(`${h}mlp.c_fc.bias`, [I]);
      m.set(`${h}mlp.c_proj.weight`, [I, C]).set(`${h}mlp.c_proj.bias`, [C]);
    }
    m.set("ln_f.weight", [C]).set("ln_f.bias", [C]);
    return m;
  },
  hfTranspose: () => false, // Conv1D weights are (in, out) in HF already
  mapCheckpointName(name) {
    const n = name.startsWith("transformer.") ? name.slice("transformer.".length) : name;
    if (n === "lm_head.weight") return null; // tied to wte
    if (/^h\.\d+\.attn\.(bias|masked_bias)$/.test(n)) return null; // stored causal-mask buffers
    return /^(wte|wpe|ln_f)\.|^h\.\d+\./.test(n) ? n : undefined;
  },
  create: (config, values) => new GPT2Model(config, values),
  init(name, shape, c, rng) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (/ln_\d\.weight$|ln_f\.weight$/.test(name)) return new Float32Array(n).fill(1);
    if (name.endsWith(".bias")) return new Float32Array(n);
    // GPT-2's scaled init of the residual projections: std / sqrt(2 · n_layer)
    const std = /c_proj\.weight$/.test(name)
      ? c.initializerRange / Math.sqrt(2 * c.numLayers)
      : c.initializerRange;
    return rng.normalArray(n, 0, std);
  },
  attentionFlopsPerToken: (c, T) => 4 * c.numLayers * c.hiddenSize * T,
};

registerArchitecture(GPT2_SPEC);
