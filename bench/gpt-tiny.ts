/**
 * A compact GPT (GPT-2 block: pre-LayerNorm, causal attention, tanh-GELU MLP, tied head, biases) in
 * plain tf.js ops, with AdamW — the model of bench/train-step.ts and bench/decode.ts. Same architecture
 * and initialisation as bench/pytorch/gpt_bench.py so the two sides do the same work.
 */
import { adamwUpdate, gelu, layerNorm, linear } from "@typeformer/attention";
import { Random, tf } from "@typeformer/core";

export interface TinyGptConfig {
  vocab: number;
  ctx: number;
  d: number;
  layers: number;
  heads: number;
}

/** nanoGPT's CPU config on Tiny Shakespeare (char vocab 65). */
export const NANOGPT_CPU: TinyGptConfig & { batch: number } = {
  vocab: 65,
  ctx: 64,
  d: 128,
  layers: 4,
  heads: 4,
  batch: 12,
};

interface LayerParams {
  ln1g: tf.Variable;
  ln1b: tf.Variable;
  wq: tf.Variable;
  bq: tf.Variable;
  wk: tf.Variable;
  bk: tf.Variable;
  wv: tf.Variable;
  bv: tf.Variable;
  wo: tf.Variable;
  bo: tf.Variable;
  ln2g: tf.Variable;
  ln2b: tf.Variable;
  wfc: tf.Variable;
  bfc: tf.Variable;
  wout: tf.Variable;
  bout: tf.Variable;
}

export interface LayerCache {
  k?: tf.Tensor4D;
  v?: tf.Tensor4D;
}

export class TinyGpt {
  readonly wte: tf.Variable;
  readonly wpe: tf.Variable;
  readonly lnfg: tf.Variable;
  readonly lnfb: tf.Variable;
  readonly layers: LayerParams[] = [];
  readonly variables: tf.Variable[] = [];

  constructor(
    readonly cfg: TinyGptConfig,
    seed = 0,
  ) {
    const rng = new Random(seed);
    const { vocab, ctx, d, layers } = cfg;
    const normal = (shape: number[]) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const vals = new Float32Array(n);
      for (let i = 0; i < n; i++) vals[i] = rng.normal() * 0.02;
      return this.track(tf.tensor(vals, shape));
    };
    const fill = (shape: number[], v: number) => this.track(tf.fill(shape, v));
    this.wte = normal([vocab, d]);
    this.wpe = normal([ctx, d]);
    for (let l = 0; l < layers; l++) {
      this.layers.push({
        ln1g: fill([d], 1),
        ln1b: fill([d], 0),
        wq: normal([d, d]),
        bq: fill([d], 0),
        wk: normal([d, d]),
        bk: fill([d], 0),
        wv: normal([d, d]),
        bv: fill([d], 0),
        wo: normal([d, d]),
        bo: fill([d], 0),
        ln2g: fill([d], 1),
        ln2b: fill([d], 0),
        wfc: normal([d, 4 * d]),
        bfc: fill([4 * d], 0),
        wout: normal([4 * d, d]),
        bout: fill([d], 0),
      });
    }
    this.lnfg = fill([d], 1);
    this.lnfb = fill([d], 0);
  }

  private track(init: tf.Tensor): tf.Variable {
    const v = tf.variable(init);
    init.dispose();
    this.variables.push(v);
    return v;
  }

  /** Logits (B*T, vocab) of `ids` (B, T); with `caches`, keys/values are appended (decoding). */
  forward(ids: tf.Tensor2D, caches?: LayerCache[], offset = 0): tf.Tensor2D {
    const [B, T] = ids.shape;
    const { d, heads } = this.cfg;
    const hd = d / heads;
    const N = B * T;
    const tok = tf.gather(this.wte, ids.reshape([N]));
    const pos = this.wpe.slice([offset, 0], [T, d]);
    let x = tok.reshape([B, T, d]).add(pos).reshape([N, d]) as tf.Tensor2D;
    const Tk = offset + T;
    const mask = T > 1 ? causalMask(T, Tk) : undefined;
    const scale = 1 / Math.sqrt(hd);
    const split = (t: tf.Tensor) => t.reshape([B, T, heads, hd]).transpose([0, 2, 1, 3]) as tf.Tensor4D;
    for (let l = 0; l < this.layers.length; l++) {
      const p = this.layers[l];
      const h = layerNorm(x, p.ln1g, p.ln1b);
      const q = split(linear(h, p.wq, p.bq).mul(scale));
      let k = split(linear(h, p.wk, p.bk));
      let v = split(linear(h, p.wv, p.bv));
      const cache = caches?.[l];
      if (cache) {
        if (cache.k && cache.v) {
          const nk = tf.concat([cache.k, k], 2) as tf.Tensor4D;
          const nv = tf.concat([cache.v, v], 2) as tf.Tensor4D;
          cache.k.dispose();
          cache.v.dispose();
          k = nk;
          v = nv;
        }
        cache.k = tf.keep(k);
        cache.v = tf.keep(v);
      }
      let att = tf.matMul(q, k, false, true);
      if (mask) att = att.add(mask);
      const y = tf.matMul(tf.softmax(att), v).transpose([0, 2, 1, 3]).reshape([N, d]);
      x = x.add(linear(y, p.wo, p.bo));
      const h2 = layerNorm(x, p.ln2g, p.ln2b);
      const f = gelu(linear(h2, p.wfc, p.bfc));
      x = x.add(linear(f, p.wout, p.bout));
    }
    return tf.matMul(layerNorm(x, this.lnfg, this.lnfb), this.wte, false, true) as tf.Tensor2D;
  }

  loss(ids: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar {
    const logits = this.forward(ids);
    return tf.losses.softmaxCrossEntropy(tf.oneHot(targets, this.cfg.vocab), logits) as tf.Scalar;
  }

  dispose(): void {
    tf.dispose(this.variables);
  }
}

