import path from "node:path";
import { initAcceleratedBackend } from "@typeformer/attention";
import { type BackendChoice, isTypeformerError } from "@typeformer/core";
import {
  type FinetuneMethod,
  type FinetuneReport,
  type FinetuneTask,
  runFinetune,
} from "@typeformer/finetune";
import { type Dashboard, startDashboard } from "@typeformer/finetune-app";
import cliProgress from "cli-progress";
import type { Command } from "commander";
import { costLine } from "./train.js";

interface FinetuneFlags {
  base: string;
  data: string;
  task: string;
  method: string;
  out?: string;
  steps?: number;
  batchSize?: number;
  lr?: number;
  warmup?: number;
  maxLength?: number;
  valFraction?: number;
  evalEvery?: number;
  checkpointEvery?: number;
  resume?: boolean;
  seed?: number;
  loraR?: number;
  loraAlpha?: number;
  loraDropout?: number;
  loraTargets?: string;
  rslora?: boolean;
  freeze?: string[];
  lrGroup?: string[];
  skipBadLines?: boolean;
  prompt?: string[];
  dashboard?: boolean;
  dashboardPort?: number;
  keepOpen?: boolean;
  backend?: BackendChoice;
}

const num = (v: string) => Number(v);
const collect = (v: string, prev: string[] = []) => [...prev, v];
const TASKS = ["chat", "classify", "seq2seq", "text"];
const fmt = (x: number | null | undefined, d = 4) => (x === null || x === undefined ? "-" : x.toFixed(d));

export function registerFinetune(program: Command): void {
  program
    .command("finetune")
    .description("fine-tune a model (LoRA or full) on a JSONL file: chat SFT, classification, seq2seq, text")
    .requiredOption("--base <dir>", "base model folder (config.json + model.safetensors + tokenizer.json)")
    .requiredOption(
      "--data <file>",
      "JSONL: messages | prompt/completion | text/label | source/target | text",
    )
    .option("--task <task>", `one of ${TASKS.join(", ")}`, "chat")
    .option("--method <method>", "lora or full", "lora")
    .option("--out <dir>", "run folder (default runs/finetune-<task>-<method>)")
    .option("--steps <n>", "optimizer steps", num, 200)
    .option("--batch-size <n>", "examples per step", num, 8)
    .option("--lr <x>", "peak learning rate (default 1e-3 LoRA, 1e-4 full)", num)
    .option("--warmup <n>", "warmup steps", num, 0)
    .option(
      "--max-length <n>",
      "truncate examples to this many tokens (default 128, capped at the model's positions)",
      num,
    )
    .option("--val-fraction <x>", "held-out share for validation", num, 0.1)
    .option("--eval-every <n>", "evaluate every n steps", num)
    .option("--checkpoint-every <n>", "checkpoint every n steps (0 = at the end)", num, 50)
    .option("--resume", "continue from the latest checkpoint in --out")
    .option("--seed <n>", "seed", num, 0)
    .option("--lora-r <n>", "LoRA rank", num)
    .option("--lora-alpha <x>", "LoRA alpha", num)
    .option("--lora-dropout <x>", "LoRA dropout", num)
    .option("--lora-targets <list>", "comma-separated module names, or a regular expression")
    .option("--rslora", "rank-stabilised LoRA scaling alpha/sqrt(r)")
    .option(
      "--freeze <pattern>",
      "full fine-tuning: freeze parameters matching this regex (repeatable)",
      collect,
    )
    .option(
      "--lr-group <regex=scale>",
      "discriminative learning rate: parameters matching regex get scale x lr (repeatable)",
      collect,
    )
    .option("--skip-bad-lines", "skip malformed JSONL lines (reports how many) instead of stopping")
    .option("--prompt <text>", "a fixed prompt to sample before and after training (repeatable)", collect)
    .option("--dashboard", "serve a live dashboard on 127.0.0.1")
    .option("--dashboard-port <n>", "dashboard port (default: any free one)", num)
    .option("--keep-open", "with --dashboard: keep serving after training until Ctrl-C")
    .option("--backend <name>", "force a backend: wasm or cpu")
    .action(async (flags: FinetuneFlags) => {
      try {
        await finetuneCommand(flags);
      } catch (e) {
        if (isTypeformerError(e)) {
          console.error(`typeformer finetune: ${e.message}`);
          process.exitCode = 1;
          return;
        }
        throw e;
      }
    });
}

