import { request as httpRequest } from "node:http";
import { initBackend, TypeformerError, tf } from "@typeformer/core";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeCausalLM, FakeCharTokenizer, FakeEncoder } from "./__fixtures__/fake-model.js";
import { createServer, listen, type RunningServer } from "./server.js";

const KEY = "sk-test-123";

/** Polls until `cond` holds; the limit is generous because it only matters on a loaded machine. */
async function waitFor(cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * POSTs on a fresh, unpooled connection. For bodies over the server's limit: the server answers 413
 * without reading the body and @hono/node-server then drains the rest with a 500 ms wall-clock limit,
 * after which it destroys the socket. Sent through fetch's shared keep-alive pool, that socket could be
 * handed to a later request and fail it with UND_ERR_SOCKET ("other side closed") on a loaded machine.
 */
function postFresh(
  url: string,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = httpRequest(url, { method: "POST", headers, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        text += d;
      });
      res.on("end", () => {
        answered = true;
        resolve({ status: res.statusCode ?? 0, text });
        req.destroy();
      });
    });
    // the server may close the connection while the body is still being written: only an error
    // before a whole response arrived is a failure
    req.on("error", (e) => {
      if (!answered) reject(e);
    });
    req.end(body);
  });
}

/** Reads an SSE response body into its `data:` payloads. */
async function readSse(res: Response): Promise<string[]> {
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((b) => b.trim())
    .map((b) =>
      b
        .split("\n")
        .filter((l) => l.startsWith("data: "))
        .map((l) => l.slice(6))
        .join("\n"),
    );
}

