import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MOCK_REPLY, type MockServer, mockTokenize, startMockOpenAI } from "../testing/mock-openai.js";
import {
  ChatApiError,
  fitToContext,
  listModels,
  normalizeAttention,
  type StreamEvent,
  streamChat,
  streamCompletion,
} from "./openai.js";
import { SseParser } from "./sse.js";

describe("SseParser", () => {
  it("reassembles events split at every possible byte boundary, CRLF and comments included", () => {
    const stream =
      ': keep-alive\r\ndata: {"a":1}\r\n\r\nevent: ping\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n';
    for (let cut = 0; cut <= stream.length; cut++) {
      const p = new SseParser();
      const events = [...p.push(stream.slice(0, cut)), ...p.push(stream.slice(cut)), ...p.end()];
      expect(events, `cut at ${cut}`).toEqual([
        { data: '{"a":1}' },
        { event: "ping", data: "line1\nline2" },
        { data: "[DONE]" },
      ]);
    }
  });

  it("flushes a last event that lacks its blank line", () => {
    const p = new SseParser();
    expect(p.push("data: x")).toEqual([]);
    expect(p.end()).toEqual([{ data: "x" }]);
  });
});

describe("streamChat against an OpenAI-compatible server", () => {
  let mock: MockServer;
  beforeAll(async () => {
    mock = await startMockOpenAI({ tokenDelayMs: 2 });
  });
  afterAll(() => mock.close());

  it("lists models", async () => {
    expect(await listModels({ baseUrl: mock.url })).toEqual(["mock-moby"]);
    // a base URL ending in /v1 (as the openai package takes it) works too
    expect(await listModels({ baseUrl: `${mock.url}/v1/` })).toEqual(["mock-moby"]);
  });

  it("streams deltas that add up to the reply, with logprobs, finish reason and usage", async () => {
    const events: StreamEvent[] = [];
    for await (const ev of streamChat({
      baseUrl: mock.url,
      model: "mock-moby",
      messages: [{ role: "user", content: "hi" }],
      sampling: { temperature: 0.7, top_p: 0.9, top_k: 20, max_tokens: 12, seed: 7 },
      topLogprobs: 5,
    }))
      events.push(ev);
    const deltas = events.filter((e) => e.type === "delta");
    const expected = mockTokenize(MOCK_REPLY).slice(0, 12);
    expect(deltas.map((d) => d.content)).toEqual(expected);
    expect(deltas.flatMap((d) => d.logprobs.map((l) => l.token))).toEqual(expected);
    for (const d of deltas) expect(d.logprobs[0].top_logprobs).toHaveLength(5);
    expect(events.find((e) => e.type === "finish")).toEqual({ type: "finish", reason: "length" });
    expect(events.at(-1)).toEqual({
      type: "usage",
      usage: { prompt_tokens: 10, completion_tokens: 12, total_tokens: 22 },
    });
    expect(mock.stats.lastBody).toMatchObject({
      stream: true,
      temperature: 0.7,
      top_p: 0.9,
      top_k: 20,
      max_tokens: 12,
      seed: 7,
      logprobs: true,
      top_logprobs: 5,
      stream_options: { include_usage: true },
    });
  });

  it("streams a plain-text continuation from /v1/completions with legacy logprobs", async () => {
    const events: StreamEvent[] = [];
    for await (const ev of streamCompletion({
      baseUrl: mock.url,
      model: "mock-moby",
      prompt: "Call me",
      sampling: { max_tokens: 6, temperature: 0 },
      topLogprobs: 3,
    }))
      events.push(ev);
    const deltas = events.filter((e) => e.type === "delta");
    expect(deltas.map((d) => d.content)).toEqual(mockTokenize(MOCK_REPLY).slice(0, 6));
    const first = deltas[0].logprobs[0];
    expect(first.token).toBe("Call");
    expect(first.top_logprobs.map((t) => t.token)).toEqual(["Call", " the", " a"]);
    expect(events.find((e) => e.type === "finish")).toEqual({ type: "finish", reason: "length" });
    expect(mock.stats.lastBody).toMatchObject({
      prompt: "Call me",
      logprobs: 3,
      max_tokens: 6,
      stream: true,
    });
  });

  it("abort closes the connection: the server sees a cancelled stream", async () => {
    const slow = await startMockOpenAI({ tokenDelayMs: 30 });
    try {
      const ctrl = new AbortController();
      let got = "";
      const run = async () => {
        for await (const ev of streamChat({
          baseUrl: slow.url,
          model: "m",
          messages: [{ role: "user", content: "hi" }],
          signal: ctrl.signal,
        })) {
          if (ev.type === "delta") got += ev.content;
          if (got.length > 10) ctrl.abort();
        }
      };
      const err = await run().then(
        () => undefined,
        (e) => e,
      );
      expect(err).toBeInstanceOf(ChatApiError);
      expect((err as ChatApiError).kind).toBe("aborted");
      expect(got.length).toBeLessThan(MOCK_REPLY.length);
      await expect.poll(() => slow.stats.cancelled, { timeout: 2000 }).toBe(1);
      expect(slow.stats.completed).toBe(0);
    } finally {
      await slow.close();
    }
  });

  it("turns overload, context-too-long and a dead server into readable errors", async () => {
    const first = async (content: string, baseUrl = mock.url) => {
      try {
        for await (const _ of streamChat({ baseUrl, model: "m", messages: [{ role: "user", content }] }))
          break;
      } catch (e) {
        return e as ChatApiError;
      }
      throw new Error("expected an error");
    };
    const busy = await first("/429");
    expect(busy.status).toBe(429);
    expect(busy.retryAfterSeconds).toBe(2);
    expect(busy.message).toMatch(/busy.*try again in 2 s.*queue is full/);
    const long = await first("/toolong");
    expect(long.status).toBe(400);
    expect(long.message).toMatch(/too long.*9000 tokens.*512/);
    const down = await first("hi", "http://127.0.0.1:9");
    expect(down.kind).toBe("network");
    expect(down.message).toMatch(/Cannot reach the server at http:\/\/127\.0\.0\.1:9/);
  });
});

