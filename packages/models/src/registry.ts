import { describeValue, Random, TypeformerError } from "@typeformer/core";
import type {
  AnyModel,
  ArchitectureSpec,
  BaseModelConfig,
  ConfigField,
  CreateModelOptions,
  PreTrainedModel,
} from "./types.js";

/**
 * The architecture registry. Each model file calls `registerArchitecture` for itself; everything
 * else (createModel, fromPretrained, parameterCount, ...) looks the model type up here.
 */
const registry = new Map<string, ArchitectureSpec<BaseModelConfig>>();

export function registerArchitecture<C extends BaseModelConfig>(spec: ArchitectureSpec<C>): void {
  registry.set(spec.modelType, spec as unknown as ArchitectureSpec<BaseModelConfig>);
}

/** The registered model types, sorted. */
export function supportedModelTypes(): string[] {
  return [...registry.keys()].sort();
}

export function getArchitecture(modelType: unknown): ArchitectureSpec<BaseModelConfig> {
  const spec = typeof modelType === "string" ? registry.get(modelType) : undefined;
  if (!spec) {
    throw new TypeformerError(
      "UNKNOWN_MODEL_TYPE",
      `unknown model_type ${describeValue(modelType)}; supported: ${supportedModelTypes().join(", ")}`,
      { modelType, supported: supportedModelTypes() },
    );
  }
  return spec;
}

function checkFieldType(value: unknown, type: ConfigField<unknown>["type"]): boolean {
  for (const t of type.split("|")) {
    if (t === "null" && value === null) return true;
    if (t === "number" && typeof value === "number" && Number.isFinite(value)) return true;
    if (t === "integer" && typeof value === "number" && Number.isInteger(value)) return true;
    if (t === "boolean" && typeof value === "boolean") return true;
    if (t === "string" && typeof value === "string") return true;
  }
  return false;
}

function fieldError(value: unknown, type: string, source: string): TypeformerError {
  return new TypeformerError(
    "INVALID_CONFIG",
    `config field ${source} must be ${type}; received ${describeValue(value)}`,
    { field: source, expected: type, value },
  );
}

/**
 * A full config for `modelType`: the architecture's defaults, then the named preset (if any), then
 * `overrides`. Field types are checked and cross-field invariants validated.
 */
export function resolveConfig<C extends BaseModelConfig = BaseModelConfig>(
  config: Partial<C> & { modelType: string; preset?: string },
): C {
  const spec = getArchitecture(config.modelType);
  const { preset, ...rest } = config as Record<string, unknown> & { preset?: string };
  let base: Record<string, unknown> = { ...spec.defaults };
  if (preset !== undefined) {
    const p = spec.presets[preset];
    if (!p) {
      throw new TypeformerError(
        "INVALID_CONFIG",
        `unknown preset ${describeValue(preset)} for ${spec.modelType}; presets: ${Object.keys(spec.presets).join(", ")}`,
        { preset, presets: Object.keys(spec.presets) },
      );
    }
    base = { ...base, ...p };
  }
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(rest)) if (v !== undefined) out[k] = v;
  const known = new Set(spec.fields.map((f) => f.key as string));
  known.add("modelType");
  for (const k of Object.keys(out)) {
    if (!known.has(k)) {
      throw new TypeformerError(
        "INVALID_CONFIG",
        `unknown config field ${describeValue(k)} for ${spec.modelType}; fields: ${[...known].join(", ")}`,
        { field: k },
      );
    }
  }
  for (const f of spec.fields) {
    if (!checkFieldType(out[f.key], f.type)) throw fieldError(out[f.key], f.type, f.key);
  }
  spec.validate?.(out as unknown as BaseModelConfig);
  return out as unknown as C;
}

/** Throws INVALID_CONFIG when config.json sets `key` to something other than the supported values. */
export function rejectUnsupported(
  json: Record<string, unknown>,
  key: string,
  supported: unknown[],
  modelType: string,
): void {
  if (!(key in json)) return;
  const v = json[key];
  if (supported.some((s) => s === v)) return;
  throw new TypeformerError(
    "INVALID_CONFIG",
    `${modelType}: config field ${key} = ${describeValue(v)} is not supported (supported: ${supported.map((s) => describeValue(s)).join(", ")})`,
    { field: key, value: v, supported },
  );
}

