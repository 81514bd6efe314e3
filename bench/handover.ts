/**
 * The scaling-out hand-over, executed end to end (docs/scaling-out.md):
 *
 *   1. Typeformer trains a small GPT-2 (HF layout: config.json + model.safetensors + tokenizer files)
 *      and a LoRA adapter on it (PEFT layout: adapter_config.json + adapter_model.safetensors);
 *      Typeformer's logits on a probe text, with and without the adapter, are written as JSON.
 *   2. PyTorch takes over under torchrun (2 processes, docs/scripts/torchrun_handover.py): loads the
 *      folder as GPT2LMHeadModel, checks the logits, applies the adapter by PEFT's formula and checks
 *      those logits, continues training data-parallel on the run's own token shards, checks the
 *      2-process run equals one process on the global batch, saves HF layout back.
 *      It also trains a LoRA adapter in torch and saves it in PEFT layout.
 *   3. Typeformer takes the result back: fromPretrained, logits = torch's, the torch-trained adapter
 *      through loadAdapter = torch's adapter logits, generates from it, fine-tunes it further;
 *      docs/scripts/check_hf_layout.py reads the torch-written folder too.
 *
 * Usage (repo root): pnpm bench handover [-- --dir runs/handover --nproc 2 --torch-steps 40
 *   --python /usr/bin/python3]  (or pnpm tsx --conditions=source bench/handover.ts [flags])
 * Needs Debian's python3-torch (or any torch with torch.distributed) at --python /
 * TYPEFORMER_TORCH_PYTHON; not in `pnpm bench`'s default list, since it needs Python. Prints every
 * command it runs and a summary; writes <dir>/report.json. Exit status 0 when every check passes,
 * 1 when one fails, 2 when torch cannot be imported.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { initBackend, tf } from "@typeformer/core";
import { LoraModel, loadAdapter } from "@typeformer/finetune";
import { type CausalLM, fromPretrained } from "@typeformer/models";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
process.chdir(root);

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const dir = flag("dir", "runs/handover");
const nproc = flag("nproc", "2");
const torchSteps = flag("torch-steps", "40");
const python = flag("python", process.env.TYPEFORMER_TORCH_PYTHON ?? "/usr/bin/python3");
const TOL = 1e-4;
const PROBE = "Call me Ishmael. Some years ago, never mind how long precisely"; // 62 tokens ≤ 64 positions

const t0 = performance.now();
const timings: Record<string, number> = {};

const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`);
const fmt = (x: number) =>
  Number.isInteger(x) ? String(x) : Math.abs(x) < 1e-3 ? x.toExponential(2) : x.toPrecision(3);

/** Runs a command, echoing it (`pnpm typeformer` for the CLI); throws on a non-zero exit. */
function sh(label: string, cmd: string, args: string[], shown?: string): string {
  console.log(`\n$ ${shown ?? [cmd, ...args.map(quote)].join(" ")}`);
  const t = performance.now();
  const r = spawnSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  timings[label] = (performance.now() - t) / 1000;
  const out = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  process.stdout.write(out.endsWith("\n") || out === "" ? out : `${out}\n`);
  if (r.status !== 0)
    throw new Error(`${label} failed (exit ${r.status ?? r.signal}): ${r.error?.message ?? ""}`);
  return out;
}

/** `pnpm typeformer <args>` (= tsx --conditions=source packages/cli/src/bin.ts). */
function typeformer(label: string, args: string[]): string {
  return sh(
    label,
    process.execPath,
    ["--conditions=source", "--import", "tsx", "packages/cli/src/bin.ts", ...args],
    `pnpm typeformer ${args.map(quote).join(" ")}`,
  );
}

interface LogitsFile {
  ids: number[];
  logits: number[][];
}

/** Logits (T, V) for every position of `ids`, full float32 precision. */
function logitsOf(model: CausalLM, ids: number[]): number[][] {
  return tf.tidy(() => {
    const out = model.forward(tf.tensor2d([ids], undefined, "int32")).logits;
    return (out.arraySync() as number[][][])[0];
  });
}

function maxAbsDiff(a: number[][], b: number[][]): number {
  let m = 0;
  for (let i = 0; i < a.length; i++)
    for (let j = 0; j < a[i].length; j++) m = Math.max(m, Math.abs(a[i][j] - b[i][j]));
  return m;
}

const checks: Record<string, { value: number; ok: boolean; note: string }> = {};
function record(name: string, value: number, ok: boolean, note: string): void {
  checks[name] = { value, ok, note };
  console.log(`check ${name}: ${fmt(value)} ${ok ? "ok" : "FAIL"} (${note})`);
}

