import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { initBackend } from "@typeformer/core";
import { type CausalLM, createModel } from "@typeformer/models";
import { GenerationEngine } from "@typeformer/serve";
import { CharTokenizer } from "@typeformer/tokenizer";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { runCli } from "../program.js";

describe("typeformer generate", () => {
  let dir: string;
  let model: CausalLM;
  const tok = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyz ", { eosToken: "<|endoftext|>" });
  beforeAll(async () => {
    await initBackend({ backend: "wasm" });
    dir = await mkdtemp(path.join(tmpdir(), "tf-cli-gen-"));
    model = createModel(
      {
        modelType: "gpt2",
        vocabSize: tok.vocabSize,
        maxPositions: 64,
        hiddenSize: 32,
        numLayers: 2,
        numHeads: 4,
      },
      { seed: 9 },
    ) as CausalLM;
    model.tokenizer = tok;
    await model.save(dir);
  });
  afterAll(async () => {
    model.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it("streams the same greedy text as the engine, prompt first", async () => {
    const expected = await new GenerationEngine({ model, tokenizer: tok }).generate({
      promptIds: tok.encode("call me"),
      maxTokens: 12,
      sampling: { temperature: 0 },
    });
    let out = "";
    const spy = vi.spyOn(process.stdout, "write").mockImplementation(((chunk: string, cb?: () => void) => {
      out += chunk;
      if (typeof cb === "function") cb();
      return true;
    }) as typeof process.stdout.write);
    try {
      const code = await runCli([
        "node",
        "typeformer",
        "generate",
        dir,
        "--prompt",
        "call me",
        "-n",
        "12",
        "-t",
        "0",
        "--backend",
        "wasm",
      ]);
      expect(code).toBe(0);
    } finally {
      spy.mockRestore();
    }
    expect(out).toBe(`call me${expected.text}\n`);
  });
});
