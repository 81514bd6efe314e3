import { createHash, randomUUID, timingSafeEqual } from "node:crypto";
import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import { isTypeformerError, type Logger, silentLogger, TypeformerError, tf } from "@typeformer/core";
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { type SSEStreamingApi, streamSSE } from "hono/streaming";
import type { ZodType } from "zod";
import {
  type EngineOptions,
  type GenerateRequest,
  type Generation,
  GenerationEngine,
  type GenerationResult,
} from "./engine.js";
import { ApiError, fromZodError, invalidRequest, toApiError } from "./errors.js";
import { ServeMetrics } from "./metrics.js";
import type { TokenLogprob } from "./sampling.js";
import {
  type AttentionBody,
  attentionSchema,
  type ChatBody,
  type ChatMessage,
  type CompletionBody,
  chatSchema,
  completionSchema,
  type EmbeddingsBody,
  embeddingsSchema,
} from "./schemas.js";
import { beamGenerateSeq2Seq, type ServeSeq2SeqCachedLM } from "./seq2seq.js";
import { seq2seqAsCausal } from "./seq2seq-batch.js";
import type { ServeCausalLM, ServeEncoder, ServeTokenizer } from "./types.js";

/** One model the server offers. */
export interface ServedModelSpec {
  /** The name clients pass as `model`. */
  id: string;
  model: ServeCausalLM | ServeEncoder | ServeSeq2SeqCachedLM;
  /** Defaults to `model.tokenizer`. */
  tokenizer?: ServeTokenizer;
  /** Engine settings for decoder models (batch size, queue, context, max_tokens cap). */
  engine?: Omit<EngineOptions, "model" | "tokenizer" | "observer">;
}

export interface ServerOptions {
  models: ServedModelSpec[];
  /** When set, `/v1/*` requires `Authorization: Bearer <apiKey>` (compared in constant time). */
  apiKey?: string;
  /** CORS: `true` = any origin, a string or list = those origins; default off. */
  cors?: boolean | string | string[];
  /** Largest request body in bytes. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Per-request time limit in ms (generation is cancelled; 504 / a stream error). Default 300 000. */
  requestTimeoutMs?: number;
  /** Longest text `/v1/attention` accepts, in tokens (4× that when at most 2 layer×head pairs are asked for). Default 256. */
  maxAttentionTokens?: number;
  logger?: Logger;
}

interface Served {
  id: string;
  created: number;
  tokenizer: ServeTokenizer;
  causal?: ServeCausalLM;
  encoder?: ServeEncoder;
  seq2seq?: ServeSeq2SeqCachedLM;
  engine?: GenerationEngine;
}

/** A configured server: the hono app plus its engines and metrics, not yet listening. */
export interface TypeformerServer {
  readonly app: Hono;
  readonly metrics: ServeMetrics;
  readonly engines: ReadonlyMap<string, GenerationEngine>;
  /** Stops accepting generations; in-flight ones finish within `graceMs` (default 10 s), then are cancelled. */
  shutdown(opts?: { graceMs?: number }): Promise<void>;
}

const isCausal = (m: object): m is ServeCausalLM =>
  typeof (m as ServeCausalLM).forward === "function" &&
  typeof (m as ServeCausalLM).createCache === "function";
const isSeq2Seq = (m: object): m is ServeSeq2SeqCachedLM =>
  typeof (m as ServeSeq2SeqCachedLM).decode === "function" &&
  typeof (m as ServeSeq2SeqCachedLM).encode === "function" &&
  typeof (m as ServeSeq2SeqCachedLM).decoderStartTokenId === "number";
const isEncoder = (m: object): m is ServeEncoder => typeof (m as ServeEncoder).embed === "function";
const DONE = "[DONE]";

/** Sends SSE events strictly in call order (choices stream concurrently) and drops them once the client is gone. */
function orderedSender(stream: SSEStreamingApi): (obj: unknown) => Promise<void> {
  let chain = Promise.resolve();
  return (obj) => {
    chain = chain.then(() =>
      stream.aborted ? undefined : stream.writeSSE({ data: obj === DONE ? DONE : JSON.stringify(obj) }),
    );
    return chain;
  };
}
const nowSeconds = () => Math.floor(Date.now() / 1000);

