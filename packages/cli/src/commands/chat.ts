import { createInterface } from "node:readline";
import { initAcceleratedBackend } from "@typeformer/attention";
import type { BackendChoice } from "@typeformer/core";
import type { Command } from "commander";

const num = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`expected a number; received ${JSON.stringify(v)}`);
  return n;
};
const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`expected an integer; received ${JSON.stringify(v)}`);
  return n;
};

export const isUrl = (s: string) => /^https?:\/\//i.test(s);

export interface ApiEndpoint {
  /** server root without /v1 */
  baseUrl: string;
  /** set when this process started the server (a model directory was given) */
  close?: () => Promise<void>;
  /** what was started, for the banner */
  description: string;
  /**
   * For a model directory: false when its tokenizer cannot encode the chat template (a base model trained on
   * plain text, e.g. a character vocabulary without `<|user|>`): chat in "continue text" mode instead.
   */
  chatTemplateWorks?: boolean;
}

function canChat(tokenizer: {
  applyChatTemplate?: (
    m: { role: string; content: string }[],
    o?: { addGenerationPrompt?: boolean },
  ) => string;
  encode: (text: string, o?: { addSpecialTokens?: boolean; allowedSpecial?: "all" }) => number[];
}): boolean {
  if (!tokenizer.applyChatTemplate) return true; // the server's plain "role: text" fallback
  try {
    const text = tokenizer.applyChatTemplate([{ role: "user", content: "Hi" }], {
      addGenerationPrompt: true,
    });
    tokenizer.encode(text, { addSpecialTokens: false, allowedSpecial: "all" });
    return true;
  } catch {
    return false;
  }
}

/**
 * A model directory starts an in-process OpenAI-compatible server from @typeformer/serve on a free
 * loopback port; a URL is used as it is.
 */
export async function openEndpoint(
  target: string,
  opts: { backend?: BackendChoice; port?: number; host?: string; apiKey?: string; id?: string } = {},
): Promise<ApiEndpoint> {
  if (isUrl(target)) return { baseUrl: target.replace(/\/+$/, "").replace(/\/v1$/, ""), description: target };
  const backend = await initAcceleratedBackend({ backend: opts.backend });
  const { createServer, listen, loadModelDir } = await import("@typeformer/serve");
  const loaded = await loadModelDir(target, { id: opts.id });
  const server = createServer({
    models: [{ id: loaded.id, model: loaded.model, tokenizer: loaded.tokenizer }],
    apiKey: opts.apiKey,
  });
  const running = await listen(server, { port: opts.port ?? 0, host: opts.host ?? "127.0.0.1" });
  return {
    baseUrl: running.url,
    chatTemplateWorks: canChat(loaded.tokenizer as unknown as Parameters<typeof canChat>[0]),
    description: `model "${loaded.id}" from ${target} (backend ${backend.backend}), served at ${running.url}/v1`,
    close: async () => {
      await running.close({ graceMs: 0 });
      loaded.dispose();
    },
  };
}

interface ChatOpts {
  model?: string;
  system?: string;
  temperature?: number;
  topP?: number;
  topK?: number;
  maxTokens: number;
  seed?: number;
  apiKey?: string;
  backend?: BackendChoice;
  color: boolean;
  complete?: boolean;
}

const HELP = [
  "  /reset            forget the conversation (the system prompt stays)",
  "  /system <text>    set the system prompt (empty: remove it) and start over",
  "  /set <k> <value>  temperature, top_p, top_k, max_tokens or seed (`/set seed` alone clears it)",
  "  /help             this list",
  "  /exit             quit (or Ctrl-D); Ctrl-C stops a reply, or quits at an empty prompt",
].join("\n");

