import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { initBackend, isTypeformerError, tf } from "@typeformer/core";
import { type CausalLM, createModel, type EncoderModel } from "@typeformer/models";
import { expectNoLeaks } from "@typeformer/test-utils";
import { CHAT_SPECIAL_TOKENS, CharTokenizer } from "@typeformer/tokenizer";
import { Trainer } from "@typeformer/trainer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseExamples, readExamples } from "./data.js";
import { applyLrGroups, freezeParameters, loraObjective, loraTrainable } from "./freeze.js";
import { LoraModel } from "./lora.js";
import {
  type ClassificationBatch,
  ClassificationObjective,
  collateMasked,
  ExampleBatches,
  encodeChat,
  MaskedCausalLMObjective,
  type MaskedSequence,
} from "./tasks.js";

let root: string;
beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  root = await mkdtemp(path.join(tmpdir(), "tf-ft-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 +=?\n";
const tok = CharTokenizer.fromText(ALPHABET, { specialTokens: [...CHAT_SPECIAL_TOKENS] });

describe("JSONL data", () => {
  it("a malformed line is a typed error naming the file, the line and the problem", async () => {
    const file = path.join(root, "bad.jsonl");
    await writeFile(
      file,
      [
        '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}',
        "",
        '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}',
        '{"prompt":"a"}',
        '{"text":"x","label":"spam"}',
        '{"foo":1}',
        '{"messages":[{"role":"robot","content":"x"}]}',
      ].join("\n"),
    );
    const err = await readExamples(file).catch((e) => e);
    expect(isTypeformerError(err, "DATA_INVALID")).toBe(true);
    expect(err.message).toMatch(
      new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:3: invalid JSON`),
    );
    expect(err.details).toMatchObject({ file, line: 3 });
    const r = await readExamples(file, { skipBadLines: true, kinds: ["chat", "completion"] });
    expect(r.examples).toHaveLength(1);
    expect(r.skipped.map((s) => s.line)).toEqual([3, 4, 5, 6, 7]);
    expect(r.skipped[1].problem).toMatch(/field completion: Required/);
    expect(r.skipped[2].problem).toMatch(/a classification example, but this task takes chat or completion/);
    expect(r.skipped[3].problem).toMatch(/no known fields.*\["foo"\]/);
    expect(r.skipped[4].problem).toMatch(/messages\.0\.role/);
    expect(() => parseExamples('{"source":"a","target":""}\n', "x.jsonl")).toThrow(
      /x\.jsonl:1: field target/,
    );
    expect(() => parseExamples("\n\n", "empty.jsonl")).toThrow(/empty\.jsonl: no usable examples/);
    await expect(readExamples(path.join(root, "missing.jsonl"))).rejects.toThrow(
      /cannot read .*missing\.jsonl/,
    );
  });
});

describe("chat SFT loss mask", () => {
  it("marks exactly the assistant's content and end-of-turn tokens", () => {
    const messages = [
      { role: "system" as const, content: "be brief" },
      { role: "user" as const, content: "2+2=?" },
      { role: "assistant" as const, content: "4" },
      { role: "user" as const, content: "3+3=?" },
      { role: "assistant" as const, content: "6 ok" },
    ];
    const s = encodeChat(tok, messages);
    expect(s.ids).toEqual(tok.encode(tok.applyChatTemplate(messages), { allowedSpecial: "all" }));
    const trained = s.ids.filter((_, i) => s.mask[i] === 1);
    expect(tok.decode(trained)).toBe("4<|end|>\n6 ok<|end|>\n");
    const context = s.ids.filter((_, i) => s.mask[i] === 0);
    expect(tok.decode(context)).toBe(
      "<|system|>\nbe brief<|end|>\n<|user|>\n2+2=?<|end|>\n<|assistant|>\n<|user|>\n3+3=?<|end|>\n<|assistant|>\n",
    );
    // the causal objective counts exactly those targets
    const batch = collateMasked([s, encodeChat(tok, messages.slice(0, 3))]);
    expect(Array.from(batch.lossMask!).reduce((a, b) => a + b, 0)).toBe(trained.length + 3);
  });
});

function chatData(n: number): MaskedSequence[] {
  const out: MaskedSequence[] = [];
  for (let i = 0; i < n; i++) {
    const a = i % 5;
    const b = (i * 3) % 5;
    out.push(
      encodeChat(tok, [
        { role: "user", content: `${a}+${b}=?` },
        { role: "assistant", content: String(a + b) },
      ]),
    );
  }
  return out;
}

describe("training", () => {
  it("LoRA: base weights bit-identical after training steps, adapter learns, loss falls; no leaks", async () => {
    const model = createModel<CausalLM>(
      { modelType: "gpt2", preset: "tiny", vocabSize: tok.vocabSize },
      { seed: 4 },
    );
    const before = new Map(
      [...model.namedParameters()].map(([n, v]) => [n, (v.dataSync() as Float32Array).slice()]),
    );
    const lora = new LoraModel(model);
    lora.addAdapter("default", { r: 4, alpha: 8, dropout: 0.1, targetModules: ["c_attn", "c_fc"] });
    const data = new ExampleBatches(chatData(20), 4, (x) => collateMasked(x), 1);
    const losses: number[] = [];
    await expectNoLeaks(async () => {
      const t = new Trainer({
        model: loraTrainable(lora),
        objective: loraObjective(lora, new MaskedCausalLMObjective(model)),
        train: data,
        steps: 25,
        lr: { maxLr: 3e-2, warmupSteps: 0, minLr: 3e-2 },
        callbacks: { onStep: (m) => void losses.push(m.loss) },
      });
      expect(t.parameterCount).toBe(2 * (32 * 4 + 4 * 96) + 2 * (32 * 4 + 4 * 128));
      await t.train();
      t.dispose();
    });
    for (const [n, v] of model.namedParameters()) expect(v.dataSync()).toEqual(before.get(n));
    const b = lora.adapters.get("default")!.layers.get("h.0.attn.c_attn.weight")!.B;
    expect(Math.max(...(b.dataSync() as Float32Array).map(Math.abs))).toBeGreaterThan(1e-3);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-5))).toBeLessThan(mean(losses.slice(0, 5)) - 0.2);
    lora.dispose();
    model.dispose();
  });

  it("full fine-tuning with frozen layers and discriminative learning rates", async () => {
    const model = createModel<CausalLM>(
      { modelType: "gpt2", preset: "tiny", vocabSize: tok.vocabSize },
      { seed: 4 },
    );
    const trainable = freezeParameters(model, { freeze: [/^(wte|wpe)\./, /^h\.0\./] });
    expect(trainable).toContain("h.1.attn.c_attn.weight");
    expect(trainable).not.toContain("h.0.attn.c_attn.weight");
    expect(() => freezeParameters(model, { freeze: ["^transformer\\.nothing"] })).toThrow(
      /matches no parameter/,
    );
    const before = new Map(
      [...model.namedParameters()].map(([n, v]) => [n, (v.dataSync() as Float32Array).slice()]),
    );
    const t = new Trainer({
      model,
      objective: new MaskedCausalLMObjective(model),
      train: new ExampleBatches(chatData(12), 4, (x) => collateMasked(x), 1),
      steps: 3,
      lr: { maxLr: 1e-3, warmupSteps: 0, minLr: 1e-3 },
    });
    // head (ln_f) frozen via a zero lr group: discriminative rates reach the optimizer
    applyLrGroups(t.optimizer, [{ pattern: /^ln_f\./, scale: 0 }]);
    await t.train();
    expect(t.optimizer.t).toBe(3);
    t.dispose();
    for (const [n, v] of model.namedParameters()) {
      const same = (v.dataSync() as Float32Array).every((x, i) => x === before.get(n)![i]);
      if (/^(wte|wpe|ln_f)\.|^h\.0\./.test(n)) expect(same, n).toBe(true);
      else expect(same, n).toBe(false);
    }
    model.dispose();
  });

  it("classification objective trains a BERT head and predicts; no leaks", async () => {
    const model = createModel<EncoderModel>({ modelType: "bert", preset: "tiny", numLabels: 2 }, { seed: 2 });
    const items: ClassificationBatch[] = [];
    const rows: { ids: number[]; label: number }[] = [];
    for (let i = 0; i < 16; i++) rows.push({ ids: [1, 5 + (i % 2), 7, 2], label: i % 2 });
    const obj = new ClassificationObjective(model, { padTokenId: 0 });
    const src = new ExampleBatches(
      rows,
      8,
      (x) => ({ ids: x.map((r) => r.ids), labels: x.map((r) => r.label) }),
      3,
    );
    await expectNoLeaks(async () => {
      const t = new Trainer({
        model,
        objective: obj,
        train: src,
        steps: 15,
        lr: { maxLr: 3e-3, warmupSteps: 0, minLr: 3e-3 },
      });
      await t.train();
      t.dispose();
      for (const b of src.batches(2)) items.push(b);
      const pred = obj.predict(items[0]);
      expect(pred).toEqual(items[0].labels);
    });
    const state = src.getState();
    const a = src.next();
    src.setState(state);
    expect(src.next()).toEqual(a);
    model.dispose();
    expect(tf.memory().numTensors).toBeGreaterThanOrEqual(0);
  });
});
