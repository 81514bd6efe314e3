import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { isTypeformerError, Random, tf } from "@typeformer/core";
import { assertClose, describeEachBackend, f64 } from "@typeformer/test-utils";
import { afterAll, expect, it } from "vitest";
import { RHYME, TestCharTokenizer } from "./__fixtures__/char-tokenizer.js";
import { TinyLM } from "./__fixtures__/tiny-model.js";
import { tinyRun } from "./__fixtures__/tiny-run.js";
import { prepareDataset, TokenWindowSampler } from "./dataset.js";
import { crossEntropySum } from "./loss.js";
import { CausalLMObjective, type TokenBatch } from "./objectives.js";
import { readJsonl, type StepMetrics } from "./report.js";
import { Trainer, type TrainerOptions } from "./trainer.js";
import type { Objective } from "./types.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), "tf-trainer-"));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function rhymeData() {
  const tok = new TestCharTokenizer(RHYME);
  const dir = path.join(await tmp(), "data");
  await prepareDataset({ text: RHYME }, tok, dir);
  return { tok, dir };
}

function baseOptions(
  model: TinyLM,
  train: TokenWindowSampler,
  extra: Partial<TrainerOptions<TokenBatch>> = {},
): TrainerOptions<TokenBatch> {
  return {
    model,
    objective: new CausalLMObjective(model),
    train,
    steps: 10,
    lr: { maxLr: 3e-2, warmupSteps: 2 },
    optimizer: { weightDecay: 0.1, beta2: 0.99 },
    gradClip: 1,
    ...extra,
  };
}

describeEachBackend("crossEntropySum", () => {
  it("matches a float64 reference in value and gradient, ignoring masked rows", () => {
    const rng = new Random(3);
    const n = 5;
    const v = 7;
    const x = Array.from({ length: n }, () => Array.from({ length: v }, () => rng.normal() * 2));
    const targets = Int32Array.from([3, 0, 6, -100, 2]);
    const weights = Float32Array.from([1, 1, 1, 0, 1]);
    let ref = 0;
    const refGrad: number[][] = [];
    for (let i = 0; i < n; i++) {
      const m = Math.max(...x[i]);
      const z = x[i].reduce((a, b) => a + Math.exp(b - m), 0);
      if (weights[i]) ref += Math.log(z) + m - x[i][targets[i]];
      refGrad.push(x[i].map((xi, j) => weights[i] * (Math.exp(xi - m) / z - (j === targets[i] ? 1 : 0))));
    }
    const xt = tf.tensor2d(x);
    const before = tf.memory().numTensors;
    const { value, grads } = tf.valueAndGrads((a: tf.Tensor) =>
      crossEntropySum(a as tf.Tensor2D, targets, weights),
    )([xt]);
    assertClose(value, ref, { atol: 1e-5, label: "loss" });
    assertClose(grads[0], refGrad, { atol: 1e-6, label: "dloss/dlogits" });
    tf.dispose([value, ...grads]);
    expect(tf.memory().numTensors).toBe(before);
    xt.dispose();
    expect(f64.matmul([[1]], [[2]])[0][0]).toBe(2);
  });
});

