/**
 * KV-cached greedy decoding tokens/s of the small GPT (nanoGPT CPU config) at batch 1 and 8: tf.js
 * wasm with Typeformer's kernels, stock tf.js wasm, and PyTorch CPU, alternating in one sitting.
 *
 * "fast paths off" is the same kernels without the inference fast paths (fused in-place decode
 * attention, direct kernel calls): the plain decode path, as before those existed.
 *
 *   pnpm bench decode [--model gpt2|tiny] [--tokens 63] [--rounds 3] [--no-torch]
 */
import { cpus, loadavg } from "node:os";
import { registerWasmKernels, setInferenceFastPaths, unregisterWasmKernels } from "@typeformer/attention";
import { initBackend, tf } from "@typeformer/core";
import { modelsGpt2 } from "./gpt-models.js";
import { type LayerCache, NANOGPT_CPU, TinyGpt } from "./gpt-tiny.js";
import { median, TorchChild } from "./torch-child.js";

const argv = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const tokens = opt("tokens", NANOGPT_CPU.ctx - 1);
const rounds = opt("rounds", 3);
const cfg = NANOGPT_CPU;

await initBackend({ backend: "wasm" });
const { variant } = registerWasmKernels();
// --model gpt2 (default): @typeformer/models' GPT-2 with its KV cache; --model tiny: bench/gpt-tiny.ts.
const modelName = argv.includes("--model") ? argv[argv.indexOf("--model") + 1] : "gpt2";
const model = modelName === "tiny" ? new TinyGpt(cfg, 0) : modelsGpt2(cfg, 0);

/** Greedy decode of `n` tokens from token 0 for `batch` rows; returns elapsed ms. */
function decode(batch: number, n: number): number {
  if (!(model instanceof TinyGpt)) {
    const t0 = performance.now();
    model.decode(batch, n);
    return performance.now() - t0;
  }
  const caches: LayerCache[] = Array.from({ length: cfg.layers }, () => ({}));
  let tok = tf.zeros([batch, 1], "int32") as tf.Tensor2D;
  const t0 = performance.now();
  for (let t = 0; t < n; t++) {
    const next = tf.tidy(() => model.forward(tok, caches, t).argMax(-1).reshape([batch, 1]).cast("int32"));
    tok.dispose();
    tok = next as tf.Tensor2D;
    tok.dataSync(); // the token is needed on the host each step (as a server streams it)
  }
  const ms = performance.now() - t0;
  tok.dispose();
  for (const c of caches) tf.dispose([c.k, c.v] as tf.Tensor[]);
  return ms;
}

/** Kernels tf.js runs per decode token (tf.profile of 8 steps; customGrad scopes not counted). */
const kernelCounts = new Map<string, number>();
for (const batch of [1, 8]) {
  for (const fast of [true, false]) {
    if (model instanceof TinyGpt) continue;
    setInferenceFastPaths(fast);
    const steps = 8;
    const info = await tf.profile(() => model.decode(batch, steps));
    setInferenceFastPaths(true);
    const n = info.kernels.filter((k) => k.name !== "unnamed scope").length;
    kernelCounts.set(`${batch}/${fast}`, Math.round(n / steps));
  }
}
const kernelsPerToken = (batch: number, fast: boolean) => kernelCounts.get(`${batch}/${fast}`) ?? "?";

const torch = argv.includes("--no-torch") ? "PyTorch side skipped (--no-torch)" : await TorchChild.start(cfg);
if (typeof torch === "string") console.log(torch);
// Second anchor: PyTorch on one thread. On a loaded machine OpenMP's 2-thread barriers collapse;
// the 1-thread run shows what PyTorch does without them.
const torch1 = typeof torch === "string" ? undefined : await TorchChild.start(cfg, 1);

const rows: Record<string, string | number>[] = [];
/** Process CPU ms of each run, keyed by the run's wall-time array. */
const cpuMs = new Map<number[], number[]>();
const cpuOf = (ms: number[]) => {
  let c = cpuMs.get(ms);
  if (!c) {
    c = [];
    cpuMs.set(ms, c);
  }
  return c;
};
const timed = (into: number[], f: () => number) => {
  const c0 = process.cpuUsage();
  into.push(f());
  const c = process.cpuUsage(c0);
  cpuOf(into).push((c.user + c.system) / 1000);
};
for (const batch of [1, 8]) {
  const ours: number[] = [];
  const plain: number[] = [];
  const stock: number[] = [];
  const pt: number[] = [];
  const pt1: number[] = [];
  decode(batch, 4);
  if (typeof torch !== "string") await torch.call({ cmd: "decode", batch, tokens: 4 });
  for (let r = 0; r < rounds; r++) {
    timed(ours, () => decode(batch, tokens));
    setInferenceFastPaths(false);
    timed(plain, () => decode(batch, tokens));
    setInferenceFastPaths(true);
    unregisterWasmKernels();
    timed(stock, () => decode(batch, tokens));
    registerWasmKernels();
    if (typeof torch !== "string") {
      const r2 = await torch.call<{ ms: number; cpu: number }>({ cmd: "decode", batch, tokens });
      pt.push(r2.ms);
      cpuOf(pt).push(r2.cpu);
    }
    if (torch1 && typeof torch1 !== "string") {
      const r1 = await torch1.call<{ ms: number; cpu: number }>({ cmd: "decode", batch, tokens });
      pt1.push(r1.ms);
      cpuOf(pt1).push(r1.cpu);
    }
  }
  const tps = (ms: number[]) => (batch * tokens * 1000) / median(ms);
  const anchor = pt.length ? tps(pt) : undefined;
  const anchor1 = pt1.length ? tps(pt1) : undefined;
  const add = (run: string, ms: number[]) =>
    rows.push({
      batch,
      run,
      "tokens/s (median)": Math.round(tps(ms)),
      "tokens/s (best)": Math.round((batch * tokens * 1000) / Math.min(...ms)),
      "× PyTorch 2 threads": anchor ? +(tps(ms) / anchor).toFixed(3) : "n/a",
      "× PyTorch 1 thread": anchor1 ? +(tps(ms) / anchor1).toFixed(3) : "n/a",
      "CPU ms/token": +(median(cpuOf(ms)) / (batch * tokens)).toFixed(3),
      "× PyTorch 1 thread (CPU time)": pt1.length
        ? +(median(cpuOf(pt1)) / median(cpuOf(ms))).toFixed(3)
        : "n/a",
    });
  add(`tf.js wasm + Typeformer kernels (${variant}, ${kernelsPerToken(batch, true)} kernels/token)`, ours);
  add(`same kernels, fast paths off (${kernelsPerToken(batch, false)} kernels/token)`, plain);
  add("tf.js wasm, stock kernels", stock);
  if (typeof torch !== "string") add(`PyTorch ${torch.info.torch} CPU (${torch.info.threads} threads)`, pt);
  if (pt1.length) add("PyTorch CPU (1 thread)", pt1);
}
if (typeof torch !== "string") torch.close();
if (torch1 && typeof torch1 !== "string") torch1.close();
console.log(
  `ratios from medians (wall clock; CPU time counts every thread); machine load average ${loadavg()[0].toFixed(1)} on ${cpus().length} CPUs`,
);
console.log(
  `KV-cached greedy decode, ${modelName === "tiny" ? "bench/gpt-tiny.ts GPT" : "@typeformer/models GPT-2"}, ${tokens} tokens per row, nanoGPT CPU config (${cfg.layers}L ${cfg.heads}H d=${cfg.d})`,
);
console.table(rows);
model.dispose();
