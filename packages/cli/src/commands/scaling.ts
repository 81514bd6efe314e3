import { isTypeformerError } from "@typeformer/core";
import {
  KAPLAN_ALPHA_N,
  runScalingSweep,
  SCALING_DATA_DEFAULT,
  SCALING_DATA_QUICK,
  SCALING_DEFAULT_SIZES,
  SCALING_DEFAULTS,
  SCALING_QUICK,
  SCALING_QUICK_SIZES,
} from "@typeformer/eval";
import type { Command } from "commander";

const num = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`expected a number; received ${JSON.stringify(v)}`);
  return n;
};

interface ScalingOpts {
  quick?: boolean;
  data?: boolean;
  out?: string;
  corpus: string;
  tokenizer: string;
  steps?: number;
  batchSize?: number;
  context?: number;
  lr?: number;
  seed: number;
  backend?: "wasm" | "cpu" | "node" | "node-gpu";
}

export function registerScaling(program: Command): void {
  program
    .command("scaling")
    .description(
      "Train a family of GPT sizes on the same data and token budget, fit L(N) = a·N^−α + c, plot it (SVG) and compare α with Kaplan et al. 2020. Resumes where it stopped.",
    )
    .option("--quick", "5 tiny sizes and a small budget: a few minutes on 2 cores")
    .option("--data", "fit L(D) instead: one model size across 5 token budgets (doubling)")
    .option("-o, --out <dir>", "sweep folder (default runs/scaling or runs/scaling-quick)")
    .option("--corpus <name>", "corpus (moby-dick, sotu, brown, a file)", "moby-dick")
    .option("--tokenizer <spec>", "char, bpe:N, an encoding name or tokenizer.json", "char")
    .option("--steps <n>", "optimizer steps per size", num)
    .option("--batch-size <n>", "sequences per step", num)
    .option("--context <n>", "context length", num)
    .option("--lr <x>", "peak learning rate", num)
    .option("--seed <n>", "seed", num, 1337)
    .option("--backend <name>", "tf.js backend")
    .action(async (o: ScalingOpts) => {
      const base = o.quick ? SCALING_QUICK : SCALING_DEFAULTS;
      const data = o.quick ? SCALING_DATA_QUICK : SCALING_DATA_DEFAULT;
      const outDir = o.out ?? `runs/scaling${o.data ? "-data" : ""}${o.quick ? "-quick" : ""}`;
      const started = Date.now();
      try {
        const r = await runScalingSweep({
          outDir,
          sizes: o.data ? [data.size] : o.quick ? SCALING_QUICK_SIZES : SCALING_DEFAULT_SIZES,
          dataSteps: o.data ? data.steps : undefined,
          corpus: o.corpus,
          tokenizer: o.tokenizer,
          steps: o.steps ?? base.steps,
          batchSize: o.batchSize ?? base.batchSize,
          contextLength: o.context ?? base.contextLength,
          lr: o.lr ?? base.lr,
          evalBatches: base.evalBatches,
          seed: o.seed,
          backend: o.backend,
          onPhase: (m) => process.stderr.write(`  ${m}\n`),
          onStep: (name, step, steps) => {
            if (step % Math.max(1, Math.round(steps / 10)) === 0)
              process.stderr.write(`  ${name}: step ${step}/${steps}\n`);
          },
          onRun: (p, reused) =>
            console.log(
              `${p.name}: N = ${p.nonEmbeddingParameters.toLocaleString("en-US")} non-embedding (${p.parameters.toLocaleString("en-US")} all), val loss ${p.valLoss.toFixed(4)}, ${p.wallTimeSec.toFixed(0)} s${reused ? " (reused finished run)" : ""}`,
            ),
        });
        console.log(
          r.mode === "data"
            ? `\nL(D) = ${r.fit.a.toPrecision(4)}·D^(−${r.fit.alpha.toFixed(4)}) + ${r.fit.c.toFixed(4)}, R² ${r.fit.r2.toFixed(4)} over ${r.span.toFixed(0)}× in D (Kaplan et al. 2020: α_D ≈ 0.095)`
            : `\nL(N) = ${r.fit.a.toPrecision(4)}·N^(−${r.fit.alpha.toFixed(4)}) + ${r.fit.c.toFixed(4)}, R² ${r.fit.r2.toFixed(4)} over ${r.span.toFixed(0)}× in N (Kaplan et al. 2020: α_N ≈ ${KAPLAN_ALPHA_N})`,
        );
        console.log(
          `${((Date.now() - started) / 1000).toFixed(0)} s; scaling.json, scaling.md, scaling.svg in ${outDir}`,
        );
      } catch (e) {
        if (isTypeformerError(e)) {
          console.error(`error [${e.code}]: ${e.message}`);
          process.exitCode = 1;
          return;
        }
        throw e;
      }
    });
}
