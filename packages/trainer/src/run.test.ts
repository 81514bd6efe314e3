import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { tf } from "@typeformer/core";
import type { CausalLM } from "@typeformer/models";
import { afterAll, expect, it } from "vitest";
import { RHYME } from "./__fixtures__/char-tokenizer.js";
import { readJsonl, type StepMetrics } from "./report.js";
import { runTraining, sampleText } from "./run.js";
import { parseRunConfig } from "./run-config.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

it("runTraining: char tokenizer → shards → GPT-2 → checkpoints/metrics/SVG/report, then --resume continues", async () => {
  const runDir = await mkdtemp(path.join(tmpdir(), "tf-run-"));
  dirs.push(runDir);
  const base = {
    corpus: { text: RHYME },
    tokenizer: "char",
    model: { modelType: "gpt2", preset: "tiny" },
    contextLength: 16,
    batchSize: 4,
    lr: 1e-2,
    warmupSteps: 1,
    decaySteps: 6,
    evalEvery: 2,
    evalBatches: 2,
    checkpointEvery: 2,
    backend: "wasm" as const,
    runDir,
  };
  const phases: string[] = [];
  const first = await runTraining(parseRunConfig({ ...base, steps: 4 }), { onPhase: (m) => phases.push(m) });
  expect(phases.join("\n")).toMatch(/\d+ train \/ \d+ validation tokens, vocabulary \d+/);
  expect(first.report.steps).toBe(4);
  first.model.dispose();
  const second = await runTraining(parseRunConfig({ ...base, steps: 6 }), {}, true);
  expect(second.report.steps).toBe(6);
  const metrics = await readJsonl<StepMetrics>(path.join(runDir, "metrics.jsonl"));
  expect(metrics.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6]);
  expect(metrics.filter((m) => m.valLoss !== undefined).map((m) => m.step)).toEqual([2, 4, 6]);
  const files = await readdir(runDir);
  for (const f of [
    "metrics.jsonl",
    "loss-curve.svg",
    "report.json",
    "run-config.json",
    "data",
    "checkpoints",
  ]) {
    expect(files).toContain(f);
  }
  const ck = await readdir(second.checkpoint!);
  for (const f of [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "trainer-state.json",
    "trainer-state.safetensors",
  ]) {
    expect(ck).toContain(f);
  }
  // special ids in the saved config belong to the char vocabulary, not GPT-2's 50256
  const hfConfig = JSON.parse(await readFile(path.join(second.checkpoint!, "config.json"), "utf8"));
  for (const key of ["bos_token_id", "eos_token_id"]) {
    const id = hfConfig[key];
    expect(id === null || (Number.isInteger(id) && id < hfConfig.vocab_size), `${key} = ${id}`).toBe(true);
  }
  const report = JSON.parse(await readFile(path.join(runDir, "report.json"), "utf8"));
  expect(report.tokensSeen).toBe(6 * 4 * 16);
  const before = tf.memory().numTensors;
  const samples = sampleText(second.model as CausalLM, second.tokenizer, {
    prompt: "Mary",
    tokens: 20,
    count: 2,
  });
  expect(tf.memory().numTensors).toBe(before);
  expect(samples).toHaveLength(2);
  for (const s of samples) {
    expect(s.startsWith("Mary")).toBe(true);
    expect([...s].length).toBe(24);
  }
  second.model.dispose();
});

it("runTraining: an unknown model config key names the closest field", async () => {
  const runDir = await mkdtemp(path.join(tmpdir(), "tf-run-"));
  dirs.push(runDir);
  const cfg = parseRunConfig({
    corpus: { text: RHYME },
    model: { modelType: "gpt2", preset: "micro", numLayer: 2 },
    backend: "wasm",
    runDir,
  });
  await expect(runTraining(cfg)).rejects.toThrow(
    'unknown key "model.numLayer" for gpt2; did you mean "model.numLayers"?',
  );
});

it("runTraining with a BPE tokenizer trained on the corpus (bpe:N) writes it beside the shards", async () => {
  const runDir = await mkdtemp(path.join(tmpdir(), "tf-run-"));
  dirs.push(runDir);
  const cfg = parseRunConfig({
    corpus: { text: RHYME.repeat(3) },
    tokenizer: "bpe:300",
    model: { modelType: "gpt2", preset: "micro" },
    contextLength: 8,
    batchSize: 2,
    steps: 2,
    evalEvery: 2,
    evalBatches: 1,
    backend: "wasm",
    runDir,
  });
  const r = await runTraining(cfg);
  expect(r.tokenizer.vocabSize).toBeLessThanOrEqual(300);
  expect(r.tokenizer.decode(r.tokenizer.encode("Mary had a little lamb"))).toBe("Mary had a little lamb");
  expect(await readdir(path.join(runDir, "data"))).toContain("tokenizer.json");
  expect(r.report.steps).toBe(2);
  r.model.dispose();
});
