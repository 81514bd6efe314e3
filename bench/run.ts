/**
 * `pnpm bench [name ...]`: runs each bench/<name>.ts given (default: all registered), one after the
 * other, each printing its own table of ratios against an anchor measured in the same run. Arguments
 * after `--` go to every bench.
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const BENCHES = [
  "gemm",
  "train-step",
  "decode",
  "serve",
  "serve-seq2seq",
  "load-124m",
  "tokenizer",
  "attention-memory",
  "nanogpt",
  "mlm-sotu",
  "finetune-chat",
  "finetune-spam",
  "finetune-g2p",
  "eval",
];

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const sep = args.indexOf("--");
const names = (sep >= 0 ? args.slice(0, sep) : args).filter((a) => !a.startsWith("-"));
const passThrough = sep >= 0 ? args.slice(sep + 1) : args.filter((a) => a.startsWith("-"));
let failed = 0;
for (const name of names.length ? names : BENCHES) {
  console.log(`\n== bench/${name}.ts ==`);
  const r = spawnSync(
    process.execPath,
    ["--conditions=source", "--import", "tsx", path.join(here, `${name}.ts`), ...passThrough],
    { stdio: "inherit" },
  );
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
