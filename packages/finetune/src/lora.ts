/**
 * LoRA (Hu et al. 2021) on any linear layer of any Typeformer architecture. A frozen weight W (in, out)
 * gets a trainable low-rank update: y = x·W + b + s · dropout(x)·A·B, with A (in, r), B (r, out),
 * s = alpha / r (or alpha / √r with rsLoRA, Kalajdzievski 2023). B starts at zero, so the adapted
 * model starts equal to the base. Hooks into the models through `setLinearHook` (every dense layer of
 * every architecture goes through one `linear` function), keyed by the weight variable.
 *
 * Names follow PEFT: a target module is named as in the Hugging Face model (`transformer.h.0.attn.c_attn`
 * for GPT-2, `model.layers.0.self_attn.q_proj` for Llama, `bert.encoder.layer.0.attention.self.query`,
 * `encoder.block.0.layer.0.SelfAttention.q` for T5). `target_modules` as a list matches a module whose
 * name equals an entry or ends with "." + entry; as a string it is a regular expression matched
 * against the whole name (PEFT's rules).
 */
import { Random, TypeformerError, tf } from "@typeformer/core";
import type { PreTrainedModel } from "@typeformer/models";
import { setLinearHook } from "@typeformer/models";

export interface LoraConfig {
  /** Rank r of the update (PEFT `r`, default 8). */
  r?: number;
  /** Scaling numerator (PEFT `lora_alpha`, default 8). */
  alpha?: number;
  /** Dropout on the LoRA branch's input while training (PEFT `lora_dropout`, default 0). */
  dropout?: number;
  /** Which linear layers get adapters: a list of module-name suffixes, or one regular expression. */
  targetModules: string[] | string;
  /** rsLoRA: scale by alpha / √r instead of alpha / r (PEFT `use_rslora`). */
  useRslora?: boolean;
  /**
   * Whole parameters that are trained and saved with the adapter (PEFT `modules_to_save`, e.g.
   * `["classifier"]` for a classification head): module names, matched like `targetModules`.
   */
  modulesToSave?: string[];
  /** Seed of A's initialisation (kaiming-uniform, as PEFT). */
  seed?: number;
}

/** A resolved config with every field set. */
export type ResolvedLoraConfig = Required<Omit<LoraConfig, "modulesToSave" | "seed">> & {
  modulesToSave: string[];
  seed: number;
};

/** One adapted layer: A (in, r), B (r, out) in Typeformer's (in, out) orientation. */
export interface LoraLayer {
  /** The base parameter name (`h.0.attn.c_attn.weight`). */
  param: string;
  /** The PEFT/HF module name (`transformer.h.0.attn.c_attn`). */
  module: string;
  A: tf.Variable;
  B: tf.Variable;
}

export interface LoraAdapter {
  readonly name: string;
  readonly config: ResolvedLoraConfig;
  readonly scaling: number;
  /** Keyed by base parameter name. */
  readonly layers: Map<string, LoraLayer>;
  /** modules_to_save parameters (base parameter names), trained in place. */
  readonly extra: string[];
}

/** Per architecture: the prefix HF's full model puts before our parameter names (GPT-2's `transformer.`). */
const HF_MODULE_PREFIX: Record<string, string> = { gpt2: "transformer." };
/** Architectures whose linear weights are Conv1D (PEFT `fan_in_fan_out: true`). */
const FAN_IN_FAN_OUT = new Set(["gpt2"]);

/** The HF module name of a parameter name (without `.weight`/`.bias`). */
export function hfModuleName(modelType: string, param: string): string {
  return (HF_MODULE_PREFIX[modelType] ?? "") + param.replace(/\.(weight|bias)$/, "");
}

/** The parameter name for an HF module name + suffix (inverse of {@link hfModuleName}). */
export function paramForModule(modelType: string, module: string, suffix = "weight"): string {
  const pre = HF_MODULE_PREFIX[modelType] ?? "";
  return `${module.startsWith(pre) ? module.slice(pre.length) : module}.${suffix}`;
}

export function fanInFanOut(modelType: string): boolean {
  return FAN_IN_FAN_OUT.has(modelType);
}

/** PEFT's matching: list = exact or "."-suffix match; string = full regular-expression match. */
export function matchesModule(module: string, targets: string[] | string): boolean {
  if (typeof targets === "string") return new RegExp(`^(?:${targets})$`).test(module);
  return targets.some((t) => module === t || module.endsWith(`.${t}`));
}