const maskCache = new Map<string, tf.Tensor2D>();
/** Additive causal mask (T, Tk), bottom-right aligned; cached (kept across tidy scopes). */
function causalMask(T: number, Tk: number): tf.Tensor2D {
  const key = `${T}x${Tk}`;
  let m = maskCache.get(key);
  if (!m) {
    const vals = new Float32Array(T * Tk);
    for (let i = 0; i < T; i++) for (let j = 0; j < Tk; j++) vals[i * Tk + j] = j > i + Tk - T ? -1e9 : 0;
    m = tf.keep(tf.tensor2d(vals, [T, Tk]));
    maskCache.set(key, m);
  }
  return m;
}

/** AdamW (decoupled weight decay on matrices), as torch.optim.AdamW. */
export class AdamW {
  private m = new Map<tf.Variable, tf.Variable>();
  private v = new Map<tf.Variable, tf.Variable>();
  private t = 0;
  constructor(
    readonly lr = 1e-3,
    readonly beta1 = 0.9,
    readonly beta2 = 0.99,
    readonly eps = 1e-8,
    readonly weightDecay = 0.1,
  ) {}

  apply(grads: Record<string, tf.Tensor>, vars: Record<string, tf.Variable>): void {
    this.t++;
    for (const [name, g] of Object.entries(grads)) {
      const w = vars[name];
      let m = this.m.get(w);
      let v = this.v.get(w);
      if (!m || !v) {
        m = tf.variable(tf.zerosLike(w), false);
        v = tf.variable(tf.zerosLike(w), false);
        this.m.set(w, m);
        this.v.set(w, v);
      }
      adamwUpdate(w, g, m, v, {
        lr: this.lr,
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        weightDecay: w.rank >= 2 ? this.weightDecay : 0,
        step: this.t,
      });
    }
  }
}

/** One training step; returns the loss value. */
export function trainStep(
  model: { variables: tf.Variable[]; loss(ids: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar },
  opt: AdamW,
  ids: tf.Tensor2D,
  targets: tf.Tensor1D,
): number {
  const { value, grads } = tf.variableGrads(() => model.loss(ids, targets), model.variables);
  const vars: Record<string, tf.Variable> = {};
  for (const v of model.variables) vars[v.name] = v;
  opt.apply(grads, vars);
  const loss = value.dataSync()[0];
  tf.dispose([value, ...Object.values(grads)]);
  return loss;
}
