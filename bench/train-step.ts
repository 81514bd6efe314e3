/**
 * Training step of a small GPT (nanoGPT's CPU config: 4 layers, 4 heads, 128 wide, context 64,
 * batch 12, vocab 65) in tokens/s: tf.js wasm with Typeformer's SIMD kernels, stock tf.js wasm, and
 * PyTorch CPU (OPENBLAS_NUM_THREADS=1, torch.set_num_threads(2)), alternating in one sitting.
 *
 *   pnpm bench train-step [--model gpt2|tiny] [--steps 6] [--rounds 3] [--no-stock] [--no-relaxed] [--no-threads] [--no-torch] [--no-fused-off] [--profile]
 *
 * The models' attention runs through scaledDotProductAttention "auto", which picks the fused
 * flash-attention wasm kernels ("wasm-fused") once registerWasmKernels ran; the bench prints which
 * implementation the step used (from a profiled step's kernel names) and, as one more row, the same
 * step with the fused attention turned off for "auto" (setWasmFusedAttention(false): tf.js naive
 * attention on Typeformer's GEMM).
 */

import { cpus, loadavg } from "node:os";
import {
  FLASH_KERNEL_NAMES,
  registerWasmKernels,
  selectAttentionImplementation,
  setWasmFusedAttention,
  unregisterWasmKernels,
  wasmThreadsReady,
} from "@typeformer/attention";
import { initBackend, tf } from "@typeformer/core";
import { modelsGpt2 } from "./gpt-models.js";
import { AdamW, NANOGPT_CPU, TinyGpt, trainStep } from "./gpt-tiny.js";
import { median, TorchChild } from "./torch-child.js";

const argv = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const flag = (name: string) => argv.includes(`--${name}`);
const steps = opt("steps", 6);
const rounds = opt("rounds", 3);
const cfg = NANOGPT_CPU;
const tokensPerStep = cfg.batch * cfg.ctx;

await initBackend({ backend: "wasm" });
const { variant } = registerWasmKernels();

const ids = tf.tensor2d(
  Array.from({ length: tokensPerStep }, (_, i) => (i * 7) % cfg.vocab),
  [cfg.batch, cfg.ctx],
  "int32",
);
const targets = tf.tensor1d(
  Array.from({ length: tokensPerStep }, (_, i) => (i * 7 + 1) % cfg.vocab),
  "int32",
);
// --model gpt2 (default): @typeformer/models' GPT-2; --model tiny: the compact GPT in bench/gpt-tiny.ts.
const modelName = argv.includes("--model") ? argv[argv.indexOf("--model") + 1] : "gpt2";
const model = modelName === "tiny" ? new TinyGpt(cfg, 0) : modelsGpt2(cfg, 0);
const adam = new AdamW();

/** CPU ms per step of every timed step, by run label (process CPU time: robust on a loaded machine). */
const cpuMs = new Map<number[], number[]>();

function timeSteps(n: number, cpuInto?: number[]): number[] {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    trainStep(model, adam, ids, targets);
    const c = process.cpuUsage(c0);
    ms.push(performance.now() - t0);
    cpuInto?.push((c.user + c.system) / 1000);
  }
  return ms;
}
const cpuOf = (ms: number[]) => {
  let c = cpuMs.get(ms);
  if (!c) {
    c = [];
    cpuMs.set(ms, c);
  }
  return c;
};

if (flag("profile")) {
  timeSteps(2);
  const info = await tf.profile(() => {
    trainStep(model, adam, ids, targets);
  });
  const byName = new Map<string, { ms: number; calls: number }>();
  let total = 0;
  for (const k of info.kernels) {
    const ms = Number(k.kernelTimeMs) || 0;
    const e = byName.get(k.name) ?? { ms: 0, calls: 0 };
    e.ms += ms;
    e.calls++;
    byName.set(k.name, e);
    total += ms;
  }
  const rows = [...byName.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25);
  console.log(`kernel time in one step: ${total.toFixed(1)} ms over ${info.kernels.length} kernel calls`);
  console.table(
    rows.map(([name, e]) => ({
      kernel: name,
      ms: +e.ms.toFixed(2),
      calls: e.calls,
      share: `${((100 * e.ms) / total).toFixed(1)}%`,
    })),
  );
  process.exit(0);
}

/** Which attention implementation the step runs: auto's pick for its shapes, and the kernels a profiled step ran. */
async function attentionInStep(): Promise<string> {
  const hd = cfg.d / cfg.heads;
  const probe = tf.zeros([cfg.batch, cfg.heads, cfg.ctx, hd]) as tf.Tensor4D;
  const pick = selectAttentionImplementation(probe, probe, probe, { causal: true }).name;
  probe.dispose();
  const info = await tf.profile(() => {
    trainStep(model, adam, ids, targets);
  });
  const fwd = info.kernels.filter((k) => k.name === FLASH_KERNEL_NAMES.forward).length;
  const bwd = info.kernels.filter((k) => k.name === FLASH_KERNEL_NAMES.backward).length;
  return `auto picks "${pick}" for (${cfg.batch}, ${cfg.heads}, ${cfg.ctx}, ${hd}) causal; a profiled step ran ${fwd} ${FLASH_KERNEL_NAMES.forward} + ${bwd} ${FLASH_KERNEL_NAMES.backward} kernel calls (${info.kernels.length} kernels in all)`;
}

