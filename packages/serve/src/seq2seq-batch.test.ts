import { initBackend, tf } from "@typeformer/core";
import { createModel, type Seq2SeqLM } from "@typeformer/models";
import { CharTokenizer } from "@typeformer/tokenizer";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GenerationEngine } from "./engine.js";
import { generateSeq2Seq } from "./seq2seq.js";
import { seq2seqAsCausal } from "./seq2seq-batch.js";
import { createServer, listen } from "./server.js";

describe("encoder-decoder continuous batching (tiny T5, wasm)", () => {
  let t5: Seq2SeqLM;
  const tok = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyz .,");
  const prompts = ["translate this", "hi", "a longer sentence, with commas", "xyz", "batch me too"];
  beforeAll(async () => {
    await initBackend({ backend: "wasm" });
    t5 = createModel(
      { modelType: "t5", preset: "tiny", vocabSize: tok.vocabSize, maxPositions: 128 },
      { seed: 4 },
    ) as Seq2SeqLM;
  });
  afterAll(() => t5.dispose());

  /** Log-probabilities of `ids` given `input`, from one uncached teacher-forced forward pass. */
  function fullRecompute(input: number[], ids: number[]): number[] {
    return tf.tidy(() => {
      const dec = [t5.decoderStartTokenId, ...ids.slice(0, -1)];
      const { logits } = t5.forward(
        tf.tensor2d([input], undefined, "int32"),
        tf.tensor2d([dec], undefined, "int32"),
      );
      const lp = tf.logSoftmax(logits).arraySync()[0]; // (T, V)
      return ids.map((id, t) => lp[t][id]);
    });
  }

  it("batched greedy decoding (ragged prompts, rows leaving and joining) equals one request at a time and full recompute; no leaks", async () => {
    const engine = new GenerationEngine({
      model: seq2seqAsCausal(t5),
      tokenizer: tok,
      maxBatch: 3, // 5 requests: two wait for a slot and join a running batch
      prefillBatch: 2,
    });
    const reqs = prompts.map((p, i) => ({
      promptIds: tok.encode(p),
      maxTokens: 6 + 3 * i, // rows finish at different steps
      sampling: { temperature: 0 },
      ignoreEos: true,
      logprobs: 0,
    }));
    await engine.generate({ ...reqs[0], maxTokens: 2 }); // warm kernels
    const before = tf.memory().numTensors;
    const batched = await Promise.all(reqs.map((r) => engine.generate(r)));
    expect(tf.memory().numTensors).toBe(before);
    for (const [i, r] of batched.entries()) {
      const alone = await generateSeq2Seq(t5, tok, reqs[i].promptIds, {
        maxTokens: reqs[i].maxTokens,
        sampling: { temperature: 0 },
      });
      // the one-at-a-time path stops at EOS; the batch ignores it, so compare the common prefix
      expect(r.tokenIds.slice(0, alone.tokenIds.length), prompts[i]).toEqual(alone.tokenIds);
      expect(r.tokenIds).toHaveLength(reqs[i].maxTokens);
      const ref = fullRecompute(reqs[i].promptIds, r.tokenIds);
      r.logprobs!.forEach((l, t) => {
        expect(Math.abs(l.logprob - ref[t]), `${prompts[i]} step ${t}`).toBeLessThan(1e-4);
      });
    }
    await engine.close();
  });

  it("seeded sampling and cancellation come from the engine unchanged", async () => {
    const engine = new GenerationEngine({ model: seq2seqAsCausal(t5), tokenizer: tok, maxBatch: 4 });
    const req = {
      promptIds: tok.encode("hello there"),
      maxTokens: 12,
      sampling: { seed: 5 },
      ignoreEos: true,
    };
    const [a, b] = await Promise.all([engine.generate(req), engine.generate(req)]);
    expect(a.tokenIds).toEqual(b.tokenIds);
    const alone = await engine.generate(req);
    expect(alone.tokenIds).toEqual(a.tokenIds);
    const ac = new AbortController();
    const gen = engine.submit({ ...req, maxTokens: 100, signal: ac.signal });
    let n = 0;
    for await (const _ of gen) if (++n === 3) ac.abort();
    const r = await gen.result;
    expect(r.finishReason).toBe("cancelled");
    expect(r.tokenIds.length).toBeLessThan(100);
    await engine.close();
  });

  it("the server batches concurrent completions of an encoder-decoder model, with log-probabilities; no leaks", async () => {
    const srv = await listen(createServer({ models: [{ id: "t5", model: t5, tokenizer: tok }] }), {
      port: 0,
    });
    try {
      const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "none", maxRetries: 0 });
      const ask = (prompt: string) =>
        client.completions.create({ model: "t5", prompt, max_tokens: 10, temperature: 0, logprobs: 1 });
      await ask("warm up");
      const before = tf.memory().numTensors;
      const out = await Promise.all(prompts.map(ask));
      expect(tf.memory().numTensors).toBe(before);
      for (const [i, r] of out.entries()) {
        const alone = await generateSeq2Seq(t5, tok, tok.encode(prompts[i]), {
          maxTokens: 10,
          sampling: { temperature: 0 },
        });
        expect(r.choices[0].text, prompts[i]).toBe(alone.text);
        expect(r.choices[0].logprobs?.token_logprobs).toHaveLength(alone.tokenIds.length);
        expect(r.usage?.prompt_tokens).toBe(tok.encode(prompts[i]).length);
      }
      const model = await client.models.retrieve("t5");
      expect(model).toMatchObject({ family: "encoder-decoder", max_model_len: 128 }); // the model's n_positions
      const metrics = await (await fetch(`${srv.url}/metrics`)).text();
      const stat = (k: string) =>
        Number(new RegExp(`typeformer_decode_batch_size_${k}\\{model="t5"\\} (\\S+)`).exec(metrics)?.[1]);
      expect(stat("sum") / stat("count")).toBeGreaterThan(1); // decode steps ran several requests at once
    } finally {
      await srv.close();
    }
  });

  it("a model whose cache cannot be batched is a typed error", () => {
    const bad = seq2seqAsCausal({ ...t5, createCache: () => ({ dispose() {} }) } as never);
    expect(() => bad.createCache(1, 8)).toThrow(/removeRows\/concatRows/);
  });
});
