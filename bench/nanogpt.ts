/**
 * nanoGPT's CPU configuration on Tiny Shakespeare, trained by @typeformer/trainer on a GPT-2 from
 * @typeformer/models: char-level, first 90% train / last 10% validation, 4 layers, 4 heads, 128 wide,
 * context 64, batch 12, lr 1e-3 → 1e-4 cosine, warmup 100, 2000 iterations, dropout 0, AdamW β2 0.99,
 * weight decay 0.1 (on every ≥2-D tensor, like nanoGPT), grad clip 1.0. Target: val loss ≤ 1.90.
 *
 *   pnpm bench nanogpt [-- --iters 2000 --eval-every 250 --eval-batches 50 --no-kernels --no-torch]
 *
 * --iters N runs a shorter schedule-preserving measurement (lr schedule still spans 2000 steps) and
 * projects the full run's wall time. Unless --no-torch, it also runs bench/pytorch/nanogpt.py (same data, same
 * config) for the ratio, in the same sitting (TORCH_THREADS=1 for a single-thread comparison; CPU time
 * per iteration is the robust figure on a shared machine, wall time is printed too).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { registerWasmKernels } from "@typeformer/attention";
import { initBackend, tf } from "@typeformer/core";
import { type CausalLM, createModel, flopsPerToken } from "@typeformer/models";
import { CausalLMObjective, prepareDataset, TokenWindowSampler, Trainer } from "@typeformer/trainer";

const here = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const flag = (name: string) => argv.includes(`--${name}`);
const dataFile = path.resolve(here, "../../shared/data/tinyshakespeare.txt");
if (!existsSync(dataFile)) {
  console.log(`skipped: ${dataFile} is absent (Tiny Shakespeare is not shipped with the repo)`);
  process.exit(0);
}
const FULL = 2000;
const iters = opt("iters", FULL);
const evalEvery = opt("eval-every", 250);
const evalBatches = opt("eval-batches", 50);

await initBackend({ backend: "wasm" });
const kernels = flag("no-kernels")
  ? "stock tf.js wasm"
  : `typeformer kernels (${registerWasmKernels().variant})`;

/** nanoGPT's data/shakespeare_char/prepare.py: the sorted set of characters is the vocabulary. */
class CharVocab {
  readonly chars: string[];
  private readonly idx: Map<string, number>;
  constructor(text: string) {
    this.chars = [...new Set(text)].sort();
    this.idx = new Map(this.chars.map((c, i) => [c, i]));
  }
  get vocabSize() {
    return this.chars.length;
  }
  encode(t: string) {
    return [...t].map((c) => this.idx.get(c)!);
  }
  decode(ids: number[]) {
    return ids.map((i) => this.chars[i]).join("");
  }
}

const text = await readFile(dataFile, "utf8");
const vocab = new CharVocab(text);
const work = await mkdtemp(path.join(tmpdir(), "nanogpt-"));
const data = path.join(work, "data");
await prepareDataset(dataFile, vocab, data, { valFraction: 0.1, separateDocuments: false });
const batch = 12;
const ctx = 64;
const train = await TokenWindowSampler.open(data, "train", {
  batchSize: batch,
  windowLength: ctx + 1,
  seed: 1337,
});
const val = await TokenWindowSampler.open(data, "val", { batchSize: batch, windowLength: ctx + 1, seed: 1 });
const config = { modelType: "gpt2", preset: "nanogpt-cpu", vocabSize: vocab.vocabSize };
const model = createModel<CausalLM>(config, { seed: 1337 });
const timing = { wallMs: 0, cpuMs: 0, steps: 0, lastCpu: process.cpuUsage() };
const trainer = new Trainer({
  model,
  objective: new CausalLMObjective(model),
  train,
  val,
  steps: iters,
  lr: { maxLr: 1e-3, minLr: 1e-4, warmupSteps: 100, decaySteps: FULL },
  optimizer: { beta1: 0.9, beta2: 0.99, weightDecay: 0.1, decay: (_n, v) => v.rank >= 2 },
  gradClip: 1.0,
  seed: 1337,
  evalEvery,
  evalBatches,
  flopsPerToken: flopsPerToken(config, ctx),
  callbacks: {
    onEval: (e) => console.log(`  step ${String(e.step).padStart(4)}  val loss ${e.valLoss.toFixed(4)}`),
    onStep: (m) => {
      const cpu = process.cpuUsage(timing.lastCpu);
      timing.lastCpu = process.cpuUsage();
      if (m.step > 1 && m.valLoss === undefined) {
        timing.wallMs += m.msPerStep;
        timing.cpuMs += (cpu.user + cpu.system) / 1000;
        timing.steps++;
      }
      if (m.step % 50 === 0 || m.step === 1)
        console.log(
          `  step ${String(m.step).padStart(4)}  loss ${m.loss.toFixed(4)}  ${m.msPerStep.toFixed(0)} ms`,
        );
    },
  },
});
console.log(
  `nanoGPT CPU config on Tiny Shakespeare: ${trainer.parameterCount} parameters, vocab ${vocab.vocabSize}, ` +
    `${train.totalTokens} train / ${val.totalTokens} val tokens; backend ${tf.getBackend()}, ${kernels}`,
);
const t0 = performance.now();
const report = await trainer.train();
const wall = (performance.now() - t0) / 1000;
// training steps only (steps that ran an evaluation and the first, warm-up step are left out)
const msPerIter = timing.wallMs / timing.steps;
const cpuMsPerIter = timing.cpuMs / timing.steps;

