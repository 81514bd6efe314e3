import { initAcceleratedBackend } from "@typeformer/attention";
import type { BackendChoice } from "@typeformer/core";
import { createServer, type LoadedModel, listen, loadModelDir } from "@typeformer/serve";
import type { Command } from "commander";

const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`expected an integer; received ${JSON.stringify(v)}`);
  return n;
};

interface ServeOpts {
  port: number;
  host: string;
  apiKey?: string;
  maxBatch: number;
  maxQueue: number;
  maxTokens?: number;
  timeout: number;
  cors?: string | boolean;
  name?: string;
  backend?: BackendChoice;
  stockKernels?: boolean;
  warmup: number | false;
}

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description("Serve a model directory with an OpenAI-compatible HTTP API (continuous batching).")
    .argument("<model-dir...>", "model directories (config.json + model.safetensors + tokenizer.json)")
    .option("--port <n>", "port (0 = any free port)", int, 8000)
    .option("--host <host>", "interface to bind (default loopback only)", "127.0.0.1")
    .option("--api-key <key>", "require 'Authorization: Bearer <key>' (or set TYPEFORMER_API_KEY)")
    .option("--max-batch <n>", "sequences decoded together", int, 16)
    .option("--max-queue <n>", "requests waiting for a slot before 429", int, 64)
    .option("--max-tokens <n>", "largest max_tokens a request may ask for (default: the context length)", int)
    .option("--timeout <ms>", "per-request time limit", int, 300_000)
    .option("--cors [origin]", "allow cross-origin requests (any origin, or the one given)")
    .option("--name <id>", "model id clients use (default: the directory name; one model only)")
    .option("--backend <name>", "force a tf.js backend: node-gpu, node, wasm or cpu")
    .option("--stock-kernels", "keep tf.js's own wasm matmul kernels (default: Typeformer's SIMD GEMM)")
    .option(
      "--warmup <tokens>",
      "greedy tokens each engine decodes before listening (V8 optimises the decode path; first requests stay fast)",
      int,
      384,
    )
    .option("--no-warmup", "listen at once, without the warm-up decode")
    .action(async (dirs: string[], opts: ServeOpts) => {
      const backend = await initAcceleratedBackend({
        backend: opts.backend,
        stockKernels: opts.stockKernels,
      });
      if (opts.name && dirs.length > 1) throw new Error("--name works with one model directory only");
      const loaded: LoadedModel[] = [];
      for (const dir of dirs) loaded.push(await loadModelDir(dir, { id: opts.name }));
      const server = createServer({
        models: loaded.map((m) => ({
          id: m.id,
          model: m.model,
          tokenizer: m.tokenizer,
          engine: { maxBatch: opts.maxBatch, maxQueue: opts.maxQueue, maxTokensCap: opts.maxTokens },
        })),
        apiKey: opts.apiKey ?? process.env.TYPEFORMER_API_KEY,
        cors: opts.cors,
        requestTimeoutMs: opts.timeout,
      });
      if (opts.warmup !== false && opts.warmup > 0) {
        const t0 = performance.now();
        for (const engine of server.engines.values()) await engine.warmup(opts.warmup);
        if (server.engines.size > 0)
          console.log(
            `  warmed up ${server.engines.size} engine(s): ${opts.warmup} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
          );
      }
      const running = await listen(server, { port: opts.port, host: opts.host });
      console.log(`typeformer serve: ${running.url}/v1 (backend ${backend.backend})`);
      for (const m of loaded) console.log(`  model "${m.id}" (${m.family})`);
      console.log(
        "  endpoints: /v1/models /v1/completions /v1/chat/completions /v1/embeddings /v1/attention",
      );
      console.log("             /health /metrics — Ctrl-C stops (in-flight streams finish first)");
      let stopping = false;
      const stop = async () => {
        if (stopping) process.exit(130);
        stopping = true;
        console.log("\nshutting down (Ctrl-C again to force)…");
        await running.close({ graceMs: 10_000 });
        for (const m of loaded) m.dispose();
        process.exit(0);
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
      await new Promise(() => {}); // run until a signal
    });
}
