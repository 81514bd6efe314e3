/**
 * Full fine-tuning helpers: freezing by name pattern, trainable-parameter summaries, discriminative
 * (per-group) learning rates wrapped around the trainer's AdamW, and the glue that lets the trainer
 * train a {@link LoraModel} (its adapter variables under PEFT names; checkpoints hold the adapter).
 */
import { TypeformerError, type tf } from "@typeformer/core";
import type { AdamW, Objective, TrainableModel } from "@typeformer/trainer";
import type { LoraModel } from "./lora.js";
import { saveAdapter } from "./peft.js";

export type NamePattern = string | RegExp;

function toRegExp(p: NamePattern): RegExp {
  if (p instanceof RegExp) return p;
  try {
    return new RegExp(p);
  } catch (e) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `bad name pattern ${JSON.stringify(p)}: ${(e as Error).message}`,
      {
        pattern: p,
      },
    );
  }
}

export interface FreezeOptions {
  /** Parameters whose names match any of these are frozen. */
  freeze?: NamePattern[];
  /** If given, only parameters matching one of these stay trainable (applied before `freeze`). */
  trainOnly?: NamePattern[];
}

/**
 * Sets `trainable` on a model's parameters by name (HF names, e.g. `^bert\.embeddings\.` or
 * `h\.[0-5]\.`). Returns the names left trainable. A pattern that matches nothing is an error (a typo
 * would otherwise silently train everything).
 */
export function freezeParameters(
  model: { namedParameters(): Map<string, tf.Variable> },
  opts: FreezeOptions,
): string[] {
  const params = model.namedParameters();
  const only = opts.trainOnly?.map(toRegExp);
  const frozen = opts.freeze?.map(toRegExp) ?? [];
  for (const re of [...(only ?? []), ...frozen]) {
    if (![...params.keys()].some((n) => re.test(n))) {
      throw new TypeformerError(
        "INVALID_ARGUMENT",
        `name pattern ${re} matches no parameter; names look like ${[...params.keys()].slice(0, 4).join(", ")}`,
        { pattern: String(re) },
      );
    }
  }
  const out: string[] = [];
  for (const [n, v] of params) {
    let t = only ? only.some((re) => re.test(n)) : true;
    if (frozen.some((re) => re.test(n))) t = false;
    v.trainable = t;
    if (t) out.push(n);
  }
  return out;
}

/** Trainable and total parameter counts and the trainable share. */
export function trainableSummary(
  params: Map<string, tf.Variable>,
  total?: number,
): {
  trainable: number;
  total: number;
  share: number;
} {
  let trainable = 0;
  let all = 0;
  for (const v of params.values()) {
    all += v.size;
    if (v.trainable) trainable += v.size;
  }
  const tot = total ?? all;
  return { trainable, total: tot, share: tot > 0 ? trainable / tot : 0 };
}

export interface LrGroup {
  /** Parameter names (as the trainer sees them) matching this get `scale` × the scheduled lr. */
  pattern: NamePattern;
  scale: number;
}

/**
 * Discriminative learning rates: wraps an AdamW so each parameter group is updated with its own
 * multiple of the scheduled learning rate (first matching group wins; unmatched parameters use 1).
 * One optimizer step stays one step (the bias-correction counter advances once).
 */
export function applyLrGroups(optimizer: AdamW, groups: LrGroup[]): void {
  const res = groups.map((g) => {
    if (!(Number.isFinite(g.scale) && g.scale >= 0)) {
      throw new TypeformerError("INVALID_ARGUMENT", `lr group scale must be >= 0; received ${g.scale}`, {
        scale: g.scale,
      });
    }
    return { re: toRegExp(g.pattern), scale: g.scale };
  });
  const scaleOf = (name: string) => res.find((g) => g.re.test(name))?.scale ?? 1;
  const original = optimizer.step.bind(optimizer);
  optimizer.step = (grads, lr, gradScale) => {
    const buckets = new Map<number, Map<string, tf.Tensor>>();
    for (const [n, g] of grads) {
      const s = scaleOf(n);
      if (!buckets.has(s)) buckets.set(s, new Map());
      buckets.get(s)!.set(n, g);
    }
    const t0 = optimizer.t;
    for (const [s, sub] of buckets) {
      optimizer.t = t0;
      original(sub, lr * s, gradScale);
    }
    optimizer.t = t0 + 1;
  };
}

/** Layer-wise lr decay groups: layer i of n gets decay^(n - i) (embeddings decay^(n+1)), heads 1. */
export function layerwiseLrGroups(
  numLayers: number,
  decay: number,
  layerPattern = /(?:^|\.)(?:h|layer|layers|block)\.(\d+)\./,
): LrGroup[] {
  const groups: LrGroup[] = [];
  for (let i = 0; i < numLayers; i++) {
    groups.push({
      pattern: new RegExp(layerPattern.source.replace("(\\d+)", `(${i})`)),
      scale: decay ** (numLayers - i),
    });
  }
  groups.push({ pattern: /embed|wte|wpe|shared/, scale: decay ** (numLayers + 1) });
  return groups;
}

/**
 * The trainer's view of a LoRA model: the active adapter's variables (PEFT names), and `save` writing
 * the adapter in PEFT layout (so checkpoints hold adapters, not copies of the base model).
 */
export function loraTrainable(lora: LoraModel): TrainableModel {
  return {
    namedParameters: () => lora.adapterParameters(),
    save: (dir: string) => saveAdapter(lora, dir),
  };
}

/** Wraps an objective so LoRA dropout runs in training micro-batches only, with the trainer's rng. */
export function loraObjective<B>(lora: LoraModel, inner: Objective<B>): Objective<B> {
  return {
    name: `lora/${inner.name}`,
    loss(batch, ctx) {
      lora.training = ctx.training;
      lora.rng = ctx.rng;
      try {
        return inner.loss(batch, ctx);
      } finally {
        lora.training = false;
      }
    },
  };
}