describeEachBackend("Trainer", () => {
  it("lowers the loss of a tiny LM, keeps numTensors constant across steps, evaluates on fixed batches", async () => {
    const { tok, dir } = await rhymeData();
    const train = await TokenWindowSampler.open(dir, "train", { batchSize: 8, windowLength: 17, seed: 1 });
    const val = await TokenWindowSampler.open(dir, "val", { batchSize: 8, windowLength: 17, seed: 2 });
    const model = new TinyLM(tok.vocabSize, 16, 5);
    const counts: number[] = [];
    const steps: StepMetrics[] = [];
    const evals: number[] = [];
    const trainer = new Trainer(
      baseOptions(model, train, {
        val,
        steps: 40,
        evalEvery: 20,
        evalBatches: 3,
        callbacks: {
          onStep: (m) => {
            steps.push(m);
            counts.push(tf.memory().numTensors);
          },
          onEval: (e) => {
            evals.push(e.valLoss);
          },
        },
      }),
    );
    const e0 = trainer.evaluate()!;
    expect(trainer.evaluate()!.valLoss).toBe(e0.valLoss); // same fixed batches
    const report = await trainer.train();
    expect(new Set(counts.slice(1)).size).toBe(1);
    expect(steps[0].loss).toBeGreaterThan(Math.log(tok.vocabSize) - 1);
    expect(steps.at(-1)!.loss).toBeLessThan(steps[0].loss * 0.65);
    expect(evals).toHaveLength(2);
    expect(evals[1]).toBeLessThan(e0.valLoss * 0.75);
    expect(steps[0].tokens).toBe(8 * 16);
    expect(report.tokensSeen).toBe(40 * 8 * 16);
    expect(report.parameters).toBe(tok.vocabSize * 16 * 2 + 16 * 16 + 16);
    expect(report.flops).toBe(6 * report.parameters * report.tokensSeen);
    trainer.dispose();
    model.dispose();
    train.close();
    val.close();
  });

  it("gradient accumulation: 2 micro-batches of 2 give the update of one batch of 4 (loss normalised by all targets)", async () => {
    const { tok, dir } = await rhymeData();
    const results: Float32Array[] = [];
    const losses: number[] = [];
    for (const [batchSize, acc] of [
      [4, 1],
      [2, 2],
    ]) {
      const train = await TokenWindowSampler.open(dir, "train", { batchSize, windowLength: 9, seed: 4 });
      const model = new TinyLM(tok.vocabSize, 8, 9);
      const t = new Trainer(
        baseOptions(model, train, {
          steps: 3,
          gradAccumSteps: acc,
          callbacks: { onStep: (m) => void (acc === 1 && losses.push(m.loss)) },
        }),
      );
      await t.train();
      results.push(model.params.get("mlp.c_fc.weight")!.dataSync() as Float32Array);
      t.dispose();
      model.dispose();
      train.close();
    }
    assertClose(results[1], results[0], { atol: 2e-6, rtol: 1e-5, label: "weights after 3 steps" });
    expect(losses).toHaveLength(3);
  });

  it("a NaN loss stops the run with TRAINING_DIVERGED and keeps the last good checkpoint", async () => {
    const { tok, dir } = await rhymeData();
    const runDir = await tmp();
    const train = await TokenWindowSampler.open(dir, "train", { batchSize: 2, windowLength: 9 });
    const model = new TinyLM(tok.vocabSize, 8, 2);
    const inner = new CausalLMObjective(model);
    let calls = 0;
    const poisoned: Objective<TokenBatch> = {
      name: "poisoned",
      loss(b, ctx) {
        const r = inner.loss(b, ctx);
        if (++calls === 4) return { loss: tf.mul(r.loss, Number.NaN) as tf.Scalar, count: r.count };
        return r;
      },
    };
    const t = new Trainer({ ...baseOptions(model, train), objective: poisoned, runDir, checkpointEvery: 2 });
    const before = tf.memory().numTensors;
    const err = await t.train().catch((e) => e);
    expect(isTypeformerError(err, "TRAINING_DIVERGED")).toBe(true);
    expect(err.message).toMatch(/loss became NaN .* at step 4.*last good checkpoint is .*step-00000002/);
    expect(tf.memory().numTensors).toBe(before);
    const idx = JSON.parse(await readFile(path.join(runDir, "checkpoints", "checkpoints.json"), "utf8"));
    expect(idx.latest).toBe("step-00000002");
    t.dispose();
    model.dispose();
    train.close();
  });

  it("a full disk during a checkpoint write gives IO_ERROR and leaves the previous checkpoint intact", async () => {
    const { tok, dir } = await rhymeData();
    const runDir = await tmp();
    const train = await TokenWindowSampler.open(dir, "train", { batchSize: 2, windowLength: 9 });
    const model = new TinyLM(tok.vocabSize, 8, 2);
    const { writeFile } = await import("node:fs/promises");
    let failing = false;
    const io = {
      writeFile: async (file: string, data: string | Uint8Array) => {
        if (failing && file.endsWith(".safetensors")) {
          await writeFile(file, (data as Uint8Array).subarray(0, 100)); // partial write, then the disk is full
          throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
        }
        await writeFile(file, data);
      },
    };
    const t = new Trainer({
      ...baseOptions(model, train, { steps: 4 }),
      runDir,
      checkpointEvery: 2,
      io,
      callbacks: {
        onCheckpoint: () => {
          failing = true;
        },
      },
    });
    const err = await t.train().catch((e) => e);
    expect(isTypeformerError(err, "IO_ERROR")).toBe(true);
    expect(err.message).toMatch(
      /step-00000004 failed \(no space left on the device\).*previous checkpoint is intact/,
    );
    const ck = path.join(runDir, "checkpoints");
    expect((await readdir(ck)).sort()).toEqual(["checkpoints.json", "step-00000002"]);
    const idx = JSON.parse(await readFile(path.join(ck, "checkpoints.json"), "utf8"));
    expect(idx.latest).toBe("step-00000002");
    // and the intact checkpoint restores
    const model2 = new TinyLM(tok.vocabSize, 8, 99);
    const t2 = new Trainer({ ...baseOptions(model2, train, { steps: 4 }), runDir });
    expect(await t2.restore()).toBe(true);
    expect(t2.step).toBe(2);
    t.dispose();
    t2.dispose();
    model.dispose();
    model2.dispose();
    train.close();
  });
});

