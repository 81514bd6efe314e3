import { adamwUpdate, fusedKernelsActive } from "@typeformer/attention";
import { TypeformerError, tf } from "@typeformer/core";

/** Decides whether a parameter gets weight decay, from its name and variable. */
export type DecayRule = (name: string, variable: tf.Variable) => boolean;

/** Parameters whose names match this get no weight decay by default: biases, norms, embeddings. */
export const DEFAULT_NO_DECAY_PATTERN =
  /(^|[._])(bias|b|ln_?\w*|norm|\w*layer_?norm\w*|\w*_norm|embeddings?|embed_tokens|wte|wpe|shared|relative_attention_bias)([._]|$)/i;

/**
 * The default rule: decay only tensors of rank >= 2 whose name does not match
 * {@link DEFAULT_NO_DECAY_PATTERN}. Pass a RegExp to `noDecay` in {@link AdamWOptions} to change the
 * name pattern, or a function for full control.
 */
export function defaultDecayRule(pattern: RegExp = DEFAULT_NO_DECAY_PATTERN): DecayRule {
  return (name, variable) => variable.rank >= 2 && !pattern.test(name);
}

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay coefficient (AdamW, Loshchilov & Hutter). */
  weightDecay?: number;
  /** Which parameters are decayed: a rule, or a RegExp naming the ones that are NOT decayed. */
  decay?: DecayRule | RegExp;
  /**
   * Use the fused one-pass AdamW kernel of `@typeformer/attention` when its wasm kernels are registered
   * (default true); otherwise, or when false, the update is written with tf.js ops.
   */
  fused?: boolean;
}

/** Optimizer moments, keyed `exp_avg.<name>` / `exp_avg_sq.<name>`, for checkpoints. */
export interface OptimizerSnapshot {
  step: number;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

/**
 * AdamW written out by hand over named `tf.Variable`s. Moments are `tf.Variable`s too, so they can be
 * saved and restored exactly. `step(grads, lr)` applies one update and disposes nothing it does not own.
 */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly fused: boolean;
  /** Number of updates applied so far (the `t` of the bias corrections). */
  t = 0;
  readonly params: Map<string, tf.Variable>;
  readonly decayed: Set<string>;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(params: Map<string, tf.Variable>, opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.fused = opts.fused ?? true;
    for (const [k, val] of [
      ["beta1", this.beta1],
      ["beta2", this.beta2],
    ] as const) {
      if (!(val >= 0 && val < 1)) {
        throw new TypeformerError("INVALID_ARGUMENT", `${k} must be in [0, 1); received ${val}`, {
          [k]: val,
        });
      }
    }
    if (!(this.eps > 0)) {
      throw new TypeformerError("INVALID_ARGUMENT", `eps must be > 0; received ${this.eps}`, {
        eps: this.eps,
      });
    }
    if (!(this.weightDecay >= 0)) {
      throw new TypeformerError(
        "INVALID_ARGUMENT",
        `weightDecay must be >= 0; received ${this.weightDecay}`,
        {
          weightDecay: this.weightDecay,
        },
      );
    }
    const rule =
      typeof opts.decay === "function"
        ? opts.decay
        : defaultDecayRule(opts.decay instanceof RegExp ? opts.decay : undefined);
    this.params = params;
    this.decayed = new Set();
    for (const [name, p] of params) {
      if (rule(name, p)) this.decayed.add(name);
      // tf.variable(init) does not dispose init
      // separate buffers for m and v (a variable shares its initial tensor's data)
      for (const store of [this.m, this.v]) {
        const z = tf.zeros(p.shape, "float32");
        store.set(name, tf.variable(z, false));
        z.dispose();
      }
    }
  }

