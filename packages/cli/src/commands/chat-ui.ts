import type { BackendChoice } from "@typeformer/core";
import type { Command } from "commander";
import { isUrl, openEndpoint } from "./chat.js";

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new Error(`expected a port number; received ${JSON.stringify(v)}`);
  return n;
};

interface ChatUiOpts {
  port: number;
  host: string;
  apiKey?: string;
  backend?: BackendChoice;
  rebuild?: boolean;
  demo?: boolean;
}

/** Where `--demo` keeps its untrained model (runs/ is the workspace's git-ignored output folder). */
export const DEMO_MODEL_DIR = "runs/chat-demo-model";

export function registerChatUi(program: Command): void {
  program
    .command("chat-ui")
    .description(
      "Start the chat page and a model server together and print the URL (a model directory is served in-process).",
    )
    .argument(
      "<model-dir-or-url>",
      "a model directory, or an OpenAI-compatible server URL to put the page in front of",
    )
    .option("--port <n>", "port for the page (0 = any free port)", int, 8080)
    .option("--host <host>", "interface to bind (default loopback only)", "127.0.0.1")
    .option("--api-key <key>", "API key the model server requires (or TYPEFORMER_API_KEY)")
    .option("--backend <name>", "tf.js backend for a model directory: node-gpu, node, wasm or cpu")
    .option("--rebuild", "rebuild the page even when an up-to-date build exists")
    .option(
      "--demo",
      `no model yet? serve the smallest possible model: an untrained character-level GPT-2 in ${DEMO_MODEL_DIR} (replies are random characters, every view works)`,
    )
    .action(async (target: string | undefined, opts: ChatUiOpts) => {
      const { createDemoModelDir, ensureChatAppBuilt, startChatUiServer } = await import(
        "@typeformer/chat-app"
      );
      if (opts.demo && target) throw new Error("give a model directory or URL, or --demo, not both");
      if (opts.demo) {
        const demo = await createDemoModelDir(DEMO_MODEL_DIR);
        console.log(
          demo.created
            ? `created an untrained demo model in ${DEMO_MODEL_DIR}`
            : `reusing the demo model in ${DEMO_MODEL_DIR}`,
        );
        target = DEMO_MODEL_DIR;
      }
      if (!target)
        throw new Error("give a model directory or server URL (or --demo for an untrained tiny model)");
      const t0 = performance.now();
      const built = await ensureChatAppBuilt({ force: opts.rebuild });
      if (built.built)
        console.log(`built the chat page in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      if (!isUrl(target)) console.log(`loading ${target}…`);
      const endpoint = await openEndpoint(target!, {
        backend: opts.backend,
        apiKey: opts.apiKey ?? process.env.TYPEFORMER_API_KEY,
      });
      const ui = await startChatUiServer({ apiBase: endpoint.baseUrl, port: opts.port, host: opts.host });
      console.log(`typeformer chat-ui: ${endpoint.description}`);
      console.log(`\n  Open ${ui.url} in your browser.\n`);
      console.log("  (the page forwards /v1 to the model server; Ctrl-C stops both)");
      let stopping = false;
      const stop = async () => {
        if (stopping) process.exit(130);
        stopping = true;
        await ui.close();
        await endpoint.close?.();
        process.exit(0);
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
      await new Promise(() => {}); // run until a signal
    });
}
