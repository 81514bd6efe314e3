import type { Random, tf } from "@typeformer/core";

/** What the trainer needs of a model: named trainable variables (and, optionally, an HF-layout save). */
export interface TrainableModel {
  namedParameters(): Map<string, tf.Variable>;
  /** Writes the model in Hugging Face layout (config.json + model.safetensors) into `dir`. */
  save?(dir: string): Promise<void>;
}

/** Passed to an objective on every call. */
export interface ObjectiveContext {
  /** True for training micro-batches (dropout on), false for evaluation. */
  training: boolean;
  /** Seeded generator for dropout and for objectives that draw masks (saved in checkpoints). */
  rng: Random;
}

/** The only thing the trainer core sees of a model: a summed loss and the number of targets it covers. */
export interface ObjectiveResult {
  /** Sum of the per-target losses (not the mean). */
  loss: tf.Scalar;
  /** Number of targets summed in `loss`. */
  count: number;
}

/**
 * Adapts a model family to training. `loss` runs inside `tf.variableGrads`: it must be synchronous and
 * may create intermediate tensors freely (the trainer disposes them).
 */
export interface Objective<B> {
  readonly name: string;
  loss(batch: B, ctx: ObjectiveContext): ObjectiveResult;
}

/** An endless, seekable stream of training batches. */
export interface BatchSource<B> {
  next(): B;
  /** JSON-serialisable position, saved in checkpoints. */
  getState(): unknown;
  setState(state: unknown): void;
}

/** A fixed set of evaluation batches (the same ones at every evaluation). */
export interface EvalSource<B> {
  batches(count: number): Iterable<B>;
}
