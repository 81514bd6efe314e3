/**
 * A complete tiny training run (used by the resume test as a child process):
 *   tsx --conditions=source tiny-run.ts <runDir> <steps> [resume|fresh] [pauseAt]
 * Prints nothing; the run's metrics.jsonl holds the loss sequence. With `pauseAt`, the run stops after that
 * step's metrics line (before its checkpoint) and waits to be killed, so the kill lands on that step however
 * loaded the machine is.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { initBackend } from "@typeformer/core";
import { CausalLMObjective } from "../objectives.js";
import { prepareDataset, TokenWindowSampler } from "../dataset.js";
import { Trainer } from "../trainer.js";
import { RHYME, TestCharTokenizer } from "./char-tokenizer.js";
import { TinyLM } from "./tiny-model.js";

export async function tinyRun(runDir: string, steps: number, resume: boolean, extra: { pauseAt?: number } = {}) {
  await initBackend({ backend: (process.env.TINY_BACKEND as "wasm" | "cpu") ?? "wasm" });
  const tok = new TestCharTokenizer(RHYME);
  const data = path.join(runDir, "data");
  await mkdir(runDir, { recursive: true });
  if (!resume) await prepareDataset({ text: RHYME }, tok, data);
  const train = await TokenWindowSampler.open(data, "train", { batchSize: 4, windowLength: 17, seed: 7 });
  const val = await TokenWindowSampler.open(data, "val", { batchSize: 4, windowLength: 17, seed: 8 });
  const model = new TinyLM(tok.vocabSize, 16, 3, 0.1);
  const trainer = new Trainer({
    model,
    objective: new CausalLMObjective(model),
    train,
    val,
    steps,
    lr: { maxLr: 3e-2, minLr: 3e-3, warmupSteps: 3 },
    optimizer: { beta2: 0.99, weightDecay: 0.1 },
    gradClip: 1,
    gradAccumSteps: 2,
    seed: 11,
    evalEvery: 4,
    evalBatches: 2,
    runDir,
    checkpointEvery: 2,
    checkpoint: { keepLast: 2 },
    resume,
    callbacks: {
      onStep: async (m) => {
        if (extra.pauseAt !== undefined && m.step >= extra.pauseAt)
          await new Promise(() => setInterval(() => {}, 1000)); // never resolves: waits for SIGKILL
      },
    },
  });
  const report = await trainer.train();
  trainer.dispose();
  model.dispose();
  train.close();
  val.close();
  return report;
}

if (process.argv[1]?.endsWith("tiny-run.ts")) {
  const [runDir, steps, resume, pauseAt] = process.argv.slice(2);
  await tinyRun(runDir, Number(steps), resume === "resume", {
    pauseAt: pauseAt ? Number(pauseAt) : undefined,
  });
}
