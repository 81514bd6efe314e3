import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { initAcceleratedBackend } from "@typeformer/attention";
import { Random, TypeformerError, tf } from "@typeformer/core";
import {
  type AnyModel,
  type CausalLM,
  createModel,
  type EncoderModel,
  flopsPerToken,
  getArchitecture,
  type Seq2SeqLM,
} from "@typeformer/models";
import { CharTokenizer, getEncoding, loadTokenizer, type Tokenizer, trainBpe } from "@typeformer/tokenizer";
import { type CorpusSpec, readCorpus } from "./corpora.js";
import { prepareDataset, readManifest, TokenWindowSampler } from "./dataset.js";
import { writeFileAtomic } from "./fs-util.js";
import {
  CausalLMObjective,
  MaskedLMObjective,
  SpanCorruptionObjective,
  type TokenBatch,
} from "./objectives.js";
import type { RunReport } from "./report.js";
import { closestKey, type RunConfig } from "./run-config.js";
import { Trainer, type TrainerCallbacks } from "./trainer.js";
import type { Objective } from "./types.js";

export interface RunHooks extends TrainerCallbacks {
  /** Human-readable progress of the preparation phases (tokenizer, dataset, model). */
  onPhase?(message: string): void;
  /** Called once the trainer exists (total steps, parameters), before the first step. */
  onStart?(info: { steps: number; startStep: number; parameters: number; tokensPerStep: number }): void;
  signal?: AbortSignal;
}

export interface RunResult {
  report: RunReport;
  runDir: string;
  /** Latest checkpoint folder (HF layout + trainer state). */
  checkpoint?: string;
  model: AnyModel;
  tokenizer: Tokenizer;
  /** Whether `maxMinutes` ended the run before `steps`. */
  stoppedEarly: boolean;
}

async function corpusText(corpus: RunConfig["corpus"]): Promise<string[]> {
  const out: string[] = [];
  for (const spec of Array.isArray(corpus) ? corpus : [corpus]) {
    for await (const d of readCorpus(spec as CorpusSpec)) out.push(d.text);
  }
  return out;
}

/** Builds the tokenizer named by the config ("char", "bpe:N", an encoding name, or a tokenizer.json). */
export async function buildTokenizer(spec: string, corpus: RunConfig["corpus"]): Promise<Tokenizer> {
  if (spec === "char")
    return CharTokenizer.fromText((await corpusText(corpus)).join("")) as unknown as Tokenizer;
  const bpe = /^bpe:(\d+)$/.exec(spec);
  if (bpe) {
    const texts = await corpusText(corpus);
    return (await trainBpe(texts, {
      vocabSize: Number(bpe[1]),
      specialTokens: ["<|endoftext|>"],
    })) as unknown as Tokenizer;
  }
  if (existsSync(spec)) return loadTokenizer(spec);
  try {
    return getEncoding(spec) as unknown as Tokenizer;
  } catch (e) {
    throw new TypeformerError(
      "INVALID_CONFIG",
      `tokenizer must be "char", "bpe:<vocab size>", an encoding name (gpt2, cl100k_base, ...) or a tokenizer.json path; received ${JSON.stringify(spec)}`,
      { tokenizer: spec },
      { cause: e },
    );
  }
}

function modelConfig(cfg: RunConfig, tokenizer: Tokenizer): Record<string, unknown> & { modelType: string } {
  const m: Record<string, unknown> & { modelType: string } = { ...cfg.model, vocabSize: tokenizer.vocabSize };
  if (cfg.model.modelType === "gpt2" || cfg.model.modelType === "llama") {
    // the special ids come from the tokenizer actually used (a char vocabulary has no 50256)
    m.bosTokenId ??= tokenizer.bosTokenId ?? tokenizer.eosTokenId ?? null;
    m.eosTokenId ??= tokenizer.eosTokenId ?? null;
  }
  if (cfg.model.modelType === "gpt2") {
    m.maxPositions ??= cfg.contextLength;
    if (cfg.dropout !== undefined) {
      m.residDropout = cfg.dropout;
      m.embdDropout = cfg.dropout;
      m.attnDropout = cfg.dropout;
    }
  } else if (cfg.model.modelType === "llama") {
    m.maxPositions ??= cfg.contextLength;
  }
  return m;
}

/**
 * Runs a whole training job from a validated {@link RunConfig}: tokenizer, token shards (cached in
 * `<runDir>/data`), model (`createModel`), objective, trainer (resuming from the run's latest
 * checkpoint when `resume`). Prints nothing; reports through `hooks`.
 */