/** Reads a Hugging Face config.json object into our flat config (unknown HF keys are ignored). */
export function configFromHF(json: unknown): BaseModelConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new TypeformerError(
      "INVALID_CONFIG",
      `config.json must hold an object; received ${describeValue(json)}`,
      {
        value: json,
      },
    );
  }
  const obj = json as Record<string, unknown>;
  const spec = getArchitecture(obj.model_type);
  const out: Record<string, unknown> = { ...spec.defaults, modelType: spec.modelType };
  for (const f of spec.fields) {
    if (f.hf === null) continue;
    const names = Array.isArray(f.hf) ? f.hf : [f.hf];
    const name = names.find((n) => n in obj);
    if (name === undefined) continue;
    const v = obj[name];
    if (!checkFieldType(v, f.type)) throw fieldError(v, f.type, name);
    out[f.key] = v;
  }
  const config = spec.readHF
    ? spec.readHF(obj, out as unknown as BaseModelConfig)
    : (out as unknown as BaseModelConfig);
  spec.validate?.(config);
  return config;
}

/** Our flat config → the config.json object transformers expects for the model type. */
export function configToHF(config: BaseModelConfig): Record<string, unknown> {
  const spec = getArchitecture(config.modelType);
  const out: Record<string, unknown> = {};
  for (const f of spec.fields) {
    if (f.hf === null) continue;
    const name = Array.isArray(f.hf) ? f.hf[0] : f.hf;
    const v = (config as unknown as Record<string, unknown>)[f.key];
    if (v !== undefined) out[name] = v;
  }
  return { ...out, ...(spec.hfExtras?.(config) ?? {}), model_type: spec.modelType };
}

/**
 * A new model with freshly initialised parameters (seeded). `config` may be partial: defaults and
 * `preset` fill the rest, e.g. `createModel({modelType: "gpt2", preset: "tiny"}, {seed: 1})`.
 */
export function createModel<M extends PreTrainedModel = AnyModel>(
  config: { modelType: string; preset?: string } & Record<string, unknown>,
  opts: CreateModelOptions = {},
): M {
  const full = resolveConfig(config as BaseModelConfig);
  const spec = getArchitecture(full.modelType);
  const rng = new Random(opts.seed ?? 0);
  return spec.create(full, (name, shape) => spec.init(name, shape, full, rng.fork(name))) as M;
}

/** Number of trainable parameters (tied weights counted once). */
export function parameterCount(config: { modelType: string } & Record<string, unknown>): number {
  const full = resolveConfig(config as BaseModelConfig);
  const spec = getArchitecture(full.modelType);
  let n = 0;
  for (const shape of spec.parameterShapes(full).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

/**
 * Training FLOPs per token (forward + backward) at `contextLength`, PaLM's estimate (Chowdhery et
 * al. 2022, appendix B): `6·N + 12·L·C·T`, where
 * - N is the parameter count without embedding lookups (token, position and token-type tables and
 *   T5's bucket table cost no multiplies; a tied LM head is counted once, as the V·C matmul it is),
 * - L the number of layers, C the attention width (heads × head dim), T the context length.
 * Every matmul weight costs 2 FLOPs per token forward and 4 backward (6·N). Attention scores QKᵀ and
 * the weighted sum AV cost 2·C·T each per token and layer forward (4·L·C·T; causal masking is not
 * discounted, as in PaLM), ×3 with the backward pass. Encoder-decoder models add their cross
 * attention. Inference (forward only) is one third of the result.
 */
export function flopsPerToken(
  config: { modelType: string } & Record<string, unknown>,
  contextLength: number,
): number {
  const full = resolveConfig(config as BaseModelConfig);
  const spec = getArchitecture(full.modelType);
  let n = 0;
  for (const [name, shape] of spec.parameterShapes(full)) {
    if (
      /(^|\.)(wte|wpe|embed_tokens|word_embeddings|position_embeddings|token_type_embeddings|shared|relative_attention_bias)\b/.test(
        name,
      )
    ) {
      continue;
    }
    n += shape.reduce((a, b) => a * b, 1);
  }
  // embedding tables that double as (tied) output heads still cost a V·C matmul per token
  n += tiedHeadParams(full);
  const attn = spec.attentionFlopsPerToken?.(full, contextLength) ?? 0;
  return 6 * n + 3 * attn;
}

function tiedHeadParams(config: BaseModelConfig): number {
  const c = config as unknown as Record<string, unknown>;
  const hasHead = c.withMlmHead !== false; // BERT without its MLM head has no output projection
  if (
    c.tieWordEmbeddings === true &&
    hasHead &&
    typeof c.vocabSize === "number" &&
    typeof c.hiddenSize === "number"
  ) {
    return c.vocabSize * c.hiddenSize;
  }
  return 0;
}
