import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { initBackend, tf } from "@typeformer/core";
import { type CausalLM, createModel, type EncoderModel } from "@typeformer/models";
import { CHAT_SPECIAL_TOKENS, CharTokenizer } from "@typeformer/tokenizer";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LoadedModel, loadModelDir } from "./load.js";
import { createServer, listen, type RunningServer } from "./server.js";

/** A saved tiny GPT-2 + char tokenizer directory, loaded back the way `typeformer serve` does. */
describe("serving a saved model directory (tiny GPT-2 + CharTokenizer, wasm)", () => {
  let dir: string;
  let loaded: LoadedModel;
  let srv: RunningServer;
  let client: OpenAI;

  beforeAll(async () => {
    await initBackend({ backend: "wasm" });
    dir = await mkdtemp(path.join(tmpdir(), "tf-serve-"));
    const tok = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ.,!?'\n", {
      specialTokens: [...CHAT_SPECIAL_TOKENS],
      eosToken: "<|endoftext|>",
    });
    const model = createModel(
      {
        modelType: "gpt2",
        vocabSize: tok.vocabSize,
        maxPositions: 64,
        hiddenSize: 32,
        numLayers: 2,
        numHeads: 4,
      },
      { seed: 7 },
    ) as CausalLM;
    model.tokenizer = tok;
    await model.save(path.join(dir, "tiny-chat"));
    model.dispose();
    loaded = await loadModelDir(path.join(dir, "tiny-chat"));
    srv = await listen(createServer({ models: [loaded] }), { port: 0 });
    client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "none", maxRetries: 0 });
  });
  afterAll(async () => {
    await srv?.close({ graceMs: 100 });
    loaded?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("loads with its tokenizer and serves a streamed chat reply", async () => {
    expect(loaded.id).toBe("tiny-chat");
    expect(loaded.family).toBe("decoder");
    const models = await client.models.list();
    expect(models.data[0]).toMatchObject({ id: "tiny-chat", max_model_len: 64 });
    const params = {
      model: "tiny-chat",
      messages: [
        { role: "system" as const, content: "be brief" },
        { role: "user" as const, content: "Hi" },
      ],
      max_tokens: 12,
      seed: 4,
      logprobs: true,
      top_logprobs: 5,
    };
    const whole = await client.chat.completions.create(params);
    const stream = await client.chat.completions.create({ ...params, stream: true });
    let text = "";
    const tokens: string[] = [];
    for await (const ch of stream) {
      text += ch.choices[0]?.delta.content ?? "";
      for (const t of ch.choices[0]?.logprobs?.content ?? []) {
        tokens.push(t.token);
        expect(t.top_logprobs).toHaveLength(5);
      }
    }
    expect(text).toBe(whole.choices[0].message.content);
    expect(tokens.join("")).toBe(text);
    // the prompt went through the tokenizer's chat template: 4 special tokens + text
    const prompt = loaded.tokenizer.encode(
      loaded.tokenizer.applyChatTemplate!(
        params.messages.map((m) => ({ role: m.role, content: m.content })),
        { addGenerationPrompt: true },
      ),
      { addSpecialTokens: false, allowedSpecial: "all" },
    );
    expect(whole.usage!.prompt_tokens).toBe(prompt.length);
  });

  it("a chat reply ends at the template's end-of-turn token", async () => {
    const end = loaded.tokenizer.specialTokens!["<|end|>"];
    const r = await client.chat.completions.create({
      model: "tiny-chat",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 10,
      logit_bias: { [end]: 100 },
    });
    expect(r.choices[0].finish_reason).toBe("stop");
    expect(r.choices[0].message.content).toBe("");
  });

  it("attention endpoint: causal rows that sum to 1, special tokens shown", async () => {
    const res = await fetch(`${srv.url}/v1/attention`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "tiny-chat",
        messages: [{ role: "user", content: "Hello there" }],
        add_generation_prompt: true,
      }),
    });
    expect(res.status).toBe(200);
    const j = await res.json();
    expect(j.num_layers).toBe(2);
    expect(j.num_heads).toBe(4);
    expect(j.tokens[0].text).toBe("<|user|>");
    const T = j.tokens.length;
    for (const layer of j.attentions) {
      for (const head of layer) {
        expect(head).toHaveLength(T);
        head.forEach((row: number[], q: number) => {
          expect(Math.abs(row.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-3);
          for (let k = q + 1; k < T; k++) expect(row[k]).toBe(0);
        });
      }
    }
  });

  it("no tensors leak across requests on the real model", async () => {
    const run = () =>
      Promise.all([
        client.completions.create({ model: "tiny-chat", prompt: "abc", max_tokens: 6 }),
        client.chat.completions.create({
          model: "tiny-chat",
          messages: [{ role: "user", content: "x" }],
          max_tokens: 6,
        }),
      ]);
    await run(); // warm lazily created model caches
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) await run();
    await srv.server.engines.get("tiny-chat")!.idle();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("embeddings from a saved BERT directory (wasm)", () => {
  it("mean-pooled vectors equal the model's own embed(); usage counts tokens", async () => {
    await initBackend({ backend: "wasm" });
    const dir = await mkdtemp(path.join(tmpdir(), "tf-serve-bert-"));
    const tok = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyz .", { padToken: "[PAD]" });
    const bert = createModel(
      {
        modelType: "bert",
        vocabSize: tok.vocabSize,
        hiddenSize: 32,
        numLayers: 2,
        numHeads: 4,
        intermediateSize: 64,
        maxPositions: 40,
      } as never,
      { seed: 1 },
    ) as EncoderModel;
    bert.tokenizer = tok;
    await bert.save(path.join(dir, "tiny-bert"));
    const loaded = await loadModelDir(path.join(dir, "tiny-bert"));
    const srv = await listen(createServer({ models: [loaded] }), { port: 0 });
    try {
      expect(loaded.family).toBe("encoder");
      const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "none", maxRetries: 0 });
      const inputs = ["a whale.", "call me ishmael"];
      const r = await client.embeddings.create({ model: "tiny-bert", input: inputs });
      expect(r.usage.prompt_tokens).toBe(inputs.join("").length);
      for (const [i, text] of inputs.entries()) {
        const ids = tok.encode(text);
        const expected = tf.tidy(
          () => bert.embed(tf.tensor2d([ids], undefined, "int32")).arraySync()[0],
        ) as number[];
        expect(r.data[i].embedding).toHaveLength(32);
        const diff = Math.max(...expected.map((x, j) => Math.abs(x - r.data[i].embedding[j])));
        expect(diff).toBeLessThan(1e-5); // padded batch vs alone: masked mean pooling
      }
      const chat = await client.chat.completions
        .create({ model: "tiny-bert", messages: [{ role: "user", content: "a" }] })
        .catch((e) => e);
      expect(chat.status).toBe(400);
    } finally {
      await srv.close({ graceMs: 100 });
      loaded.dispose();
      bert.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
