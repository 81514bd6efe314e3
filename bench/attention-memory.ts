/**
 * Attention forward+backward at long contexts: time and peak memory of the tiled (flash) tf.js
 * implementation and the fused flash-attention wasm kernels ("wasm-fused") against the naive one,
 * B=1, H=8, D=64, causal, in one sitting.
 *
 *   pnpm bench attention-memory [--t 256,1024,4096] [--reps 3] [--backend wasm|cpu] [--stock] [--block 256]
 *
 * Peak memory = tf.profile's peakBytes (every live tensor, sampled after each kernel) minus the
 * bytes alive before the call; naive keeps several (B, H, T, T) tensors, tiled only (T, block) ones.
 * The fused kernels also allocate a scratch block on the wasm heap outside tf.js's tensors (freed
 * before they return; linear in T): its size is added to their peak.
 * The project's SIMD wasm kernels are registered first (both implementations use them) unless
 * `--stock`. Every (T, implementation) runs in its own process, so an out-of-memory naive run (the
 * wasm heap is 4 GiB) cannot disturb the others; its peak is then extrapolated quadratically.
 * Timings come from one more process per T that alternates fused, tiled and naive (`--reps` rounds,
 * one at T >= 4096) and reports medians; `ms` is wall clock, `cpu` the process CPU time (steadier on
 * a shared machine).
 */
import { spawnSync } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import {
  flashKernelsActive,
  flashScratchBytes,
  registerWasmKernels,
  scaledDotProductAttention,
} from "@typeformer/attention";
import { type BackendChoice, initBackend, Random, tf } from "@typeformer/core";

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const Ts = opt("t", "256,1024,4096").split(",").map(Number);
const reps = Number(opt("reps", "3"));
const backend = opt("backend", "wasm") as BackendChoice;
const block = Number(opt("block", "256"));
const B = 1;
const H = 8;
const D = 64;

const one = opt("one", "");

async function setup(): Promise<string> {
  await initBackend({ backend });
  if (argv.includes("--stock") || backend !== "wasm") return "stock tf.js kernels";
  try {
    const r = registerWasmKernels();
    return `Typeformer wasm kernels (${r.variant})`;
  } catch (e) {
    return `stock tf.js kernels (Typeformer kernels failed: ${(e as Error).message.slice(0, 60)})`;
  }
}

type Impl = "naive" | "tiled" | "wasm-fused";
const IMPLS: Impl[] = ["naive", "tiled", "wasm-fused"];

function step(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, impl: Impl): void {
  const dO = tf.onesLike(q);
  const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
    tf.sum(
      tf.mul(
        scaledDotProductAttention(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, {
          causal: true,
          implementation: impl,
          blockSize: block,
        }).output,
        dO,
      ),
    ),
  )([q, k, v]);
  for (const g of grads) g.dataSync(); // wait for the values
  tf.dispose([...grads, dO]);
}

interface Row {
  T: number;
  impl: string;
  ms: number | null;
  cpuMs?: number;
  peakMiB: number | null;
  error?: string;
  note?: string;
}

const mib = (b: number) => b / 2 ** 20;

/** Child mode: one (T, implementation) measurement, printed as one JSON line. */
async function measureOne(T: number, impl: Impl): Promise<void> {
  const kernels = await setup();
  if (impl === "wasm-fused" && !flashKernelsActive()) {
    console.log(
      `RESULT ${JSON.stringify({ T, impl, ms: null, peakMiB: null, kernels, error: "needs the wasm kernels" })}`,
    );
    return;
  }
  const rng = new Random(T);
  const mk = () => tf.tensor4d(rng.normalArray(B * H * T * D), [B, H, T, D]);
  const q = mk();
  const k = mk();
  const v = mk();
  const row: Row & { kernels: string } = { T, impl, ms: null, peakMiB: null, kernels };
  try {
    const base = tf.memory().numBytes;
    const t0 = performance.now();
    const prof = await tf.profile(() => step(q, k, v, impl));
    row.ms = performance.now() - t0; // replaced by the interleaved timing below when that succeeds
    // the fused kernels' heap scratch (one call at a time: the larger of forward and backward)
    const scratch =
      impl === "wasm-fused"
        ? Math.max(flashScratchBytes(T, D, D, false), flashScratchBytes(T, D, D, true))
        : 0;
    row.peakMiB = mib(prof.peakBytes - base + scratch);
  } catch (e) {
    row.error = (e as Error).message.split("\n")[0].slice(0, 80);
  }
  console.log(`RESULT ${JSON.stringify(row)}`);
}

