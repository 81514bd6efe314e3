import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { initBackend, tf } from "@typeformer/core";
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

it("span-corruption objective trains a T5 (loss falls, no leaks)", async () => {
  const model = createModel<Seq2SeqLM>({ modelType: "t5", preset: "tiny" }, { seed: 1 });
  const obj = new SpanCorruptionObjective(model, { firstSentinelId: 96, eosTokenId: 1, padTokenId: 0 });
  const { losses, counts } = await trainFor(model, obj, 24);
  expect(new Set(counts.slice(1)).size).toBe(1);
  expect(mean(losses.slice(-6))).toBeLessThan(mean(losses.slice(0, 6)) - 0.5);
  model.dispose();
});
