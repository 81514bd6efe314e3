/**
 * A small OpenAI-compatible server for tests and demos of the chat page: streams a fixed text slowly, with
 * logprobs, usage and our `/v1/attention` extension. Messages containing `/429` or `/toolong` make it
 * answer with the errors a real server gives (overload, context too long).
 */
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export const MOCK_REPLY =
  "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, " +
  "and nothing particular to interest me on shore, I thought I would sail about a little and see the watery " +
  "part of the world. It is a way I have of driving off the spleen and regulating the circulation.";

export function mockTokenize(text: string): string[] {
  return text.match(/\s*[A-Za-z']+|\s*[^\sA-Za-z']|\s+/g) ?? [];
}

export interface MockStats {
  requests: number;
  completed: number;
  /** streams whose client disconnected before the end */
  cancelled: number;
  lastBody?: Record<string, unknown>;
}

export interface MockServer {
  url: string;
  stats: MockStats;
  close(): Promise<void>;
}

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

function err(res: ServerResponse, status: number, message: string, code: string, headers = {}): void {
  json(res, status, { error: { message, type: "invalid_request_error", param: null, code } }, headers);
}

function pseudoLogprob(i: number): number {
  return Math.log(0.35 + 0.6 * Math.abs(Math.sin(i * 1.7 + 0.3)));
}

function attention(tokens: string[], layers = 2, heads = 4): number[][][][] {
  const T = tokens.length;
  return Array.from({ length: layers }, (_, l) =>
    Array.from({ length: heads }, (_, h) =>
      Array.from({ length: T }, (_, i) => {
        const row = new Array<number>(T).fill(0);
        let z = 0;
        for (let j = 0; j <= i; j++) {
          // head 0 looks at the previous token, head 1 at the first, others decay with distance
          const s =
            (h + l) % heads === 0
              ? j === Math.max(0, i - 1)
                ? 6
                : 0
              : h === 1
                ? j === 0
                  ? 4
                  : 0
                : -(i - j) / (h + 1);
          row[j] = Math.exp(s);
          z += row[j];
        }
        return row.map((w) => w / z);
      }),
    ),
  );
}

