import { existsSync } from "node:fs";
import { join } from "node:path";

export interface DemoModelOptions {
  /** Width of the model (default 64). */
  hiddenSize?: number;
  numLayers?: number;
  numHeads?: number;
  /** Context length in characters (default 512). */
  maxPositions?: number;
  seed?: number;
}

/**
 * Writes the smallest model the chat can talk to: an untrained character-level GPT-2 (printable ASCII,
 * the chat template's special tokens; about 100k parameters) in Hugging Face layout. It answers with
 * random characters, but every part of the page works on it — streaming, probabilities, attention — so a
 * newcomer sees the product in seconds, before training a real model. Reuses an existing one.
 */
export async function createDemoModelDir(
  dir: string,
  opts: DemoModelOptions = {},
): Promise<{ dir: string; created: boolean }> {
  if (existsSync(join(dir, "config.json")) && existsSync(join(dir, "tokenizer.json")))
    return { dir, created: false };
  const { initBackend } = await import("@typeformer/core");
  const { createModel } = await import("@typeformer/models");
  const { CharTokenizer, CHAT_SPECIAL_TOKENS } = await import("@typeformer/tokenizer");
  await initBackend();
  const chars: string[] = ["\n"];
  for (let c = 32; c < 127; c++) chars.push(String.fromCharCode(c));
  const tokenizer = new CharTokenizer(chars, {
    specialTokens: [...CHAT_SPECIAL_TOKENS],
    eosToken: "<|end|>",
    unkToken: "<|unk|>",
  });
  const model = createModel(
    {
      modelType: "gpt2",
      vocabSize: tokenizer.vocabSize,
      maxPositions: opts.maxPositions ?? 512,
      hiddenSize: opts.hiddenSize ?? 64,
      numLayers: opts.numLayers ?? 2,
      numHeads: opts.numHeads ?? 4,
    },
    { seed: opts.seed ?? 1 },
  );
  try {
    (model as unknown as { tokenizer?: unknown }).tokenizer = tokenizer;
    await model.save(dir);
  } finally {
    model.dispose();
  }
  return { dir, created: true };
}
