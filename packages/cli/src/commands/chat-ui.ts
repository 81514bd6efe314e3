import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
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
  /** false with --no-train */
  train: boolean;
  demo?: boolean;
  preset: string;
}

/** Where `--no-train` keeps its untrained model (runs/ is the workspace's git-ignored output folder). */
export const DEMO_MODEL_DIR = "runs/chat-demo-model";

/** The latest checkpoint (HF layout + tokenizer) of a training run folder, if it has one. */
export async function latestCheckpoint(runDir: string): Promise<string | undefined> {
  const index = join(runDir, "checkpoints", "checkpoints.json");
  if (!existsSync(index)) return undefined;
  try {
    const { latest } = JSON.parse(await readFile(index, "utf8")) as { latest?: string | null };
    const dir = latest ? join(runDir, "checkpoints", latest) : undefined;
    return dir && existsSync(join(dir, "config.json")) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** Runs `typeformer train --preset <name>` in a child process (same node flags, so it works under tsx too). */
function trainPreset(preset: string, backend?: string): Promise<void> {
  const args = [...process.execArgv, process.argv[1], "train", "--preset", preset, "--no-samples"];
  if (backend) args.push("--backend", backend);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: "inherit" });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`training the ${preset} model failed (exit status ${code})`)),
    );
  });
}

export function registerChatUi(program: Command): void {
  program
    .command("chat-ui")
    .description(
      "Start the chat page and a model server together and print the URL. Without an argument it trains the " +
        "small Moby Dick model first (a few minutes, once; later runs reuse it); --no-train serves an untrained " +
        "tiny model at once.",
    )
    .argument(
      "[model-dir-or-url]",
      "a model directory, or an OpenAI-compatible server URL to put the page in front of",
    )
    .option("--port <n>", "port for the page (0 = any free port)", int, 8080)
    .option("--host <host>", "interface to bind (default loopback only)", "127.0.0.1")
    .option("--api-key <key>", "API key the model server requires (or TYPEFORMER_API_KEY)")
    .option("--backend <name>", "tf.js backend: node-gpu, node, wasm or cpu")
    .option("--rebuild", "rebuild the page even when an up-to-date build exists")
    .option("--preset <name>", "training preset used without an argument", "moby-dick")
    .option(
      "--no-train",
      `skip training: serve the smallest possible model, an untrained character-level GPT-2 in ${DEMO_MODEL_DIR} (random replies; every view works)`,
    )
    .option("--demo", "same as --no-train")
    .action(async (target: string | undefined, opts: ChatUiOpts) => {
      const { createDemoModelDir, ensureChatAppBuilt, startChatUiServer } = await import(
        "@typeformer/chat-app"
      );
      let modelId: string | undefined;
      const noTrain = opts.demo === true || opts.train === false;
      if (noTrain && target) throw new Error("give a model directory or URL, or --no-train, not both");
      if (noTrain) {
        const demo = await createDemoModelDir(DEMO_MODEL_DIR);
        console.log(
          demo.created
            ? `created an untrained demo model in ${DEMO_MODEL_DIR}`
            : `reusing the untrained demo model in ${DEMO_MODEL_DIR}`,
        );
        target = DEMO_MODEL_DIR;
        modelId = "untrained-demo";
      } else if (!target) {
        const runDir = join("runs", opts.preset);
        let checkpoint = await latestCheckpoint(runDir);
        if (checkpoint) console.log(`reusing the ${opts.preset} model trained before: ${checkpoint}`);
        else {
          console.log(
            `no trained ${opts.preset} model in ${runDir} yet: training one now (once; next time starts in seconds)`,
          );
          await trainPreset(opts.preset, opts.backend);
          checkpoint = await latestCheckpoint(runDir);
          if (!checkpoint)
            throw new Error(`training finished but left no checkpoint in ${runDir}/checkpoints`);
        }
        target = checkpoint;
        modelId = opts.preset;
      }
      const t0 = performance.now();
      const built = await ensureChatAppBuilt({ force: opts.rebuild });
      if (built.built)
        console.log(`built the chat page in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      if (!isUrl(target)) console.log(`loading ${target}…`);
      const endpoint = await openEndpoint(target, {
        backend: opts.backend,
        apiKey: opts.apiKey ?? process.env.TYPEFORMER_API_KEY,
        id: modelId,
      });
      const ui = await startChatUiServer({ apiBase: endpoint.baseUrl, port: opts.port, host: opts.host });
      console.log(`typeformer chat-ui: ${endpoint.description}`);
      // a base model (no chat format in its vocabulary) opens in "continue text" mode
      const pageUrl = endpoint.chatTemplateWorks === false ? `${ui.url}?mode=complete` : ui.url;
      console.log(`\n  Open ${pageUrl} in your browser.\n`);
      if (endpoint.chatTemplateWorks === false)
        console.log(
          "  (this model was trained on plain text: the page continues your text instead of chatting)",
        );
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
