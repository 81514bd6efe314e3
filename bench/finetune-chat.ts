/**
 * Decoder chat SFT, LoRA vs full fine-tuning, on a generated instruction set.
 *
 * 1. Pretrain a small char-level GPT-2 here on plain statements: sums ("12+7=19"), string transforms
 *    ("reverse of stone is enots", "upper of stone is STONE") and a made-up fact table ("the capital of
 *    zorbia is quix") — every fact, including the held-out ones.
 * 2. SFT from that checkpoint on chat-formatted questions ("what is 12+7?" → "19") for the training
 *    items only; evaluate exact match on held-out items (unseen sums, words and countries in the chat
 *    format) before and after, with LoRA and with full fine-tuning from the same base.
 *
 * `node --conditions=source --import tsx bench/finetune-chat.ts [--quick]`
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { registerWasmKernels } from "@typeformer/attention";
import { initBackend, Random } from "@typeformer/core";
import {
  answer,
  collateMasked,
  ExampleBatches,
  encodeText,
  type FinetuneMethod,
  LoraModel,
  loadAdapter,
  MaskedCausalLMObjective,
  runFinetune,
} from "@typeformer/finetune";
import { type CausalLM, createModel, fromPretrained } from "@typeformer/models";
import { CHAT_SPECIAL_TOKENS, CharTokenizer } from "@typeformer/tokenizer";
import { Trainer } from "@typeformer/trainer";

const quick = process.argv.includes("--quick");
const arg = (name: string, d: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
};
const PRETRAIN_STEPS = arg("pretrain-steps", quick ? 150 : 1500);
const SFT_STEPS = arg("sft-steps", quick ? 60 : 400);

const rng = new Random(7);
const WORDS =
  "stone river cloud apple tiger lemon piano bread glass chair plant house mouse light paper horse train music water green night sugar smile dream brick ocean".split(
    " ",
  );
const SYL = ["zor", "qua", "mel", "dri", "kan", "vos", "tep", "lin", "bar", "gux", "fen", "rho"];
const COUNTRIES: { country: string; capital: string }[] = [];
for (let _i = 0; COUNTRIES.length < 24; _i++) {
  const c = `${SYL[rng.int(SYL.length)]}${SYL[rng.int(SYL.length)]}ia`;
  if (COUNTRIES.some((x) => x.country === c)) continue;
  COUNTRIES.push({
    country: c,
    capital: `${SYL[rng.int(SYL.length)]}${SYL[rng.int(SYL.length)].slice(0, 2)}`,
  });
}

interface Item {
  kind: "sum" | "reverse" | "upper" | "fact";
  statement: string;
  question: string;
  answer: string;
}
const items: Item[] = [];
for (let a = 0; a < 20; a++)
  for (let b = 0; b < 20; b++)
    items.push({
      kind: "sum",
      statement: `${a}+${b}=${a + b}`,
      question: `what is ${a}+${b}?`,
      answer: String(a + b),
    });
for (const w of WORDS) {
  const r = [...w].reverse().join("");
  items.push({ kind: "reverse", statement: `reverse of ${w} is ${r}`, question: `reverse ${w}`, answer: r });
  items.push({
    kind: "upper",
    statement: `upper of ${w} is ${w.toUpperCase()}`,
    question: `uppercase ${w}`,
    answer: w.toUpperCase(),
  });
}
for (const c of COUNTRIES)
  items.push({
    kind: "fact",
    statement: `the capital of ${c.country} is ${c.capital}`,
    question: `capital of ${c.country}?`,
    answer: c.capital,
  });

// held out: 15% of sums, 5 words (both transforms), 6 countries
const heldWords = new Set(WORDS.slice(-5));
const heldCountries = new Set(COUNTRIES.slice(-6).map((c) => c.country));
const isHeld = (it: Item, i: number) =>
  it.kind === "sum"
    ? (i * 2654435761) % 100 < 15
    : it.kind === "fact"
      ? heldCountries.has(it.question.slice(11, -1))
      : heldWords.has(it.question.split(" ")[1]);
const held = items.filter(isHeld);
const trainItems = items.filter((it, i) => !isHeld(it, i));

const alphabet = [
  ...new Set(items.flatMap((it) => [...it.statement, ...it.question, ...it.answer]).concat([..."\n"])),
].join("");
const tok = CharTokenizer.fromText(alphabet, {
  specialTokens: [...CHAT_SPECIAL_TOKENS, "<|endoftext|>"],
  eosToken: "<|endoftext|>",
});

function exactMatch(model: CausalLM, list: Item[]): number {
  let ok = 0;
  for (const it of list)
    if (answer(model, tok, "chat", it.question, { maxNew: 12 }).trim() === it.answer) ok++;
  return ok / list.length;
}

async function main(): Promise<void> {
  await initBackend({ backend: "wasm" });
  registerWasmKernels();
  const root = await mkdtemp(path.join(tmpdir(), "tf-bench-chat-"));
  try {
    // ---------------------------------------------------------------- 1. pretraining (all statements)
    const t0 = performance.now();
    const base = createModel<CausalLM>(
      {
        modelType: "gpt2",
        preset: "nanogpt-cpu",
        vocabSize: tok.vocabSize,
        maxPositions: 64,
      },
      { seed: 1 },
    );
    base.tokenizer = tok;
    // documents: shuffled statements packed into lines of ~60 chars
    const docs: string[] = [];
    for (let k = 0; k < 40; k++) {
      const order = items.map((_, i) => i).sort(() => rng.float() - 0.5);
      let line = "";
      for (const i of order) {
        const s = `${items[i].statement}\n`;
        if (line.length + s.length > 62) {
          docs.push(line);
          line = "";
        }
        line += s;
      }
      if (line) docs.push(line);
    }
    const pre = new Trainer({
      model: base,
      objective: new MaskedCausalLMObjective(base),
      train: new ExampleBatches(
        docs.map((d) => encodeText(tok, d, 64)),
        16,
        (x) => collateMasked(x),
        3,
      ),
      steps: PRETRAIN_STEPS,
      lr: { maxLr: 3e-3, warmupSteps: 20, minLr: 3e-4 },
      optimizer: { weightDecay: 0.1, beta2: 0.99 },
      gradClip: 1,
    });
    const preReport = await pre.train();
    pre.dispose();
    const baseDir = path.join(root, "base");
    await base.save(baseDir);
    const preSec = (performance.now() - t0) / 1000;
    console.log(
      `pretrained ${base.namedParameters().size} tensors, final loss ${preReport.finalLoss?.toFixed(3)} in ${preSec.toFixed(0)} s (${PRETRAIN_STEPS} steps, batch 16)`,
    );
    const emBefore = exactMatch(base, held);
    const emBeforeTrain = exactMatch(base, trainItems.slice(0, 60));
    base.dispose();

    // ---------------------------------------------------------------- 2. SFT data
    const data = path.join(root, "sft.jsonl");
    await writeFile(
      data,
      trainItems
        .map((it) =>
          JSON.stringify({
            messages: [
              { role: "user", content: it.question },
              { role: "assistant", content: it.answer },
            ],
          }),
        )
        .join("\n"),
    );

    const rows: string[][] = [];
    for (const method of ["lora", "full"] as FinetuneMethod[]) {
      const t = performance.now();
      const r = await runFinetune({
        base: baseDir,
        data,
        task: "chat",
        method,
        outDir: path.join(root, method),
        steps: SFT_STEPS,
        batchSize: 16,
        lr: method === "lora" ? 5e-3 : 1e-3,
        warmupSteps: 10,
        valFraction: 0.05,
        evalEvery: SFT_STEPS,
        evalBatches: 2,
        lora: { r: 8, alpha: 16, dropout: 0 },
        seed: 1,
      });
      const wall = (performance.now() - t) / 1000;
      // reload the result and score held-out items
      const m = await fromPretrained<CausalLM>(method === "full" ? r.output : baseDir);
      let lora: LoraModel | undefined;
      if (method === "lora") {
        lora = new LoraModel(m);
        await loadAdapter(lora, r.output);
      }
      const emHeld = exactMatch(m, held);
      const byKind = (k: Item["kind"]) =>
        exactMatch(
          m,
          held.filter((h) => h.kind === k),
        );
      const kinds = (["sum", "reverse", "upper", "fact"] as const)
        .map((k) => `${k} ${(100 * byKind(k)).toFixed(0)}%`)
        .join(", ");
      lora?.dispose();
      m.dispose();
      rows.push([
        method,
        `${(100 * r.trainableShare).toFixed(2)}%`,
        `${(100 * emBefore).toFixed(1)}%`,
        `${(100 * emHeld).toFixed(1)}%`,
        kinds,
        `${(r.peakTensorBytes / 2 ** 20).toFixed(1)} MiB`,
        `${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
        `${r.wallTimeSec.toFixed(1)} s (${wall.toFixed(1)} s all)`,
        r.finalLoss?.toFixed(3) ?? "-",
      ]);
    }
    console.log(
      `\nchat SFT on ${trainItems.length} generated items, held-out ${held.length} (sums ${held.filter((h) => h.kind === "sum").length}, words ${heldWords.size}x2, countries ${heldCountries.size}); ${SFT_STEPS} steps, batch 16; base exact match on train items before SFT ${(100 * emBeforeTrain).toFixed(1)}%`,
    );
    const head = [
      "method",
      "trainable",
      "EM before",
      "EM after (held-out)",
      "held-out by kind",
      "peak tensors",
      "peak RSS (process)",
      "train wall time",
      "final loss",
    ];
    console.log(`| ${head.join(" | ")} |\n|${head.map(() => "---").join("|")}|`);
    for (const r of rows) console.log(`| ${r.join(" | ")} |`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