async function main(): Promise<boolean> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const pyCheck = spawnSync(python, ["-c", "import torch, torch.distributed.run; print(torch.__version__)"], {
    encoding: "utf8",
  });
  if (pyCheck.status !== 0) {
    console.error(`${python} cannot import torch (${pyCheck.error?.message ?? pyCheck.stderr.trim()}); `);
    console.error(
      "install PyTorch (Debian: apt-get install python3-torch) or pass --python / TYPEFORMER_TORCH_PYTHON",
    );
    process.exit(2);
  }

  // ---------------------------------------------------------------- 1. Typeformer: train, adapter, logits
  typeformer("typeformer train", [
    "train",
    "--preset",
    "moby-dick",
    "--steps",
    "30",
    "--run-dir",
    `${dir}/train`,
    "--no-samples",
  ]);
  const ckpt = `${dir}/train/checkpoints/step-00000030`;
  const whale = Array.from(
    { length: 50 },
    () => '{"text": "Ahab said: the white whale is mine. Starbuck said: the sea is wide."}',
  ).join("\n");
  await writeFile(`${dir}/whale.jsonl`, `${whale}\n`);
  typeformer("typeformer finetune (LoRA)", [
    "finetune",
    "--base",
    ckpt,
    "--data",
    `${dir}/whale.jsonl`,
    "--task",
    "text",
    "--method",
    "lora",
    "--lora-r",
    "8",
    "--lora-alpha",
    "16",
    "--steps",
    "20",
    "--lr",
    "5e-3",
    "--batch-size",
    "8",
    "--max-length",
    "64",
    "--checkpoint-every",
    "0",
    "--out",
    `${dir}/lora`,
  ]);

  await initBackend();
  {
    const t = performance.now();
    const base = await fromPretrained<CausalLM>(ckpt);
    const ids = base.tokenizer!.encode(PROBE);
    const plain = logitsOf(base, ids);
    await writeFile(`${dir}/tf-logits.json`, JSON.stringify({ ids, logits: plain } satisfies LogitsFile));
    const lora = new LoraModel(base);
    await loadAdapter(lora, `${dir}/lora/adapter`);
    const adapted = logitsOf(base, ids);
    await writeFile(
      `${dir}/tf-lora-logits.json`,
      JSON.stringify({ ids, logits: adapted } satisfies LogitsFile),
    );
    lora.dispose();
    base.dispose();
    timings["typeformer logits"] = (performance.now() - t) / 1000;
    console.log(
      `\nTypeformer logits for ${ids.length} probe tokens written: ${dir}/tf-logits.json, ${dir}/tf-lora-logits.json`,
    );
  }

  // ---------------------------------------------------------------- 2. PyTorch: torchrun, 2 processes
  sh("torchrun", python, [
    "-m",
    "torch.distributed.run",
    "--standalone",
    "--nproc_per_node",
    nproc,
    "--redirects",
    "1",
    "--tee",
    "1",
    "docs/scripts/torchrun_handover.py",
    ckpt,
    "--data",
    `${dir}/train/data`,
    "--out",
    `${dir}/continued`,
    "--ref-logits",
    `${dir}/tf-logits.json`,
    "--adapter",
    `${dir}/lora/adapter`,
    "--adapter-ref-logits",
    `${dir}/tf-lora-logits.json`,
    "--adapter-out",
    `${dir}/torch-lora`,
    "--steps",
    torchSteps,
  ]);
  const torchReport = JSON.parse(await readFile(`${dir}/continued/torch-report.json`, "utf8"));
  type TorchCheck = {
    ok: boolean;
    max_abs_diff?: number;
    tolerance?: number;
    problems?: string[];
    adapter_effect_max_abs?: number;
    training_moved_params_by?: number;
  };
  for (const [name, c] of Object.entries(torchReport.checks as Record<string, TorchCheck>)) {
    const scale =
      c.adapter_effect_max_abs !== undefined
        ? `; the adapter moves the logits by up to ${fmt(c.adapter_effect_max_abs)}`
        : c.training_moved_params_by !== undefined
          ? `; parameters, which training moved by up to ${fmt(c.training_moved_params_by)}`
          : "";
    if (c.problems) {
      const note = c.problems.length
        ? c.problems.slice(0, 3).join("; ")
        : "problems found (a replay, not vLLM)";
      record(`torch: ${name}`, c.problems.length, c.ok, note);
    } else {
      record(
        `torch: ${name}`,
        c.max_abs_diff ?? Number.NaN,
        c.ok,
        `tol ${c.tolerance}${scale}; computed on the torch side`,
      );
    }
  }

  // ---------------------------------------------------------------- 3. back to Typeformer
  {
    const t = performance.now();
    const back = await fromPretrained<CausalLM>(`${dir}/continued`);
    const ref = JSON.parse(await readFile(`${dir}/continued/torch-logits.json`, "utf8")) as LogitsFile;
    const diff = maxAbsDiff(logitsOf(back, ref.ids), ref.logits);
    const before = JSON.parse(await readFile(`${dir}/tf-logits.json`, "utf8")) as LogitsFile;
    const moved = maxAbsDiff(ref.logits, before.logits);
    // the adapter PyTorch trained, in PEFT layout, applied by Typeformer
    const lora = new LoraModel(back);
    await loadAdapter(lora, `${dir}/torch-lora`);
    const lref = JSON.parse(await readFile(`${dir}/torch-lora/torch-lora-logits.json`, "utf8")) as LogitsFile;
    const ldiff = maxAbsDiff(logitsOf(back, lref.ids), lref.logits);
    const effect = maxAbsDiff(lref.logits, ref.logits);
    lora.dispose();
    back.dispose();
    timings["typeformer fromPretrained + logits"] = (performance.now() - t) / 1000;
    record(
      "torch LoRA adapter -> Typeformer loadAdapter logits",
      ldiff,
      ldiff <= TOL,
      `tol ${TOL}; the adapter moves the logits by up to ${fmt(effect)}`,
    );
    record(
      "torch -> Typeformer logits",
      diff,
      diff <= TOL,
      `tol ${TOL}; the torch training moved the logits by up to ${fmt(moved)}`,
    );
  }
  typeformer("typeformer generate", [
    "generate",
    `${dir}/continued`,
    "--prompt",
    "Call me ",
    "-n",
    "60",
    "--temperature",
    "0",
  ]);
  typeformer("typeformer finetune (full, continues training)", [
    "finetune",
    "--base",
    `${dir}/continued`,
    "--data",
    `${dir}/whale.jsonl`,
    "--task",
    "text",
    "--method",
    "full",
    "--steps",
    "10",
    "--batch-size",
    "8",
    "--max-length",
    "64",
    "--checkpoint-every",
    "0",
    "--out",
    `${dir}/continued-finetune`,
  ]);
  sh("check_hf_layout.py", python, ["docs/scripts/check_hf_layout.py", `${dir}/continued`]);

  // ---------------------------------------------------------------- summary
  const tr = torchReport.training;
  const wall = (performance.now() - t0) / 1000;
  console.log("\n== summary ==");
  console.log(
    `torch ${torchReport.torch} (Python ${torchReport.python}), ${torchReport.world_size} processes, ` +
      `${torchReport.backend} on ${torchReport.device}, strategy ${tr.strategy}`,
  );
  for (const n of tr.notes as string[]) console.log(`  note: ${n}`);
  console.log(
    `torch training: ${tr.steps} steps x ${torchReport.world_size}x${tr.batch_per_process}x${tr.context_length} tokens, ` +
      `val loss ${tr.val_loss_before.toFixed(4)} -> ${tr.val_loss_after.toFixed(4)} (${tr.eval_windows} fixed windows), ` +
      `${tr.train_seconds.toFixed(1)} s`,
  );
  console.log("| check | max abs diff (or problems found) | ok |");
  console.log("| --- | --- | --- |");
  for (const [name, c] of Object.entries(checks)) console.log(`| ${name} | ${fmt(c.value)} | ${c.ok} |`);
  console.log("| step | seconds |");
  console.log("| --- | --- |");
  for (const [name, s] of Object.entries(timings)) console.log(`| ${name} | ${s.toFixed(1)} |`);
  console.log(`| total | ${wall.toFixed(1)} |`);
  const ok = Object.values(checks).every((c) => c.ok);
  await writeFile(
    `${dir}/report.json`,
    `${JSON.stringify({ ok, checks, timings, wallSeconds: wall, torch: torchReport }, null, 2)}\n`,
  );
  console.log(`${ok ? "all checks ok" : "SOME CHECKS FAILED"}; report ${dir}/report.json`);
  return ok && existsSync(`${dir}/continued-finetune/model/config.json`);
}

try {
  process.exitCode = (await main()) ? 0 : 1;
} catch (e) {
  console.error(`\nhand-over stopped: ${(e as Error).message}`);
  process.exit(1);
}
