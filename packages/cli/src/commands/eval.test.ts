import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { initBackend } from "@typeformer/core";
import { evaluatePerplexity } from "@typeformer/eval";
import { type CausalLM, createModel } from "@typeformer/models";
import { CharTokenizer } from "@typeformer/tokenizer";
import { afterAll, expect, it, vi } from "vitest";
import { runCli } from "../program.js";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

it("typeformer eval: perplexity equals the library's, tasks and bias land in eval.json / eval.md", async () => {
  await initBackend({ backend: "cpu" });
  const dir = await mkdtemp(path.join(tmpdir(), "tf-cli-eval-"));
  dirs.push(dir);
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:?!'-+=*\n";
  const tok = CharTokenizer.fromText(alphabet);
  const model = createModel<CausalLM>(
    { modelType: "gpt2", preset: "tiny", vocabSize: tok.vocabSize, maxPositions: 32 },
    { seed: 4 },
  );
  model.tokenizer = tok as unknown as CausalLM["tokenizer"];
  const modelDir = path.join(dir, "model");
  await model.save(modelDir);
  const text =
    "The whale rose out of the grey sea at dawn. The captain stood alone on the windy deck. " +
    "Nobody could remember the name of that old ship. We sailed for many days without any land.";
  await writeFile(path.join(dir, "held.txt"), text);
  const want = evaluatePerplexity(model, tok, text, { stride: 8 });
  model.dispose();
  const logs: string[] = [];
  vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void logs.push(a.join(" ")));
  vi.spyOn(process.stderr, "write").mockImplementation(() => true);
  const out = path.join(dir, "report");
  const code = await runCli([
    "node",
    "typeformer",
    "eval",
    modelDir,
    "--text",
    path.join(dir, "held.txt"),
    "--stride",
    "8",
    "--task",
    "cloze,strings-mc,facts,bias",
    "--limit",
    "3",
    "--shots",
    "1",
    "--backend",
    "cpu",
    "--out",
    out,
  ]);
  vi.restoreAllMocks();
  expect(code).toBe(0);
  const report = JSON.parse(await readFile(path.join(out, "eval.json"), "utf8"));
  expect(report.perplexity.tokens).toBe(want.tokens);
  expect(Math.abs(report.perplexity.nll - want.nll) / want.nll).toBeLessThan(1e-5);
  expect(report.tasks.map((t: { task: string }) => t.task)).toEqual(["cloze", "strings-mc", "facts"]);
  expect(report.tasks[0].n).toBe(3);
  expect(report.bias.rows.length).toBeGreaterThan(10);
  const md = await readFile(path.join(out, "eval.md"), "utf8");
  expect(md).toContain("bits per byte");
  expect(md).toContain("Limits:");
  expect(logs.join("\n")).toMatch(/perplexity \d+\.\d+, \d+\.\d+ bits\/byte/);
});