export function registerChat(program: Command): void {
  program
    .command("chat")
    .description(
      "Chat in the terminal with a model directory (served in-process) or an OpenAI-compatible URL.",
    )
    .argument("<model-dir-or-url>", "a model directory, or a server URL such as http://127.0.0.1:8000")
    .option("--model <id>", "model id (default: the server's first model)")
    .option("--system <text>", "system prompt")
    .option("--temperature <t>", "sampling temperature (0 = greedy)", num)
    .option("--top-p <p>", "nucleus sampling: keep the likeliest tokens up to this total probability", num)
    .option("--top-k <k>", "keep only the k likeliest tokens", int)
    .option("--max-tokens <n>", "longest reply in tokens", int, 256)
    .option("--seed <n>", "sampling seed (same seed, same reply)", int)
    .option("--api-key <key>", "API key for the server (or TYPEFORMER_API_KEY)")
    .option("--backend <name>", "tf.js backend for a model directory: node-gpu, node, wasm or cpu")
    .option(
      "--complete",
      "continue one running text with /v1/completions instead of chatting (for base models; automatic when a model directory's tokenizer cannot encode the chat template)",
    )
    .option("--no-color", "plain output")
    .action(async (target: string, opts: ChatOpts) => {
      const { streamChat, streamCompletion, listModelInfo, fitToContext, describeError, ChatApiError } =
        await import("@typeformer/chat-app");
      const apiKey = opts.apiKey ?? process.env.TYPEFORMER_API_KEY;
      const color = opts.color && process.stdout.isTTY === true && !process.env.NO_COLOR;
      const paint = (code: string) => (s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
      const dim = paint("2");
      const bold = paint("1");
      const red = paint("31");
      const cyan = paint("36");
      const out = (s: string) => process.stdout.write(s);

      if (!isUrl(target)) out(dim(`loading ${target}…\n`));
      const endpoint = await openEndpoint(target, { backend: opts.backend, apiKey });
      const client = { baseUrl: endpoint.baseUrl, apiKey };
      let model = opts.model;
      let contextLength: number | undefined;
      try {
        const models = await listModelInfo(client);
        if (!model) model = models[0]?.id;
        contextLength = models.find((m) => m.id === model)?.maxModelLen;
        if (!model) throw new Error(`the server at ${endpoint.baseUrl} offers no models`);
      } catch (e) {
        await endpoint.close?.();
        throw new Error(describeError(e));
      }
      const sampling: Record<string, number | undefined> = {
        temperature: opts.temperature,
        top_p: opts.topP,
        top_k: opts.topK,
        max_tokens: opts.maxTokens,
        seed: opts.seed,
      };
      let system = opts.system ?? "";
      let history: { role: "user" | "assistant"; content: string }[] = [];

      const complete = opts.complete === true || endpoint.chatTemplateWorks === false;
      out(`${bold("typeformer chat")} ${dim(`· ${model} · ${endpoint.description}`)}\n`);
      if (complete)
        out(
          dim(
            opts.complete
              ? "Continue-text mode: your lines and the model's form one text it keeps writing.\n"
              : "This model was not taught a chat format (its vocabulary lacks the chat template's tokens): continue-text mode, your lines and its replies form one text it keeps writing.\n",
          ),
        );
      out(dim("Type a message. /help lists commands; Ctrl-C stops a reply; Ctrl-D quits.\n"));

      const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: cyan("you › ") });
      let current: AbortController | null = null;
      let closed = false;
      const queue: string[] = [];
      let busy = false;

      const reply = async (text: string) => {
        history.push({ role: "user", content: text });
        const messages = [...(system ? [{ role: "system" as const, content: system }] : []), ...history];
        const ctrl = new AbortController();
        current = ctrl;
        out(bold("bot › "));
        let content = "";
        let finish = "";
        let tokens = 0;
        const t0 = performance.now();
        try {
          // never ask for more than the context holds (the Moby Dick model sees 64 characters)
          const fitted = fitToContext(
            history.map((m) => m.content).join(""),
            sampling.max_tokens,
            contextLength,
          );
          const params = { ...sampling, max_tokens: fitted.maxTokens };
          const events = complete
            ? streamCompletion({
                ...client,
                model: model!,
                prompt: fitted.prompt,
                sampling: params,
                signal: ctrl.signal,
              })
            : streamChat({ ...client, model: model!, messages, sampling: params, signal: ctrl.signal });
          for await (const ev of events) {
            if (ev.type === "delta") {
              content += ev.content;
              out(ev.content);
            } else if (ev.type === "finish") finish = ev.reason;
            else if (ev.type === "usage") tokens = ev.usage.completion_tokens;
          }
          const secs = (performance.now() - t0) / 1000;
          const note = [finish === "length" ? "max tokens reached" : "", tokens ? `${tokens} tokens` : ""];
          if (tokens && secs > 0) note.push(`${(tokens / secs).toFixed(1)} tok/s`);
          out(`\n${dim(`(${note.filter(Boolean).join(", ") || "done"})`)}\n`);
          history.push({ role: "assistant", content });
        } catch (e) {
          if (e instanceof ChatApiError && e.kind === "aborted") {
            out(`\n${dim("(stopped)")}\n`);
            if (content) history.push({ role: "assistant", content });
            else history.pop();
          } else {
            out(`\n${red(`error: ${describeError(e)}`)}\n`);
            history.pop();
          }
        } finally {
          current = null;
        }
      };

      const command = (line: string): void => {
        const [cmd, ...rest] = line.slice(1).split(/\s+/);
        const arg = line.slice(1 + cmd.length).trim();
        switch (cmd) {
          case "reset":
            history = [];
            out(dim("(conversation cleared)\n"));
            return;
          case "system":
            system = arg;
            history = [];
            out(dim(system ? `(system prompt set; conversation cleared)\n` : "(system prompt removed)\n"));
            return;
          case "set": {
            const key = (rest[0] ?? "").replace(/-/g, "_");
            if (!["temperature", "top_p", "top_k", "max_tokens", "seed"].includes(key)) {
              out(
                red(
                  `unknown setting ${JSON.stringify(rest[0] ?? "")}: use temperature, top_p, top_k, max_tokens or seed\n`,
                ),
              );
              return;
            }
            if (rest[1] === undefined) {
              sampling[key] = undefined;
              out(dim(`(${key} cleared)\n`));
              return;
            }
            const v = Number(rest[1]);
            if (!Number.isFinite(v)) {
              out(red(`${key} must be a number; received ${JSON.stringify(rest[1])}\n`));
              return;
            }
            sampling[key] = v;
            out(dim(`(${key} = ${v})\n`));
            return;
          }
          case "help":
            out(`${HELP}\n`);
            return;
          case "exit":
          case "quit":
            rl.close();
            return;
          default:
            out(red(`unknown command /${cmd}; /help lists them\n`));
        }
      };

      // typed at a terminal, Ctrl-D quits at once; piped input (a script) is answered to the end first
      const interactive = process.stdin.isTTY === true;
      let idle: Promise<void> = Promise.resolve();
      const drain = async () => {
        if (busy) return;
        busy = true;
        while (queue.length > 0 && !(closed && interactive)) {
          const line = queue.shift()!.trim();
          if (line.startsWith("/")) command(line);
          else if (line) await reply(line);
        }
        busy = false;
        if (!closed) rl.prompt();
      };

      rl.on("line", (line) => {
        queue.push(line);
        if (!busy) idle = drain();
      });
      rl.on("SIGINT", () => {
        if (current) current.abort();
        else if (rl.line.length > 0) {
          // Ctrl-C with a half-typed line clears it, like a shell
          out("^C\n");
          (rl as unknown as { line: string }).line = "";
          rl.prompt();
        } else rl.close();
      });
      rl.prompt();

      await new Promise<void>((resolve) => {
        rl.on("close", () => {
          closed = true;
          if (interactive) current?.abort();
          resolve();
        });
      });
      await idle;
      out(dim("\nbye\n"));
      await endpoint.close?.();
    });
}
