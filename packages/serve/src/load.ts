import path from "node:path";
import { TypeformerError } from "@typeformer/core";
import type { ServeSeq2SeqCachedLM } from "./seq2seq.js";
import type { ServeCausalLM, ServeEncoder, ServeTokenizer } from "./types.js";

/** A model directory loaded for serving: the model, its tokenizer and the id clients use. */
export interface LoadedModel {
  id: string;
  model: ServeCausalLM | ServeEncoder | ServeSeq2SeqCachedLM;
  tokenizer: ServeTokenizer;
  /** "decoder" | "encoder" | "encoder-decoder" */
  family: string;
  dispose(): void;
}

/**
 * Loads a Hugging Face-layout model directory (config.json + model.safetensors + tokenizer.json)
 * for the server and `typeformer generate`. The id defaults to the directory's name.
 */
export async function loadModelDir(dir: string, opts: { id?: string } = {}): Promise<LoadedModel> {
  // loaded lazily so that importing @typeformer/serve never pulls in model code it does not use
  const { fromPretrained } = await import("@typeformer/models");
  const { loadTokenizer } = await import("@typeformer/tokenizer");
  const model = await fromPretrained(dir, { tokenizer: loadTokenizer });
  const tokenizer = model.tokenizer as unknown as ServeTokenizer | undefined;
  if (!tokenizer) {
    model.dispose();
    throw new TypeformerError(
      "NOT_FOUND",
      `no tokenizer.json in ${JSON.stringify(dir)}; the server needs one`,
      {
        dir,
      },
    );
  }
  return {
    id: opts.id ?? path.basename(path.resolve(dir)),
    model: model as unknown as ServeCausalLM | ServeEncoder | ServeSeq2SeqCachedLM,
    tokenizer,
    family: model.family,
    dispose: () => model.dispose(),
  };
}