const torch = flag("no-torch") ? "PyTorch side skipped (--no-torch)" : await TorchChild.start(cfg);
if (typeof torch === "string") console.log(torch);
// Second anchor: PyTorch on one thread (on a loaded machine OpenMP's 2-thread barriers collapse).
const torch1 = typeof torch === "string" ? undefined : await TorchChild.start(cfg, 1);

const ours: number[] = [];
const stock: number[] = [];
const pt: number[] = [];
const pt1: number[] = [];
const relaxed: number[] = [];
const threaded: number[] = [];
const relaxedThreaded: number[] = [];
const withThreads = !flag("no-threads");
if (withThreads) {
  registerWasmKernels({ threads: 2 });
  await wasmThreadsReady();
  timeSteps(1);
  registerWasmKernels({ threads: 1 });
}
timeSteps(2); // warm-up
const attentionLine = await attentionInStep();
console.log(`attention: ${attentionLine}`);
const fusedOff: number[] = [];
if (typeof torch !== "string") await torch.call({ cmd: "train", steps: 2 });
for (let r = 0; r < rounds; r++) {
  ours.push(...timeSteps(steps, cpuOf(ours)));
  if (typeof torch !== "string") {
    const r2 = await torch.call<{ ms: number[]; cpu: number[] }>({ cmd: "train", steps });
    pt.push(...r2.ms);
    cpuOf(pt).push(...r2.cpu);
  }
  if (torch1 && typeof torch1 !== "string") {
    const r1 = await torch1.call<{ ms: number[]; cpu: number[] }>({ cmd: "train", steps });
    pt1.push(...r1.ms);
    cpuOf(pt1).push(...r1.cpu);
  }
  if (!flag("no-relaxed") && registerWasmKernels({ variant: "relaxed-simd" }).variant === "relaxed-simd") {
    relaxed.push(...timeSteps(steps, cpuOf(relaxed)));
  }
  registerWasmKernels({ variant });
  if (withThreads) {
    registerWasmKernels({ threads: 2 });
    if (await wasmThreadsReady()) threaded.push(...timeSteps(steps, cpuOf(threaded)));
    if (!flag("no-relaxed") && registerWasmKernels({ variant: "relaxed-simd" }).variant === "relaxed-simd") {
      if (await wasmThreadsReady()) relaxedThreaded.push(...timeSteps(steps, cpuOf(relaxedThreaded)));
    }
    registerWasmKernels({ variant, threads: 1 });
  }
  if (!flag("no-fused-off")) {
    setWasmFusedAttention(false);
    fusedOff.push(...timeSteps(steps, cpuOf(fusedOff)));
    setWasmFusedAttention(true);
  }
  if (!flag("no-stock") && r === 0) {
    unregisterWasmKernels();
    stock.push(...timeSteps(2, cpuOf(stock)));
    registerWasmKernels();
  }
}
if (typeof torch !== "string") torch.close();
if (torch1 && typeof torch1 !== "string") torch1.close();

const tps = (ms: number) => (tokensPerStep / ms) * 1000;
const anchor = pt.length ? median(pt) : undefined;
const anchor1 = pt1.length ? median(pt1) : undefined;
const cpuAnchor1 = pt1.length ? median(cpuOf(pt1)) : undefined;
const row = (name: string, ms: number[]) => {
  if (!ms.length) return undefined;
  const m = median(ms);
  return {
    run: name,
    "ms/step (median)": +m.toFixed(1),
    "ms/step (best)": +Math.min(...ms).toFixed(1),
    "tokens/s": Math.round(tps(m)),
    "× PyTorch 2 threads": anchor ? +(anchor / m).toFixed(3) : "n/a",
    "× PyTorch 1 thread": anchor1 ? +(anchor1 / m).toFixed(3) : "n/a",
    "CPU ms/step": cpuOf(ms).length ? +median(cpuOf(ms)).toFixed(1) : "n/a",
    "× PyTorch 1 thread (CPU time)":
      cpuAnchor1 && cpuOf(ms).length ? +(cpuAnchor1 / median(cpuOf(ms))).toFixed(3) : "n/a",
  };
};
console.log(
  `ratios from medians (wall clock, and process CPU time per step: steadier on a loaded machine, counts every thread); load average ${loadavg()[0].toFixed(1)} on ${cpus().length} CPUs`,
);
console.log(
  `train step, ${modelName === "tiny" ? "bench/gpt-tiny.ts GPT" : "@typeformer/models GPT-2"}, nanoGPT CPU config (${cfg.layers}L ${cfg.heads}H d=${cfg.d} ctx=${cfg.ctx} batch=${cfg.batch} vocab=${cfg.vocab}), ${tokensPerStep} tokens/step`,
);
console.table(
  [
    row(`tf.js wasm + Typeformer kernels (${variant})`, ours),
    row(`… same, fused attention off for "auto" (tf.js attention on Typeformer GEMM)`, fusedOff),
    row("tf.js wasm + Typeformer kernels (relaxed-simd, V8 flag set at run time)", relaxed),
    row(`tf.js wasm + Typeformer kernels (${variant}, 2 GEMM threads)`, threaded),
    row("tf.js wasm + Typeformer kernels (relaxed-simd, 2 GEMM threads)", relaxedThreaded),
    row("tf.js wasm, stock kernels", stock),
    typeof torch !== "string"
      ? row(`PyTorch ${torch.info.torch} CPU (${torch.info.threads} threads, OpenBLAS 1 thread)`, pt)
      : undefined,
    row("PyTorch CPU (1 thread)", pt1),
  ].filter(Boolean),
);
console.log(`attention: ${attentionLine}`);
model.dispose();
