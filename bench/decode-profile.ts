/**
 * Kernels tf.js runs per KV-cached decode token of the nanoGPT-CPU-sized GPT-2, by kernel name
 * (tf.profile of one mid-sequence step), with the inference fast paths on and off.
 *
 *   pnpm tsx --conditions=source bench/decode-profile.ts
 */
import { registerWasmKernels, setInferenceFastPaths } from "@typeformer/attention";
import { initBackend, tf } from "@typeformer/core";
import { type CausalLM, createModel } from "@typeformer/models";

await initBackend({ backend: "wasm" });
registerWasmKernels();
const model = createModel<CausalLM>(
  {
    modelType: "gpt2",
    vocabSize: 65,
    maxPositions: 64,
    hiddenSize: 128,
    numLayers: 4,
    numHeads: 4,
    residDropout: 0,
    embdDropout: 0,
    attnDropout: 0,
  },
  { seed: 0 },
);
for (const [batch, fast] of [
  [1, true],
  [8, true],
  [1, false],
] as const) {
  setInferenceFastPaths(fast);
  const cache = model.createCache(batch, 64);
  let tok = tf.zeros([batch, 1], "int32") as tf.Tensor2D;
  const step = () =>
    tf.tidy(() =>
      model.forward(tok, { cache }).logits.reshape([batch, 65]).argMax(-1).reshape([batch, 1]).cast("int32"),
    );
  for (let t = 0; t < 20; t++) {
    const n = step();
    tok.dispose();
    tok = n as tf.Tensor2D;
  }
  const counts = new Map<string, number>();
  const info = await tf.profile(() => {
    const n = step();
    tok.dispose();
    tok = n as tf.Tensor2D;
  });
  for (const k of info.kernels) counts.set(k.name, (counts.get(k.name) ?? 0) + 1);
  const scopes = counts.get("unnamed scope") ?? 0;
  counts.delete("unnamed scope");
  console.log(
    `batch ${batch}, fast paths ${fast ? "on" : "off"}: ${info.kernels.length - scopes} kernels/token (+${scopes} customGrad scopes)`,
    JSON.stringify([...counts].sort((a, b) => b[1] - a[1])),
  );
  tok.dispose();
  (cache as { dispose(): void }).dispose();
}
