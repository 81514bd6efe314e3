import { initBackend, isTypeformerError, tf } from "@typeformer/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeCausalLM, FakeCharTokenizer } from "./__fixtures__/fake-model.js";
import { type GenerateRequest, GenerationEngine } from "./engine.js";

describe("GenerationEngine (fake model, wasm)", () => {
  let model: FakeCausalLM;
  const tok = new FakeCharTokenizer();
  beforeAll(async () => {
    await initBackend({ backend: "wasm" });
    model = new FakeCausalLM(tok.vocabSize, 96);
  });
  afterAll(() => model.dispose());

  const reqs: GenerateRequest[] = [
    { promptIds: tok.encode("hello"), maxTokens: 20, sampling: { temperature: 0 }, ignoreEos: true },
    { promptIds: tok.encode("a longer prompt here"), maxTokens: 25, sampling: { seed: 1 }, ignoreEos: true },
    { promptIds: tok.encode("x"), maxTokens: 10, sampling: { seed: 2, topP: 0.9 }, ignoreEos: true },
    { promptIds: tok.encode("the whale"), maxTokens: 30, sampling: { seed: 3, topK: 5 }, ignoreEos: true },
    { promptIds: tok.encode("Q"), maxTokens: 15, sampling: { seed: 4, temperature: 0.7, minP: 0.05 } },
    { promptIds: tok.encode("abc abc"), maxTokens: 18, sampling: { seed: 5, frequencyPenalty: 0.5 } },
  ];

  it("same seed gives the same text alone and batched; batched steps share the model call", async () => {
    const engine = new GenerationEngine({ model, tokenizer: tok, maxBatch: 8 });
    const before = tf.memory().numTensors;
    const alone = [];
    for (const r of reqs) alone.push(await engine.generate(r));
    expect(tf.memory().numTensors).toBe(before);
    model.forwardCalls = [];
    const batched = await Promise.all(reqs.map((r) => engine.generate(r)));
    expect(tf.memory().numTensors).toBe(before);
    for (let i = 0; i < reqs.length; i++) {
      expect(batched[i].text).toBe(alone[i].text);
      expect(batched[i].tokenIds).toEqual(alone[i].tokenIds);
      expect(batched[i].finishReason).toBe(alone[i].finishReason);
    }
    expect(Math.max(...model.forwardCalls)).toBe(reqs.length); // all six decoded in one step
    expect(alone[0].finishReason).toBe("length");
    expect(alone[0].completionTokens).toBe(20);
    expect(alone[0].promptTokens).toBe(5);
  });

  it("warmup decodes throwaway tokens without observer hooks, leaks or changing later results", async () => {
    const seen: string[] = [];
    const observer = {
      onFirstToken: () => seen.push("first"),
      onInterToken: () => seen.push("inter"),
      onStep: () => seen.push("step"),
      onFinish: () => seen.push("finish"),
    };
    const fresh = new GenerationEngine({ model, tokenizer: tok, seed: 7, maxContext: 40 });
    const expected = [await fresh.generate(reqs[1]), await fresh.generate({ ...reqs[0], sampling: {} })];
    const engine = new GenerationEngine({ model, tokenizer: tok, seed: 7, observer, maxContext: 40 });
    const before = tf.memory().numTensors;
    model.forwardCalls = [];
    await engine.warmup(100); // 39 + 39 + 22 tokens: three sequences of at most maxContext - 1
    expect(model.forwardCalls.length).toBe(100); // one prefill + (n - 1) decode steps per sequence
    expect(seen).toEqual([]);
    expect(engine.activeCount).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    await engine.warmup(0);
    const after = [await engine.generate(reqs[1]), await engine.generate({ ...reqs[0], sampling: {} })];
    expect(after.map((r) => r.tokenIds)).toEqual(expected.map((r) => r.tokenIds));
    expect(seen).toContain("step");
    await expect(engine.warmup(-1)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await engine.close();
    await expect(engine.warmup()).rejects.toMatchObject({ code: "SHUTTING_DOWN" });
  });

  it("streams deltas whose concatenation is the final text; stop strings end generation", async () => {
    const engine = new GenerationEngine({ model, tokenizer: tok });
    const full = await engine.generate({ ...reqs[1], maxTokens: 25 });
    const stop = full.text.slice(6, 8);
    const gen = engine.submit({ ...reqs[1], stop: [stop] });
    let streamed = "";
    for await (const e of gen) streamed += e.text;
    const r = await gen.result;
    expect(streamed).toBe(r.text);
    expect(r.finishReason).toBe("stop");
    expect(r.text).toBe(full.text.slice(0, full.text.indexOf(stop)));
  });

  it("new requests join a running batch between steps", async () => {
    const engine = new GenerationEngine({ model, tokenizer: tok });
    model.forwardCalls = [];
    const first = engine.submit({ ...reqs[0], maxTokens: 40 });
    let joined: Promise<unknown> | undefined;
    let n = 0;
    for await (const _ of first) {
      if (++n === 5) joined = engine.generate({ ...reqs[2] });
    }
    await joined;
    const alone = await engine.generate({ ...reqs[2] });
    expect(((await joined) as { text: string }).text).toBe(alone.text);
    expect(model.forwardCalls).toContain(2);
  });

  it("cancellation frees the row and every tensor at the next step", async () => {
    const engine = new GenerationEngine({ model, tokenizer: tok });
    const before = tf.memory().numTensors;
    const ac = new AbortController();
    const a = engine.submit({ ...reqs[0], maxTokens: 80, signal: ac.signal });
    const b = engine.submit({ ...reqs[1], maxTokens: 60 });
    let n = 0;
    for await (const _ of a) if (++n === 3) ac.abort();
    const ra = await a.result;
    expect(ra.finishReason).toBe("cancelled");
    expect(ra.completionTokens).toBeLessThan(6);
    expect(engine.activeCount).toBe(1);
    const rb = await b.result;
    expect(rb.finishReason).toBe("length");
    await engine.idle();
    expect(tf.memory().numTensors).toBe(before);
    // breaking out of the iterator cancels too
    const c = engine.submit({ ...reqs[0], maxTokens: 80 });
    for await (const _ of c) break;
    expect((await c.result).finishReason).toBe("cancelled");
    await engine.idle();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("bounded queue: LIMIT_EXCEEDED with retryAfterSeconds when full", async () => {
    const engine = new GenerationEngine({ model, tokenizer: tok, maxBatch: 2, maxQueue: 1 });
    const gens = [0, 1, 2].map(() => engine.submit({ ...reqs[0] }));
    try {
      engine.submit({ ...reqs[0] });
      expect.unreachable();
    } catch (e) {
      expect(isTypeformerError(e, "LIMIT_EXCEEDED")).toBe(true);
      expect((e as { details: { retryAfterSeconds: number } }).details.retryAfterSeconds).toBeGreaterThan(0);
    }
    await Promise.all(gens.map((g) => g.result));
  });

  it("a cancelled request leaves the queue at once, even while the batch is full", async () => {
    const engine = new GenerationEngine({ model, tokenizer: tok, maxBatch: 1, maxQueue: 4 });
    const running = engine.submit({ ...reqs[0], maxTokens: 60 });
    const ac = new AbortController();
    const queued = engine.submit({ ...reqs[1], signal: ac.signal });
    let n = 0;
    let queuedDoneAt = -1;
    void queued.result.then(() => {
      queuedDoneAt = n;
    });
    for await (const _ of running) {
      n++;
      if (n === 3) ac.abort();
    }
    expect((await queued.result).finishReason).toBe("cancelled");
    expect(queuedDoneAt).toBeGreaterThan(0);
    expect(queuedDoneAt).toBeLessThan(10);
    expect((await running.result).completionTokens).toBe(60);
  });

  it("an exception inside the loop fails those generations and the engine keeps serving", async () => {
    class Exploding extends FakeCharTokenizer {
      override createStreamDecoder() {
        let n = 0;
        return {
          push: (id: number) => {
            if (++n === 3) throw new Error("decoder exploded");
            return this.decode([id]);
          },
          flush: () => "",
        };
      }
    }
    const engine = new GenerationEngine({ model, tokenizer: new Exploding() });
    const before = tf.memory().numTensors;
    const r = await engine.generate({ ...reqs[0], maxTokens: 10 });
    expect(r.finishReason).toBe("error");
    expect(String(r.error)).toContain("decoder exploded");
    await engine.idle();
    expect(tf.memory().numTensors).toBe(before);
    const ok = await engine.generate({ ...reqs[0], maxTokens: 2 }); // same engine, still serving
    expect(ok.finishReason).toBe("length");
  });

  it("typed errors for bad requests", () => {
    const engine = new GenerationEngine({ model, tokenizer: tok });
    try {
      engine.submit({ promptIds: new Array(96).fill(1) });
      expect.unreachable();
    } catch (e) {
      expect(isTypeformerError(e, "CONTEXT_LENGTH_EXCEEDED")).toBe(true);
      expect((e as Error).message).toContain("96");
    }
    expect(() => engine.submit({ promptIds: [1], maxTokens: 0 })).toThrow(/max_tokens.*0/);
    expect(() => engine.submit({ promptIds: [1000] })).toThrow(/1000/);
    expect(() => engine.submit({ promptIds: [1], sampling: { temperature: -1 } })).toThrow(/temperature/);
  });

  it("logprobs with top alternatives per token", async () => {
    const engine = new GenerationEngine({ model, tokenizer: tok });
    const r = await engine.generate({ ...reqs[0], maxTokens: 4, logprobs: 5 });
    expect(r.logprobs).toHaveLength(4);
    for (const e of r.logprobs!) {
      expect(e.topLogprobs).toHaveLength(5);
      expect(e.topLogprobs![0].tokenId).toBe(e.tokenId); // greedy: the chosen is the most likely
      expect(e.logprob).toBeLessThanOrEqual(0);
    }
  });
});