describe("OpenAI-compatible server (fake models, wasm)", () => {
  const tok = new FakeCharTokenizer();
  let model: FakeCausalLM;
  let encoder: FakeEncoder;
  let srv: RunningServer;
  let client: OpenAI;
  let url: string;
  const headers = { "content-type": "application/json", authorization: `Bearer ${KEY}` };
  const post = (path: string, body: unknown, h: Record<string, string> = headers) =>
    fetch(`${url}${path}`, { method: "POST", headers: h, body: JSON.stringify(body) });

  beforeAll(async () => {
    await initBackend({ backend: "wasm" });
    model = new FakeCausalLM(tok.vocabSize, 96);
    encoder = new FakeEncoder(tok.vocabSize);
    const server = createServer({
      models: [
        { id: "fake-gpt", model, tokenizer: tok, engine: { maxBatch: 16, maxQueue: 64, maxTokensCap: 64 } },
        { id: "fake-bert", model: encoder, tokenizer: tok },
      ],
      apiKey: KEY,
      maxBodyBytes: 64 * 1024,
      cors: true,
    });
    srv = await listen(server, { port: 0 });
    url = srv.url;
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: KEY, maxRetries: 0, timeout: 30_000 });
  });
  afterAll(async () => {
    await srv.close({ graceMs: 100 });
    model.dispose();
    encoder.dispose();
  });

  it("binds loopback and lists models", async () => {
    expect(srv.host).toBe("127.0.0.1");
    const list = await client.models.list();
    expect(list.data.map((m) => m.id).sort()).toEqual(["fake-bert", "fake-gpt"]);
    const one = await client.models.retrieve("fake-gpt");
    expect(one.id).toBe("fake-gpt");
  });

  it("completion: greedy equals the engine's own output; usage counts tokens", async () => {
    const r = await client.completions.create({
      model: "fake-gpt",
      prompt: "hello",
      max_tokens: 12,
      temperature: 0,
    });
    const direct = await srv.server.engines.get("fake-gpt")!.generate({
      promptIds: tok.encode("hello"),
      maxTokens: 12,
      sampling: { temperature: 0 },
    });
    expect(r.object).toBe("text_completion");
    expect(r.choices[0].text).toBe(direct.text);
    expect(r.choices[0].finish_reason).toBe(direct.finishReason === "stop" ? "stop" : "length");
    expect(r.usage).toEqual({
      prompt_tokens: 5,
      completion_tokens: direct.completionTokens,
      total_tokens: 5 + direct.completionTokens,
    });
  });

  it("chat completion with logprobs and top-5 alternatives; n choices with seeds", async () => {
    const r = await client.chat.completions.create({
      model: "fake-gpt",
      messages: [{ role: "user", content: "hi there" }],
      max_tokens: 6,
      temperature: 0,
      logprobs: true,
      top_logprobs: 5,
      ignore_eos: true,
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(r.object).toBe("chat.completion");
    expect(r.choices[0].message.role).toBe("assistant");
    const lp = r.choices[0].logprobs!.content!;
    expect(lp).toHaveLength(6);
    expect(lp.map((t) => t.token).join("")).toBe(r.choices[0].message.content);
    for (const t of lp) {
      expect(t.top_logprobs).toHaveLength(5);
      expect(t.top_logprobs[0].token).toBe(t.token);
      expect(Math.abs(t.top_logprobs[0].logprob - t.logprob)).toBeLessThan(1e-9);
    }
    const n = await client.chat.completions.create({
      model: "fake-gpt",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 10,
      n: 3,
      seed: 11,
    });
    expect(n.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    const again = await client.chat.completions.create({
      model: "fake-gpt",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 10,
      n: 3,
      seed: 11,
    });
    expect(again.choices.map((c) => c.message.content)).toEqual(n.choices.map((c) => c.message.content));
  });

  it("streaming chat: stable id, role first, finish_reason last, usage chunk, [DONE]", async () => {
    const params = {
      model: "fake-gpt",
      messages: [{ role: "user" as const, content: "tell me" }],
      max_tokens: 20,
      seed: 5,
    };
    const whole = await client.chat.completions.create(params);
    const stream = await client.chat.completions.create({
      ...params,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const ch of stream) chunks.push(ch);
    const ids = new Set(chunks.map((c) => c.id));
    expect(ids.size).toBe(1);
    expect(chunks[0].choices[0].delta.role).toBe("assistant");
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    expect(text).toBe(whole.choices[0].message.content);
    const withChoices = chunks.filter((c) => c.choices.length > 0);
    expect(withChoices.at(-1)!.choices[0].finish_reason).toBe(whole.choices[0].finish_reason);
    expect(withChoices.slice(0, -1).every((c) => c.choices[0].finish_reason === null)).toBe(true);
    const usage = chunks.at(-1)!;
    expect(usage.choices).toEqual([]);
    expect(usage.usage).toEqual(whole.usage);
    // raw wire check: ends with [DONE]
    const res = await post("/v1/chat/completions", { ...params, stream: true });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const events = await readSse(res);
    expect(events.at(-1)).toBe("[DONE]");
  });

  it("embeddings from the encoder (base64 and float); 400 for a decoder model", async () => {
    const r = await client.embeddings.create({ model: "fake-bert", input: ["abc", "hello world"] });
    expect(r.data).toHaveLength(2);
    const expected = tf.tidy(() =>
      encoder.embed(tf.tensor2d([tok.encode("abc")], [1, 3], "int32")).arraySync(),
    ) as number[][];
    const got = r.data[0].embedding;
    expect(got).toHaveLength(8);
    for (let i = 0; i < 8; i++) expect(Math.abs(got[i] - expected[0][i])).toBeLessThan(1e-6);
    const f = await client.embeddings.create({ model: "fake-bert", input: "abc", encoding_format: "float" });
    expect(f.data[0].embedding).toEqual(got);
    await expect(client.embeddings.create({ model: "fake-gpt", input: "x" })).rejects.toMatchObject({
      status: 400,
    });
  });

  it("typed HTTP errors: 404 unknown model, 400 context length with both numbers, 401 bad key", async () => {
    await expect(
      client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }),
    ).rejects.toMatchObject({ status: 404, code: "model_not_found" });
    const long = "x".repeat(200);
    const err = await client.completions.create({ model: "fake-gpt", prompt: long }).catch((e) => e);
    expect(err.status).toBe(400);
    expect(err.code).toBe("context_length_exceeded");
    expect(err.message).toContain("200");
    expect(err.message).toContain("96");
    const bad = new OpenAI({ baseURL: `${url}/v1`, apiKey: "wrong", maxRetries: 0 });
    await expect(bad.models.list()).rejects.toMatchObject({ status: 401 });
    const tooMany = await client.completions
      .create({ model: "fake-gpt", prompt: "a", max_tokens: 65 })
      .catch((e) => e);
    expect(tooMany.status).toBe(400);
    expect(tooMany.message).toContain("65");
  });

  it("attention endpoint returns tokens and per-layer/head weights", async () => {
    const res = await post("/v1/attention", { model: "fake-gpt", text: "abcd", layers: [1] });
    expect(res.status).toBe(200);
    const j = await res.json();
    expect(j.tokens.map((t: { text: string }) => t.text)).toEqual(["a", "b", "c", "d"]);
    expect(j.num_layers).toBe(2);
    expect(j.layers).toEqual([1]);
    expect(j.attentions).toHaveLength(1);
    expect(j.attentions[0]).toHaveLength(2);
    expect(j.attentions[0][0][1]).toEqual([0.5, 0.5, 0, 0]);
    const bad = await post("/v1/attention", { model: "fake-gpt", text: "ab", layers: [7] });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.message).toContain("7");
  });

  it("metrics in Prometheus text format", async () => {
    const res = await fetch(`${url}/metrics`);
    const text = await res.text();
    for (const name of [
      "typeformer_http_requests_total",
      "typeformer_prompt_tokens_total",
      "typeformer_completion_tokens_total",
      "typeformer_time_to_first_token_seconds_bucket",
      "typeformer_inter_token_latency_seconds_bucket",
      "typeformer_queue_depth",
      "typeformer_active_sequences",
      "typeformer_tf_tensors",
      "typeformer_tf_bytes",
    ]) {
      expect(text).toContain(name);
    }
    expect(text).toMatch(/typeformer_http_requests_total\{route="\/v1\/completions",status="200"\} \d+/);
  });

  it("16 concurrent streaming clients: complete well-formed streams, same seed → same text as alone", async () => {
    const params = (i: number) => ({
      model: "fake-gpt",
      messages: [{ role: "user" as const, content: `client ${i} says hi` }],
      max_tokens: 24,
      seed: 100 + i,
      temperature: 0.9,
      top_p: 0.95,
    });
    const alone: string[] = [];
    for (let i = 0; i < 16; i++) {
      const r = await client.chat.completions.create(params(i));
      alone.push(r.choices[0].message.content ?? "");
    }
    model.forwardCalls = [];
    const together = await Promise.all(
      Array.from({ length: 16 }, async (_, i) => {
        const s = await client.chat.completions.create({ ...params(i), stream: true });
        let text = "";
        let finish: string | null = null;
        for await (const ch of s) {
          text += ch.choices[0]?.delta.content ?? "";
          finish = ch.choices[0]?.finish_reason ?? finish;
        }
        return { text, finish };
      }),
    );
    expect(together.map((t) => t.text)).toEqual(alone);
    expect(together.every((t) => t.finish === "stop" || t.finish === "length")).toBe(true);
    expect(Math.max(...model.forwardCalls)).toBeGreaterThanOrEqual(8); // they really shared steps
  });

  it("a client dropping mid-stream cancels its sequence; tensors return to baseline", async () => {
    const engine = srv.server.engines.get("fake-gpt")!;
    await engine.idle();
    const before = tf.memory().numTensors;
    // 64 forwards of ≥ 20 ms wall clock each: the sequence is surely still running after the client
    // has read two chunks, however loaded the machine (without it, 64 fast steps can finish first)
    model.slowMs = 20;
    const ac = new AbortController();
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers,
      signal: ac.signal,
      body: JSON.stringify({
        model: "fake-gpt",
        messages: [{ role: "user", content: "go on forever" }],
        max_tokens: 64,
        ignore_eos: true,
        stream: true,
      }),
    });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.read();
    expect(engine.activeCount).toBe(1);
    ac.abort();
    model.slowMs = 0;
    await waitFor(() => engine.activeCount === 0 && engine.queuedCount === 0);
    await engine.idle();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("fuzz: malformed requests all get 4xx JSON errors; the server stays healthy", async () => {
    const j = "application/json";
    const cases: { path: string; body: string; ct?: string }[] = [
      { path: "/v1/chat/completions", body: "{" },
      { path: "/v1/chat/completions", body: "" },
      { path: "/v1/chat/completions", body: "null" },
      { path: "/v1/chat/completions", body: "[1,2]" },
      { path: "/v1/chat/completions", body: '"str"' },
      { path: "/v1/chat/completions", body: "{}" },
      { path: "/v1/chat/completions", body: JSON.stringify({ model: "fake-gpt" }) },
      { path: "/v1/chat/completions", body: JSON.stringify({ model: "fake-gpt", messages: [] }) },
      { path: "/v1/chat/completions", body: JSON.stringify({ model: "fake-gpt", messages: "hi" }) },
      {
        path: "/v1/chat/completions",
        body: JSON.stringify({ model: 5, messages: [{ role: "user", content: "x" }] }),
      },
      {
        path: "/v1/chat/completions",
        body: JSON.stringify({ model: "fake-gpt", messages: [{ role: "wizard", content: "x" }] }),
      },
      {
        path: "/v1/chat/completions",
        body: JSON.stringify({ model: "fake-gpt", messages: [{ role: "user" }] }),
      },
      ...[
        { temperature: -1 },
        { temperature: "hot" },
        { temperature: 1e308 },
        { top_p: 0 },
        { top_p: 2 },
        { max_tokens: -5 },
        { max_tokens: 1.5 },
        { max_tokens: 1e12 },
        { n: 0 },
        { n: 1000 },
        { seed: "abc" },
        { seed: 1e300 },
        { stop: 5 },
        { stop: ["a", "b", "c", "d", "e"] },
        { logit_bias: { abc: 1 } },
        { logit_bias: { "5": 1000 } },
        { logit_bias: { "99999": 1 } },
        { top_logprobs: 50, logprobs: true },
        { presence_penalty: 3 },
        { stream: "yes" },
        { top_k: -1 },
        { min_p: 2 },
        { repetition_penalty: 0 },
      ].map((extra) => ({
        path: "/v1/chat/completions",
        body: JSON.stringify({ model: "fake-gpt", messages: [{ role: "user", content: "x" }], ...extra }),
      })),
      {
        path: "/v1/chat/completions",
        body: JSON.stringify({
          model: "fake-gpt",
          messages: [{ role: "user", content: "\u{1F600}\uD800 é" }],
        }),
        ct: "text/plain",
      },
      { path: "/v1/chat/completions", body: "model=fake-gpt", ct: "application/x-www-form-urlencoded" },
      { path: "/v1/completions", body: JSON.stringify({ model: "fake-gpt" }) },
      { path: "/v1/completions", body: JSON.stringify({ model: "fake-gpt", prompt: [] }) },
      { path: "/v1/completions", body: JSON.stringify({ model: "fake-gpt", prompt: [-1, 2] }) },
      { path: "/v1/completions", body: JSON.stringify({ model: "fake-gpt", prompt: [99999] }) },
      { path: "/v1/completions", body: JSON.stringify({ model: "fake-gpt", prompt: "" }) },
      { path: "/v1/completions", body: JSON.stringify({ model: "fake-gpt", prompt: "x", logprobs: 9 }) },
      { path: "/v1/completions", body: JSON.stringify({ model: "fake-gpt", prompt: "x".repeat(100_000) }) },
      { path: "/v1/completions", body: JSON.stringify({ model: "\u0000\uFFFF", prompt: "x" }) },
      { path: "/v1/embeddings", body: JSON.stringify({ model: "fake-bert" }) },
      { path: "/v1/embeddings", body: JSON.stringify({ model: "fake-bert", input: "x".repeat(65) }) },
      { path: "/v1/embeddings", body: JSON.stringify({ model: "fake-bert", input: "x", dimensions: 3 }) },
      {
        path: "/v1/embeddings",
        body: JSON.stringify({ model: "fake-bert", input: "x", encoding_format: "hex" }),
      },
      { path: "/v1/attention", body: JSON.stringify({ model: "fake-gpt" }) },
      { path: "/v1/attention", body: JSON.stringify({ model: "fake-gpt", text: "a", messages: [] }) },
      { path: "/v1/attention", body: JSON.stringify({ model: "fake-gpt", text: "x".repeat(300) }) },
      { path: "/v1/nothing", body: "{}" },
    ];
    for (const c of cases) {
      const h = { "content-type": c.ct ?? j, authorization: `Bearer ${KEY}` };
      const res =
        c.body.length > 64 * 1024
          ? await postFresh(`${url}${c.path}`, h, c.body)
          : await fetch(`${url}${c.path}`, { method: "POST", headers: h, body: c.body }).then(async (r) => ({
              status: r.status,
              text: await r.text(),
            }));
      const text = res.text;
      const ctx = `${c.path} ${c.body.slice(0, 80)} → ${res.status} ${text.slice(0, 200)}`;
      expect(res.status, ctx).toBeGreaterThanOrEqual(400);
      expect(res.status, ctx).toBeLessThan(500);
      const err = JSON.parse(text).error;
      expect(typeof err.message, ctx).toBe("string");
      expect(typeof err.type, ctx).toBe("string");
      expect("param" in err && "code" in err, ctx).toBe(true);
    }
    // field and value are named
    const r = await post("/v1/chat/completions", {
      model: "fake-gpt",
      messages: [{ role: "user", content: "x" }],
      temperature: -1,
    });
    const e = (await r.json()).error;
    expect(e.param).toBe("temperature");
    expect(e.message).toContain("-1");
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect((await health.json()).status).toBe("ok");
    const ok = await client.completions.create({ model: "fake-gpt", prompt: "still", max_tokens: 3 });
    expect(ok.choices).toHaveLength(1);
  });

  it("leak test: numTensors after 200 mixed requests equals before", async () => {
    const engine = srv.server.engines.get("fake-gpt")!;
    await engine.idle();
    const before = tf.memory().numTensors;
    const kinds = [
      () => client.completions.create({ model: "fake-gpt", prompt: "leak", max_tokens: 4 }),
      () =>
        client.chat.completions.create({
          model: "fake-gpt",
          messages: [{ role: "user", content: "a" }],
          max_tokens: 5,
          logprobs: true,
          top_logprobs: 2,
        }),
      async () => {
        const s = await client.chat.completions.create({
          model: "fake-gpt",
          messages: [{ role: "user", content: "s" }],
          max_tokens: 5,
          stream: true,
        });
        for await (const _ of s);
      },
      () => client.embeddings.create({ model: "fake-bert", input: ["a", "bb"] }),
      () => post("/v1/attention", { model: "fake-gpt", text: "abc" }).then((r) => r.json()),
      () => client.completions.create({ model: "fake-gpt", prompt: "x", max_tokens: 999 }).catch(() => null),
      async () => {
        const ac = new AbortController();
        const res = await post("/v1/chat/completions", {
          model: "fake-gpt",
          messages: [{ role: "user", content: "drop" }],
          max_tokens: 30,
          stream: true,
        }).then((r) => r);
        const rd = res.body!.getReader();
        await rd.read();
        ac.abort();
        await rd.cancel();
      },
    ];
    for (let batch = 0; batch < 25; batch++) {
      await Promise.all(Array.from({ length: 8 }, (_, i) => kinds[(batch * 8 + i) % kinds.length]()));
    }
    await waitFor(() => engine.activeCount === 0 && engine.queuedCount === 0);
    await engine.idle();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("more server paths", () => {
  const tok = new FakeCharTokenizer();
  let model: FakeCausalLM;
  let srv: RunningServer;
  beforeAll(async () => {
    await initBackend({ backend: "wasm" });
    model = new FakeCausalLM(tok.vocabSize, 96, 5);
    srv = await listen(
      createServer({
        // no tight request timeout here: on a loaded CI machine an ordinary request can take longer
        // than any small limit; the timeout test below uses its own server.
        models: [{ id: "m", model, tokenizer: tok }],
        cors: "http://localhost:5173",
      }),
      { port: 0 },
    );
  });
  afterAll(async () => {
    await srv.close({ graceMs: 100 });
    model.dispose();
  });
  const post = (path: string, body: unknown) =>
    fetch(`${srv.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  it("streams n choices and completions; text matches the non-streamed result", async () => {
    const body = { model: "m", prompt: "abc", max_tokens: 10, n: 2, seed: 3, ignore_eos: true };
    const whole = await (await post("/v1/completions", body)).json();
    const events = await readSse(await post("/v1/completions", { ...body, stream: true }));
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    const texts = ["", ""];
    const finishes: (string | null)[] = [null, null];
    for (const c of chunks) {
      for (const ch of c.choices) {
        texts[ch.index] += ch.text;
        finishes[ch.index] = ch.finish_reason ?? finishes[ch.index];
      }
    }
    expect(texts).toEqual(whole.choices.map((c: { text: string }) => c.text));
    expect(finishes).toEqual(["length", "length"]);
    const chat = await readSse(
      await post("/v1/chat/completions", {
        model: "m",
        messages: [{ role: "user", content: "hey" }],
        n: 3,
        max_tokens: 5,
        stream: true,
        stream_options: { include_usage: true },
      }),
    );
    const parsed = chat.slice(0, -1).map((e) => JSON.parse(e));
    const usage = parsed.at(-1);
    expect(usage.usage.completion_tokens).toBeGreaterThan(0);
    expect(new Set(parsed.flatMap((p) => p.choices.map((c: { index: number }) => c.index)))).toEqual(
      new Set([0, 1, 2]),
    );
  });

  it("echo and completion logprobs", async () => {
    const r = await (
      await post("/v1/completions", {
        model: "m",
        prompt: "abc",
        max_tokens: 4,
        echo: true,
        logprobs: 3,
        temperature: 0,
      })
    ).json();
    const c = r.choices[0];
    expect(c.text.startsWith("abc")).toBe(true);
    expect(c.logprobs.tokens.join("")).toBe(c.text.slice(3));
    expect(c.logprobs.text_offset[0]).toBe(3);
    expect(Object.keys(c.logprobs.top_logprobs[0])).toHaveLength(3);
  });

  it("per-request timeout → 504 (and an error event in a stream); the engine is freed", async () => {
    // Its own server with a 150 ms limit; 60 forwards that each busy-wait 20 ms of wall clock take
    // ≥ 1.2 s however fast or loaded the machine is, so the limit is always exceeded.
    const slow = new FakeCausalLM(tok.vocabSize, 96, 5);
    slow.slowMs = 20;
    const tsrv = await listen(
      createServer({ models: [{ id: "m", model: slow, tokenizer: tok }], requestTimeoutMs: 150 }),
      { port: 0 },
    );
    const post = (path: string, body: unknown) =>
      fetch(`${tsrv.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    try {
      const res = await post("/v1/completions", {
        model: "m",
        prompt: "x",
        max_tokens: 60,
        ignore_eos: true,
      });
      expect(res.status).toBe(504);
      expect((await res.json()).error.code).toBe("timeout");
      const events = await readSse(
        await post("/v1/completions", {
          model: "m",
          prompt: "x",
          max_tokens: 60,
          ignore_eos: true,
          stream: true,
        }),
      );
      expect(JSON.parse(events.at(-1)!).error.code).toBe("timeout");
      await tsrv.server.engines.get("m")!.idle();
      expect(tsrv.server.engines.get("m")!.activeCount).toBe(0);
    } finally {
      await tsrv.close({ graceMs: 100 });
      slow.dispose();
    }
  });

  it("a client dropping a non-streaming request cancels its generation", async () => {
    const engine = srv.server.engines.get("m")!;
    // 80 forwards of ≥ 20 ms wall clock each: ≥ 1.6 s if the abort were ignored, so "< 60 calls"
    // leaves over a second for the abort to travel even on a loaded machine.
    model.slowMs = 20;
    try {
      const ac = new AbortController();
      model.forwardCalls = [];
      const pending = fetch(`${srv.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "m", prompt: "x", max_tokens: 80, ignore_eos: true }),
        signal: ac.signal,
      }).catch((e) => e);
      await waitFor(() => engine.activeCount === 1);
      ac.abort();
      await pending;
      await waitFor(() => engine.activeCount === 0);
      expect(model.forwardCalls.length).toBeLessThan(60); // stopped well before its 80 tokens
    } finally {
      model.slowMs = 0;
    }
  });

  it("CORS preflight for the configured origin", async () => {
    const res = await fetch(`${srv.url}/v1/chat/completions`, {
      method: "OPTIONS",
      headers: {
        origin: "http://localhost:5173",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,authorization",
      },
    });
    expect(res.status).toBeLessThan(300);
    expect(res.headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
  });
});

describe("back-pressure and shutdown", () => {
  it("429 with Retry-After when the queue is full; graceful shutdown finishes streams", async () => {
    await initBackend({ backend: "wasm" });
    const tok = new FakeCharTokenizer();
    const model = new FakeCausalLM(tok.vocabSize, 96, 3);
    const srv = await listen(
      createServer({ models: [{ id: "m", model, tokenizer: tok, engine: { maxBatch: 1, maxQueue: 0 } }] }),
      { port: 0 },
    );
    const body = { model: "m", prompt: "abc", max_tokens: 60, ignore_eos: true, stream: true };
    // the first stream must still be running when the second request arrives: 60 forwards of
    // ≥ 20 ms wall clock each keep it busy ≥ 1.2 s, far longer than one loopback request.
    model.slowMs = 20;
    const first = await fetch(`${srv.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const second = await fetch(`${srv.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(second.status).toBe(429);
    expect(Number(second.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect((await second.json()).error.type).toBe("rate_limit_error");
    const firstText = first.text();
    await srv.close({ graceMs: 5000 });
    const events = await readSse({ text: () => firstText } as unknown as Response);
    expect(events.at(-1)).toBe("[DONE]");
    model.dispose();
  });
});

describe("a tokenizer that cannot encode the conversation", () => {
  it("answers 400 naming the messages, not 500", async () => {
    await initBackend({ backend: "wasm" });
    class NoChatTokenizer extends FakeCharTokenizer {
      override applyChatTemplate(): string {
        throw new TypeformerError("TOKENIZER_INVALID", "no chat tokens in this vocabulary", {});
      }
    }
    const tok = new NoChatTokenizer();
    const model = new FakeCausalLM(tok.vocabSize, 96);
    const srv = await listen(createServer({ models: [{ id: "m", model, tokenizer: tok }] }), { port: 0 });
    try {
      const res = await fetch(`${srv.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
      });
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { param: string; code: string; message: string } };
      expect(body.error).toMatchObject({ param: "messages", code: "unencodable_messages" });
      expect(body.error.message).toContain("no chat tokens");
    } finally {
      await srv.close();
      model.dispose();
    }
  });
});