async function finetuneCommand(flags: FinetuneFlags): Promise<void> {
  if (!TASKS.includes(flags.task)) {
    console.error(
      `typeformer finetune: --task must be one of ${TASKS.join(", ")}; received ${JSON.stringify(flags.task)}`,
    );
    process.exitCode = 1;
    return;
  }
  if (flags.method !== "lora" && flags.method !== "full") {
    console.error(
      `typeformer finetune: --method must be lora or full; received ${JSON.stringify(flags.method)}`,
    );
    process.exitCode = 1;
    return;
  }
  await initAcceleratedBackend({ backend: flags.backend });
  const task = flags.task as FinetuneTask;
  const method = flags.method as FinetuneMethod;
  const outDir = flags.out ?? path.join("runs", `finetune-${task}-${method}`);
  let dash: Dashboard | undefined;
  if (flags.dashboard) {
    dash = await startDashboard({
      port: flags.dashboardPort,
      title: `finetune ${task} · ${method} · ${path.basename(flags.base)}`,
    });
    console.log(`• dashboard: ${dash.url}`);
  }
  const targets = flags.loraTargets
    ? /[\\^$*+?()[\]|]/.test(flags.loraTargets)
      ? flags.loraTargets
      : flags.loraTargets.split(",").map((s) => s.trim())
    : undefined;
  const lora = Object.fromEntries(
    Object.entries({
      r: flags.loraR,
      alpha: flags.loraAlpha,
      dropout: flags.loraDropout,
      targetModules: targets,
      useRslora: flags.rslora,
    }).filter(([, v]) => v !== undefined),
  );
  const tty = Boolean(process.stdout.isTTY);
  let bar: cliProgress.SingleBar | undefined;
  let lastVal: number | undefined;
  const steps = flags.steps ?? 200;
  const plainEvery = Math.max(1, Math.round(steps / 20));
  const started = Date.now();
  let report: FinetuneReport;
  try {
    report = await runFinetune({
      base: flags.base,
      data: flags.data,
      task,
      method,
      outDir,
      steps,
      batchSize: flags.batchSize,
      lr: flags.lr,
      warmupSteps: flags.warmup,
      maxLength: flags.maxLength,
      valFraction: flags.valFraction,
      evalEvery: flags.evalEvery,
      checkpointEvery: flags.checkpointEvery,
      resume: flags.resume,
      seed: flags.seed,
      lora,
      freeze: flags.freeze,
      lrGroups: (flags.lrGroup ?? []).map((g) => {
        const i = g.lastIndexOf("=");
        const scale = Number(g.slice(i + 1));
        if (i <= 0 || !Number.isFinite(scale))
          throw new Error(`--lr-group expects regex=scale; received ${g}`);
        return { pattern: g.slice(0, i), scale };
      }),
      skipBadLines: flags.skipBadLines,
      samplePrompts: flags.prompt,
      callbacks: {
        onStart: (info) => {
          const p = info.parameters;
          console.log(
            `• ${method} fine-tuning of ${info.modelType} for ${task}: ${info.examples.train} train / ${info.examples.val} val examples` +
              `${info.examples.skipped > 0 ? `, ${info.examples.skipped} bad lines skipped` : ""}; ` +
              `${p.trainable.toLocaleString()} of ${p.total.toLocaleString()} parameters trainable (${(100 * p.share).toFixed(2)}%)` +
              `${info.startStep > 0 ? `; resuming at step ${info.startStep}` : ""}`,
          );
          dash?.publish({ type: "start", info: info as unknown as Record<string, unknown> });
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
        onStep: (m) => {
          dash?.publish({
            type: "step",
            step: m.step,
            loss: m.loss,
            lr: m.lr,
            tokensPerSec: m.tokensPerSec,
            gradNorm: m.gradNorm,
            ...(m.valLoss !== undefined ? { valLoss: m.valLoss } : {}),
          });
          if (bar)
            bar.update(m.step, { loss: fmt(m.loss), val: fmt(lastVal), tps: m.tokensPerSec.toFixed(0) });
          else if (m.step % plainEvery === 0 || m.step === 1 || m.valLoss !== undefined) {
            console.log(
              `step ${m.step}/${steps} loss ${fmt(m.loss)} lr ${m.lr.toExponential(2)} ${m.tokensPerSec.toFixed(0)} targets/s` +
                `${m.valLoss !== undefined ? ` val ${fmt(m.valLoss)}` : ""}`,
            );
          }
        },
        onEval: (e) => {
          lastVal = e.valLoss;
        },
        onCheckpoint: (c) => {
          if (!bar) console.log(`  checkpoint ${c.path}`);
        },
        onSamples: (s) => {
          dash?.publish({ type: "samples", when: s.when, samples: s.samples });
          if (s.samples.length === 0) return;
          bar?.stop();
          console.log(`\n--- samples ${s.when} training ---`);
          for (const x of s.samples) console.log(`> ${x.prompt}\n  ${JSON.stringify(x.output)}`);
        },
      },
    });
  } catch (e) {
    bar?.stop();
    dash?.publish({ type: "error", message: (e as Error).message });
    if (dash && !flags.keepOpen) await dash.close();
    throw e;
  }
  bar?.stop();
  const r = report;
  const lines = [
    `\ndone: ${r.steps} steps in ${r.wallTimeSec.toFixed(1)} s training (${((Date.now() - started) / 1000).toFixed(1)} s in all)`,
    `  loss ${fmt(r.finalLoss)}, val loss ${fmt(r.finalValLoss)} (best ${fmt(r.bestValLoss)})` +
      (r.valMetric
        ? `, val ${r.valMetric.name} ${(100 * r.valMetric.value).toFixed(1)}% of ${r.valMetric.count}`
        : ""),
    `  trainable ${r.trainableParameters.toLocaleString()} / ${r.totalParameters.toLocaleString()} parameters (${(100 * r.trainableShare).toFixed(2)}%)`,
    `  ${r.inputTokens.toLocaleString()} input tokens, ${r.tokensSeen.toLocaleString()} targets, ${(r.flops / 1e9).toFixed(2)} GFLOP (${(r.achievedFlopsPerSec / 1e9).toFixed(2)} GFLOP/s)`,
    r.cost ? costLine(r.cost) : "",
    `  peak RSS ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB, peak tensor memory ${(r.peakTensorBytes / 2 ** 20).toFixed(1)} MiB`,
    r.skippedLines.length > 0
      ? `  skipped ${r.skippedLines.length} bad lines (first: line ${r.skippedLines[0].line}: ${r.skippedLines[0].problem})`
      : "",
    `  ${method === "lora" ? "adapter (PEFT layout)" : "model (HF layout)"}: ${r.output}`,
    `  report: ${path.join(outDir, "finetune-report.json")}`,
  ].filter((l) => l !== "");
  console.log(lines.join("\n"));
  if (dash) {
    dash.publish({
      type: "done",
      report: {
        steps: r.steps,
        finalLoss: r.finalLoss,
        finalValLoss: r.finalValLoss,
        trainableShare: r.trainableShare,
        wallTimeSec: r.wallTimeSec,
        peakRssMiB: r.peakRssBytes / 2 ** 20,
        ...(r.valMetric ? { [`val ${r.valMetric.name}`]: r.valMetric.value } : {}),
      },
    });
    if (flags.keepOpen) {
      console.log(`• dashboard still serving at ${dash.url} (Ctrl-C to stop)`);
      await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
    }
    await dash.close();
  }
}
