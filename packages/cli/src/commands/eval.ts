import { readFile } from "node:fs/promises";
import path from "node:path";
import { initAcceleratedBackend } from "@typeformer/attention";
import { type BackendChoice, isTypeformerError, TypeformerError, writeFileAtomic } from "@typeformer/core";
import {
  arithmeticTask,
  biasProbe,
  clozeTask,
  type EvalReport,
  evaluatePerplexity,
  factCorpus,
  factTable,
  factTask,
  heldOutText,
  runTask,
  stringTransformTask,
  type Task,
  writeEvalReport,
} from "@typeformer/eval";
import { type CausalLM, fromPretrained } from "@typeformer/models";
import { loadTokenizer, type Tokenizer } from "@typeformer/tokenizer";
import { readCorpus } from "@typeformer/trainer";
import type { Command } from "commander";

const num = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`expected a number; received ${JSON.stringify(v)}`);
  return n;
};

export const EVAL_TASKS = ["cloze", "arithmetic", "arithmetic-mc", "strings", "strings-mc", "facts", "bias"];

interface EvalOpts {
  task?: string;
  text?: string[];
  corpus?: string;
  valFraction: number;
  shots: number;
  seed: number;
  limit?: number;
  context?: number;
  stride?: number;
  factSeed: number;
  factEntities: number;
  writeFactCorpus?: string;
  out?: string;
  backend?: BackendChoice;
}