export async function runTraining(cfg: RunConfig, hooks: RunHooks = {}, resume = false): Promise<RunResult> {
  await initAcceleratedBackend({ backend: cfg.backend });
  const runDir = path.resolve(cfg.runDir);
  await mkdir(runDir, { recursive: true });
  const dataDir = path.join(runDir, "data");
  let tokenizer: Tokenizer;
  const haveData =
    existsSync(path.join(dataDir, "manifest.json")) && existsSync(path.join(dataDir, "tokenizer.json"));
  if (resume && haveData) {
    hooks.onPhase?.(`reusing token shards in ${dataDir}`);
    tokenizer = await loadTokenizer(dataDir);
  } else {
    if (resume) hooks.onPhase?.("no token shards to resume with; preparing them");
    hooks.onPhase?.(`building the ${cfg.tokenizer} tokenizer`);
    tokenizer = await buildTokenizer(cfg.tokenizer, cfg.corpus);
    hooks.onPhase?.(`tokenising ${JSON.stringify(cfg.corpus)} into ${dataDir}`);
    await prepareDataset(cfg.corpus as CorpusSpec | CorpusSpec[], tokenizer, dataDir, {
      valFraction: cfg.valFraction,
    });
  }
  const manifest = await readManifest(dataDir);
  hooks.onPhase?.(
    `${manifest.splits.train.tokens} train / ${manifest.splits.val.tokens} validation tokens, vocabulary ${tokenizer.vocabSize}`,
  );
  await writeFileAtomic(path.join(runDir, "run-config.json"), `${JSON.stringify(cfg, null, 2)}\n`);

  const mcfg = modelConfig(cfg, tokenizer);
  const model = createModelWithHints(mcfg, cfg.seed);
  model.tokenizer = tokenizer;
  let objective: Objective<TokenBatch>;
  let windowLength = cfg.contextLength;
  if (cfg.objective === "causal-lm") {
    if (model.family !== "decoder") throw familyError(cfg, model);
    objective = new CausalLMObjective(model as CausalLM);
    windowLength = cfg.contextLength + 1;
  } else if (cfg.objective === "masked-lm") {
    if (model.family !== "encoder") throw familyError(cfg, model);
    const maskId = tokenizer.tokenToId("[MASK]");
    if (maskId === undefined) {
      throw new TypeformerError("INVALID_CONFIG", "masked-lm needs a tokenizer with a [MASK] token", {
        tokenizer: cfg.tokenizer,
      });
    }
    objective = new MaskedLMObjective(model as EncoderModel, {
      vocabSize: tokenizer.vocabSize,
      maskTokenId: maskId,
      specialTokenIds: Object.values(tokenizer.specialTokens),
    });
  } else {
    if (model.family !== "encoder-decoder") throw familyError(cfg, model);
    const t5 = model as Seq2SeqLM;
    objective = new SpanCorruptionObjective(t5, {
      firstSentinelId: tokenizer.vocabSize - 1,
      eosTokenId: t5.eosTokenId,
      padTokenId: t5.padTokenId,
    });
  }
  const train = await TokenWindowSampler.open(dataDir, "train", {
    batchSize: cfg.batchSize,
    windowLength,
    seed: cfg.seed,
  });
  const val = await TokenWindowSampler.open(dataDir, "val", {
    batchSize: cfg.batchSize,
    windowLength,
    seed: cfg.seed + 1,
  });
  const trainer = new Trainer<TokenBatch>({
    model,
    objective,
    train,
    val,
    steps: cfg.steps,
    gradAccumSteps: cfg.gradAccumSteps,
    lr: { maxLr: cfg.lr, minLr: cfg.minLr, warmupSteps: cfg.warmupSteps, decaySteps: cfg.decaySteps },
    optimizer: {
      beta1: cfg.beta1,
      beta2: cfg.beta2,
      eps: cfg.eps,
      weightDecay: cfg.weightDecay,
      decay: cfg.decay === "all-matrices" ? (_n, v) => v.rank >= 2 : undefined,
    },
    gradClip: cfg.gradClip,
    seed: cfg.seed,
    evalEvery: cfg.evalEvery,
    evalBatches: cfg.evalBatches,
    runDir,
    checkpointEvery: cfg.checkpointEvery,
    checkpoint: { keepLast: cfg.keepLast },
    resume,
    config: cfg,
    flopsPerToken: flopsPerToken(mcfg, cfg.contextLength),
    maxTimeMs: cfg.maxMinutes !== undefined ? cfg.maxMinutes * 60_000 : undefined,
    callbacks: hooks,
    signal: hooks.signal,
  });
  try {
    if (resume) {
      const ok = await trainer.restore();
      hooks.onPhase?.(ok ? `resumed at step ${trainer.step}` : "no checkpoint found; starting from step 0");
    }
    hooks.onStart?.({
      steps: cfg.steps,
      startStep: trainer.step,
      parameters: trainer.parameterCount,
      tokensPerStep: cfg.batchSize * cfg.contextLength * cfg.gradAccumSteps,
    });
    const report = await trainer.train();
    return {
      report,
      runDir,
      checkpoint: await trainer.checkpoints?.latest(),
      model,
      tokenizer,
      stoppedEarly: trainer.stoppedEarly,
    };
  } finally {
    trainer.dispose();
    train.close();
    val.close();
  }
}

