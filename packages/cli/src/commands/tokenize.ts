import { readFile, stat } from "node:fs/promises";
import { TypeformerError } from "@typeformer/core/errors";
import {
  ENCODING_NAMES,
  getEncoding,
  loadTokenizer,
  type Tokenizer,
  type TrainProgress,
  trainBpe,
  trainWordPiece,
} from "@typeformer/tokenizer";
import cliProgress from "cli-progress";
import type { Command } from "commander";

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function pickTokenizer(opts: { encoding?: string; tokenizer?: string }): Promise<Tokenizer> {
  if (opts.tokenizer) return loadTokenizer(opts.tokenizer);
  return getEncoding(opts.encoding ?? "gpt2");
}

export function registerTokenize(program: Command): void {
  program
    .command("tokenize")
    .description(
      "Print token ids (or counts) of files or stdin with a tiktoken encoding or a tokenizer.json.",
    )
    .argument("[files...]", "input files ('-' or none: stdin)")
    .option("-e, --encoding <name>", `tiktoken encoding: ${ENCODING_NAMES.join(", ")}`, "gpt2")
    .option("-t, --tokenizer <path>", "tokenizer.json or a directory holding one (overrides --encoding)")
    .option("-c, --count", "print only the number of tokens per input (and the total)")
    .option("--allow-special", "encode special-token strings (e.g. <|endoftext|>) as special tokens")
    .option(
      "--no-special-tokens",
      "do not add post-processor tokens ([CLS] … [SEP]) for tokenizer.json models",
    )
    .option("-d, --decode", "the input holds ids (whitespace or comma separated): print the text")
    .option("--json", "print JSON")
    .action(
      async (
        files: string[],
        opts: {
          encoding?: string;
          tokenizer?: string;
          count?: boolean;
          allowSpecial?: boolean;
          specialTokens?: boolean;
          decode?: boolean;
          json?: boolean;
        },
      ) => {
        const tok = await pickTokenizer(opts);
        const inputs: { name: string; text: string }[] = [];
        if (files.length === 0 || (files.length === 1 && files[0] === "-"))
          inputs.push({ name: "-", text: await readStdin() });
        else for (const f of files) inputs.push({ name: f, text: await readFile(f, "utf8") });
        if (opts.decode) {
          for (const { text } of inputs) {
            const ids = text
              .split(/[\s,[\]]+/)
              .filter(Boolean)
              .map((x) => {
                const n = Number(x);
                if (!Number.isInteger(n))
                  throw new TypeformerError("INVALID_ARGUMENT", `not a token id: ${JSON.stringify(x)}`, {
                    value: x,
                  });
                return n;
              });
            process.stdout.write(tok.decode(ids));
          }
          return;
        }
        const encOpts = {
          allowedSpecial: opts.allowSpecial ? ("all" as const) : undefined,
          disallowedSpecial: opts.allowSpecial ? undefined : new Set<string>(),
          addSpecialTokens: opts.specialTokens !== false,
        };
        let total = 0;
        const results: { name: string; count: number; ids?: number[] }[] = [];
        for (const { name, text } of inputs) {
          const ids = tok.encode(text, encOpts);
          total += ids.length;
          results.push(opts.count ? { name, count: ids.length } : { name, count: ids.length, ids });
        }
        if (opts.json) {
          console.log(JSON.stringify(inputs.length === 1 ? results[0] : { inputs: results, total }));
          return;
        }
        for (const r of results) {
          if (opts.count) console.log(inputs.length > 1 ? `${r.count}\t${r.name}` : String(r.count));
          else console.log(r.ids!.join(" "));
        }
        if (opts.count && inputs.length > 1) console.log(`${total}\ttotal`);
      },
    );

  const tokenizer = program.command("tokenizer").description("Tokenizer tools.");
  tokenizer
    .command("train")
    .description(
      "Train a byte-level BPE or WordPiece tokenizer on text files; writes tokenizer.json + tokenizer_config.json.",
    )
    .argument("<files...>", "training text files")
    .requiredOption("-o, --out <dir>", "output directory")
    .option("--type <kind>", "bpe (byte-level, GPT-2 style) or wordpiece (BERT style)", "bpe")
    .option("-v, --vocab-size <n>", "target vocabulary size, special tokens included", "8000")
    .option("-s, --special <tokens>", "comma-separated special tokens (default bpe: <|endoftext|>)")
    .option("--min-frequency <n>", "minimum pair frequency to merge", "2")
    .option("--chat", "add the built-in chat tokens <|system|>,<|user|>,<|assistant|>,<|end|>")
    .option("--no-progress", "no progress bar")
    .action(
      async (
        files: string[],
        opts: {
          out: string;
          type: string;
          vocabSize: string;
          special?: string;
          minFrequency: string;
          chat?: boolean;
          progress: boolean;
        },
      ) => {
        const vocabSize = Number(opts.vocabSize);
        if (!Number.isInteger(vocabSize) || vocabSize < 1)
          throw new TypeformerError(
            "INVALID_ARGUMENT",
            `--vocab-size must be a positive integer; received ${JSON.stringify(opts.vocabSize)}`,
            {
              value: opts.vocabSize,
            },
          );
        if (opts.type !== "bpe" && opts.type !== "wordpiece")
          throw new TypeformerError(
            "INVALID_ARGUMENT",
            `--type must be bpe or wordpiece; received ${JSON.stringify(opts.type)}`,
            {
              value: opts.type,
            },
          );
        let totalChars = 0;
        for (const f of files) totalChars += (await stat(f)).size;
        let specials = opts.special?.split(",").filter(Boolean);
        if (opts.chat)
          specials = [
            ...(specials ?? ["<|endoftext|>"]),
            "<|system|>",
            "<|user|>",
            "<|assistant|>",
            "<|end|>",
          ];
        const bar = opts.progress
          ? new cliProgress.SingleBar(
              { format: "{phase} [{bar}] {percentage}% | {value}/{total}", hideCursor: true },
              cliProgress.Presets.shades_classic,
            )
          : null;
        let phase = "";
        const onProgress = (p: TrainProgress) => {
          if (!bar) return;
          if (p.phase !== phase) {
            if (phase) bar.stop();
            phase = p.phase;
            if (p.phase === "done") return;
            bar.start(p.phase === "count" ? totalChars : (p.total ?? 1), 0, {
              phase: p.phase === "count" ? "reading " : "merging ",
            });
          }
          bar.update(p.phase === "count" ? Math.min(p.done, totalChars) : p.done);
        };
        async function* corpus() {
          for (const f of files) {
            const text = await readFile(f, "utf8");
            yield text;
          }
        }
        const t0 = performance.now();
        const tok =
          opts.type === "bpe"
            ? await trainBpe(corpus(), {
                vocabSize,
                specialTokens: specials ?? ["<|endoftext|>"],
                minFrequency: Number(opts.minFrequency),
                onProgress,
              })
            : await trainWordPiece(corpus(), {
                vocabSize,
                specialTokens: specials,
                minFrequency: Number(opts.minFrequency),
                onProgress,
              });
        bar?.stop();
        await tok.save(opts.out);
        console.log(
          `trained ${opts.type} tokenizer: ${tok.vocabSize} tokens in ${((performance.now() - t0) / 1000).toFixed(1)} s → ${opts.out}/tokenizer.json`,
        );
      },
    );
}