describe("fitToContext", () => {
  it("leaves requests alone when the context length is unknown", () => {
    expect(fitToContext("abc", 500, undefined)).toEqual({ prompt: "abc", maxTokens: 500 });
  });
  it("caps max_tokens at the context and keeps the prompt's tail within the room left", () => {
    const text = "x".repeat(100) + "Call me Ishmael.";
    expect(fitToContext(text, 200, 64)).toEqual({ prompt: text.slice(-32), maxTokens: 64 });
    expect(fitToContext(text, 10, 64)).toEqual({ prompt: text.slice(-54), maxTokens: 10 });
    expect(fitToContext("short", 10, 64)).toEqual({ prompt: "short", maxTokens: 10 });
    // cuts between code points, never inside a surrogate pair
    expect(fitToContext("🐋🐋🐋", 2, 4)).toEqual({ prompt: "🐋🐋", maxTokens: 2 });
  });
});

describe("normalizeAttention", () => {
  const head = [
    [1, 0],
    [0.25, 0.75],
  ];
  it("accepts layers of heads, {heads}, flat heads, a batch dimension and `attentions`", () => {
    const want = { tokens: ["a", "b"], layers: [[head]] };
    expect(normalizeAttention({ tokens: ["a", "b"], layers: [[head]] })).toEqual(want);
    expect(normalizeAttention({ tokens: ["a", "b"], layers: [{ heads: [head] }] })).toEqual(want);
    expect(normalizeAttention({ tokens: ["a", "b"], layers: [[[1, 0, 0.25, 0.75]]] })).toEqual(want);
    expect(normalizeAttention({ tokens: ["a", "b"], attentions: [[[head]]] })).toEqual(want);
  });
  it("reads @typeformer/serve's shape: {id, text} tokens, weights under `attentions`, `layers` = indices", () => {
    expect(
      normalizeAttention({
        object: "attention",
        tokens: [
          { id: 5, text: "a" },
          { id: 9, text: "b" },
        ],
        num_layers: 1,
        num_heads: 1,
        layers: [0],
        heads: [0],
        attentions: [[head]],
      }),
    ).toEqual({ tokens: ["a", "b"], layers: [[head]] });
  });
  it("rejects an empty answer with a readable error", () => {
    expect(() => normalizeAttention({ tokens: [], layers: [] })).toThrow(/no tokens or no layers/);
  });
});
