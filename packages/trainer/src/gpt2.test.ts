import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { initBackend, tf } from "@typeformer/core";
import { type CausalLM, createModel, fromPretrained } from "@typeformer/models";
import { assertClose } from "@typeformer/test-utils";
import { afterAll, beforeAll, expect, it } from "vitest";
import { RHYME, TestCharTokenizer } from "./__fixtures__/char-tokenizer.js";
import { prepareDataset, TokenWindowSampler } from "./dataset.js";
import { CausalLMObjective } from "./objectives.js";
import { Trainer } from "./trainer.js";

let root: string;
beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  root = await mkdtemp(path.join(tmpdir(), "tf-gpt2-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function run(runDir: string, steps: number, resume: boolean, dataDir: string, vocab: number) {
  const model = createModel<CausalLM>(
    {
      modelType: "gpt2",
      preset: "tiny",
      vocabSize: vocab,
      residDropout: 0.1,
      attnDropout: 0.1,
      embdDropout: 0.1,
    },
    { seed: resume ? 99 : 3 }, // a resumed run must not depend on the fresh init
  );
  const train = await TokenWindowSampler.open(dataDir, "train", { batchSize: 4, windowLength: 17, seed: 1 });
  const val = await TokenWindowSampler.open(dataDir, "val", { batchSize: 4, windowLength: 17, seed: 2 });
  const losses: number[] = [];
  const t = new Trainer({
    model,
    objective: new CausalLMObjective(model),
    train,
    val,
    steps,
    lr: { maxLr: 1e-2, warmupSteps: 2, decaySteps: 8 }, // same schedule for the 4-step first half
    optimizer: { weightDecay: 0.1, beta2: 0.99 },
    gradClip: 1,
    evalEvery: 4,
    evalBatches: 2,
    runDir,
    checkpointEvery: 4,
    resume,
    seed: 5,
    callbacks: { onStep: (m) => void losses.push(m.loss) },
  });
  const report = await t.train();
  t.dispose();
  train.close();
  val.close();
  return { model, losses, report };
}

it("trains a GPT-2 with dropout, resumes exactly, and its checkpoint loads with fromPretrained", async () => {
  const tok = new TestCharTokenizer(RHYME);
  const data = path.join(root, "data");
  await prepareDataset({ text: RHYME }, tok, data);
  const full = await run(path.join(root, "full"), 8, false, data, tok.vocabSize);
  expect(full.losses.at(-1)!).toBeLessThan(full.losses[0] - 0.3);
  const part = path.join(root, "part");
  const first = await run(part, 4, false, data, tok.vocabSize);
  first.model.dispose();
  // continue the same run to 8 steps from its step-4 checkpoint
  const second = await run(part, 8, true, data, tok.vocabSize);
  expect([...first.losses, ...second.losses]).toEqual(full.losses);
  const loaded = await fromPretrained<CausalLM>(path.join(root, "full", "checkpoints", "step-00000008"));
  const ids = tf.tensor2d([[1, 2, 3, 4, 5, 6]], [1, 6], "int32");
  const a = full.model.forward(ids).logits;
  const b = loaded.forward(ids).logits;
  assertClose(b, a, { atol: 1e-6, label: "logits of the reloaded checkpoint" });
  tf.dispose([ids, a, b]);
  loaded.dispose();
  full.model.dispose();
  second.model.dispose();
  expect(full.report.parameters).toBeGreaterThan(0);
});
