/**
 * Loss-parity check of bench/nanogpt.ts against PyTorch: trains our GPT-2 (nanogpt-cpu preset) for N steps
 * on recorded batches and writes the initial weights, the batches and our per-step losses to OUT, for
 * bench/pytorch/parity.py to replay in torch with the same weights and batches.
 *
 *   node --conditions=source --import tsx bench/pytorch/parity-dump.ts OUT [steps=200] [--no-kernels] [--eval-every N] [--no-train]
 */
import { writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { registerWasmKernels } from "@typeformer/attention";
import { initBackend, Random } from "@typeformer/core";
import { type CausalLM, createModel } from "@typeformer/models";
import { CausalLMObjective, type TokenBatch, Trainer } from "@typeformer/trainer";

const here = path.dirname(fileURLToPath(import.meta.url));
const [out, stepsArg] = process.argv.slice(2);
const steps = Number(stepsArg ?? 200);
await initBackend({ backend: "wasm" });
if (!process.argv.includes("--no-kernels")) registerWasmKernels();
const text = await readFile(path.resolve(here, "../../../shared/data/tinyshakespeare.txt"), "utf8");
const chars = [...new Set(text)].sort();
const idx = new Map(chars.map((c, i) => [c, i]));
const ids = Int32Array.from([...text].map((c) => idx.get(c)!));
const n = Math.floor(0.9 * ids.length);
const B = 12;
const L = 65;
const rng = new Random(1337);
const all = new Int32Array(steps * B * L);
for (let s = 0; s < steps; s++)
  for (let b = 0; b < B; b++) {
    const i = rng.int(n - L + 1);
    all.set(ids.subarray(i, i + L), (s * B + b) * L);
  }
let k = 0;
const train = {
  next: (): TokenBatch => ({ tokens: all.slice(k * B * L, ++k * B * L), batchSize: B, length: L }),
  getState: () => k,
  setState: (s: unknown) => {
    k = s as number;
  },
};
const config = { modelType: "gpt2", preset: "nanogpt-cpu", vocabSize: chars.length };
const model = createModel<CausalLM>(config, { seed: 1337 });
const meta: { name: string; shape: number[]; offset: number }[] = [];
const parts: Float32Array[] = [];
let off = 0;
for (const [name, v] of model.namedParameters()) {
  const d = v.dataSync() as Float32Array;
  meta.push({ name, shape: v.shape, offset: off });
  parts.push(d.slice());
  off += d.length;
}
const flat = new Float32Array(off);
let o = 0;
for (const p of parts) {
  flat.set(p, o);
  o += p.length;
}
writeFileSync(`${out}.weights.bin`, Buffer.from(flat.buffer));
writeFileSync(`${out}.batches.bin`, Buffer.from(all.buffer));
// the bench's validation batches: TokenWindowSampler.batches(50) of the last 10% (seed 1)
const valIds = ids.subarray(Math.round(0.9 * ids.length));
const vr = new Random("eval-1");
const valAll = new Int32Array(50 * B * L);
for (let w = 0; w < 50 * B; w++) {
  const i = vr.int(valIds.length - L + 1);
  valAll.set(valIds.subarray(i, i + L), w * L);
}
writeFileSync(`${out}.val.bin`, Buffer.from(valAll.buffer));
if (process.argv.includes("--no-train")) {
  // only the data: bench/pytorch/parity.py OUT trains the full run in torch
  writeFileSync(`${out}.json`, JSON.stringify({ vocab: chars.length, steps, meta, losses: [], norms: [] }));
  process.exit(0);
}
const losses: number[] = [];
const norms: number[] = [];
const trainer = new Trainer({
  model,
  objective: new CausalLMObjective(model),
  train,
  steps,
  lr: { maxLr: 1e-3, minLr: 1e-4, warmupSteps: 100, decaySteps: 2000 },
  optimizer: { beta1: 0.9, beta2: 0.99, weightDecay: 0.1, decay: (_n, v) => v.rank >= 2 },
  gradClip: 1.0,
  seed: 1337,
  // --eval-every N: evaluations in between (training must not depend on them)
  ...(process.argv.includes("--eval-every")
    ? {
        val: {
          batches: (c: number) =>
            Array.from({ length: c }, (_, i) => ({
              tokens: all.slice(i * B * L, (i + 1) * B * L),
              batchSize: B,
              length: L,
            })),
        },
        evalEvery: Number(process.argv[process.argv.indexOf("--eval-every") + 1]),
        evalBatches: 4,
      }
    : {}),
  callbacks: {
    onStep: (m) => {
      losses.push(m.loss);
      norms.push(m.gradNorm);
    },
  },
});
await trainer.train();
writeFileSync(`${out}.json`, JSON.stringify({ vocab: chars.length, steps, meta, losses, norms }));
console.log(
  losses
    .filter((_, i) => i % 20 === 0 || i < 5)
    .map((x) => x.toFixed(5))
    .join(" "),
);
