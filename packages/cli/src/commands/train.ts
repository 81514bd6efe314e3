import { readFile } from "node:fs/promises";
import { TypeformerError } from "@typeformer/core";
import type { CausalLM } from "@typeformer/models";
import type { RunReport } from "@typeformer/trainer";
import {
  closestKey,
  parseRunConfig,
  RUN_PRESETS,
  readRunConfig,
  runTraining,
  type StepMetrics,
  sampleText,
} from "@typeformer/trainer";
import cliProgress from "cli-progress";
import type { Command } from "commander";

interface TrainFlags {
  config?: string;
  preset?: string;
  resume?: boolean;
  runDir?: string;
  corpus?: string;
  tokenizer?: string;
  steps?: number;
  batchSize?: number;
  contextLength?: number;
  lr?: number;
  maxMinutes?: number;
  backend?: string;
  set?: string[];
  samples?: boolean;
}

const num = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`not a number: ${v}`);
  return n;
};
const collect = (v: string, prev: string[] = []) => [...prev, v];

function parseValue(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

function setPath(obj: Record<string, unknown>, key: string, value: unknown) {
  const parts = key.split(".");
  let o = obj;
  for (const p of parts.slice(0, -1)) {
    if (typeof o[p] !== "object" || o[p] === null) o[p] = {};
    o = o[p] as Record<string, unknown>;
  }
  o[parts.at(-1)!] = value;
}

const fmt = (x: number | null | undefined, d = 3) =>
  x === undefined || x === null || !Number.isFinite(x) ? "-" : x.toFixed(d);

export function registerTrain(program: Command): void {
  program
    .command("train")
    .description(
      "Pretrain a model on a corpus (char/BPE tokens, AdamW, cosine schedule, checkpoints, exact --resume), then print samples.",
    )
    .option("-c, --config <file>", "run config JSON (see @typeformer/trainer's runConfigSchema)")
    .option("-p, --preset <name>", `a ready-made run: ${Object.keys(RUN_PRESETS).join(", ")}`)
    .option("--resume", "continue the run in --run-dir (or the config's runDir) from its latest checkpoint")
    .option("--run-dir <dir>", "run folder: data, checkpoints, metrics.jsonl, loss-curve.svg, report.json")
    .option("--corpus <spec>", "moby-dick, sotu, brown, a text file or a glob")
    .option("--tokenizer <spec>", "char, bpe:<vocab size>, gpt2, or a tokenizer.json path")
    .option("--steps <n>", "optimizer steps", num)
    .option("--batch-size <n>", "sequences per micro-batch", num)
    .option("--context-length <n>", "tokens per sequence", num)
    .option("--lr <x>", "peak learning rate", num)
    .option("--max-minutes <x>", "stop after this many minutes (final eval + checkpoint)", num)
    .option("--backend <name>", "force a backend: node-gpu, node, wasm or cpu")
    .option(
      "--set <key=value>",
      "set any config key (repeatable; dotted keys reach into model/sample)",
      collect,
    )
    .option("--no-samples", "do not print samples at the end")
    .action(async (flags: TrainFlags) => {
      await trainCommand(flags);
    });
}

async function trainCommand(flags: TrainFlags): Promise<void> {
  let raw: Record<string, unknown> = {};
  if (flags.preset) {
    const p = RUN_PRESETS[flags.preset];
    if (!p) {
      const near = closestKey(flags.preset, Object.keys(RUN_PRESETS));
      throw new TypeformerError(
        "INVALID_CONFIG",
        `unknown preset ${JSON.stringify(flags.preset)}${near ? `; did you mean ${JSON.stringify(near)}?` : ""} (presets: ${Object.keys(RUN_PRESETS).join(", ")})`,
        { preset: flags.preset },
      );
    }
    raw = structuredClone(p) as Record<string, unknown>;
  }
  if (flags.config) raw = { ...raw, ...JSON.parse(await readFile(flags.config, "utf8")) };
  if (flags.resume && !flags.config && !flags.preset && flags.runDir) {
    raw = (await readRunConfig(flags.runDir)) as Record<string, unknown>;
  }
  const direct: [keyof TrainFlags, string][] = [
    ["runDir", "runDir"],
    ["corpus", "corpus"],
    ["tokenizer", "tokenizer"],
    ["steps", "steps"],
    ["batchSize", "batchSize"],
    ["contextLength", "contextLength"],
    ["lr", "lr"],
    ["maxMinutes", "maxMinutes"],
    ["backend", "backend"],
  ];
  for (const [flag, key] of direct) if (flags[flag] !== undefined) raw[key] = flags[flag];
  for (const kv of flags.set ?? []) {
    const i = kv.indexOf("=");
    if (i < 0)
      throw new TypeformerError(
        "INVALID_ARGUMENT",
        `--set expects key=value; received ${JSON.stringify(kv)}`,
        { set: kv },
      );
    setPath(raw, kv.slice(0, i), parseValue(kv.slice(i + 1)));
  }
  const cfg = parseRunConfig(raw);
  const tty = Boolean(process.stdout.isTTY);
  let bar: cliProgress.SingleBar | undefined;
  let lastVal: number | undefined;
  const plainEvery = Math.max(1, Math.min(50, Math.round(cfg.steps / 40)));
  const started = Date.now();
  const result = await runTraining(
    cfg,
    {
      onPhase: (m) => console.log(`• ${m}`),
      onStart: (info) => {
        console.log(
          `• training ${info.parameters.toLocaleString()} parameters for ${info.steps} steps ` +
            `(${info.tokensPerStep} tokens/step${cfg.maxMinutes ? `, at most ${cfg.maxMinutes} min` : ""}) in ${cfg.runDir}`,
        );
        if (tty) {
          bar = new cliProgress.SingleBar(
            {
              format:
                "step {value}/{total} {bar} {percentage}% | loss {loss} | val {val} | {tps} tok/s | ETA {eta_formatted}",
              hideCursor: true,
              etaBuffer: 20,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(info.steps, info.startStep, { loss: "-", val: "-", tps: "-" });
        }
      },
      onStep: (m: StepMetrics) => {
        if (bar) {
          bar.update(m.step, { loss: fmt(m.loss), val: fmt(lastVal), tps: m.tokensPerSec.toFixed(0) });
        } else if (m.step % plainEvery === 0 || m.step === 1 || m.valLoss !== undefined) {
          console.log(
            `step ${m.step}/${cfg.steps} loss ${fmt(m.loss)} lr ${m.lr.toExponential(2)} grad-norm ${fmt(m.gradNorm)} ` +
              `${m.tokensPerSec.toFixed(0)} tok/s${m.valLoss !== undefined ? ` val ${fmt(m.valLoss)} (ppl ${fmt(m.valPerplexity, 2)})` : ""}`,
          );
        }
      },
      onEval: (e) => {
        lastVal = e.valLoss;
      },
      onCheckpoint: (c) => {
        if (!bar) console.log(`  checkpoint ${c.path}${c.best ? " (best so far)" : ""}`);
      },
    },
    Boolean(flags.resume),
  );
  bar?.stop();
  const r = result.report;
  console.log(
    `\n${result.stoppedEarly ? `stopped at the ${cfg.maxMinutes}-minute limit` : "done"}: ${r.steps} steps, ` +
      `loss ${fmt(r.finalLoss)}, val loss ${fmt(r.finalValLoss)} (best ${fmt(r.bestValLoss)}), ` +
      `${r.tokensSeen.toLocaleString()} tokens, ${r.wallTimeSec.toFixed(0)} s training (${((Date.now() - started) / 1000).toFixed(0)} s in all), ` +
      `${(r.achievedFlopsPerSec / 1e9).toFixed(2)} GFLOP/s, peak RSS ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
  );
  if (r.cost) console.log(costLine(r.cost));
  console.log(`run folder ${result.runDir}: metrics.jsonl, loss-curve.svg, report.json, checkpoints/`);
  if (result.checkpoint) console.log(`latest checkpoint (HF layout + tokenizer): ${result.checkpoint}`);
  if (flags.samples !== false && result.model.family === "decoder") {
    const s = cfg.sample ?? { prompt: "", tokens: 200, temperature: 0.8, topK: 0, count: 2 };
    const samples = sampleText(result.model as CausalLM, result.tokenizer, {
      prompt: s.prompt,
      tokens: s.tokens,
      temperature: s.temperature,
      topK: s.topK,
      count: s.count,
      seed: cfg.seed,
    });
    for (const [i, t] of samples.entries()) {
      console.log(`\n--- sample ${i + 1} (temperature ${s.temperature}) ---\n${t}`);
    }
    if (result.checkpoint) {
      console.log(`\nchat with it:  pnpm typeformer chat ${result.checkpoint}`);
      console.log(`generate:      pnpm typeformer generate ${result.checkpoint} "Call me"`);
    }
  }
  result.model.dispose();
}

/** One line of compute cost with its assumptions (details in report.json's `cost`). */
export function costLine(c: NonNullable<RunReport["cost"]>): string {
  const a = c.assumptions;
  const power =
    a.device === "gpu" ? `${a.gpus}×${a.wattsPerGpu} W GPU` : `${a.cores}×${a.wattsPerCore} W/core`;
  return `  compute: ${(c.flops / 1e12).toPrecision(3)} TFLOP, ~${(c.energyKwh * 1000).toPrecision(3)} Wh, ~${c.co2Grams.toPrecision(3)} g CO₂e (assumed ${power}, PUE ${a.pue}, ${a.gridGCo2PerKwh} g/kWh; TYPEFORMER_* env overrides)`;
}
