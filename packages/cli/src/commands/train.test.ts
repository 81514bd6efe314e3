import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runCli } from "../program.js";

describe("typeformer train", () => {
  afterEach(() => vi.restoreAllMocks());

  it("rejects unknown config keys naming the closest valid key", async () => {
    const err: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => {
      err.push(String(s));
      return true;
    });
    expect(await runCli(["node", "typeformer", "train", "--preset", "moby-dick", "--set", "setps=3"])).toBe(
      2,
    );
    expect(err.join("")).toContain('unknown key "setps"; did you mean "steps"?');
    expect(await runCli(["node", "typeformer", "train", "--preset", "moby-dik"])).toBe(2);
    expect(err.join("")).toContain('unknown preset "moby-dik"; did you mean "moby-dick"?');
  });

  it("trains a tiny GPT on a text file, prints plain progress lines (not a TTY), checkpoints and samples", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "tf-cli-train-"));
    const corpus = path.join(dir, "corpus.txt");
    await writeFile(corpus, "Call me Ishmael. Some years ago, never mind how long precisely. ".repeat(20));
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => {
      lines.push(a.join(" "));
    });
    const runDir = path.join(dir, "run");
    const code = await runCli([
      "node",
      "typeformer",
      "train",
      "--corpus",
      corpus,
      "--steps",
      "4",
      "--batch-size",
      "2",
      "--context-length",
      "16",
      "--backend",
      "wasm",
      "--run-dir",
      runDir,
      "--set",
      'model={"modelType":"gpt2","preset":"micro"}',
      "--set",
      "evalEvery=2",
      "--set",
      "evalBatches=1",
      "--set",
      'sample={"prompt":"Call","tokens":10,"count":1}',
    ]);
    expect(code).toBe(0);
    const out = lines.join("\n");
    expect(out).toMatch(/step 2\/4 loss \d+\.\d+ .* val \d+\.\d+ \(ppl/);
    expect(out).toMatch(/done: 4 steps/);
    expect(out).toMatch(/--- sample 1 \(temperature 0\.8\) ---\nCall/);
    expect(await readdir(path.join(runDir, "checkpoints"))).toContain("step-00000004");
    await rm(dir, { recursive: true, force: true });
  });
});
