/**
 * A small OpenAI-compatible client shared by the web page and the terminal chat. Runs anywhere `fetch`
 * and web streams exist (browsers, Node 20). No dependencies.
 */
import { SseParser } from "./sse.js";

export type Role = "system" | "user" | "assistant";

export interface ChatMessage {
  role: Role;
  content: string;
}

/** Sampling options, named as in the OpenAI API (`top_k` is a common extension our server accepts). */
export interface SamplingOptions {
  temperature?: number;
  top_p?: number;
  top_k?: number;
  max_tokens?: number;
  seed?: number;
}

export interface TopLogprob {
  token: string;
  logprob: number;
}

/** One generated token with its log-probability and the alternatives the model considered. */
export interface TokenLogprob {
  token: string;
  logprob: number;
  top_logprobs: TopLogprob[];
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export type StreamEvent =
  | { type: "delta"; content: string; logprobs: TokenLogprob[] }
  | { type: "finish"; reason: string }
  | { type: "usage"; usage: Usage };

export interface ClientOptions {
  /** Server root, e.g. `http://127.0.0.1:8080` (no `/v1`); `""` means the page's own origin. */
  baseUrl: string;
  apiKey?: string;
  signal?: AbortSignal;
  fetch?: typeof fetch;
}

export interface ChatRequest extends ClientOptions {
  model: string;
  messages: ChatMessage[];
  sampling?: SamplingOptions;
  /** Ask for per-token log-probabilities with this many alternatives (0 = none). */
  topLogprobs?: number;
}

/** An error with a message meant for people: what happened and what to do. */
export class ChatApiError extends Error {
  override readonly name = "ChatApiError";
  constructor(
    message: string,
    readonly kind: "http" | "network" | "protocol" | "aborted",
    readonly status?: number,
    readonly code?: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export function apiUrl(baseUrl: string, path: string): string {
  const base = baseUrl.replace(/\/+$/, "").replace(/\/v1$/, "");
  return `${base}${path}`;
}

function headers(opts: ClientOptions): Record<string, string> {
  const h: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
  if (opts.apiKey) h.authorization = `Bearer ${opts.apiKey}`;
  return h;
}

function isAbort(err: unknown): boolean {
  return (
    typeof err === "object" &&
    err !== null &&
    "name" in err &&
    (err as { name: string }).name === "AbortError"
  );
}

async function send(url: string, init: RequestInit, opts: ClientOptions): Promise<Response> {
  const f = opts.fetch ?? globalThis.fetch;
  let res: Response;
  try {
    res = await f(url, { ...init, signal: opts.signal });
  } catch (err) {
    if (isAbort(err)) throw new ChatApiError("Stopped.", "aborted");
    const where = url.replace(/\/v1\/.*$/, "") || "this page's server";
    throw new ChatApiError(
      `Cannot reach the server at ${where} (${err instanceof Error ? err.message : String(err)}). Is it running? Start one with \`typeformer serve <model-dir>\`.`,
      "network",
    );
  }
  if (!res.ok) throw await errorFromResponse(res);
  return res;
}

/** Turns a non-2xx response (OpenAI error shape or anything else) into a readable ChatApiError. */
export async function errorFromResponse(res: Response): Promise<ChatApiError> {
  let text = "";
  try {
    text = await res.text();
  } catch {
    // body unreadable: fall through with the status line only
  }
  let message = "";
  let code: string | undefined;
  try {
    const body = JSON.parse(text) as { error?: { message?: string; code?: string | null } | string };
    if (typeof body.error === "string") message = body.error;
    else if (body.error?.message) {
      message = body.error.message;
      code = body.error.code ?? undefined;
    }
  } catch {
    message = text.slice(0, 300);
  }
  const retryHeader = res.headers.get("retry-after");
  const retry =
    retryHeader !== null && Number.isFinite(Number(retryHeader)) ? Number(retryHeader) : undefined;
  let readable: string;
  if (res.status === 429) {
    readable = `The server is busy (429: too many requests)${retry !== undefined ? ` — try again in ${retry} s` : " — try again in a moment"}.${message ? ` ${message}` : ""}`;
  } else if (res.status === 401 || res.status === 403) {
    readable = `The server refused the API key (${res.status}). Set the key in Settings.${message ? ` ${message}` : ""}`;
  } else if (res.status === 404) {
    readable = `Not found (404): ${message || res.url}`;
  } else if (
    res.status === 400 &&
    (code === "context_length_exceeded" || /context|too long/i.test(message))
  ) {
    readable = `The conversation is too long for this model: ${message.replace(/[.\s]*$/, ".")} Clear the chat or lower max tokens.`;
  } else if (res.status === 400 || res.status === 422) {
    readable = `The server rejected the request: ${message || "(no message)"}`;
  } else {
    readable = `The server answered ${res.status}${res.statusText ? ` ${res.statusText}` : ""}: ${message || "(no message)"}`;
  }
  return new ChatApiError(readable, "http", res.status, code, retry);
}

export interface ModelInfo {
  id: string;
  /** context length in tokens, when the server says (`max_model_len`, as vLLM and our server do) */
  maxModelLen?: number;
}

/** `GET /v1/models` → the models with their context length when the server reports it. */
export async function listModelInfo(opts: ClientOptions): Promise<ModelInfo[]> {
  const res = await send(apiUrl(opts.baseUrl, "/v1/models"), { headers: headers(opts) }, opts);
  const body = (await res.json()) as { data?: { id: string; max_model_len?: unknown }[] };
  return (body.data ?? []).map((m) => {
    const info: ModelInfo = { id: String(m.id) };
    if (typeof m.max_model_len === "number" && m.max_model_len > 0) info.maxModelLen = m.max_model_len;
    return info;
  });
}

/** `GET /v1/models` → model ids. */
export async function listModels(opts: ClientOptions): Promise<string[]> {
  return (await listModelInfo(opts)).map((m) => m.id);
}

/**
 * Fits a "continue text" request into a small context: `max_tokens` at most the context, and the prompt cut
 * to its tail so that at least half the context (or `max_tokens`, if smaller) stays free for the reply. The
 * prompt is cut in characters (a token holds at least one), so it never exceeds its share.
 */
export function fitToContext(
  prompt: string,
  maxTokens: number | undefined,
  maxModelLen: number | undefined,
): { prompt: string; maxTokens: number | undefined } {
  if (!maxModelLen) return { prompt, maxTokens };
  const mt = Math.max(1, Math.min(maxTokens ?? maxModelLen, maxModelLen));
  const room = Math.max(1, maxModelLen - Math.min(mt, Math.floor(maxModelLen / 2)));
  const chars = [...prompt];
  return { prompt: chars.length > room ? chars.slice(-room).join("") : prompt, maxTokens: mt };
}

function normalizeLogprobs(raw: unknown): TokenLogprob[] {
  const content = (raw as { content?: unknown } | null | undefined)?.content;
  if (!Array.isArray(content)) return [];
  return content.map((c: { token?: string; logprob?: number; top_logprobs?: TopLogprob[] }) => ({
    token: String(c.token ?? ""),
    logprob: Number(c.logprob ?? 0),
    top_logprobs: Array.isArray(c.top_logprobs)
      ? c.top_logprobs.map((t) => ({ token: String(t.token), logprob: Number(t.logprob) }))
      : [],
  }));
}

interface StreamChunk {
  error?: { message?: string };
  choices?: {
    delta?: { content?: string | null };
    text?: string | null;
    logprobs?: unknown;
    finish_reason?: string | null;
  }[];
  usage?: Usage | null;
}

/** Reads an SSE response of JSON chunks until `[DONE]`; cancels the body if the consumer stops early. */
async function* readChunks(res: Response, signal?: AbortSignal): AsyncGenerator<StreamChunk> {
  if (!res.body) throw new ChatApiError("The server sent an empty response.", "protocol");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  let done = false;
  try {
    while (!done) {
      let chunk: ReadableStreamReadResult<string>;
      try {
        chunk = await reader.read();
      } catch (err) {
        if (isAbort(err) || signal?.aborted) throw new ChatApiError("Stopped.", "aborted");
        throw new ChatApiError(
          `The connection dropped mid-reply (${err instanceof Error ? err.message : String(err)}).`,
          "network",
        );
      }
      const events = chunk.done ? parser.end() : parser.push(chunk.value);
      if (chunk.done) done = true;
      for (const ev of events) {
        if (ev.data === "[DONE]") {
          done = true;
          break;
        }
        let json: StreamChunk;
        try {
          json = JSON.parse(ev.data);
        } catch {
          throw new ChatApiError(`The server sent a malformed event: ${ev.data.slice(0, 120)}`, "protocol");
        }
        if (json.error)
          throw new ChatApiError(`The server stopped with an error: ${json.error.message}`, "http");
        yield json;
      }
    }
  } finally {
    if (!done) await reader.cancel().catch(() => {});
    else reader.releaseLock();
  }
}

function requestBody(req: { model: string; sampling?: SamplingOptions }): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model: req.model,
    stream: true,
    stream_options: { include_usage: true },
  };
  for (const [k, v] of Object.entries(req.sampling ?? {})) if (v !== undefined && v !== null) body[k] = v;
  return body;
}

/**
 * `POST /v1/chat/completions` with `stream: true`: yields text deltas (with their tokens' logprobs when
 * asked), the finish reason and the usage as they arrive. Aborting `signal` closes the connection, which
 * makes our server cancel the generation; the generator then throws a ChatApiError of kind "aborted".
 */
export async function* streamChat(req: ChatRequest): AsyncGenerator<StreamEvent> {
  const body: Record<string, unknown> = { ...requestBody(req), messages: req.messages };
  if (req.topLogprobs && req.topLogprobs > 0) {
    body.logprobs = true;
    body.top_logprobs = req.topLogprobs;
  }
  const res = await send(
    apiUrl(req.baseUrl, "/v1/chat/completions"),
    { method: "POST", headers: { ...headers(req), accept: "text/event-stream" }, body: JSON.stringify(body) },
    req,
  );
  for await (const json of readChunks(res, req.signal)) {
    const choice = json.choices?.[0];
    if (choice) {
      const content = choice.delta?.content ?? "";
      const logprobs = normalizeLogprobs(choice.logprobs);
      if (content !== "" || logprobs.length > 0) yield { type: "delta", content, logprobs };
      if (choice.finish_reason) yield { type: "finish", reason: choice.finish_reason };
    }
    if (json.usage) yield { type: "usage", usage: json.usage };
  }
}

export interface CompletionRequest extends ClientOptions {
  model: string;
  /** The text to continue. */
  prompt: string;
  sampling?: SamplingOptions;
  topLogprobs?: number;
}

/** The legacy completions logprobs shape: parallel arrays, alternatives as {token: logprob} maps. */
function legacyLogprobs(raw: unknown): TokenLogprob[] {
  const r = raw as {
    tokens?: string[];
    token_logprobs?: number[];
    top_logprobs?: (Record<string, number> | null)[];
  };
  if (!r || !Array.isArray(r.tokens)) return [];
  return r.tokens.map((token, i) => ({
    token: String(token),
    logprob: Number(r.token_logprobs?.[i] ?? 0),
    top_logprobs: Object.entries(r.top_logprobs?.[i] ?? {})
      .map(([t, lp]) => ({ token: t, logprob: Number(lp) }))
      .sort((a, b) => b.logprob - a.logprob),
  }));
}

/**
 * `POST /v1/completions` with `stream: true`: continues `prompt` as a plain text (for base models that
 * were never taught a chat format). Same events as streamChat.
 */
export async function* streamCompletion(req: CompletionRequest): AsyncGenerator<StreamEvent> {
  const body: Record<string, unknown> = { ...requestBody(req), prompt: req.prompt };
  if (req.topLogprobs && req.topLogprobs > 0) body.logprobs = req.topLogprobs;
  const res = await send(
    apiUrl(req.baseUrl, "/v1/completions"),
    { method: "POST", headers: { ...headers(req), accept: "text/event-stream" }, body: JSON.stringify(body) },
    req,
  );
  for await (const json of readChunks(res, req.signal)) {
    const choice = json.choices?.[0];
    if (choice) {
      const content = choice.text ?? "";
      const logprobs = legacyLogprobs(choice.logprobs);
      if (content !== "" || logprobs.length > 0) yield { type: "delta", content, logprobs };
      if (choice.finish_reason) yield { type: "finish", reason: choice.finish_reason };
    }
    if (json.usage) yield { type: "usage", usage: json.usage };
  }
}

/** Attention weights for a text, normalised: `layers[l][h][i][j]` = how much token i attends to token j. */
export interface AttentionResult {
  tokens: string[];
  layers: number[][][][];
}

/**
 * `POST /v1/attention` (our server's extension beside the OpenAI endpoints): `{model, messages}` (rendered
 * with the chat template) or `{model, text}` → `{tokens: [{id, text}], attentions: [layer][head][T][T]}`.
 * Tolerant of shape variants: weights under `attentions` or `layers`, each layer an array of heads or
 * `{heads: [...]}`, each head T×T nested arrays or a flat row-major array; tokens as strings or objects.
 */
export async function fetchAttention(
  opts: ClientOptions & { model: string; text: string; messages?: ChatMessage[] },
): Promise<AttentionResult> {
  // our server renders `messages` through the model's chat template (the exact tokens it saw); `text` is the
  // fallback for servers that only take plain text
  const body: Record<string, unknown> = opts.messages
    ? { model: opts.model, messages: opts.messages, add_generation_prompt: false }
    : { model: opts.model, text: opts.text };
  const res = await send(
    apiUrl(opts.baseUrl, "/v1/attention"),
    { method: "POST", headers: headers(opts), body: JSON.stringify(body) },
    opts,
  );
  return normalizeAttention(await res.json());
}

export function normalizeAttention(raw: unknown): AttentionResult {
  const r = raw as { tokens?: unknown; layers?: unknown; attentions?: unknown };
  // tokens: strings, or {id, text} objects (our server)
  const tokens = Array.isArray(r.tokens)
    ? r.tokens.map((t) =>
        typeof t === "string"
          ? t
          : String((t as { text?: unknown; id?: unknown })?.text ?? (t as { id?: unknown })?.id),
      )
    : [];
  const T = tokens.length;
  // weights under `attentions` (our server, where `layers` lists the layer indices) or under `layers`
  const layersAreWeights = Array.isArray(r.layers) && r.layers.length > 0 && typeof r.layers[0] !== "number";
  const rawLayers = (
    Array.isArray(r.attentions) ? r.attentions : layersAreWeights ? (r.layers as unknown[]) : []
  ) as unknown[];
  const toHead = (h: unknown): number[][] => {
    if (Array.isArray(h) && h.length > 0 && Array.isArray(h[0])) return h as number[][];
    if (Array.isArray(h) && T > 0 && h.length === T * T) {
      const rows: number[][] = [];
      for (let i = 0; i < T; i++) rows.push((h as number[]).slice(i * T, (i + 1) * T));
      return rows;
    }
    const w = (h as { weights?: unknown })?.weights;
    return w ? toHead(w) : [];
  };
  const layers = rawLayers.map((layer) => {
    const heads = Array.isArray(layer) ? layer : ((layer as { heads?: unknown[] })?.heads ?? []);
    // a batch dimension of 1 (B, H, T, T) is unwrapped
    if (
      heads.length === 1 &&
      Array.isArray(heads[0]) &&
      Array.isArray(heads[0][0]) &&
      Array.isArray(heads[0][0][0])
    )
      return (heads[0] as unknown[]).map(toHead);
    return heads.map(toHead);
  });
  if (tokens.length === 0 || layers.length === 0)
    throw new ChatApiError("The attention endpoint returned no tokens or no layers.", "protocol");
  return { tokens, layers };
}

/** A readable one-liner for any error thrown by this client (or anything else). */
export function describeError(err: unknown): string {
  if (err instanceof ChatApiError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