export function resolveLoraConfig(c: LoraConfig): ResolvedLoraConfig {
  const r = c.r ?? 8;
  const bad = (field: string, v: unknown, what: string) =>
    new TypeformerError("INVALID_CONFIG", `LoRA ${field} must be ${what}; received ${JSON.stringify(v)}`, {
      field,
      value: v,
    });
  if (!(Number.isInteger(r) && r >= 1)) throw bad("r", c.r, "an integer >= 1");
  const alpha = c.alpha ?? 8;
  if (!(Number.isFinite(alpha) && alpha > 0)) throw bad("alpha", c.alpha, "a number > 0");
  const dropout = c.dropout ?? 0;
  if (!(dropout >= 0 && dropout < 1)) throw bad("dropout", c.dropout, "in [0, 1)");
  const t = c.targetModules;
  if (
    !(typeof t === "string"
      ? t.length > 0
      : Array.isArray(t) && t.length > 0 && t.every((x) => typeof x === "string"))
  )
    throw bad("targetModules", t, "a non-empty list of module names or a regular expression");
  return {
    r,
    alpha,
    dropout,
    targetModules: t,
    useRslora: c.useRslora ?? false,
    modulesToSave: c.modulesToSave ?? [],
    seed: c.seed ?? 0,
  };
}

export function loraScaling(c: ResolvedLoraConfig): number {
  return c.useRslora ? c.alpha / Math.sqrt(c.r) : c.alpha / c.r;
}

let counter = 0;

/**
 * Adds LoRA adapters to a model. Several adapters can be loaded at once; one is active (or none:
 * the base model). The base model's parameters are frozen (`trainable = false`) while adapters are
 * attached; {@link LoraModel.dispose} removes the hooks and restores the flags.
 */
export class LoraModel {
  readonly adapters = new Map<string, LoraAdapter>();
  /** Dropout on the LoRA branch is applied only while `training` (set by {@link loraObjective}). */
  training = false;
  rng?: Random;
  private active: string | null = null;
  private merged: string | null = null;
  private readonly params: Map<string, tf.Variable>;
  private readonly hooked = new Set<string>();
  private readonly savedTrainable = new Map<string, boolean>();
  private disposed = false;

  constructor(
    readonly base: PreTrainedModel,
    readonly opts: { baseModelNameOrPath?: string } = {},
  ) {
    this.params = base.namedParameters();
    for (const [n, v] of this.params) {
      this.savedTrainable.set(n, v.trainable);
      v.trainable = false;
    }
  }

  get modelType(): string {
    return this.base.modelType;
  }

  /** The active adapter's name, or null (base model). */
  get activeAdapter(): string | null {
    return this.active;
  }

  /** The adapter merged into the base weights, if any. */
  get mergedAdapter(): string | null {
    return this.merged;
  }

  /** Module names (HF/PEFT naming) of every rank-2 weight, i.e. the candidates for targets. */
  candidateModules(): string[] {
    const out: string[] = [];
    for (const [n, v] of this.params)
      if (v.rank === 2 && n.endsWith(".weight")) out.push(hfModuleName(this.modelType, n));
    return out;
  }

