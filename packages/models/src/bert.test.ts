import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Random, tf } from "@typeformer/core";
import { assertClose, describeEachBackend, expectNoLeaks, maxAbsDiff } from "@typeformer/test-utils";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type BertConfig, configFromHF, createModel, type EncoderModel, fromPretrained } from "./index.js";

const dir = path.join(import.meta.dirname, "__fixtures__", "bert-tiny");
const expected = JSON.parse(readFileSync(path.join(dir, "expected.json"), "utf8"));

describeEachBackend("bert-tiny", () => {
  let model: EncoderModel;
  let ids: tf.Tensor2D;
  let opts: { attentionMask: tf.Tensor2D; tokenTypeIds: tf.Tensor2D };
  beforeAll(async () => {
    model = await fromPretrained<EncoderModel>(dir);
    ids = tf.tensor2d(expected.input_ids, undefined, "int32");
    opts = {
      attentionMask: tf.tensor2d(expected.attention_mask, undefined, "int32"),
      tokenTypeIds: tf.tensor2d(expected.token_type_ids, undefined, "int32"),
    };
  });
  afterAll(() => {
    tf.dispose([ids, opts.attentionMask, opts.tokenTypeIds]);
    model.dispose();
  });

  it("reproduces hidden states, MLM logits, classifier logits and mean pooling (max |Δ| ≤ 1e-4)", () => {
    const { hidden } = model.encode(ids, opts);
    const mlm = model.mlmLogits(ids, opts);
    const cls = model.classify(ids, opts);
    const emb = model.embed(ids, opts);
    for (const [label, got, want] of [
      ["hidden", hidden, expected.hidden],
      ["mlm", mlm, expected.mlm_logits],
      ["classifier", cls, expected.classifier_logits],
      ["mean-pooled", emb, expected.mean_pooled],
    ] as const) {
      console.log(`bert-tiny ${label} max |Δ| = ${maxAbsDiff(got, want).toExponential(2)}`);
      assertClose(got, want, { atol: 1e-4, rtol: 0, label });
    }
    tf.dispose([hidden, mlm, cls, emb]);
  });

  it("does not leak tensors", async () => {
    tf.dispose(model.mlmLogits(ids, opts)); // warm-up: cached transposed decoder
    await expectNoLeaks(() => {
      const r = model.encode(ids, { ...opts, outputAttentions: true });
      tf.dispose([r.hidden, ...(r.attentions ?? [])]);
      tf.dispose([
        model.mlmLogits(ids, opts),
        model.classify(ids, opts),
        model.embed(ids, { ...opts, normalize: true }),
      ]);
    });
  });

  it("save then fromPretrained round-trips bit-exact; a checkpoint without heads loads as a bare encoder", async () => {
    const tmp = await mkdtemp(path.join(tmpdir(), "tf-models-bert-"));
    try {
      await model.save(tmp);
      const reread = await fromPretrained<EncoderModel>(tmp);
      for (const [k, v] of model.namedParameters())
        expect(reread.namedParameters().get(k)!.dataSync(), k).toEqual(v.dataSync());
      const cfg = JSON.parse(readFileSync(path.join(tmp, "config.json"), "utf8"));
      expect(Object.keys(cfg.id2label)).toHaveLength(3);
      expect(cfg.hidden_act).toBe("gelu");
      reread.dispose();
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it("classifier_pooling mean: the pooler reads PyTorch's mean-pooled states (max |Δ| ≤ 1e-4), no leaks", async () => {
    const mean = createModel<EncoderModel>({ ...(model.config as BertConfig), classifierPooling: "mean" });
    try {
      for (const [k, v] of model.namedParameters()) mean.namedParameters().get(k)!.assign(v);
      const p = model.namedParameters();
      const want = tf.tidy(() => {
        const pooled = tf.tanh(
          tf.add(
            tf.matMul(tf.tensor2d(expected.mean_pooled), p.get("bert.pooler.dense.weight")!),
            p.get("bert.pooler.dense.bias")!,
          ),
        );
        return tf.add(tf.matMul(pooled, p.get("classifier.weight")!), p.get("classifier.bias")!);
      });
      const got = mean.classify(ids, opts);
      assertClose(got, want, { atol: 1e-4, rtol: 0, label: "mean-pooled classifier" });
      const cls = model.classify(ids, opts);
      expect(maxAbsDiff(got, cls.arraySync() as number[][])).toBeGreaterThan(1e-3); // a different read-out
      tf.dispose([want, got, cls]);
      await expectNoLeaks(() => {
        tf.dispose(mean.classify(ids, { ...opts, training: true, rng: new Random(1) }));
      });
    } finally {
      mean.dispose();
    }
  });

  it("classifier_pooling is read from and written to config.json; other values are typed errors", () => {
    const c = configFromHF({ model_type: "bert", classifier_pooling: "mean" }) as BertConfig;
    expect(c.classifierPooling).toBe("mean");
    expect(() => configFromHF({ model_type: "bert", classifier_pooling: "max" })).toThrow(
      /classifier_pooling = "max" is not supported/,
    );
  });

  it("rejects bad inputs with typed errors", () => {
    const bad = tf.tensor2d([[1, 2]], undefined, "int32");
    expect(() => model.encode(ids, { attentionMask: bad })).toThrow(/attentionMask must be \(2, 8\)/);
    bad.dispose();
  });
});