/** createModel, with "did you mean" added to unknown model config fields. */
function createModelWithHints(mcfg: Record<string, unknown> & { modelType: string }, seed: number): AnyModel {
  try {
    return createModel<AnyModel>(mcfg, { seed });
  } catch (e) {
    const field = (e as TypeformerError).details?.field;
    if (e instanceof TypeformerError && e.code === "INVALID_CONFIG" && typeof field === "string") {
      const known = getArchitecture(mcfg.modelType).fields.map((f) => f.key as string);
      const near = closestKey(field, [...known, "preset"]);
      if (near) {
        throw new TypeformerError(
          "INVALID_CONFIG",
          `unknown key "model.${field}" for ${mcfg.modelType}; did you mean "model.${near}"?`,
          { field, suggestion: near },
          { cause: e },
        );
      }
    }
    throw e;
  }
}

function familyError(cfg: RunConfig, model: AnyModel): TypeformerError {
  return new TypeformerError(
    "INVALID_CONFIG",
    `objective ${cfg.objective} does not fit a ${model.family} model (${model.modelType}); use causal-lm for decoders, masked-lm for encoders, span-corruption for encoder-decoders`,
    { objective: cfg.objective, family: model.family },
  );
}

/** Reads `<runDir>/run-config.json` (for `--resume` without a config). */
export async function readRunConfig(runDir: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path.join(runDir, "run-config.json"), "utf8"));
  } catch (e) {
    throw new TypeformerError(
      "NOT_FOUND",
      `${runDir} has no readable run-config.json`,
      { runDir },
      { cause: e },
    );
  }
}

export interface SampleOptions {
  prompt?: string;
  tokens?: number;
  temperature?: number;
  topK?: number;
  count?: number;
  seed?: number;
}

/**
 * Plain autoregressive sampling from a causal LM without a cache (re-runs the cropped context each
 * token): enough to look at what a run learned. Temperature 0 is greedy.
 */
export function sampleText(model: CausalLM, tokenizer: Tokenizer, opts: SampleOptions = {}): string[] {
  const count = opts.count ?? 1;
  const n = opts.tokens ?? 200;
  const temp = opts.temperature ?? 0.8;
  const topK = opts.topK ?? 0;
  const rng = new Random(opts.seed ?? 0);
  let start = tokenizer.encode(opts.prompt ?? "");
  if (!start.length) start = tokenizer.encode("\n");
  if (!start.length) start = [tokenizer.eosTokenId ?? 0];
  const rows = Array.from({ length: count }, () => start.slice());
  const ctx = model.maxPositions;
  for (let step = 0; step < n; step++) {
    const window = rows.map((r) => r.slice(-ctx));
    const t = window[0].length;
    const last = tf.tidy(() => {
      const ids = tf.tensor2d(window.flat(), [count, t], "int32");
      const { logits } = model.forward(ids);
      return tf.reshape(tf.slice(logits, [0, t - 1, 0], [count, 1, -1]), [count, -1]);
    });
    const data = last.dataSync();
    const v = last.shape[1] as number;
    last.dispose();
    for (let r = 0; r < count; r++) {
      const row = Array.from(data.subarray(r * v, (r + 1) * v));
      rows[r].push(pick(row, temp, topK, rng));
    }
  }
  return rows.map((r) => tokenizer.decode(r));
}

function pick(logits: number[], temperature: number, topK: number, rng: Random): number {
  if (temperature === 0) return logits.indexOf(Math.max(...logits));
  let idx = logits.map((_, i) => i);
  if (topK > 0 && topK < logits.length) idx = idx.sort((a, b) => logits[b] - logits[a]).slice(0, topK);
  const m = Math.max(...idx.map((i) => logits[i]));
  const w = idx.map((i) => Math.exp((logits[i] - m) / temperature));
  const total = w.reduce((a, b) => a + b, 0);
  let u = rng.float() * total;
  for (let k = 0; k < idx.length; k++) {
    u -= w[k];
    if (u <= 0) return idx[k];
  }
  return idx[idx.length - 1];
}