  /**
   * Creates adapter `name` (A kaiming-uniform, B zeros) on every matching linear layer and makes it
   * active. Throws when nothing matches or a match is not a linear layer (an embedding or a head).
   */
  addAdapter(name: string, config: LoraConfig): LoraAdapter {
    this.assertLive();
    if (this.adapters.has(name)) {
      throw new TypeformerError("INVALID_ARGUMENT", `adapter ${JSON.stringify(name)} already exists`, {
        name,
      });
    }
    const c = resolveLoraConfig(config);
    const targets: string[] = [];
    for (const [n, v] of this.params) {
      if (v.rank !== 2 || !n.endsWith(".weight")) continue;
      if (matchesModule(hfModuleName(this.modelType, n), c.targetModules)) targets.push(n);
    }
    if (targets.length === 0) {
      throw new TypeformerError(
        "INVALID_CONFIG",
        `LoRA target_modules ${JSON.stringify(c.targetModules)} match no linear layer of this ${this.modelType} model; modules look like ${this.candidateModules()
          .slice(0, 6)
          .map((m) => JSON.stringify(m))
          .join(", ")}`,
        { targetModules: c.targetModules },
      );
    }
    const nonLinear = this.probeNonLinear(targets);
    if (nonLinear.length > 0) {
      throw new TypeformerError(
        "INVALID_CONFIG",
        `LoRA targets must be linear layers; ${nonLinear.map((n) => JSON.stringify(hfModuleName(this.modelType, n))).join(", ")} ${nonLinear.length === 1 ? "is" : "are"} not (embedding or output head)`,
        { modules: nonLinear },
      );
    }
    const extra: string[] = [];
    for (const [n] of this.params) {
      if (c.modulesToSave.length > 0 && matchesModule(hfModuleName(this.modelType, n), c.modulesToSave))
        extra.push(n);
    }
    if (c.modulesToSave.length > 0 && extra.length === 0) {
      throw new TypeformerError(
        "INVALID_CONFIG",
        `LoRA modules_to_save ${JSON.stringify(c.modulesToSave)} match no parameter`,
        { modulesToSave: c.modulesToSave },
      );
    }
    const rng = new Random(c.seed);
    const layers = new Map<string, LoraLayer>();
    for (const n of targets) {
      const [inF, outF] = this.params.get(n)!.shape as [number, number];
      const bound = 1 / Math.sqrt(inF); // kaiming_uniform_(a=√5) on lora_A (r, in): bound = 1/√in
      const aData = rng.uniformArray(inF * c.r, -bound, bound);
      const id = ++counter;
      const a = tf.tensor2d(aData, [inF, c.r]);
      const b = tf.zeros([c.r, outF]);
      layers.set(n, {
        param: n,
        module: hfModuleName(this.modelType, n),
        A: tf.variable(a, true, `lora.${name}.${n}.A#${id}`),
        B: tf.variable(b, true, `lora.${name}.${n}.B#${id}`),
      });
      a.dispose();
      b.dispose();
      this.hook(n);
    }
    const adapter: LoraAdapter = { name, config: c, scaling: loraScaling(c), layers, extra };
    this.adapters.set(name, adapter);
    this.setAdapter(name);
    return adapter;
  }

  /** Makes `name` the active adapter (null = base model only). Not allowed while an adapter is merged. */
  setAdapter(name: string | null): void {
    this.assertLive();
    if (name !== null && !this.adapters.has(name)) {
      throw new TypeformerError(
        "NOT_FOUND",
        `no adapter ${JSON.stringify(name)}; loaded: ${[...this.adapters.keys()].join(", ") || "none"}`,
        { name },
      );
    }
    if (this.merged !== null && name !== this.merged) {
      throw new TypeformerError(
        "INVALID_ARGUMENT",
        `adapter ${JSON.stringify(this.merged)} is merged into the base weights; unmerge() before switching to ${JSON.stringify(name)}`,
        { merged: this.merged, name },
      );
    }
    if (this.active)
      for (const n of this.adapters.get(this.active)!.extra) this.params.get(n)!.trainable = false;
    this.active = name;
    if (name) for (const n of this.adapters.get(name)!.extra) this.params.get(n)!.trainable = true;
  }

  deleteAdapter(name: string): void {
    const a = this.adapters.get(name);
    if (!a) return;
    if (this.merged === name) this.unmerge();
    if (this.active === name) this.setAdapter(null);
    for (const l of a.layers.values()) {
      l.A.dispose();
      l.B.dispose();
    }
    this.adapters.delete(name);
  }

  /** The delta s·A·B (in, out) of one layer of an adapter (caller owns it). */
  delta(adapter: LoraAdapter, param: string): tf.Tensor2D {
    const l = adapter.layers.get(param)!;
    return tf.tidy(() => tf.mul(tf.matMul(l.A, l.B), adapter.scaling) as tf.Tensor2D);
  }

  /** Folds the active adapter into the base weights: W ← W + s·A·B. Inference is then as fast as the base. */
  merge(): void {
    this.assertLive();
    if (!this.active) throw new TypeformerError("INVALID_ARGUMENT", "merge: no active adapter", {});
    if (this.merged) return;
    const a = this.adapters.get(this.active)!;
    for (const n of a.layers.keys()) {
      const w = this.params.get(n)!;
      tf.tidy(() => w.assign(tf.add(w, this.delta(a, n))));
    }
    this.merged = this.active;
  }

  /** Undoes {@link merge}: W ← W − s·A·B (exact up to float rounding). */
  unmerge(): void {
    this.assertLive();
    if (!this.merged) return;
    const a = this.adapters.get(this.merged)!;
    for (const n of a.layers.keys()) {
      const w = this.params.get(n)!;
      tf.tidy(() => w.assign(tf.sub(w, this.delta(a, n))));
    }
    this.merged = null;
  }