function sha256(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

/** Constant-time comparison of a presented key with the configured one (hashing equalises lengths). */
export function apiKeyMatches(presented: string, expected: string): boolean {
  return timingSafeEqual(sha256(presented), sha256(expected));
}

/** The simple chat format used when a tokenizer has no chat template. */
function fallbackChatTemplate(messages: { role: string; content: string }[], addGenerationPrompt: boolean) {
  return (
    messages.map((m) => `${m.role}: ${m.content}\n`).join("") + (addGenerationPrompt ? "assistant:" : "")
  );
}

/** OpenAI's `prompt`/`input` forms — a string, strings, token ids, or lists of ids — as token id rows. */
function encodeInputs(tok: ServeTokenizer, x: string | string[] | number[] | number[][]): number[][] {
  if (typeof x === "string") return [tok.encode(x)];
  if (typeof x[0] === "string") return (x as string[]).map((s) => tok.encode(s));
  if (typeof x[0] === "number") return [x as number[]];
  return x as number[][];
}

function messageText(m: ChatMessage): string {
  if (m.content === null) return "";
  if (typeof m.content === "string") return m.content;
  return m.content.map((p) => p.text).join("");
}

function renderChat(tok: ServeTokenizer, messages: ChatMessage[], addGenerationPrompt: boolean): number[] {
  const msgs = messages.map((m) => ({
    role: m.role === "developer" ? "system" : m.role,
    content: messageText(m),
  }));
  try {
    if (tok.applyChatTemplate) {
      const text = tok.applyChatTemplate(msgs, { addGenerationPrompt });
      return tok.encode(text, { addSpecialTokens: false, allowedSpecial: "all" });
    }
    return tok.encode(fallbackChatTemplate(msgs, addGenerationPrompt));
  } catch (e) {
    // a tokenizer that cannot render or encode this conversation is the request's problem, not a 500
    if (!isTypeformerError(e)) throw e;
    throw invalidRequest(
      `this model's tokenizer cannot encode the conversation (${e.message}); use /v1/completions with plain text`,
      "messages",
      "unencodable_messages",
    );
  }
}

/** End-of-turn markers of common chat templates; a chat reply stops at any the tokenizer has. */
const END_OF_TURN = ["<|end|>", "<|im_end|>", "<|eot_id|>", "<|endoftext|>", "</s>", "<end_of_turn>"];

function chatStopIds(tok: ServeTokenizer): number[] {
  const specials = tok.specialTokens ?? {};
  return END_OF_TURN.filter((t) => t in specials).map((t) => specials[t]);
}

function tokenText(tok: ServeTokenizer, id: number): string {
  return tok.decode([id]);
}

/**
 * Builds the OpenAI-compatible app: `GET /v1/models`, `POST /v1/completions`,
 * `POST /v1/chat/completions` (SSE streaming), `POST /v1/embeddings`, `POST /v1/attention`
 * (attention weights for a text), `GET /health`, `GET /metrics`.
 */
export function createServer(opts: ServerOptions): TypeformerServer {
  const logger = opts.logger ?? silentLogger;
  const metrics = new ServeMetrics();
  const models = new Map<string, Served>();
  const engines = new Map<string, GenerationEngine>();
  const timeoutMs = opts.requestTimeoutMs ?? 300_000;
  const maxAttentionTokens = opts.maxAttentionTokens ?? 256;
  let shuttingDown = false;

  for (const spec of opts.models) {
    const tokenizer = (spec.tokenizer ?? spec.model.tokenizer) as ServeTokenizer | undefined;
    if (!tokenizer) {
      throw new TypeformerError("INVALID_ARGUMENT", `model "${spec.id}" has no tokenizer`, {
        model: spec.id,
      });
    }
    if (models.has(spec.id)) {
      throw new TypeformerError("INVALID_ARGUMENT", `model id "${spec.id}" is given twice`, {
        model: spec.id,
      });
    }
    const served: Served = { id: spec.id, created: nowSeconds(), tokenizer };
    const addEngine = (model: ServeCausalLM) => {
      served.engine = new GenerationEngine({
        ...spec.engine,
        model,
        tokenizer,
        observer: metrics.observer(spec.id),
      });
      engines.set(spec.id, served.engine);
      metrics.track(spec.id, served.engine);
    };
    if (isSeq2Seq(spec.model)) {
      // sampled/greedy completions are batched by the engine; best_of > 1 runs beam search per request
      served.seq2seq = spec.model;
      addEngine(seq2seqAsCausal(spec.model));
    } else if (isCausal(spec.model)) {
      served.causal = spec.model;
      addEngine(spec.model);
    } else if (isEncoder(spec.model)) {
      served.encoder = spec.model;
    } else {
      throw new TypeformerError(
        "INVALID_ARGUMENT",
        `model "${spec.id}" is neither a causal LM (forward + createCache) nor an encoder (embed)`,
        { model: spec.id },
      );
    }
    models.set(spec.id, served);
  }

  const app = new Hono();

  app.onError((err, c) => {
    const api = toApiError(err);
    if (api.status >= 500) logger.error("request failed", { error: String(err), path: c.req.path });
    return c.json(api.body(), api.status as 500, api.headers);
  });
  app.notFound((c) => {
    const api = new ApiError(
      404,
      `no route ${c.req.method} ${c.req.path}`,
      "invalid_request_error",
      null,
      "not_found",
    );
    return c.json(api.body(), 404);
  });

  app.use("*", async (c, next) => {
    await next();
    metrics.requests.inc({ route: c.req.routePath ?? "unmatched", status: String(c.res.status) });
  });
  if (opts.cors) {
    const origin = opts.cors === true ? "*" : opts.cors;
    app.use("*", cors({ origin, allowHeaders: ["Authorization", "Content-Type"], maxAge: 600 }));
  }
  app.use(
    "/v1/*",
    bodyLimit({
      maxSize: opts.maxBodyBytes ?? 1 << 20,
      onError: (c) => {
        const api = new ApiError(
          413,
          `request body exceeds ${opts.maxBodyBytes ?? 1 << 20} bytes`,
          "invalid_request_error",
          null,
          "body_too_large",
        );
        return c.json(api.body(), 413);
      },
    }),
  );
  if (opts.apiKey !== undefined) {
    const key = opts.apiKey;
    app.use("/v1/*", async (c, next) => {
      if (c.req.method === "OPTIONS") return next();
      const h = c.req.header("authorization") ?? "";
      const m = /^Bearer\s+(.+)$/i.exec(h);
      if (!m || !apiKeyMatches(m[1].trim(), key)) {
        const api = new ApiError(
          401,
          m ? "incorrect API key provided" : "missing API key: send 'Authorization: Bearer <key>'",
          "invalid_request_error",
          null,
          "invalid_api_key",
        );
        return c.json(api.body(), 401);
      }
      return next();
    });
  }

  async function readBody<T>(c: Context, schema: ZodType<T>): Promise<T> {
    const ct = c.req.header("content-type") ?? "";
    if (!/^application\/json\b/i.test(ct.trim())) {
      throw new ApiError(
        415,
        `Content-Type must be application/json; received ${JSON.stringify(ct)}`,
        "invalid_request_error",
        null,
        "unsupported_media_type",
      );
    }
    const text = await c.req.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (e) {
      throw invalidRequest(`request body is not valid JSON: ${(e as Error).message}`, null, "invalid_json");
    }
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      throw invalidRequest(
        `request body must be a JSON object; received ${Array.isArray(body) ? "an array" : JSON.stringify(body)}`,
      );
    }
    const r = schema.safeParse(body);
    if (!r.success) throw fromZodError(r.error, body);
    return r.data;
  }

  function getModel(id: string): Served {
    const m = models.get(id);
    if (!m) {
      throw new ApiError(
        404,
        `the model ${JSON.stringify(id)} does not exist; available: ${[...models.keys()].join(", ")}`,
        "invalid_request_error",
        "model",
        "model_not_found",
      );
    }
    return m;
  }

  /** The engine of a decoder-only model (chat); an encoder-decoder model's engine serves completions only. */
  function requireEngine(m: Served): GenerationEngine {
    if (!m.engine || m.seq2seq) {
      throw invalidRequest(
        m.seq2seq
          ? `model "${m.id}" is an encoder-decoder model: use /v1/completions`
          : `model "${m.id}" is an encoder model; it cannot generate text`,
        "model",
        "invalid_model",
      );
    }
    return m.engine;
  }

  /** Common request → engine requests (one per prompt × choice), with seeds `seed + choice index`. */
  function buildRequests(
    engine: GenerationEngine,
    body: ChatBody | CompletionBody,
    prompts: number[][],
    maxTokens: number | null | undefined,
    logprobs: number | undefined,
    signal: AbortSignal,
  ): GenerateRequest[] {
    const n = body.n ?? 1;
    const stop = body.stop == null ? undefined : typeof body.stop === "string" ? [body.stop] : body.stop;
    const logitBias = body.logit_bias
      ? Object.fromEntries(Object.entries(body.logit_bias).map(([k, v]) => [Number(k), v]))
      : undefined;
    if (maxTokens != null && maxTokens > engine.maxTokensCap) {
      throw invalidRequest(
        `'max_tokens' must be at most ${engine.maxTokensCap}; received ${maxTokens}`,
        "max_tokens",
        "invalid_value",
      );
    }
    const reqs: GenerateRequest[] = [];
    for (const promptIds of prompts) {
      for (let i = 0; i < n; i++) {
        reqs.push({
          promptIds,
          maxTokens: maxTokens ?? undefined,
          stop,
          ignoreEos: body.ignore_eos ?? undefined,
          logprobs,
          signal,
          sampling: {
            temperature: body.temperature ?? undefined,
            topP: body.top_p ?? undefined,
            topK: body.top_k ?? undefined,
            minP: body.min_p ?? undefined,
            repetitionPenalty: body.repetition_penalty ?? undefined,
            presencePenalty: body.presence_penalty ?? undefined,
            frequencyPenalty: body.frequency_penalty ?? undefined,
            logitBias,
            seed: body.seed == null ? undefined : body.seed + i,
          },
        });
      }
    }
    return reqs;
  }

  /** Submits all or none (a later submit failing cancels the earlier ones). */
  function submitAll(engine: GenerationEngine, reqs: GenerateRequest[]): Generation[] {
    if (shuttingDown) throw new TypeformerError("SHUTTING_DOWN", "the server is shutting down", {});
    const gens: Generation[] = [];
    try {
      for (const r of reqs) gens.push(engine.submit(r));
    } catch (e) {
      for (const g of gens) g.cancel("sibling request rejected");
      throw e;
    }
    return gens;
  }

  /** An abort controller tied to the client connection and the per-request timeout. */
  function requestSignal(c: Context): { ac: AbortController; done: () => void } {
    const ac = new AbortController();
    const onClientAbort = () => ac.abort("client disconnected");
    const raw = c.req.raw.signal;
    if (raw.aborted) ac.abort("client disconnected");
    else raw.addEventListener("abort", onClientAbort, { once: true });
    const timer = setTimeout(
      () =>
        ac.abort(
          new TypeformerError("TIMEOUT", `the request exceeded the server's time limit of ${timeoutMs} ms`, {
            timeoutMs,
          }),
        ),
      timeoutMs,
    );
    return {
      ac,
      done: () => {
        clearTimeout(timer);
        raw.removeEventListener("abort", onClientAbort);
      },
    };
  }

  function checkResults(results: GenerationResult[]): void {
    for (const r of results) {
      if (r.finishReason === "error") throw toApiError(r.error);
      if (r.finishReason === "cancelled") {
        if (r.cancelReason instanceof TypeformerError) throw toApiError(r.cancelReason);
        throw new ApiError(503, "the request was cancelled", "server_error", null, "cancelled");
      }
    }
  }

  const finishReason = (r: GenerationResult) => (r.finishReason === "stop" ? "stop" : "length");
  const usageOf = (results: GenerationResult[], prompts: number[][]) => {
    const prompt = prompts.reduce((s, p) => s + p.length, 0);
    const completion = results.reduce((s, r) => s + r.completionTokens, 0);
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  };

  const chatLogprob = (tok: ServeTokenizer, tokenId: number, logprob: number, top?: TokenLogprob[]) => {
    const token = tokenText(tok, tokenId);
    return {
      token,
      logprob,
      bytes: Array.from(Buffer.from(token, "utf8")),
      top_logprobs: (top ?? []).map((t) => {
        const s = tokenText(tok, t.tokenId);
        return { token: s, logprob: t.logprob, bytes: Array.from(Buffer.from(s, "utf8")) };
      }),
    };
  };

  let seq2seqInFlight = 0;
  const seq2seqLimit = 64;

  /** /v1/completions with best_of > 1 for encoder-decoder models: beam search, one request at a time. */
  async function beamCompletion(c: Context, m: Served, body: CompletionBody) {
    if (shuttingDown) throw new TypeformerError("SHUTTING_DOWN", "the server is shutting down", {});
    const tok = m.tokenizer;
    const p = body.prompt;
    const prompts = encodeInputs(tok, p);
    for (const ids of prompts) {
      if (ids.length === 0)
        throw invalidRequest("the prompt encodes to no tokens", "prompt", "invalid_value");
      for (const id of ids) {
        if (id >= tok.vocabSize)
          throw invalidRequest(`prompt token id ${id} is out of the vocabulary`, "prompt");
      }
    }
    const n = body.n ?? 1;
    if (n > body.best_of!) {
      throw invalidRequest(
        `'best_of' must be at least 'n' (the n best of best_of beams are returned); received best_of ${body.best_of}, n ${n}`,
        "best_of",
        "invalid_value",
      );
    }
    if (seq2seqInFlight + prompts.length * n > seq2seqLimit) {
      throw new TypeformerError(
        "LIMIT_EXCEEDED",
        `the server is busy (${seq2seqInFlight} seq2seq requests running)`,
        {
          retryAfterSeconds: 2,
        },
      );
    }
    const maxTokens = body.max_tokens ?? 16;
    if (maxTokens > 512)
      throw invalidRequest(`'max_tokens' must be at most 512; received ${maxTokens}`, "max_tokens");
    const stop = body.stop == null ? undefined : typeof body.stop === "string" ? [body.stop] : body.stop;
    const { ac, done } = requestSignal(c);
    seq2seqInFlight += prompts.length * n;
    let results: GenerationResult[];
    try {
      results = [];
      for (const ids of prompts) {
        if (ac.signal.aborted) break;
        // the n best of best_of beams (OpenAI: best_of candidates, n returned)
        results.push(
          ...beamGenerateSeq2Seq(m.seq2seq!, tok, ids, {
            numBeams: body.best_of!,
            numReturnSequences: n,
            maxTokens,
            stop,
          }),
        );
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      seq2seqInFlight -= prompts.length * n;
      done();
    }
    if (ac.signal.aborted) {
      const reason = ac.signal.reason;
      throw reason instanceof TypeformerError
        ? reason
        : new ApiError(503, "the request was cancelled", "server_error");
    }
    const id = `cmpl-${randomUUID()}`;
    const created = nowSeconds();
    const choices = results.map((r, index) => ({
      index,
      text: r.text,
      logprobs: null,
      finish_reason: finishReason(r),
    }));
    const usage = usageOf(results, prompts);
    for (const r of results) {
      metrics.promptTokens.inc({ model: m.id }, r.promptTokens);
      metrics.completionTokens.inc({ model: m.id }, r.completionTokens);
      if (r.timeToFirstTokenMs !== undefined)
        metrics.ttft.observe({ model: m.id }, r.timeToFirstTokenMs / 1000);
    }
    if (!body.stream) {
      return c.json({ id, object: "text_completion", created, model: m.id, choices, usage });
    }
    return streamSSE(c, async (stream) => {
      const base = { id, object: "text_completion", created, model: m.id };
      for (const ch of choices) {
        await stream.writeSSE({
          data: JSON.stringify({ ...base, choices: [{ ...ch, finish_reason: null }] }),
        });
        await stream.writeSSE({ data: JSON.stringify({ ...base, choices: [{ ...ch, text: "" }] }) });
      }
      if (body.stream_options?.include_usage) {
        await stream.writeSSE({ data: JSON.stringify({ ...base, choices: [], usage }) });
      }
      await stream.writeSSE({ data: DONE });
    });
  }

  // ---------- routes ----------

  app.get("/health", (c) =>
    c.json({
      status: shuttingDown ? "shutting_down" : "ok",
      models: [...models.keys()],
      active: [...engines.values()].reduce((s, e) => s + e.activeCount, 0),
      queued: [...engines.values()].reduce((s, e) => s + e.queuedCount, 0),
      tensors: tf.memory().numTensors,
    }),
  );

  app.get("/metrics", async (c) => {
    const text = await metrics.registry.metrics();
    return c.text(text, 200, { "Content-Type": metrics.registry.contentType });
  });

  const modelObject = (m: Served) => ({
    id: m.id,
    object: "model",
    created: m.created,
    owned_by: "typeformer",
    ...(m.causal
      ? { max_model_len: m.engine!.maxContext, family: m.causal.family ?? "decoder" }
      : m.seq2seq
        ? { max_model_len: m.engine!.maxContext, family: "encoder-decoder" }
        : { family: m.encoder!.family ?? "encoder" }),
  });

  app.get("/v1/models", (c) => c.json({ object: "list", data: [...models.values()].map(modelObject) }));
  app.get("/v1/models/:id{.+}", (c) => c.json(modelObject(getModel(c.req.param("id")))));

  app.post("/v1/chat/completions", async (c) => {
    const body = await readBody(c, chatSchema);
    const m = getModel(body.model);
    const engine = requireEngine(m);
    const tok = m.tokenizer;
    const prompt = renderChat(tok, body.messages, true);
    const logprobs = body.logprobs ? (body.top_logprobs ?? 0) : undefined;
    const { ac, done } = requestSignal(c);
    let gens: Generation[];
    try {
      const reqs = buildRequests(
        engine,
        body,
        [prompt],
        body.max_completion_tokens ?? body.max_tokens,
        logprobs,
        ac.signal,
      ).map((r) => ({ ...r, stopTokenIds: body.ignore_eos ? [] : chatStopIds(tok) }));
      gens = submitAll(engine, reqs);
    } catch (e) {
      done();
      throw e;
    }
    const id = `chatcmpl-${randomUUID()}`;
    const created = nowSeconds();
    const base = {
      id,
      object: "chat.completion.chunk",
      created,
      model: m.id,
      system_fingerprint: "typeformer",
    };

    if (!body.stream) {
      try {
        const results = await Promise.all(gens.map((g) => g.result));
        checkResults(results);
        return c.json({
          id,
          object: "chat.completion",
          created,
          model: m.id,
          system_fingerprint: "typeformer",
          choices: results.map((r, index) => ({
            index,
            message: { role: "assistant", content: r.text, refusal: null },
            logprobs: r.logprobs
              ? {
                  content: r.logprobs.map((e) => chatLogprob(tok, e.tokenId, e.logprob, e.topLogprobs)),
                  refusal: null,
                }
              : null,
            finish_reason: finishReason(r),
          })),
          usage: usageOf(results, [prompt]),
        });
      } finally {
        done();
      }
    }

    const includeUsage = body.stream_options?.include_usage === true;
    return streamSSE(c, async (stream) => {
      stream.onAbort(() => ac.abort("client disconnected"));
      const send = orderedSender(stream);
      try {
        const results = await Promise.all(
          gens.map(async (g, index) => {
            await send({
              ...base,
              choices: [
                { index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null },
              ],
            });
            for await (const e of g) {
              if (e.text === "" && e.logprob === undefined) continue;
              await send({
                ...base,
                choices: [
                  {
                    index,
                    delta: { content: e.text },
                    logprobs:
                      e.logprob !== undefined && e.tokenId >= 0
                        ? { content: [chatLogprob(tok, e.tokenId, e.logprob, e.topLogprobs)], refusal: null }
                        : null,
                    finish_reason: null,
                  },
                ],
              });
            }
            const r = await g.result;
            if (r.finishReason === "stop" || r.finishReason === "length") {
              await send({
                ...base,
                choices: [{ index, delta: {}, logprobs: null, finish_reason: finishReason(r) }],
              });
            }
            return r;
          }),
        );
        try {
          checkResults(results);
        } catch (e) {
          await send(toApiError(e).body());
          return;
        }
        if (includeUsage) await send({ ...base, choices: [], usage: usageOf(results, [prompt]) });
        await send(DONE); // resolves after every earlier event was written
      } finally {
        for (const g of gens) g.cancel("stream closed");
        done();
      }
    });
  });

  app.post("/v1/completions", async (c) => {
    const body = await readBody(c, completionSchema);
    const m = getModel(body.model);
    if (m.seq2seq && (body.best_of ?? 1) > 1) return beamCompletion(c, m, body);
    const engine = m.seq2seq ? m.engine! : requireEngine(m);
    const tok = m.tokenizer;
    if (body.suffix) throw invalidRequest("'suffix' is not supported", "suffix", "unsupported");
    const p = body.prompt;
    const prompts = encodeInputs(tok, p);
    for (const [i, ids] of prompts.entries()) {
      if (ids.length === 0)
        throw invalidRequest(`prompt ${i} encodes to no tokens`, "prompt", "invalid_value");
    }
    const echo = body.echo === true;
    const logprobs = body.logprobs ?? undefined;
    const { ac, done } = requestSignal(c);
    let gens: Generation[];
    try {
      gens = submitAll(
        engine,
        buildRequests(engine, body, prompts, body.max_tokens ?? 16, logprobs, ac.signal),
      );
    } catch (e) {
      done();
      throw e;
    }
    const n = body.n ?? 1;
    const id = `cmpl-${randomUUID()}`;
    const created = nowSeconds();
    const promptText = (i: number) => (echo ? tok.decode(prompts[Math.floor(i / n)]) : "");
    const completionLogprobs = (r: GenerationResult, offset0: number) => {
      if (!r.logprobs) return null;
      const tokens: string[] = [];
      const offsets: number[] = [];
      let off = offset0;
      for (const e of r.logprobs) {
        const s = tokenText(tok, e.tokenId);
        tokens.push(s);
        offsets.push(off);
        off += s.length;
      }
      return {
        tokens,
        token_logprobs: r.logprobs.map((e) => e.logprob),
        top_logprobs: r.logprobs.map((e) =>
          Object.fromEntries((e.topLogprobs ?? []).map((t) => [tokenText(tok, t.tokenId), t.logprob])),
        ),
        text_offset: offsets,
      };
    };

    if (!body.stream) {
      try {
        const results = await Promise.all(gens.map((g) => g.result));
        checkResults(results);
        return c.json({
          id,
          object: "text_completion",
          created,
          model: m.id,
          system_fingerprint: "typeformer",
          choices: results.map((r, index) => ({
            index,
            text: promptText(index) + r.text,
            logprobs: completionLogprobs(r, promptText(index).length),
            finish_reason: finishReason(r),
          })),
          usage: usageOf(results, prompts),
        });
      } finally {
        done();
      }
    }

    const includeUsage = body.stream_options?.include_usage === true;
    const base = { id, object: "text_completion", created, model: m.id, system_fingerprint: "typeformer" };
    return streamSSE(c, async (stream) => {
      stream.onAbort(() => ac.abort("client disconnected"));
      const send = orderedSender(stream);
      try {
        const results = await Promise.all(
          gens.map(async (g, index) => {
            if (echo)
              await send({
                ...base,
                choices: [{ index, text: promptText(index), logprobs: null, finish_reason: null }],
              });
            for await (const e of g) {
              if (e.text === "" && e.logprob === undefined) continue;
              const lp =
                e.logprob !== undefined && e.tokenId >= 0
                  ? {
                      tokens: [tokenText(tok, e.tokenId)],
                      token_logprobs: [e.logprob],
                      top_logprobs: [
                        Object.fromEntries(
                          (e.topLogprobs ?? []).map((t) => [tokenText(tok, t.tokenId), t.logprob]),
                        ),
                      ],
                      text_offset: [0],
                    }
                  : null;
              await send({ ...base, choices: [{ index, text: e.text, logprobs: lp, finish_reason: null }] });
            }
            const r = await g.result;
            if (r.finishReason === "stop" || r.finishReason === "length") {
              await send({
                ...base,
                choices: [{ index, text: "", logprobs: null, finish_reason: finishReason(r) }],
              });
            }
            return r;
          }),
        );
        try {
          checkResults(results);
        } catch (e) {
          await send(toApiError(e).body());
          return;
        }
        if (includeUsage) await send({ ...base, choices: [], usage: usageOf(results, prompts) });
        await send(DONE); // resolves after every earlier event was written
      } finally {
        for (const g of gens) g.cancel("stream closed");
        done();
      }
    });
  });

  app.post("/v1/embeddings", async (c) => {
    const body: EmbeddingsBody = await readBody(c, embeddingsSchema);
    const m = getModel(body.model);
    if (!m.encoder) {
      throw invalidRequest(
        `model "${m.id}" is a${m.seq2seq ? "n encoder-decoder" : " decoder-only"} model; embeddings need an encoder model (e.g. bert)`,
        "model",
        "invalid_model",
      );
    }
    const tok = m.tokenizer;
    const input = body.input;
    const ids = encodeInputs(tok, input);
    const maxLen = m.encoder.maxPositions ?? Number.POSITIVE_INFINITY;
    for (const [i, row] of ids.entries()) {
      if (row.length === 0) throw invalidRequest(`input ${i} encodes to no tokens`, "input", "invalid_value");
      if (row.length > maxLen) {
        throw invalidRequest(
          `input ${i} has ${row.length} tokens but the model's context length is ${maxLen}`,
          "input",
          "context_length_exceeded",
        );
      }
      for (const id of row) {
        if (id >= tok.vocabSize) {
          throw invalidRequest(
            `input token id ${id} is out of the vocabulary (size ${tok.vocabSize})`,
            "input",
          );
        }
      }
    }
    const T = Math.max(...ids.map((r) => r.length));
    const pad = tok.padTokenId ?? 0;
    const flat = new Int32Array(ids.length * T).fill(pad);
    const mask = new Float32Array(ids.length * T);
    ids.forEach((row, b) => {
      row.forEach((id, t) => {
        flat[b * T + t] = id;
        mask[b * T + t] = 1;
      });
    });
    const vectors = tf.tidy(() => {
      const x = tf.tensor2d(flat, [ids.length, T], "int32");
      const am = tf.tensor2d(mask, [ids.length, T]);
      return m.encoder!.embed(x, { attentionMask: am });
    });
    const data = (await vectors.data()) as Float32Array;
    const dim = vectors.shape[1];
    vectors.dispose();
    if (body.dimensions != null && body.dimensions !== dim) {
      throw invalidRequest(
        `'dimensions' must equal the model's embedding size ${dim}; received ${body.dimensions}`,
        "dimensions",
      );
    }
    const base64 = body.encoding_format === "base64";
    return c.json({
      object: "list",
      model: m.id,
      data: ids.map((_, i) => {
        const v = data.slice(i * dim, (i + 1) * dim);
        return {
          object: "embedding",
          index: i,
          embedding: base64
            ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64")
            : Array.from(v),
        };
      }),
      usage: {
        prompt_tokens: ids.reduce((s, r) => s + r.length, 0),
        total_tokens: ids.reduce((s, r) => s + r.length, 0),
      },
    });
  });

  app.post("/v1/attention", async (c) => {
    const body: AttentionBody = await readBody(c, attentionSchema);
    const m = getModel(body.model);
    const model = m.causal;
    if (!model) throw invalidRequest(`model "${m.id}" has no attention view (decoder models only)`, "model");
    const tok = m.tokenizer;
    const ids =
      body.messages !== undefined
        ? renderChat(tok, body.messages, body.add_generation_prompt ?? false)
        : tok.encode(body.text!);
    // a single layer/head pair (the chat page's heatmap) may be 4× longer: the reply is T² numbers per pair
    const pairs =
      (body.layers?.length ?? Number.POSITIVE_INFINITY) * (body.heads?.length ?? Number.POSITIVE_INFINITY);
    const limit = Math.min(pairs <= 2 ? 4 * maxAttentionTokens : maxAttentionTokens, model.maxPositions);
    if (ids.length === 0)
      throw invalidRequest("the text encodes to no tokens", body.text ? "text" : "messages");
    if (ids.length > limit) {
      throw invalidRequest(
        `the text has ${ids.length} tokens but /v1/attention accepts at most ${limit}`,
        body.text !== undefined ? "text" : "messages",
        "context_length_exceeded",
      );
    }
    const out = tf.tidy(() => {
      const x = tf.tensor2d(ids, [1, ids.length], "int32");
      const r = model.forward(x, { outputAttentions: true });
      return r.attentions ?? [];
    });
    try {
      if (out.length === 0) {
        throw new ApiError(501, `model "${m.id}" does not return attention weights`, "server_error", "model");
      }
      const numLayers = out.length;
      const numHeads = out[0].shape[1];
      const layers = body.layers ?? Array.from({ length: numLayers }, (_, i) => i);
      const heads = body.heads ?? Array.from({ length: numHeads }, (_, i) => i);
      for (const l of layers) {
        if (l >= numLayers)
          throw invalidRequest(`layer ${l} does not exist (the model has ${numLayers})`, "layers");
      }
      for (const h of heads) {
        if (h >= numHeads)
          throw invalidRequest(`head ${h} does not exist (the model has ${numHeads})`, "heads");
      }
      const T = ids.length;
      const round = (v: number) => Math.round(v * 1e5) / 1e5;
      const attentions: number[][][][] = [];
      for (const l of layers) {
        const a = (await out[l].data()) as Float32Array; // (1, H, T, Tk)
        const Tk = out[l].shape[3];
        attentions.push(
          heads.map((h) =>
            Array.from({ length: T }, (_, q) =>
              Array.from({ length: Tk }, (_, k) => round(a[(h * T + q) * Tk + k])),
            ),
          ),
        );
      }
      return c.json({
        object: "attention",
        model: m.id,
        tokens: ids.map((id) => ({ id, text: tokenText(tok, id) })),
        num_layers: numLayers,
        num_heads: numHeads,
        layers,
        heads,
        attentions,
      });
    } finally {
      tf.dispose(out);
    }
  });

  return {
    app,
    metrics,
    engines,
    async shutdown({ graceMs = 10_000 } = {}) {
      shuttingDown = true;
      const all = [...engines.values()];
      const timer = setTimeout(() => {
        for (const e of all) void e.close({ cancel: true });
      }, graceMs);
      try {
        await Promise.all(all.map((e) => e.close()));
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

export interface ListenOptions {
  /** Default 8000; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1 (loopback only). */
  host?: string;
}

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  readonly host: string;
  readonly server: TypeformerServer;
  /** Graceful shutdown: stop accepting, let streams finish (or cancel after `graceMs`), close sockets. */
  close(opts?: { graceMs?: number }): Promise<void>;
}

/** Starts listening (127.0.0.1 by default). */
export async function listen(server: TypeformerServer, opts: ListenOptions = {}): Promise<RunningServer> {
  const host = opts.host ?? "127.0.0.1";
  const node = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: server.app.fetch, port: opts.port ?? 8000, hostname: host }, () => resolve(s));
    s.once("error", reject);
  });
  const port = (node.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    host,
    server,
    async close(closeOpts = {}) {
      const closed = new Promise<void>((resolve) => node.close(() => resolve()));
      await server.shutdown(closeOpts);
      (node as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.();
      (node as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      await closed;
    },
  };
}
