import { initBackend, tf } from "@typeformer/core";
import { createModel, type Seq2SeqLM } from "@typeformer/models";
import { CharTokenizer } from "@typeformer/tokenizer";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { beamSearchSeq2Seq } from "./beam.js";
import { generateSeq2Seq } from "./seq2seq.js";
import { createServer, listen } from "./server.js";

describe("encoder-decoder generation (tiny T5, wasm)", () => {
  let t5: Seq2SeqLM;
  const tok = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyz .,");
  beforeAll(async () => {
    await initBackend({ backend: "wasm" });
    t5 = createModel({ modelType: "t5", preset: "tiny", vocabSize: tok.vocabSize }, { seed: 4 }) as Seq2SeqLM;
  });
  afterAll(() => t5.dispose());

  it("KV-cached greedy decoding equals uncached greedy (1-beam search); no leaks", async () => {
    const input = tok.encode("translate this");
    await generateSeq2Seq(t5, tok, input, { maxTokens: 3, sampling: { temperature: 0 } }); // warm caches
    const before = tf.memory().numTensors;
    const r = await generateSeq2Seq(t5, tok, input, { maxTokens: 12, sampling: { temperature: 0 } });
    const [ref] = beamSearchSeq2Seq(t5, input, { numBeams: 1, maxTokens: 12 });
    const refIds = ref.finished ? ref.tokenIds.slice(0, -1) : ref.tokenIds;
    expect(r.tokenIds).toEqual(refIds);
    expect(r.text).toBe(tok.decode(refIds));
    expect(tf.memory().numTensors).toBe(before);
    const beam = await generateSeq2Seq(t5, tok, input, { maxTokens: 10, numBeams: 3 });
    const [top] = beamSearchSeq2Seq(t5, input, { numBeams: 3, maxTokens: 10 });
    expect(beam.tokenIds).toEqual(top.finished ? top.tokenIds.slice(0, -1) : top.tokenIds);
    expect(beam.finishReason).toBe(top.finished ? "stop" : "length");
    const a = await generateSeq2Seq(t5, tok, input, { maxTokens: 10, sampling: { seed: 3 } });
    const b = await generateSeq2Seq(t5, tok, input, { maxTokens: 10, sampling: { seed: 3 } });
    expect(a.tokenIds).toEqual(b.tokenIds);
  });

  it("served through /v1/completions (sampling and best_of beams); chat is a 400", async () => {
    const srv = await listen(createServer({ models: [{ id: "t5", model: t5, tokenizer: tok }] }), {
      port: 0,
    });
    try {
      const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "none", maxRetries: 0 });
      const list = await client.models.list();
      expect(list.data[0]).toMatchObject({ id: "t5", family: "encoder-decoder" });
      const greedy = await client.completions.create({
        model: "t5",
        prompt: "hello",
        max_tokens: 8,
        temperature: 0,
      });
      const direct = await generateSeq2Seq(t5, tok, tok.encode("hello"), {
        maxTokens: 8,
        sampling: { temperature: 0 },
      });
      expect(greedy.choices[0].text).toBe(direct.text);
      const beams = await client.completions.create({
        model: "t5",
        prompt: "hello",
        max_tokens: 8,
        best_of: 3,
      });
      const [best] = beamSearchSeq2Seq(t5, tok.encode("hello"), { numBeams: 3, maxTokens: 8 });
      expect(beams.choices[0].text).toBe(
        tok.decode(best.finished ? best.tokenIds.slice(0, -1) : best.tokenIds),
      );
      // n of best_of: the n best distinct beams, best first
      const two = await client.completions.create({
        model: "t5",
        prompt: "hello",
        max_tokens: 8,
        best_of: 3,
        n: 2,
      });
      const top2 = beamSearchSeq2Seq(t5, tok.encode("hello"), {
        numBeams: 3,
        maxTokens: 8,
        numReturnSequences: 2,
      });
      expect(two.choices.map((c) => c.text)).toEqual(
        top2.map((h) => tok.decode(h.finished ? h.tokenIds.slice(0, -1) : h.tokenIds)),
      );
      expect(two.choices[0].text).toBe(beams.choices[0].text);
      const tooMany = await client.completions
        .create({ model: "t5", prompt: "hello", max_tokens: 8, best_of: 2, n: 3 })
        .catch((e) => e);
      expect(tooMany.status).toBe(400);
      expect(tooMany.message).toContain("received best_of 2, n 3");
      const stream = await client.completions.create({
        model: "t5",
        prompt: "hello",
        max_tokens: 8,
        temperature: 0,
        stream: true,
      });
      let text = "";
      for await (const ch of stream) text += ch.choices[0]?.text ?? "";
      expect(text).toBe(direct.text);
      const chat = await client.chat.completions
        .create({ model: "t5", messages: [{ role: "user", content: "x" }] })
        .catch((e) => e);
      expect(chat.status).toBe(400);
      expect(chat.message).toContain("encoder-decoder");
    } finally {
      await srv.close({ graceMs: 100 });
    }
  });
});
