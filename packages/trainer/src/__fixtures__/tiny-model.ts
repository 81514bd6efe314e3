import { type Random, tf } from "@typeformer/core";

/**
 * A tiny causal LM for tests: embedding (V, D) → dropout → tanh MLP → logits (V). Satisfies
 * CausalLMLike and TrainableModel; its parameter names follow HF conventions so the decay rule applies.
 */
export class TinyLM {
  readonly params = new Map<string, tf.Variable>();
  constructor(
    readonly vocabSize: number,
    readonly dim = 16,
    seed = 1,
    readonly dropout = 0,
  ) {
    let s = seed;
    const rnd = () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s / 4294967296 - 0.5;
    };
    const mk = (name: string, shape: number[], scale: number) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const init = tf.tensor(Float32Array.from({ length: n }, () => rnd() * scale), shape);
      this.params.set(name, tf.variable(init, true, undefined, "float32"));
      init.dispose();
    };
    mk("wte.weight", [vocabSize, dim], 0.5);
    mk("mlp.c_fc.weight", [dim, dim], 0.5);
    mk("mlp.c_fc.bias", [dim], 0.1);
    mk("lm_head.weight", [dim, vocabSize], 0.5);
  }

  namedParameters(): Map<string, tf.Variable> {
    return this.params;
  }

  forward(ids: tf.Tensor2D, opts: { training?: boolean; rng?: Random } = {}): { logits: tf.Tensor3D } {
    const logits = tf.tidy(() => {
      const [b, t] = ids.shape;
      const p = (n: string) => this.params.get(n)!;
      let h = tf.gather(p("wte.weight"), tf.reshape(ids, [-1])) as tf.Tensor2D;
      if (opts.training && this.dropout > 0) {
        const keep = 1 - this.dropout;
        const mask = Float32Array.from({ length: h.size }, () => (opts.rng!.float() < keep ? 1 / keep : 0));
        h = tf.mul(h, tf.tensor(mask, h.shape)) as tf.Tensor2D;
      }
      const z = tf.tanh(tf.add(tf.matMul(h, p("mlp.c_fc.weight")), p("mlp.c_fc.bias")));
      const logits = tf.matMul(tf.add(z, h), p("lm_head.weight"));
      return tf.reshape(logits, [b, t, this.vocabSize]) as tf.Tensor3D;
    });
    return { logits };
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
  }
}