it("resume after SIGKILL at an arbitrary step reproduces the uninterrupted loss sequence exactly", async () => {
  const steps = 12;
  const full = await tmp();
  await tinyRun(full, steps, false);
  const ref = (await readJsonl<StepMetrics>(path.join(full, "metrics.jsonl"))).map((m) => [
    m.step,
    m.loss,
    m.valLoss,
  ]);
  expect(ref).toHaveLength(steps);

  const killed = await tmp();
  const repoRoot = path.join(here, "../../..");
  const script = path.join(here, "__fixtures__", "tiny-run.ts");
  // between checkpoints or right after one; the child pauses after this step's metrics line (before the
  // checkpoint of an even step), so the kill cannot miss it however slow this poll is under load
  const killAt = 5 + Math.floor(Math.random() * 4);
  await new Promise<void>((resolve, reject) => {
    // node itself (not the tsx wrapper, which would leave its node child running after SIGKILL)
    const child = spawn(
      process.execPath,
      ["--conditions=source", "--import", "tsx", script, killed, String(steps), "fresh", String(killAt)],
      {
        cwd: repoRoot,
        stdio: ["ignore", "ignore", "inherit"],
      },
    );
    const timer = setInterval(async () => {
      const m = await readJsonl<StepMetrics>(path.join(killed, "metrics.jsonl"));
      if (m.length >= killAt) {
        clearInterval(timer);
        child.kill("SIGKILL");
      }
    }, 5);
    child.on("exit", (_code, signal) => {
      clearInterval(timer);
      signal === "SIGKILL" ? resolve() : reject(new Error(`child ended without being killed (${signal})`));
    });
  });
  const partial = await readJsonl<StepMetrics>(path.join(killed, "metrics.jsonl"));
  expect(partial.length).toBeLessThan(steps);
  await tinyRun(killed, steps, true);
  const got = (await readJsonl<StepMetrics>(path.join(killed, "metrics.jsonl"))).map((m) => [
    m.step,
    m.loss,
    m.valLoss,
  ]);
  expect(got).toEqual(ref); // bit-exact on wasm/cpu (single-threaded, deterministic kernels)
  const svg = await readFile(path.join(killed, "loss-curve.svg"), "utf8");
  expect(svg).toMatch(/^<svg[^>]*>/);
  expect(svg).toContain("validation");
});