export async function startMockOpenAI(
  opts: { tokenDelayMs?: number; model?: string } = {},
): Promise<MockServer> {
  const delay = opts.tokenDelayMs ?? 40;
  const model = opts.model ?? "mock-moby";
  const stats: MockStats = { requests: 0, completed: 0, cancelled: 0 };
  const server = createServer(async (req, res) => {
    res.setHeader("access-control-allow-origin", "*");
    res.setHeader("access-control-allow-headers", "content-type, authorization");
    if (req.method === "OPTIONS") {
      res.writeHead(204).end();
      return;
    }
    const path = (req.url ?? "/").split("?")[0];
    let raw = "";
    for await (const chunk of req) raw += chunk;
    let body: Record<string, unknown> = {};
    if (raw) {
      try {
        body = JSON.parse(raw);
      } catch {
        err(res, 400, "invalid JSON body", "invalid_json");
        return;
      }
    }
    if (path === "/health") return json(res, 200, { status: "ok" });
    if (path === "/v1/models")
      return json(res, 200, {
        object: "list",
        data: [{ id: model, object: "model", created: 0, owned_by: "typeformer" }],
      });
    if (path === "/v1/attention" && req.method === "POST") {
      // same shape as @typeformer/serve: messages (a simple chat template) or text
      const msgs = body.messages as { role: string; content: string }[] | undefined;
      const text = msgs ? msgs.map((m) => `${m.role}: ${m.content}\n`).join("") : String(body.text ?? "");
      const tokens = mockTokenize(text);
      if (tokens.length === 0) return err(res, 400, "text must be a non-empty string", "invalid_value");
      if (tokens.length > 256)
        return err(
          res,
          400,
          `the text has ${tokens.length} tokens but /v1/attention accepts at most 256`,
          "context_length_exceeded",
        );
      const attentions = attention(tokens);
      return json(res, 200, {
        object: "attention",
        model,
        tokens: tokens.map((t, id) => ({ id, text: t })),
        num_layers: attentions.length,
        num_heads: attentions[0].length,
        layers: attentions.map((_, l) => l),
        heads: attentions[0].map((_, h) => h),
        attentions,
      });
    }
    const legacy = path === "/v1/completions";
    if ((path === "/v1/chat/completions" || legacy) && req.method === "POST") {
      stats.requests++;
      stats.lastBody = body;
      const messages = (body.messages ?? []) as { role: string; content: string }[];
      const last = legacy ? String(body.prompt ?? "") : (messages[messages.length - 1]?.content ?? "");
      if (last.includes("/429"))
        return err(res, 429, "the request queue is full (64 waiting)", "rate_limit_exceeded", {
          "retry-after": "2",
        });
      if (last.includes("/nologprobs") && (body.logprobs || body.top_logprobs))
        return err(res, 400, "logprobs are not supported by this server", "invalid_value");
      if (last.includes("/500")) return err(res, 500, "internal server error", "server_error");
      if (last.includes("/toolong"))
        return err(
          res,
          400,
          "the prompt is 9000 tokens but the model's context is 512 tokens",
          "context_length_exceeded",
        );
      const maxTokens = typeof body.max_tokens === "number" ? body.max_tokens : 1000;
      const tokens = mockTokenize(MOCK_REPLY).slice(0, maxTokens);
      const finish = tokens.length < mockTokenize(MOCK_REPLY).length ? "length" : "stop";
      const id = `chatcmpl-mock${stats.requests}`;
      const top = legacy
        ? typeof body.logprobs === "number"
          ? body.logprobs
          : 0
        : typeof body.top_logprobs === "number"
          ? body.top_logprobs
          : 0;
      if (!body.stream) {
        stats.completed++;
        return json(res, 200, {
          id,
          object: "chat.completion",
          model,
          choices: [
            { index: 0, message: { role: "assistant", content: tokens.join("") }, finish_reason: finish },
          ],
          usage: { prompt_tokens: 10, completion_tokens: tokens.length, total_tokens: 10 + tokens.length },
        });
      }
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
      });
      let closed = false;
      res.on("close", () => {
        if (!res.writableFinished) {
          closed = true;
          stats.cancelled++;
        }
      });
      const chunk = (delta: { content?: string }, finishReason: string | null, logprobs: unknown = null) =>
        legacy
          ? `data: ${JSON.stringify({ id, object: "text_completion", created: 0, model, choices: [{ index: 0, text: delta.content ?? "", logprobs, finish_reason: finishReason }] })}\n\n`
          : `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created: 0, model, choices: [{ index: 0, delta, logprobs, finish_reason: finishReason }] })}\n\n`;
      if (!legacy) res.write(chunk({ role: "assistant", content: "" } as { content: string }, null));
      for (let i = 0; i < tokens.length; i++) {
        await new Promise((r) => setTimeout(r, delay));
        if (closed) return;
        const lp = pseudoLogprob(i);
        const alts = [
          { token: tokens[i], logprob: lp },
          { token: " the", logprob: Math.log((1 - Math.exp(lp)) * 0.5) },
          { token: " a", logprob: Math.log((1 - Math.exp(lp)) * 0.25) },
          { token: ",", logprob: Math.log((1 - Math.exp(lp)) * 0.15) },
          { token: " whale", logprob: Math.log((1 - Math.exp(lp)) * 0.05) },
        ].slice(0, top);
        const logprobs = legacy
          ? top > 0
            ? {
                tokens: [tokens[i]],
                token_logprobs: [lp],
                top_logprobs: [Object.fromEntries(alts.map((a) => [a.token, a.logprob]))],
                text_offset: [0],
              }
            : null
          : body.logprobs
            ? {
                content: [
                  {
                    token: tokens[i],
                    logprob: lp,
                    bytes: null,
                    top_logprobs: alts,
                  },
                ],
              }
            : null;
        res.write(chunk({ content: tokens[i] }, null, logprobs));
      }
      res.write(chunk({}, finish));
      if ((body.stream_options as { include_usage?: boolean } | undefined)?.include_usage)
        res.write(
          `data: ${JSON.stringify({ id, object: "chat.completion.chunk", model, choices: [], usage: { prompt_tokens: 10, completion_tokens: tokens.length, total_tokens: 10 + tokens.length } })}\n\n`,
        );
      res.end("data: [DONE]\n\n");
      stats.completed++;
      return;
    }
    err(res, 404, `no route ${req.method} ${path}`, "not_found");
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", () => ok()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    stats,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}