  /**
   * The active adapter's trainable variables under PEFT names (`base_model.model.<module>.lora_A.weight`
   * in our (in, r) orientation; `save` writes PEFT's), plus its modules_to_save parameters.
   */
  adapterParameters(name = this.active): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    if (!name) return out;
    const a = this.adapters.get(name);
    if (!a) throw new TypeformerError("NOT_FOUND", `no adapter ${JSON.stringify(name)}`, { name });
    for (const l of a.layers.values()) {
      out.set(`base_model.model.${l.module}.lora_A.weight`, l.A);
      out.set(`base_model.model.${l.module}.lora_B.weight`, l.B);
    }
    for (const n of a.extra)
      out.set(
        `base_model.model.${hfModuleName(this.modelType, n)}.${n.split(".").pop()}`,
        this.params.get(n)!,
      );
    return out;
  }

  /** Trainable share: adapter parameters / (base parameters + adapter parameters). */
  trainableCounts(): { trainable: number; total: number } {
    let base = 0;
    for (const v of this.params.values()) base += v.size;
    let lora = 0;
    let extra = 0;
    if (this.active) {
      const a = this.adapters.get(this.active)!;
      for (const l of a.layers.values()) lora += l.A.size + l.B.size;
      for (const n of a.extra) extra += this.params.get(n)!.size;
    }
    return { trainable: lora + extra, total: base + lora };
  }

  /** Removes every hook and adapter and restores the base parameters' trainable flags. */
  dispose(): void {
    if (this.disposed) return;
    if (this.merged) this.unmerge();
    for (const name of [...this.adapters.keys()]) this.deleteAdapter(name);
    for (const n of this.hooked) {
      const v = this.params.get(n);
      if (v && !v.isDisposed) setLinearHook(v, null);
    }
    for (const [n, v] of this.params) if (!v.isDisposed) v.trainable = this.savedTrainable.get(n) ?? true;
    this.disposed = true;
  }

  private hook(param: string): void {
    if (this.hooked.has(param)) return;
    this.hooked.add(param);
    this.install(param);
  }

  private install(param: string): void {
    setLinearHook(this.params.get(param)!, (x, y) => {
      const name = this.active;
      if (!name || name === this.merged) return y;
      const a = this.adapters.get(name)!;
      const l = a.layers.get(param);
      if (!l) return y;
      let xin = x;
      if (this.training && a.config.dropout > 0) {
        if (!this.rng) {
          throw new TypeformerError(
            "INVALID_ARGUMENT",
            "LoRA dropout while training needs an rng; received undefined",
            {},
          );
        }
        const p = a.config.dropout;
        const keep = tf.cast(
          tf.greaterEqual(tf.randomUniform(x.shape, 0, 1, "float32", this.rng.nextUint32()), p),
          "float32",
        );
        xin = tf.mul(x, tf.mul(keep, 1 / (1 - p))) as tf.Tensor2D;
      }
      return tf.add(y, tf.mul(tf.matMul(tf.matMul(xin, l.A), l.B), a.scaling)) as tf.Tensor2D;
    });
  }

  /** Runs a tiny forward pass and returns the targets whose hooks never fired. */
  private probeNonLinear(targets: string[]): string[] {
    const seen = new Set<string>();
    for (const n of targets) {
      setLinearHook(this.params.get(n)!, (_x, y) => {
        seen.add(n);
        return y;
      });
    }
    try {
      tf.tidy(() => {
        const ids = tf.tensor2d([[0, 1]], [1, 2], "int32");
        const m = this.base as unknown as Record<string, (...a: unknown[]) => unknown>;
        if (this.base.family === "decoder") m.forward.call(this.base, ids);
        else if (this.base.family === "encoder") {
          m.encode.call(this.base, ids);
          if (this.params.has("cls.predictions.bias")) m.mlmLogits.call(this.base, ids);
          if (this.params.has("classifier.weight")) m.classify.call(this.base, ids);
        } else m.forward.call(this.base, ids, ids);
      });
    } finally {
      for (const n of targets) {
        const v = this.params.get(n)!;
        if (this.hooked.has(n)) this.install(n);
        else setLinearHook(v, null);
      }
    }
    return targets.filter((n) => !seen.has(n));
  }

  private assertLive(): void {
    if (this.disposed) throw new TypeformerError("INVALID_ARGUMENT", "this LoraModel was disposed", {});
  }
}
