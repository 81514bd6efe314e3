/**
 * Loading a GPT-2 124M-sized checkpoint (random weights, made here) with `fromPretrained`.
 *
 *   pnpm bench load-124m            (or: tsx --conditions=source bench/load-124m.ts [--backend cpu])
 *
 * Writes a random F32 checkpoint (≈ 498 MB) to a temp dir, then loads it in a fresh child process
 * (so generating the weights does not count) and reports load time and peak RSS against two anchors
 * measured in the same run: reading the same bytes with fs.readFile (time) and the file size (memory).
 * Target: loads in seconds with peak RSS < 2× the file size.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type BackendChoice, initBackend, type TensorToWrite, writeCheckpoint } from "@typeformer/core";
import { type CausalLM, configToHF, fromPretrained, GPT2_SPEC, resolveConfig } from "@typeformer/models";

const args = process.argv.slice(2);
const backend = (args[args.indexOf("--backend") + 1] ?? "wasm") as BackendChoice;

async function child(dir: string): Promise<void> {
  await initBackend({ backend: args.includes("--backend") ? backend : "wasm" });
  const t0 = performance.now();
  const model = await fromPretrained<CausalLM>(dir);
  const ms = performance.now() - t0;
  const rss = process.resourceUsage().maxRSS * 1024;
  let n = 0;
  for (const v of model.namedParameters().values()) n += v.size;
  model.dispose();
  const t1 = performance.now();
  await readFile(path.join(dir, "model.safetensors"));
  const readMs = performance.now() - t1;
  console.log(JSON.stringify({ ms, rss, params: n, readMs }));
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), "typeformer-load-124m-"));
  try {
    const config = resolveConfig({ modelType: "gpt2" }) as never;
    let seed = 12345;
    const tensors: Record<string, TensorToWrite> = {};
    for (const [name, shape] of GPT2_SPEC.parameterShapes(config)) {
      const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
      for (let i = 0; i < data.length; i++) {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        data[i] = (seed / 4294967296 - 0.5) * 0.04;
      }
      tensors[name] = { dtype: "F32", shape, data };
    }
    await writeCheckpoint(dir, tensors, { metadata: { format: "pt" } });
    const { writeFile } = await import("node:fs/promises");
    await writeFile(path.join(dir, "config.json"), JSON.stringify(configToHF(config)));
    const fileBytes = (await stat(path.join(dir, "model.safetensors"))).size;
    const self = fileURLToPath(import.meta.url);
    const r = spawnSync(
      process.execPath,
      [
        "--conditions=source",
        "--import",
        "tsx",
        self,
        "--child",
        dir,
        ...(args.includes("--backend") ? ["--backend", backend] : []),
      ],
      { encoding: "utf8" },
    );
    if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
    const m = JSON.parse(r.stdout.trim().split("\n").pop()!);
    const mb = (b: number) => `${(b / 1e6).toFixed(0)} MB`;
    console.log(
      `GPT-2 124M checkpoint: ${m.params.toLocaleString("en-US")} parameters, file ${mb(fileBytes)}`,
    );
    console.log("| measure                     | value     | anchor (same run)          | ratio |");
    console.log("| --------------------------- | --------- | -------------------------- | ----- |");
    console.log(
      `| fromPretrained time         | ${(m.ms / 1000).toFixed(2)} s    | fs.readFile ${(m.readMs / 1000).toFixed(2)} s           | ${(m.ms / m.readMs).toFixed(1)}× |`,
    );
    console.log(
      `| peak RSS of the loader      | ${mb(m.rss)}  | file size ${mb(fileBytes)}           | ${(m.rss / fileBytes).toFixed(2)}× |`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (args[0] === "--child") await child(args[1]);
else await main();