  /**
   * One update. `grads` maps parameter names to gradients (missing names are skipped), `lr` is the
   * learning rate, `gradScale` (a scalar tensor or number) multiplies every gradient first — used for
   * loss normalisation and clipping without a data sync. Does not dispose `grads`.
   */
  step(grads: Map<string, tf.Tensor>, lr: number, gradScale?: tf.Scalar | number): void {
    this.t += 1;
    const t = this.t;
    const bc1 = 1 - this.beta1 ** t;
    const bc2 = 1 - this.beta2 ** t;
    // p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps) ; decay: p *= 1 - lr*wd (before the Adam step, like PyTorch)
    const stepSize = lr / bc1;
    const decayFactor = 1 - lr * this.weightDecay;
    if (this.fused && fusedKernelsActive()) {
      for (const [name, p] of this.params) {
        const g = grads.get(name);
        if (!g) continue;
        const gs = gradScale === undefined || gradScale === 1 ? g : tf.mul(g, gradScale);
        adamwUpdate(p, gs, this.m.get(name)!, this.v.get(name)!, {
          lr,
          beta1: this.beta1,
          beta2: this.beta2,
          eps: this.eps,
          weightDecay: this.decayed.has(name) ? this.weightDecay : 0,
          step: t,
        });
        if (gs !== g) gs.dispose();
      }
      return;
    }
    tf.tidy(() => {
      const b1 = tf.scalar(this.beta1);
      const omb1 = tf.scalar(1 - this.beta1);
      const b2 = tf.scalar(this.beta2);
      const omb2 = tf.scalar(1 - this.beta2);
      const eps = tf.scalar(this.eps);
      const sqrtBc2 = tf.scalar(Math.sqrt(bc2));
      const ss = tf.scalar(stepSize);
      const df = tf.scalar(decayFactor);
      const scale =
        gradScale === undefined
          ? undefined
          : typeof gradScale === "number"
            ? tf.scalar(gradScale)
            : gradScale;
      for (const [name, p] of this.params) {
        let g = grads.get(name);
        if (!g) continue;
        if (scale) g = tf.mul(g, scale);
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        const mNew = tf.add(tf.mul(m, b1), tf.mul(g, omb1));
        const vNew = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), omb2));
        m.assign(mNew);
        v.assign(vNew);
        const denom = tf.add(tf.div(tf.sqrt(vNew), sqrtBc2), eps);
        const base = this.decayed.has(name) && this.weightDecay > 0 ? tf.mul(p, df) : p;
        p.assign(tf.sub(base, tf.mul(tf.div(mNew, denom), ss)));
      }
    });
  }

  /** Copies the moments out (one data read per tensor) for a checkpoint. */
  async snapshot(): Promise<OptimizerSnapshot> {
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, m] of this.m) {
      tensors.set(`exp_avg.${name}`, { shape: m.shape, data: (await m.data()) as Float32Array });
      const v = this.v.get(name)!;
      tensors.set(`exp_avg_sq.${name}`, { shape: v.shape, data: (await v.data()) as Float32Array });
    }
    return { step: this.t, tensors };
  }

  /** Restores moments saved by {@link snapshot}; every parameter's moments must be present. */
  restore(snap: OptimizerSnapshot): void {
    for (const [name, p] of this.params) {
      for (const [prefix, store] of [
        ["exp_avg", this.m],
        ["exp_avg_sq", this.v],
      ] as const) {
        const key = `${prefix}.${name}`;
        const t = snap.tensors.get(key);
        if (!t) {
          throw new TypeformerError("MISSING_WEIGHTS", `optimizer state lacks ${JSON.stringify(key)}`, {
            key,
          });
        }
        if (t.shape.join(",") !== p.shape.join(",")) {
          throw new TypeformerError(
            "SHAPE_MISMATCH",
            `optimizer state ${key} has shape [${t.shape}], parameter has [${p.shape}]`,
            { key, shape: t.shape, expected: p.shape },
          );
        }
        const vr = store.get(name)!;
        tf.tidy(() => vr.assign(tf.tensor(t.data, t.shape, "float32")));
      }
    }
    this.t = snap.step;
  }

  dispose(): void {
    for (const x of this.m.values()) x.dispose();
    for (const x of this.v.values()) x.dispose();
    this.m.clear();
    this.v.clear();
  }
}
