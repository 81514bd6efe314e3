/**
 * Encoder-decoder serving (`pnpm bench serve-seq2seq`, or `tsx --conditions=source bench/serve-seq2seq.ts
 * [--quick]`): aggregate decode throughput of a small T5 (4+4 layers, d=128, byte vocabulary) for N concurrent
 * requests, batched by the GenerationEngine through `seq2seqAsCausal`, against the anchor measured in the same
 * run: the same requests one after another through `generateSeq2Seq` (the server's path before batching).
 * Greedy, EOS ignored, so every request generates exactly the same number of tokens on both paths.
 */
import { registerWasmKernels } from "@typeformer/attention";
import { initBackend } from "@typeformer/core";
import { createModel, type Seq2SeqLM } from "@typeformer/models";
import { GenerationEngine, generateSeq2Seq, type ServeTokenizer, seq2seqAsCausal } from "@typeformer/serve";

const quick = process.argv.includes("--quick");
const NEW_TOKENS = quick ? 16 : 32;
const LEVELS = quick ? [1, 4] : [1, 4, 8, 16];

/** Byte tokenizer; EOS 1 is never produced on purpose (generateSeq2Seq would stop there). */
const tokenizer: ServeTokenizer = {
  vocabSize: 256,
  encode: (t) => Array.from(t, (c) => c.charCodeAt(0) % 256),
  decode: (ids) => String.fromCharCode(...ids),
  createStreamDecoder: () => ({ push: (id) => String.fromCharCode(id), flush: () => "" }),
};

await initBackend({ backend: "wasm" });
registerWasmKernels();
const t5 = createModel(
  {
    modelType: "t5",
    vocabSize: 256,
    hiddenSize: 128,
    headDim: 32,
    intermediateSize: 512,
    numLayers: 4,
    numHeads: 4,
    eosTokenId: 1,
  } as never,
  { seed: 1 },
) as Seq2SeqLM;
// bias the start away from EOS: a random model may emit it early; greedy with EOS banned on both paths
const sampling = { temperature: 0, logitBias: { 1: -100 } };
const prompt = (i: number) =>
  `request ${i}: translate the following sentence, which has some length to it`.slice(0, 40 + (i % 5) * 6);

async function sequential(n: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = await generateSeq2Seq(t5, tokenizer, tokenizer.encode(prompt(i)), {
      maxTokens: NEW_TOKENS,
      sampling,
    });
    if (r.tokenIds.length !== NEW_TOKENS) throw new Error("a request stopped early");
  }
  return performance.now() - t0;
}

async function batched(engine: GenerationEngine, n: number): Promise<number> {
  const t0 = performance.now();
  const out = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      engine.generate({
        promptIds: tokenizer.encode(prompt(i)),
        maxTokens: NEW_TOKENS,
        sampling,
        ignoreEos: true,
      }),
    ),
  );
  if (out.some((r) => r.tokenIds.length !== NEW_TOKENS)) throw new Error("a request stopped early");
  return performance.now() - t0;
}

const engine = new GenerationEngine({ model: seq2seqAsCausal(t5), tokenizer, maxBatch: 16 });
await sequential(1);
await batched(engine, 2); // warm kernels
console.log(`T5 4+4 layers, d=128, ${NEW_TOKENS} new tokens per request, prompts 40-64 bytes; wasm`);
console.log("| concurrent requests | one at a time (anchor) tok/s | batched engine tok/s | ratio |");
console.log("|---|---|---|---|");
for (const n of LEVELS) {
  const a = await sequential(n);
  const b = await batched(engine, n);
  const tps = (ms: number) => (n * NEW_TOKENS * 1000) / ms;
  console.log(`| ${n} | ${tps(a).toFixed(0)} | ${tps(b).toFixed(0)} | ${(a / b).toFixed(2)}x |`);
}
await engine.close();
t5.dispose();
