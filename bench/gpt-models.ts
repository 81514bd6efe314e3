/**
 * The benchmarks' GPT as `@typeformer/models`' GPT-2 (same architecture as bench/gpt-tiny.ts and
 * bench/pytorch/gpt_bench.py: pre-LN, fused QKV, tanh-GELU, tied head, biases; dropout off).
 */
import { tf } from "@typeformer/core";
import { type CausalLM, createModel } from "@typeformer/models";
import type { TinyGptConfig } from "./gpt-tiny.js";

export interface BenchModel {
  readonly variables: tf.Variable[];
  loss(ids: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar;
  /** Greedy decode of `n` tokens from token 0 for `batch` rows with a KV cache. */
  decode(batch: number, n: number): void;
  dispose(): void;
}

export function modelsGpt2(cfg: TinyGptConfig, seed = 0): BenchModel {
  const model = createModel<CausalLM>(
    {
      modelType: "gpt2",
      vocabSize: cfg.vocab,
      maxPositions: cfg.ctx,
      hiddenSize: cfg.d,
      numLayers: cfg.layers,
      numHeads: cfg.heads,
      residDropout: 0,
      embdDropout: 0,
      attnDropout: 0,
    },
    { seed },
  );
  const variables = [...model.namedParameters().values()].filter((v) => v.trainable);
  return {
    variables,
    loss(ids, targets) {
      return tf.tidy(() => {
        const { logits } = model.forward(ids, { training: true });
        const flat = logits.reshape([-1, cfg.vocab]);
        return tf.losses.softmaxCrossEntropy(tf.oneHot(targets, cfg.vocab), flat) as tf.Scalar;
      });
    },
    decode(batch, n) {
      const cache = model.createCache(batch, n);
      let tok = tf.zeros([batch, 1], "int32") as tf.Tensor2D;
      for (let t = 0; t < n; t++) {
        const next = tf.tidy(() => {
          const { logits } = model.forward(tok, { cache });
          return logits.reshape([batch, cfg.vocab]).argMax(-1).reshape([batch, 1]).cast("int32");
        });
        tok.dispose();
        tok = next as tf.Tensor2D;
        tok.dataSync(); // the token is needed on the host each step (as a server streams it)
      }
      tok.dispose();
      (cache as { dispose(): void }).dispose();
    },
    dispose() {
      model.dispose();
    },
  };
}