/** Child mode: the implementations timed alternately in one process (same heap, same noise). */
async function timeBoth(T: number): Promise<void> {
  await setup();
  const impls: Impl[] = flashKernelsActive() ? ["wasm-fused", "tiled", "naive"] : ["tiled", "naive"];
  const rng = new Random(T);
  const mk = () => tf.tensor4d(rng.normalArray(B * H * T * D), [B, H, T, D]);
  const q = mk();
  const k = mk();
  const v = mk();
  const times: Record<string, number[]> = { naive: [], tiled: [], "wasm-fused": [] };
  const rounds = T >= 4096 ? 1 : reps;
  {
    // warm-up at a short length: JIT and kernel set-up are not part of either timing
    const w = tf.tidy(() => tf.randomNormal([B, H, 128, D]) as tf.Tensor4D);
    for (const impl of impls) step(w, w, w, impl);
    w.dispose();
  }
  for (let r = 0; r < rounds; r++) {
    // naive last: a naive run near the heap limit must not take the other timings down with it
    for (const impl of impls) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      step(q, k, v, impl);
      const c = process.cpuUsage(c0);
      times[impl].push(performance.now() - t0);
      console.log(
        `TIME ${JSON.stringify({ impl, ms: times[impl].at(-1), cpu: (c.user + c.system) / 1000 })}`,
      );
    }
  }
}

if (one) {
  const [t, impl] = one.split(":");
  if (impl === "time") await timeBoth(Number(t));
  else await measureOne(Number(t), impl as Impl);
  process.exit(0);
}

const rows: Row[] = [];
let kernels = "";
const self = fileURLToPath(import.meta.url);
for (const T of Ts) {
  for (const impl of IMPLS) {
    const r = spawnSync(
      process.execPath,
      ["--conditions=source", "--import", "tsx", self, ...argv, "--one", `${T}:${impl}`],
      { encoding: "utf8", maxBuffer: 1 << 26 },
    );
    const line = r.stdout.split("\n").find((l) => l.startsWith("RESULT "));
    if (line) {
      const row = JSON.parse(line.slice(7)) as Row & { kernels: string };
      kernels = row.kernels;
      rows.push(row);
    } else {
      const err = `${r.stderr}`.match(/(RuntimeError|Error): [^\n]*/)?.[0] ?? `exit ${r.status}`;
      rows.push({ T, impl, ms: null, peakMiB: null, error: err.slice(0, 80) });
    }
  }
  const r = spawnSync(
    process.execPath,
    ["--conditions=source", "--import", "tsx", self, ...argv, "--one", `${T}:time`],
    { encoding: "utf8", maxBuffer: 1 << 26 },
  );
  const timed: Record<string, number[]> = { naive: [], tiled: [], "wasm-fused": [] };
  const cpuTimed: Record<string, number[]> = { naive: [], tiled: [], "wasm-fused": [] };
  for (const l of r.stdout.split("\n")) {
    if (!l.startsWith("TIME ")) continue;
    const { impl, ms, cpu } = JSON.parse(l.slice(5)) as { impl: string; ms: number; cpu: number };
    timed[impl].push(ms);
    cpuTimed[impl].push(cpu);
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const x of rows.filter((row) => row.T === T)) {
    if (timed[x.impl].length) {
      x.ms = med(timed[x.impl]);
      x.cpuMs = med(cpuTimed[x.impl]);
    } else if (x.ms !== null) x.note = "timed in its profiled run";
    console.log(
      `  T=${T} ${x.impl}: ${x.ms?.toFixed(0) ?? "-"} ms (cpu ${x.cpuMs?.toFixed(0) ?? "-"}), peak ${x.peakMiB?.toFixed(1) ?? "-"} MiB ${x.error ?? ""}${x.note ?? ""}`,
    );
  }
}

