/**
 * Attention forward+backward at long contexts: time and peak tensor memory of the tiled (flash)
 * implementation against the naive one, B=1, H=8, D=64, causal, in one sitting.
 *
 *   pnpm bench attention-memory [--t 256,1024,4096] [--reps 3] [--backend wasm|cpu] [--stock] [--block 256]
 *
 * Peak memory = tf.profile's peakBytes (every live tensor, sampled after each kernel) minus the
 * bytes alive before the call; naive keeps several (B, H, T, T) tensors, tiled only (T, block) ones.
 * The project's SIMD wasm kernels are registered first (both implementations use them) unless
 * `--stock`. Every (T, implementation) runs in its own process, so an out-of-memory naive run (the
 * wasm heap is 4 GiB) cannot disturb the others; its peak is then extrapolated quadratically.
 * Timings come from one more process per T that alternates tiled and naive (`--reps` rounds, one at
 * T >= 4096) and reports medians.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { registerWasmKernels, scaledDotProductAttention } from "@typeformer/attention";
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

function step(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, impl: "naive" | "tiled"): void {
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
  peakMiB: number | null;
  error?: string;
  note?: string;
}

const mib = (b: number) => b / 2 ** 20;

/** Child mode: one (T, implementation) measurement, printed as one JSON line. */
async function measureOne(T: number, impl: "naive" | "tiled"): Promise<void> {
  const kernels = await setup();
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
    row.peakMiB = mib(prof.peakBytes - base);
  } catch (e) {
    row.error = (e as Error).message.split("\n")[0].slice(0, 80);
  }
  console.log(`RESULT ${JSON.stringify(row)}`);
}

/** Child mode: naive and tiled timed alternately in one process (same heap, same noise). */
async function timeBoth(T: number): Promise<void> {
  await setup();
  const rng = new Random(T);
  const mk = () => tf.tensor4d(rng.normalArray(B * H * T * D), [B, H, T, D]);
  const q = mk();
  const k = mk();
  const v = mk();
  const times: Record<string, number[]> = { naive: [], tiled: [] };
  const rounds = T >= 4096 ? 1 : reps;
  {
    // warm-up at a short length: JIT and kernel set-up are not part of either timing
    const w = tf.tidy(() => tf.randomNormal([B, H, 128, D]) as tf.Tensor4D);
    step(w, w, w, "naive");
    step(w, w, w, "tiled");
    w.dispose();
  }
  for (let r = 0; r < rounds; r++) {
    // tiled first: a naive run near the heap limit must not take the tiled timing down with it
    for (const impl of ["tiled", "naive"] as const) {
      const t0 = performance.now();
      step(q, k, v, impl);
      times[impl].push(performance.now() - t0);
      console.log(`TIME ${JSON.stringify({ impl, ms: times[impl].at(-1) })}`);
    }
  }
}

if (one) {
  const [t, impl] = one.split(":");
  if (impl === "time") await timeBoth(Number(t));
  else await measureOne(Number(t), impl as "naive" | "tiled");
  process.exit(0);
}

const rows: Row[] = [];
let kernels = "";
const self = fileURLToPath(import.meta.url);
for (const T of Ts) {
  for (const impl of ["naive", "tiled"] as const) {
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
  const timed: Record<string, number[]> = { naive: [], tiled: [] };
  for (const l of r.stdout.split("\n")) {
    if (!l.startsWith("TIME ")) continue;
    const { impl, ms } = JSON.parse(l.slice(5)) as { impl: string; ms: number };
    timed[impl].push(ms);
  }
  for (const x of rows.filter((row) => row.T === T)) {
    const ts = timed[x.impl].sort((a, b) => a - b);
    if (ts.length) x.ms = ts[Math.floor(ts.length / 2)];
    else if (x.ms !== null) x.note = "timed in its profiled run";
    console.log(
      `  T=${T} ${x.impl}: ${x.ms?.toFixed(0) ?? "-"} ms, peak ${x.peakMiB?.toFixed(1) ?? "-"} MiB ${x.error ?? ""}${x.note ?? ""}`,
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
  `\nattention forward+backward, B=${B} H=${H} D=${D} causal, ${backend} backend, ${kernels}, tiled blocks ${block}`,
);
console.log(
  "T     | naive ms | tiled ms | speed (naive/tiled) | naive peak MiB | tiled peak MiB | memory (naive/tiled)",
);
for (const T of Ts) {
  const n = rows.find((r) => r.T === T && r.impl === "naive");
  const t = rows.find((r) => r.T === T && r.impl === "tiled");
  const f = (x: number | null | undefined, d = 0) => (x === null || x === undefined ? "fail" : x.toFixed(d));
  const ratio = (a?: number | null, b?: number | null, d = 2) => (a && b ? `${(a / b).toFixed(d)}×` : "-");
  console.log(
    `${String(T).padEnd(5)} | ${f(n?.ms).padStart(8)} | ${f(t?.ms).padStart(8)} | ${ratio(n?.ms, t?.ms).padStart(19)} | ${f(n?.peakMiB, 1).padStart(14)} | ${f(t?.peakMiB, 1).padStart(14)} | ${ratio(n?.peakMiB, t?.peakMiB, 1).padStart(20)}`,
  );
  if (n?.error) {
    console.log(`  naive at T=${T} failed: ${n.error}`);
    const est = n.peakMiB === null ? extrapolateNaive(T) : undefined;
    if (est !== undefined && t?.peakMiB) {
      console.log(
        `  naive at T=${T} would need ~${est.toFixed(0)} MiB (quadratic fit of the smaller runs): ${(est / t.peakMiB).toFixed(1)}× the tiled peak`,
      );
    } else if (n.peakMiB !== null) {
      console.log(
        `  (its profiled run completed with the peak above; the timing run then ran out of wasm heap)`,
      );
    }
  }
  if (t?.error) console.log(`  tiled at T=${T} failed: ${t.error}`);
}
