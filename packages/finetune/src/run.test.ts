import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { initBackend, SafetensorsFile } from "@typeformer/core";
import { type CausalLM, createModel } from "@typeformer/models";
import { CHAT_SPECIAL_TOKENS, CharTokenizer } from "@typeformer/tokenizer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FinetuneOptions, runFinetune } from "./run.js";

let root: string;
let base: string;
let data: string;
beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  root = await mkdtemp(path.join(tmpdir(), "tf-ftrun-"));
  const tok = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyz0123456789 +=?\n", {
    specialTokens: [...CHAT_SPECIAL_TOKENS, "<|endoftext|>"],
    eosToken: "<|endoftext|>",
  });
  const model = createModel<CausalLM>(
    {
      modelType: "gpt2",
      preset: "tiny",
      vocabSize: tok.vocabSize,
      maxPositions: 32,
      residDropout: 0,
      embdDropout: 0,
      attnDropout: 0,
    },
    { seed: 1 },
  );
  model.tokenizer = tok;
  base = path.join(root, "base");
  await model.save(base);
  model.dispose();
  const lines: string[] = [];
  for (let i = 0; i < 30; i++) {
    lines.push(
      JSON.stringify({
        messages: [
          { role: "user", content: `${i % 6}+1=?` },
          { role: "assistant", content: String((i % 6) + 1) },
        ],
      }),
    );
  }
  lines.splice(5, 0, '{"messages": "oops"}');
  data = path.join(root, "data.jsonl");
  await writeFile(data, `${lines.join("\n")}\n`);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("runFinetune", () => {
  const opts = (outDir: string, steps: number, resume = false): FinetuneOptions => ({
    base,
    data,
    task: "chat",
    method: "lora",
    outDir,
    steps,
    batchSize: 4,
    lr: 5e-3,
    evalEvery: 2,
    evalBatches: 1,
    checkpointEvery: 2,
    resume,
    skipBadLines: true,
    samplePrompts: ["2+1=?"],
    sampleTokens: 4,
    lora: { r: 2, dropout: 0.1 },
  });

  it("LoRA chat run: PEFT adapter out, report, samples, skipped lines; resume continues exactly", async () => {
    const full: number[] = [];
    const r = await runFinetune({
      ...opts(path.join(root, "a"), 6),
      callbacks: { onStep: (m) => void full.push(m.loss) },
    });
    expect(r.skippedLines).toEqual([{ line: 6, problem: expect.stringMatching(/messages/) }]);
    expect(r.steps).toBe(6);
    expect(r.trainableShare).toBeGreaterThan(0);
    expect(r.trainableShare).toBeLessThan(0.2);
    expect(r.samplesBefore).toHaveLength(1);
    expect(r.valMetric?.name).toBe("exact_match");
    const cfg = JSON.parse(await readFile(path.join(r.output, "adapter_config.json"), "utf8"));
    expect(cfg).toMatchObject({ peft_type: "LORA", r: 2, task_type: "CAUSAL_LM", fan_in_fan_out: true });
    const f = await SafetensorsFile.open(path.join(r.output, "adapter_model.safetensors"));
    expect(f.names()).toContain("base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight");
    await f.close();

    // the same run killed after step 4 (cancelled; checkpoint at 4), then resumed to 6
    const dir2 = path.join(root, "c");
    const first: number[] = [];
    const ac = new AbortController();
    const err = await runFinetune({
      ...opts(dir2, 6),
      signal: ac.signal,
      callbacks: {
        onStep: (m) => {
          first.push(m.loss);
          if (m.step === 4) ac.abort();
        },
      },
    }).catch((e) => e);
    expect(String(err)).toMatch(/cancelled at step 4/);
    expect(first).toEqual(full.slice(0, 4));
    const second: number[] = [];
    await runFinetune({ ...opts(dir2, 6, true), callbacks: { onStep: (m) => void second.push(m.loss) } });
    expect(second).toHaveLength(2);
    for (let i = 0; i < 2; i++) expect(second[i]).toBeCloseTo(full[4 + i], 6);
  }, 60_000);
});
