import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { initBackend, Random, tf } from "@typeformer/core";
import { createModel, type EncoderModel, type Seq2SeqLM } from "@typeformer/models";
import { afterAll, beforeAll, expect, it } from "vitest";
import { RHYME, TestCharTokenizer } from "./__fixtures__/char-tokenizer.js";
import { prepareDataset, TokenWindowSampler } from "./dataset.js";
import { MaskedLMObjective, SpanCorruptionObjective, type TokenBatch } from "./objectives.js";
import { Trainer } from "./trainer.js";
import type { Objective, TrainableModel } from "./types.js";

let root: string;
let data: string;
beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  root = await mkdtemp(path.join(tmpdir(), "tf-obj-"));
  data = path.join(root, "data");
  await prepareDataset({ text: RHYME }, new TestCharTokenizer(RHYME), data);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function trainFor(model: TrainableModel, objective: Objective<TokenBatch>, steps: number) {
  const train = await TokenWindowSampler.open(data, "train", { batchSize: 4, windowLength: 24, seed: 3 });
  const losses: number[] = [];
  const counts: number[] = [];
  const t = new Trainer({
    model,
    objective,
    train,
    steps,
    lr: { maxLr: 1e-2, warmupSteps: 1 },
    optimizer: { weightDecay: 0.01 },
    gradClip: 1,
    callbacks: {
      onStep: (m) => {
        losses.push(m.loss);
        counts.push(tf.memory().numTensors);
      },
    },
  });
  await t.train();
  t.dispose();
  train.close();
  return { losses, counts };
}

const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;

it("masked-LM objective trains a BERT (loss falls, no leaks)", async () => {
  const model = createModel<EncoderModel>(
    { modelType: "bert", preset: "tiny", hiddenDropout: 0.1 },
    { seed: 1 },
  );
  const obj = new MaskedLMObjective(model, {
    vocabSize: 97,
    maskTokenId: 96,
    specialTokenIds: [96],
    probability: 0.3,
  });
  const { losses, counts } = await trainFor(model, obj, 24);
  expect(new Set(counts.slice(1)).size).toBe(1);
  expect(mean(losses.slice(-6))).toBeLessThan(mean(losses.slice(0, 6)) - 0.5);
  model.dispose();
});

it("masked-LM loss and gradients over the gathered head equal the full-logits path (and mlmLogitsAt rows equal mlmLogits)", () => {
  const model = createModel<EncoderModel>({ modelType: "bert", preset: "tiny" }, { seed: 2 });
  const masking = { vocabSize: 97, maskTokenId: 96, specialTokenIds: [96], probability: 0.25 };
  const rng0 = new Random(5);
  const tokens = Int32Array.from({ length: 3 * 16 }, () => rng0.int(96));
  const lossMask = Uint8Array.from(tokens, (_, i) => (i % 7 === 3 ? 0 : 1));
  const batch: TokenBatch = { tokens, batchSize: 3, length: 16, lossMask };
  const vars = [...model.namedParameters().values()];
  const run = (gatherHead: boolean) => {
    const obj = new MaskedLMObjective(model, masking, { gatherHead });
    let count = 0;
    const { value, grads } = tf.variableGrads(() => {
      const r = obj.loss(batch, { training: true, rng: new Random(9) });
      count = r.count;
      return r.loss;
    }, vars);
    const out = {
      loss: value.dataSync()[0],
      count,
      grads: new Map(Object.entries(grads).map(([k, g]) => [k, Float32Array.from(g.dataSync())])),
    };
    value.dispose();
    tf.dispose(Object.values(grads));
    return out;
  };
  const before = tf.memory().numTensors;
  const full = run(false);
  const gathered = run(true);
  expect(tf.memory().numTensors).toBe(before);
  expect(gathered.count).toBe(full.count);
  expect(full.count).toBeGreaterThan(5);
  expect(full.count).toBeLessThan(30);
  expect(gathered.loss).toBeCloseTo(full.loss, 4);
  expect([...gathered.grads.keys()].sort()).toEqual([...full.grads.keys()].sort());
  expect(full.grads.size).toBeGreaterThan(10);
  for (const [k, b] of full.grads) {
    const a = gathered.grads.get(k)!;
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    expect(worst, k).toBeLessThan(1e-5);
  }
  // rows of the gathered logits are the full logits at those flat positions
  const ids = tf.tensor2d(tokens, [3, 16], "int32");
  const all = model.mlmLogits(ids);
  const at = model.mlmLogitsAt(ids, [0, 17, 47]);
  const ref = tf.gather(tf.reshape(all, [48, -1]), [0, 17, 47]);
  const d = tf.max(tf.abs(tf.sub(at, ref))).dataSync()[0];
  expect(d).toBeLessThan(1e-5);
  expect(() => model.mlmLogitsAt(ids, [48])).toThrow(/received 48/);
  tf.dispose([ids, all, at, ref]);
  model.dispose();
});

it("span-corruption objective trains a T5 (loss falls, no leaks)", async () => {
  const model = createModel<Seq2SeqLM>({ modelType: "t5", preset: "tiny" }, { seed: 1 });
  const obj = new SpanCorruptionObjective(model, { firstSentinelId: 96, eosTokenId: 1, padTokenId: 0 });
  const { losses, counts } = await trainFor(model, obj, 24);
  expect(new Set(counts.slice(1)).size).toBe(1);
  expect(mean(losses.slice(-6))).toBeLessThan(mean(losses.slice(0, 6)) - 0.5);
  model.dispose();
});
