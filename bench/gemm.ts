/**
 * GEMM throughput (GFLOP/s) of tf.matMul on the wasm backend: Typeformer's SIMD kernels (plain SIMD
 * and relaxed-SIMD FMA builds) vs the stock tf.js wasm kernel, every transpose layout, with the
 * shapes a small GPT's training step runs. Ratios are against the stock kernel, same run.
 *
 *   pnpm bench gemm [--ms 250]
 */
import { registerWasmKernels, unregisterWasmKernels, wasmThreadsReady } from "@typeformer/attention";
import { initBackend, tf } from "@typeformer/core";

const argv = process.argv.slice(2);
const i = argv.indexOf("--ms");
const budgetMs = i >= 0 ? Number(argv[i + 1]) : 250;

await initBackend({ backend: "wasm" });
registerWasmKernels({ threads: 2 });
await wasmThreadsReady();

const shapes: { name: string; batch: number; m: number; n: number; k: number }[] = [
  { name: "square 256", batch: 1, m: 256, n: 256, k: 256 },
  { name: "MLP fc (B*T=768, 128→512)", batch: 1, m: 768, n: 512, k: 128 },
  { name: "attention QKᵀ (48 heads, 64², d=32)", batch: 48, m: 64, n: 64, k: 32 },
  { name: "odd 129×17×257", batch: 1, m: 129, n: 17, k: 257 },
];

/** Best GFLOP/s over `rounds` short slices per contender, contenders interleaved (fair under load). */
function race(contenders: (() => void)[], flops: number, rounds = 5): number[] {
  const best = contenders.map(() => 0);
  for (const c of contenders) {
    c();
    c();
  }
  for (let r = 0; r < rounds; r++) {
    contenders.forEach((c, idx) => {
      let runs = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < budgetMs / rounds || runs < 2) {
        c();
        runs++;
      }
      best[idx] = Math.max(best[idx], (flops * runs) / ((performance.now() - t0) * 1e6));
    });
  }
  return best;
}

const rows: Record<string, string | number>[] = [];
for (const s of shapes) {
  for (const [ta, tb] of [
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ] as const) {
    const a = tf.randomNormal(ta ? [s.batch, s.k, s.m] : [s.batch, s.m, s.k]);
    const b = tf.randomNormal(tb ? [s.batch, s.n, s.k] : [s.batch, s.k, s.n]);
    const flops = 2 * s.batch * s.m * s.n * s.k;
    const run = () => tf.matMul(a, b, ta, tb).dispose();
    let relaxedVariant = "";
    const [stock, simd, relaxed, threaded] = race(
      [
        () => {
          unregisterWasmKernels();
          run();
        },
        () => {
          registerWasmKernels({ variant: "simd" });
          run();
        },
        () => {
          relaxedVariant = registerWasmKernels({ variant: "relaxed-simd" }).variant;
          run();
        },
        () => {
          registerWasmKernels({ variant: "simd", threads: 2 });
          run();
          registerWasmKernels({ threads: 1 });
        },
      ],
      flops,
    );
    rows.push({
      shape: s.name,
      layout: `${ta ? "Aᵀ" : "A"}·${tb ? "Bᵀ" : "B"}`,
      "stock GFLOP/s": +stock.toFixed(1),
      "ours simd": +simd.toFixed(1),
      "ours relaxed-simd": relaxedVariant === "relaxed-simd" ? +relaxed.toFixed(1) : "n/a",
      "ours simd, 2 threads": +threaded.toFixed(1),
      "× stock (simd)": +(simd / stock).toFixed(1),
      "× stock (relaxed)": +(relaxed / stock).toFixed(1),
    });
    tf.dispose([a, b]);
  }
}
registerWasmKernels({ variant: "auto" });
console.log(
  "tf.matMul on the wasm backend (1 thread), best GFLOP/s of interleaved slices; ratios against the stock kernel in the same run",
);
console.table(rows);