export function registerEval(program: Command): void {
  program
    .command("eval")
    .description(
      "Evaluate a causal LM: perplexity and bits per byte on held-out text, few-shot tasks, calibration, made-up answers, a bias probe. Writes eval.json + eval.md + SVG charts.",
    )
    .argument(
      "[model-dir]",
      "model directory (config.json + model.safetensors + tokenizer.json), e.g. a checkpoint folder",
    )
    .option("--task <names>", `comma-separated: ${EVAL_TASKS.join(", ")}, or all`)
    .option("--text <file...>", "held-out text file(s) for perplexity / bits per byte (and the cloze task)")
    .option(
      "--corpus <name>",
      "held-out tail of a corpus (moby-dick, sotu, brown, a file): the split the trainer did not train on",
    )
    .option("--val-fraction <f>", "held-out fraction of each document, as in training", num, 0.1)
    .option("--shots <k>", "few-shot examples per question (seeded draws)", num, 0)
    .option("--seed <n>", "seed for task generation and shot draws", num, 0)
    .option("--limit <n>", "questions per task", num)
    .option("--context <n>", "perplexity window (default: the model's context)", num)
    .option("--stride <n>", "new tokens scored per window (default context / 2)", num)
    .option("--fact-seed <n>", "seed of the invented fact table", num, 0)
    .option("--fact-entities <n>", "entities in the fact table (half unseen)", num, 40)
    .option(
      "--write-fact-corpus <file>",
      "write the fact table's training text (seen entities only) and exit",
    )
    .option("-o, --out <dir>", "report folder (default <model-dir>/eval)")
    .option("--backend <name>", "force a tf.js backend: node-gpu, node, wasm or cpu")
    .action(async (dir: string | undefined, o: EvalOpts) => {
      try {
        await runEval(dir, o);
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

async function runEval(dir: string | undefined, o: EvalOpts): Promise<void> {
  const table = factTable({ entities: o.factEntities, seed: o.factSeed });
  if (o.writeFactCorpus) {
    await writeFileAtomic(o.writeFactCorpus, factCorpus(table));
    console.log(
      `wrote ${o.writeFactCorpus}: facts of ${table.entities.filter((e) => e.seen).length} seen entities (the other ${table.entities.filter((e) => !e.seen).length} only appear in questions)`,
    );
    return;
  }
  if (!dir) throw new TypeformerError("INVALID_ARGUMENT", "a model directory is required", {});
  await initAcceleratedBackend({ backend: o.backend });
  const model = (await fromPretrained(dir, { tokenizer: loadTokenizer })) as unknown as CausalLM;
  if (model.family !== "decoder") {
    model.dispose();
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `eval needs a causal LM; ${dir} is a ${model.family} model`,
      {
        family: model.family,
      },
    );
  }
  const tok = model.tokenizer as unknown as Tokenizer | undefined;
  if (!tok) throw new TypeformerError("NOT_FOUND", `no tokenizer.json in ${dir}`, { dir });
  const started = Date.now();
  const texts: string[] = [];
  let source = "";
  if (o.text?.length) {
    for (const f of o.text) texts.push(await readFile(f, "utf8"));
    source = o.text.join(", ");
  } else if (o.corpus) {
    const docs: string[] = [];
    for await (const d of readCorpus(o.corpus)) docs.push(d.text);
    texts.push(...heldOutText(docs, o.valFraction));
    source = `${o.corpus} (held-out last ${o.valFraction * 100}% of each document)`;
  }
  const names =
    o.task === "all"
      ? EVAL_TASKS
      : (o.task ?? (texts.length ? "" : "arithmetic-mc,strings-mc,facts,bias")).split(",").filter(Boolean);
  for (const n of names) {
    if (!EVAL_TASKS.includes(n)) {
      throw new TypeformerError(
        "INVALID_ARGUMENT",
        `unknown task ${JSON.stringify(n)}; choose from ${EVAL_TASKS.join(", ")}`,
        {
          task: n,
        },
      );
    }
  }
  const notes: string[] = [];
  const report: EvalReport = {
    model: path.resolve(dir),
    createdAt: new Date().toISOString(),
    tasks: [],
    notes,
  };
  if (texts.length) {
    process.stderr.write(`perplexity on ${source} ...\n`);
    const p = evaluatePerplexity(model, tok, texts, { contextLength: o.context, stride: o.stride });
    report.perplexity = { ...p, source };
    console.log(
      `held-out: ${p.tokens} tokens, ${p.bytes} bytes: loss ${p.lossPerToken.toFixed(4)} nats/token, perplexity ${p.perplexity.toFixed(3)}, ${p.bitsPerByte.toFixed(4)} bits/byte (${p.windows} windows of ${p.contextLength}, stride ${p.stride})`,
    );
  }
  const opts = { shots: o.shots, seed: o.seed, limit: o.limit };
  for (const n of names) {
    if (n === "bias") continue;
    let task: Task;
    if (n === "cloze") {
      if (!texts.length)
        throw new TypeformerError("INVALID_ARGUMENT", "the cloze task needs --text or --corpus", {});
      task = clozeTask(texts, { n: o.limit ?? 100, seed: o.seed });
    } else if (n === "arithmetic" || n === "arithmetic-mc") {
      task = arithmeticTask({
        n: o.limit ?? 50,
        seed: o.seed,
        kind: n === "arithmetic" ? "generate" : "multiple-choice",
      });
      if (n === "arithmetic-mc") task.name = "arithmetic-mc";
    } else if (n === "strings" || n === "strings-mc") {
      task = stringTransformTask({
        n: o.limit ?? 40,
        seed: o.seed,
        kind: n === "strings" ? "generate" : "multiple-choice",
      });
      if (n === "strings-mc") task.name = "strings-mc";
    } else task = factTask(table);
    task.name = n;
    process.stderr.write(`${task.name} (${task.kind}, ${o.shots}-shot) ...\n`);
    let r: ReturnType<typeof runTask>;
    try {
      r = runTask(model, tok, task, opts);
    } catch (e) {
      if (!isTypeformerError(e)) throw e;
      const why = `${task.name} skipped: ${e.message}`;
      console.log(why);
      notes.push(why);
      continue;
    }
    report.tasks.push(r);
    const extra =
      r.kind === "multiple-choice"
        ? ` (per-byte ${(100 * (r.accuracyNorm ?? 0)).toFixed(1)}%, chance ${(100 * r.chance).toFixed(1)}%, ECE ${r.calibration?.ece.toFixed(3)}, confident wrong ${(100 * (r.confidentWrongRate ?? 0)).toFixed(1)}%)`
        : "";
    console.log(`${r.task}: accuracy ${(100 * r.accuracy).toFixed(1)}% of ${r.n}${extra}`);
    for (const [g, m] of Object.entries(r.groups)) {
      if (n !== "facts") continue;
      console.log(
        `  ${g}: accuracy ${(100 * m.accuracy).toFixed(1)}%, mean confidence ${m.meanConfidence?.toFixed(3)}, confident wrong ${(100 * (m.confidentWrongRate ?? 0)).toFixed(1)}%`,
      );
    }
  }
  if (names.includes("bias")) {
    try {
      report.bias = biasProbe(model, tok);
    } catch (e) {
      if (!isTypeformerError(e)) throw e;
      notes.push(`bias probe skipped: ${e.message}`);
      console.log(`bias probe skipped: ${e.message}`);
    }
  }
  if (report.bias) {
    console.log(
      `bias: ln p(he) − ln p(she) mean ${report.bias.meanGap.toFixed(3)} nats, sd over occupations ${report.bias.stdGap.toFixed(3)} (see the report for the method and its limits)`,
    );
  }
  model.dispose();
  const out = o.out ?? path.join(dir, "eval");
  const files = await writeEvalReport(out, report);
  console.log(
    `report (${((Date.now() - started) / 1000).toFixed(1)} s): ${files.map((f) => path.relative(process.cwd(), f)).join(", ")}`,
  );
}