/** Quadratic fit a·T² + b·T through the two largest successful naive runs, for runs that failed. */
function extrapolateNaive(T: number): number | undefined {
  const ok = rows
    .filter((r) => r.impl === "naive" && r.peakMiB !== null && r.T < T)
    .sort((a, b) => a.T - b.T);
  if (ok.length < 2) return undefined;
  const [p, q] = ok.slice(-2);
  const [t1, m1, t2, m2] = [p.T, p.peakMiB as number, q.T, q.peakMiB as number];
  const a = (m2 / t2 - m1 / t1) / (t2 - t1);
  const b = m1 / t1 - a * t1;
  return a * T * T + b * T;
}

console.log(
  `\nattention forward+backward, B=${B} H=${H} D=${D} causal, ${backend} backend, ${kernels}, tiled blocks ${block}; load average ${loadavg()[0].toFixed(1)} on ${cpus().length} CPUs`,
);
console.log(
  "T     | naive ms | tiled ms | fused ms | naive/fused | tiled/fused | naive cpu | tiled cpu | fused cpu | cpu naive/fused | cpu tiled/fused",
);
const f = (x: number | null | undefined, d = 0) => (x === null || x === undefined ? "fail" : x.toFixed(d));
const ratio = (a?: number | null, b?: number | null, d = 2) => (a && b ? `${(a / b).toFixed(d)}×` : "-");
const pick = (T: number) => ({
  n: rows.find((r) => r.T === T && r.impl === "naive"),
  t: rows.find((r) => r.T === T && r.impl === "tiled"),
  u: rows.find((r) => r.T === T && r.impl === "wasm-fused"),
});
for (const T of Ts) {
  const { n, t, u } = pick(T);
  console.log(
    [
      String(T).padEnd(5),
      f(n?.ms).padStart(8),
      f(t?.ms).padStart(8),
      f(u?.ms).padStart(8),
      ratio(n?.ms, u?.ms).padStart(11),
      ratio(t?.ms, u?.ms).padStart(11),
      f(n?.cpuMs).padStart(9),
      f(t?.cpuMs).padStart(9),
      f(u?.cpuMs).padStart(9),
      ratio(n?.cpuMs, u?.cpuMs).padStart(15),
      ratio(t?.cpuMs, u?.cpuMs).padStart(15),
    ].join(" | "),
  );
}
console.log("\nT     | naive MiB | tiled MiB | fused MiB | naive/fused mem | tiled/fused mem");
for (const T of Ts) {
  const { n, t, u } = pick(T);
  const nEst = n?.peakMiB ?? (n?.error ? extrapolateNaive(T) : undefined);
  console.log(
    [
      String(T).padEnd(5),
      f(n?.peakMiB, 1).padStart(9),
      f(t?.peakMiB, 1).padStart(9),
      f(u?.peakMiB, 1).padStart(9),
      `${n?.peakMiB === null && nEst ? "~" : ""}${ratio(nEst, u?.peakMiB, 1)}`.padStart(15),
      ratio(t?.peakMiB, u?.peakMiB, 1).padStart(15),
    ].join(" | "),
  );
  for (const x of [n, t, u]) if (x?.error) console.log(`  ${x.impl} at T=${T} failed: ${x.error}`);
  if (n?.peakMiB === null && nEst !== undefined) {
    console.log(`  naive at T=${T} would need ~${nEst.toFixed(0)} MiB (quadratic fit of the smaller runs)`);
  }
}
console.log(
  "\nnaive vs tiled (the tf.js implementations):\nT     | naive ms | tiled ms | speed (naive/tiled) | memory (naive/tiled)",
);
for (const T of Ts) {
  const n = rows.find((r) => r.T === T && r.impl === "naive");
  const t = rows.find((r) => r.T === T && r.impl === "tiled");
  console.log(
    `${String(T).padEnd(5)} | ${f(n?.ms).padStart(8)} | ${f(t?.ms).padStart(8)} | ${ratio(n?.ms, t?.ms).padStart(19)} | ${ratio(n?.peakMiB ?? extrapolateNaive(T), t?.peakMiB, 1).padStart(20)}`,
  );
}
