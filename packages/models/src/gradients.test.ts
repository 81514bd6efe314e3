import { Random, tf } from "@typeformer/core";
import { describeEachBackend } from "@typeformer/test-utils";
import { expect, it } from "vitest";
import { type CausalLM, createModel, type EncoderModel, type Seq2SeqLM } from "./index.js";

/** Every trainable parameter receives a finite, non-zero gradient from a cross-entropy loss. */
function checkGrads(model: { namedParameters(): Map<string, tf.Variable> }, loss: () => tf.Scalar): void {
  const params = model.namedParameters();
  const { value, grads } = tf.variableGrads(loss, [...params.values()]);
  expect(Number.isFinite(value.dataSync()[0])).toBe(true);
  for (const [name, v] of params) {
    const g = grads[v.name];
    expect(g, name).toBeDefined();
    expect(g.shape, name).toEqual(v.shape);
    const norm = tf.tidy(() => tf.norm(g).dataSync()[0]);
    expect(Number.isFinite(norm) && norm > 0, `${name} grad norm ${norm}`).toBe(true);
  }
  tf.dispose([value, ...Object.values(grads)]);
}

function xent(logits: tf.Tensor, targets: number[][]): tf.Scalar {
  const V = logits.shape[logits.shape.length - 1];
  const flat = tf.reshape(logits, [-1, V]);
  const t = tf.oneHot(tf.tensor1d(targets.flat(), "int32"), V);
  return tf.losses.softmaxCrossEntropy(t, flat) as tf.Scalar;
}

describeEachBackend("gradients", () => {
  it("reach every parameter of gpt2 and llama (training mode, dropout on)", () => {
    for (const modelType of ["gpt2", "llama"]) {
      const model = createModel<CausalLM>({ modelType, preset: "tiny" }, { seed: 3 });
      const ids = tf.tensor2d(
        [
          [1, 2, 3, 4],
          [5, 6, 7, 8],
        ],
        undefined,
        "int32",
      );
      const rng = new Random(0);
      checkGrads(model, () =>
        xent(model.forward(ids, { training: true, rng }).logits, [
          [2, 3, 4, 5],
          [6, 7, 8, 9],
        ]),
      );
      ids.dispose();
      model.dispose();
    }
  });

  it("reach a tied head's embedding in eval mode too, after inference cached the transposed head", () => {
    const model = createModel<CausalLM>({ modelType: "gpt2", preset: "tiny" }, { seed: 4 });
    const ids = tf.tensor2d([[1, 2, 3, 4]], undefined, "int32");
    tf.dispose(model.forward(ids).logits); // builds the inference-time transposed copy of wte
    checkGrads(model, () => xent(model.forward(ids).logits, [[2, 3, 4, 5]]));
    ids.dispose();
    model.dispose();
  });

  it("reach every parameter of bert (MLM + classifier) and t5", () => {
    const bert = createModel<EncoderModel>({ modelType: "bert", preset: "tiny" }, { seed: 3 });
    const ids = tf.tensor2d(
      [
        [1, 2, 3, 4],
        [5, 6, 7, 8],
      ],
      undefined,
      "int32",
    );
    checkGrads(
      bert,
      () =>
        tf.add(
          xent(bert.mlmLogits(ids), [
            [2, 3, 4, 5],
            [6, 7, 8, 9],
          ]),
          xent(bert.classify(ids), [[1], [2]]),
        ) as tf.Scalar,
    );
    bert.dispose();
    const t5 = createModel<Seq2SeqLM>({ modelType: "t5", preset: "tiny" }, { seed: 3 });
    const dec = tf.tensor2d(
      [
        [0, 4, 5],
        [0, 6, 7],
      ],
      undefined,
      "int32",
    );
    checkGrads(t5, () =>
      xent(t5.forward(ids, dec).logits, [
        [4, 5, 1],
        [6, 7, 1],
      ]),
    );
    tf.dispose([ids, dec]);
    t5.dispose();
  });
});