let torch:
  | { wall: number; msPerIter: number; cpuMsPerIter: number; valLoss: number; threads: number }
  | undefined;
if (!flag("no-torch")) {
  const r = spawnSync(
    "/usr/bin/python3",
    [path.join(here, "pytorch", "nanogpt.py"), dataFile, String(iters), String(evalBatches)],
    { encoding: "utf8", env: { OPENBLAS_NUM_THREADS: "1", ...process.env }, maxBuffer: 1 << 24 },
  );
  const line = r.stdout.trim().split("\n").at(-1) ?? "";
  try {
    torch = JSON.parse(line);
  } catch {
    console.log(`pytorch run failed: ${r.stderr.slice(-500)}`);
  }
}

console.log(
  "\n| run | iterations | wall (s) | ms/iter (wall) | CPU ms/iter | final val loss | tokens/s (wall) | GFLOP/s (wall) | CPU-time ratio |",
);
console.log("|---|---|---|---|---|---|---|---|---|");
const row = (name: string, w: number, ms: number, cms: number, vl: number | null, ratio: string) =>
  console.log(
    `| ${name} | ${iters} | ${w.toFixed(1)} | ${ms.toFixed(1)} | ${cms.toFixed(1)} | ${vl?.toFixed(4) ?? "-"} | ${((batch * ctx) / (ms / 1000)).toFixed(0)} | ${((report.flopsPerToken * batch * ctx) / (ms / 1000) / 1e9).toFixed(2)} | ${ratio} |`,
  );
if (torch) {
  row(
    `PyTorch ${torch.threads} thread(s)`,
    torch.wall,
    torch.msPerIter,
    torch.cpuMsPerIter,
    torch.valLoss,
    "1.00 (anchor)",
  );
}
row(
  "typeformer trainer (tf.js wasm, 1 thread)",
  wall,
  msPerIter,
  cpuMsPerIter,
  report.finalValLoss,
  torch ? `${(cpuMsPerIter / torch.cpuMsPerIter).toFixed(2)}×` : "-",
);
if (iters < FULL) {
  console.log(
    `\nprojected full ${FULL}-iteration time: ${((msPerIter * FULL) / 1000).toFixed(0)} s at this sitting's wall ms/iter, ` +
      `${((cpuMsPerIter * FULL) / 1000).toFixed(0)} s on one unloaded core (CPU ms/iter)` +
      (torch ? `; PyTorch: ${((torch.cpuMsPerIter * FULL) / 1000).toFixed(0)} s CPU` : ""),
  );
} else {
  const ok = (report.finalValLoss ?? Infinity) <= 1.9;
  console.log(
    `\nval loss at ${FULL}: ${report.finalValLoss?.toFixed(4)} (target ≤ 1.90: ${ok ? "met" : "MISSED"})`,
  );
}
console.log(
  `peak RSS ${(report.peakRssBytes / 2 ** 20).toFixed(0)} MiB, peak tensor bytes ${(report.peakTensorBytes / 2 ** 20).toFixed(1)} MiB`,
);
trainer.dispose();
model.dispose();
train.close();
val.close();
await rm(work, { recursive: true, force: true });
