import { initAcceleratedBackend } from "@typeformer/attention";
import type { BackendChoice } from "@typeformer/core";
import {
  GenerationEngine,
  generateSeq2Seq,
  loadModelDir,
  type ServeCausalLM,
  type ServeSeq2SeqCachedLM,
} from "@typeformer/serve";
import type { Command } from "commander";

const num = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`expected a number; received ${JSON.stringify(v)}`);
  return n;
};
const collect = (v: string, prev: string[] = []) => [...prev, v];

interface GenerateOpts {
  prompt: string;
  chat?: boolean;
  maxTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  seed?: number;
  stop?: string[];
  ignoreEos?: boolean;
  beams?: number;
  stats?: boolean;
  backend?: BackendChoice;
  stockKernels?: boolean;
}

export function registerGenerate(program: Command): void {
  program
    .command("generate")
    .description("Generate text from a model directory, streaming tokens to the terminal.")
    .argument("<model-dir>", "model directory (config.json + model.safetensors + tokenizer.json)")
    .requiredOption("-p, --prompt <text>", "the prompt")
    .option("--chat", "wrap the prompt as a user message with the tokenizer's chat template")
    .option("-n, --max-tokens <n>", "tokens to generate", num, 128)
    .option("-t, --temperature <t>", "sampling temperature (0 = greedy)", num)
    .option("--top-k <k>", "keep the k most likely tokens", num)
    .option("--top-p <p>", "nucleus sampling", num)
    .option("--min-p <p>", "min-p filtering", num)
    .option("--repetition-penalty <r>", "CTRL repetition penalty (1 = off)", num)
    .option("--presence-penalty <x>", "OpenAI presence penalty", num)
    .option("--frequency-penalty <x>", "OpenAI frequency penalty", num)
    .option("--seed <n>", "seed: the same seed gives the same text", num)
    .option("--stop <text>", "stop sequence (repeatable)", collect)
    .option("--ignore-eos", "keep going past the end-of-text token")
    .option("--beams <n>", "beam search width (encoder-decoder models)", num)
    .option("--stats", "print tokens/s and time to first token to stderr")
    .option("--backend <name>", "force a tf.js backend: node-gpu, node, wasm or cpu")
    .option("--stock-kernels", "keep tf.js's own wasm matmul kernels (default: Typeformer's SIMD GEMM)")
    .action(async (dir: string, opts: GenerateOpts) => {
      await initAcceleratedBackend({ backend: opts.backend, stockKernels: opts.stockKernels });
      const loaded = await loadModelDir(dir);
      if (loaded.family === "encoder") {
        loaded.dispose();
        throw new Error(`"${dir}" holds an encoder model; generate needs a decoder or an encoder-decoder`);
      }
      if (loaded.family === "encoder-decoder") {
        // t5: text-to-text, printed when done (beam search with --beams)
        const r = await generateSeq2Seq(
          loaded.model as ServeSeq2SeqCachedLM,
          loaded.tokenizer,
          loaded.tokenizer.encode(opts.prompt),
          {
            maxTokens: opts.maxTokens,
            numBeams: opts.beams,
            stop: opts.stop,
            sampling: { temperature: opts.temperature, topK: opts.topK, topP: opts.topP, seed: opts.seed },
          },
        );
        console.log(r.text);
        loaded.dispose();
        return;
      }
      const tok = loaded.tokenizer;
      const text =
        opts.chat && tok.applyChatTemplate
          ? tok.applyChatTemplate([{ role: "user", content: opts.prompt }], { addGenerationPrompt: true })
          : opts.prompt;
      const promptIds = tok.encode(text, opts.chat ? { addSpecialTokens: false, allowedSpecial: "all" } : {});
      const engine = new GenerationEngine({ model: loaded.model as ServeCausalLM, tokenizer: tok });
      const ac = new AbortController();
      process.once("SIGINT", () => ac.abort("interrupted"));
      const gen = engine.submit({
        promptIds,
        maxTokens: Math.min(opts.maxTokens, engine.maxContext - promptIds.length),
        stop: opts.stop,
        ignoreEos: opts.ignoreEos,
        signal: ac.signal,
        sampling: {
          temperature: opts.temperature,
          topK: opts.topK,
          topP: opts.topP,
          minP: opts.minP,
          repetitionPenalty: opts.repetitionPenalty,
          presencePenalty: opts.presencePenalty,
          frequencyPenalty: opts.frequencyPenalty,
          seed: opts.seed,
        },
      });
      if (!opts.chat) process.stdout.write(opts.prompt);
      for await (const e of gen) process.stdout.write(e.text);
      const r = await gen.result;
      await new Promise<void>((resolve) => process.stdout.write("\n", () => resolve()));
      if (opts.stats) {
        const decodeMs = r.durationMs - (r.timeToFirstTokenMs ?? 0);
        const tps = r.completionTokens > 1 ? ((r.completionTokens - 1) * 1000) / decodeMs : 0;
        process.stderr.write(
          `[${r.promptTokens} prompt + ${r.completionTokens} generated tokens, finish: ${r.finishReason}, ` +
            `first token ${(r.timeToFirstTokenMs ?? 0).toFixed(0)} ms, ${tps.toFixed(1)} tokens/s]\n`,
        );
      }
      loaded.dispose();
    });
}
