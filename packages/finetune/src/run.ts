/**
 * One fine-tuning run, end to end: load a base model (HF layout + tokenizer), read JSONL examples,
 * attach LoRA or pick the trainable parameters, train with the trainer (evaluation, checkpoints,
 * exact resume), produce sample outputs for fixed prompts before and after, and write the result
 * (a PEFT adapter or a full model) plus a report. The CLI and the dashboard drive this; it never prints.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { TypeformerError, tf, writeFileAtomic } from "@typeformer/core";
import {
  type AnyModel,
  type CausalLM,
  createModel,
  type EncoderModel,
  fromPretrained,
  type Seq2SeqLM,
  type TokenizerLike,
} from "@typeformer/models";
import {
  type EvalResult,
  type Objective,
  type RunReport,
  type StepMetrics,
  type TrainableModel,
  Trainer,
} from "@typeformer/trainer";
import { type BadLine, type Example, type ExampleKind, readExamples, splitExamples } from "./data.js";
import { applyLrGroups, freezeParameters, type LrGroup, loraObjective, loraTrainable } from "./freeze.js";
import { type LoraConfig, LoraModel } from "./lora.js";
import { saveAdapter } from "./peft.js";
import {
  type ClassificationBatch,
  ClassificationObjective,
  collateMasked,
  ExampleBatches,
  encodeChat,
  encodeClassification,
  encodeSeq2Seq,
  encodeText,
  exampleMessages,
  MaskedCausalLMObjective,
  type MaskedSequence,
  type Seq2SeqBatch,
  Seq2SeqObjective,
  type TaskTokenizer,
} from "./tasks.js";

export type FinetuneTask = "chat" | "classify" | "seq2seq" | "text";
export type FinetuneMethod = "lora" | "full";

export interface SampleOutput {
  prompt: string;
  output: string;
}

export interface FinetuneCallbacks {
  onStart?(info: FinetuneStartInfo): void | Promise<void>;
  onStep?(m: StepMetrics): void | Promise<void>;
  onEval?(e: EvalResult): void | Promise<void>;
  onCheckpoint?(c: { step: number; path: string; best: boolean }): void | Promise<void>;
  onSamples?(s: { when: "before" | "after"; samples: SampleOutput[] }): void | Promise<void>;
}

export interface FinetuneStartInfo {
  task: FinetuneTask;
  method: FinetuneMethod;
  modelType: string;
  examples: { train: number; val: number; skipped: number };
  parameters: { trainable: number; total: number; share: number };
  steps: number;
  startStep: number;
}

export interface FinetuneOptions {
  /** Base model directory (config.json + model.safetensors + tokenizer.json). */
  base: string;
  /** JSONL file of examples. */
  data: string;
  task: FinetuneTask;
  method: FinetuneMethod;
  /** Run folder: checkpoints, metrics.jsonl, report, and the result (`adapter/` or `model/`). */
  outDir: string;
  steps?: number;
  batchSize?: number;
  lr?: number;
  warmupSteps?: number;
  maxLength?: number;
  /** Held-out share of the examples (default 0.1). */
  valFraction?: number;
  evalEvery?: number;
  evalBatches?: number;
  checkpointEvery?: number;
  resume?: boolean;
  seed?: number;
  gradClip?: number;
  weightDecay?: number;
  lora?: Partial<LoraConfig>;
  /** Full fine-tuning: freeze parameters matching these patterns (regular expressions over HF names). */
  freeze?: string[];
  /** Discriminative learning rates: parameters matching a group's pattern get `scale` × lr. */
  lrGroups?: LrGroup[];
  skipBadLines?: boolean;
  /** Fixed prompts (chat/seq2seq/classify inputs) answered before and after training. */
  samplePrompts?: string[];
  /** Longest generated sample, in tokens (default 32). */
  sampleTokens?: number;
  callbacks?: FinetuneCallbacks;
  signal?: AbortSignal;
}

export interface FinetuneReport extends RunReport {
  task: FinetuneTask;
  method: FinetuneMethod;
  trainableParameters: number;
  totalParameters: number;
  trainableShare: number;
  /** Input tokens processed in training this session (the trainer's `tokensSeen` counts targets). */
  inputTokens: number;
  skippedLines: BadLine[];
  samplesBefore: SampleOutput[];
  samplesAfter: SampleOutput[];
  /** Task metric on the validation split: accuracy (classify) or exact match (chat, seq2seq). */
  valMetric?: { name: string; value: number; count: number };
  /** Where the result was written (adapter or model folder). */
  output: string;
}

const KINDS: Record<FinetuneTask, ExampleKind[]> = {
  chat: ["chat", "completion"],
  classify: ["classification"],
  seq2seq: ["seq2seq"],
  text: ["text"],
};

const DEFAULT_TARGETS: Record<string, string[]> = {
  gpt2: ["c_attn", "c_proj", "c_fc"],
  llama: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
  bert: ["query", "key", "value", "dense"],
  t5: ["q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"],
};

/** Default LoRA target modules per architecture (every attention and MLP projection). */
export function defaultLoraTargets(modelType: string): string[] {
  return DEFAULT_TARGETS[modelType] ?? ["q_proj", "v_proj"];
}

function needTokenizer(m: AnyModel, base: string): TaskTokenizer {
  const t = m.tokenizer as unknown as TaskTokenizer | undefined;
  if (!t)
    throw new TypeformerError("NOT_FOUND", `${base} has no tokenizer.json; fine-tuning needs one`, { base });
  return t;
}

/** Loads a BERT base and gives it a classifier for `numLabels` labels (new head when the labels differ). */
async function loadClassifier(base: string, numLabels: number): Promise<EncoderModel> {
  const m = (await fromPretrained(base)) as EncoderModel;
  const c = m.config as unknown as { numLabels: number; withClassifier: boolean; withPooler: boolean };
  if (c.withClassifier && c.withPooler && c.numLabels === numLabels) return m;
  const fresh = createModel<EncoderModel>(
    {
      ...(m.config as object),
      modelType: m.modelType,
      numLabels,
      withClassifier: true,
      withPooler: true,
    } as never,
    {
      seed: 0,
    },
  );
  const src = m.namedParameters();
  for (const [n, v] of fresh.namedParameters()) {
    const s = src.get(n);
    if (s && s.shape.join() === v.shape.join() && !n.startsWith("classifier.")) v.assign(s);
  }
  fresh.tokenizer = m.tokenizer;
  m.dispose();
  return fresh;
}

function greedyCausal(
  model: CausalLM,
  tok: TaskTokenizer,
  prompt: number[],
  maxNew: number,
  stop?: number,
): number[] {
  const out: number[] = [];
  const maxLen = Math.min(model.maxPositions, prompt.length + maxNew);
  if (prompt.length >= maxLen) return out;
  const cache = model.createCache(1, maxLen);
  try {
    let next = prompt;
    while (out.length < maxNew && prompt.length + out.length < maxLen) {
      const id = tf.tidy(() => {
        const { logits } = model.forward(tf.tensor2d([next], [1, next.length], "int32"), { cache });
        const last = tf.slice(logits, [0, next.length - 1, 0], [1, 1, -1]);
        return tf.argMax(tf.reshape(last, [-1])).dataSync()[0];
      });
      if (id === stop || id === tok.eosTokenId) break;
      out.push(id);
      next = [id];
    }
  } finally {
    cache.dispose();
  }
  return out;
}

/**
 * Greedy seq2seq decoding of one input: the encoder runs once, and the decoder feeds one token per
 * step through the KV cache (its cross-attention keys/values are computed on the first step and
 * reused). Gives the same ids as re-running the whole decoder on every step. Internal to `answer`
 * (exported for its tests, not from the package index).
 */
export function greedySeq2Seq(model: Seq2SeqLM, input: number[], maxNew: number): number[] {
  const out: number[] = [];
  if (maxNew <= 0) return out;
  const enc = tf.tidy(() => model.encode(tf.tensor2d([input], [1, input.length], "int32")).hidden);
  // the decoder sees the start token + at most maxNew - 1 generated ones
  const cache = model.createCache(1, maxNew);
  try {
    let next = model.decoderStartTokenId;
    while (out.length < maxNew) {
      const prev = next;
      next = tf.tidy(() => {
        const { logits } = model.decode(tf.tensor2d([[prev]], [1, 1], "int32"), enc, { cache }); // (1, 1, V)
        return tf.argMax(tf.reshape(logits, [-1])).dataSync()[0];
      });
      if (next === model.eosTokenId) break;
      out.push(next);
    }
  } finally {
    cache.dispose();
    enc.dispose();
  }
  return out;
}

/** The `<|end|>`-style token that closes an assistant turn, if the template has one. */
function endOfTurn(tok: TaskTokenizer): number | undefined {
  const t = tok as unknown as { tokenToId?(s: string): number | undefined };
  return t.tokenToId?.("<|end|>") ?? t.tokenToId?.("<|im_end|>") ?? t.tokenToId?.("<|eot_id|>");
}

/** Answers one prompt with the current model (greedy). */
export function answer(
  model: AnyModel,
  tok: TaskTokenizer,
  task: FinetuneTask,
  prompt: string,
  opts: { maxNew?: number; labels?: string[]; maxLength?: number } = {},
): string {
  const maxNew = opts.maxNew ?? 32;
  const decode = (ids: number[]) =>
    (tok as unknown as TokenizerLike).decode(ids, { skipSpecialTokens: true });
  if (task === "classify") {
    const m = model as EncoderModel;
    const ids = encodeClassification(tok, prompt, opts.maxLength ?? 128);
    const i = tf.tidy(
      () => tf.argMax(m.classify(tf.tensor2d([ids], [1, ids.length], "int32")), 1).dataSync()[0],
    );
    return opts.labels?.[i] ?? String(i);
  }
  if (task === "seq2seq") {
    const m = model as Seq2SeqLM;
    const { input } = encodeSeq2Seq(tok, prompt, "x", m.eosTokenId, opts.maxLength ?? 128);
    return decode(greedySeq2Seq(m, input, maxNew));
  }
  const m = model as CausalLM;
  if (task === "chat") {
    const text = tok.applyChatTemplate([{ role: "user", content: prompt }], { addGenerationPrompt: true });
    const ids = tok.encode(text, { addSpecialTokens: false, allowedSpecial: "all" });
    return decode(greedyCausal(m, tok, ids, maxNew, endOfTurn(tok)));
  }
  return decode(greedyCausal(m, tok, tok.encode(prompt, { addSpecialTokens: false }), maxNew));
}

/** Runs a fine-tuning job (see {@link FinetuneOptions}). */
export async function runFinetune(o: FinetuneOptions): Promise<FinetuneReport> {
  const seed = o.seed ?? 0;
  if (!o.resume && existsSync(path.join(o.outDir, "checkpoints", "checkpoints.json"))) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `${o.outDir} already holds checkpoints; resume it (--resume) or choose another output folder`,
      { outDir: o.outDir },
    );
  }
  const data = await readExamples(o.data, { kinds: KINDS[o.task], skipBadLines: o.skipBadLines });
  const { train: trainEx, val: valEx } = splitExamples(data.examples, o.valFraction ?? 0.1, seed);
  const labels =
    o.task === "classify"
      ? [
          ...new Set(data.examples.map((e) => (e as Extract<Example, { kind: "classification" }>).label)),
        ].sort()
      : undefined;
  const model: AnyModel =
    o.task === "classify"
      ? await loadClassifier(o.base, labels!.length)
      : ((await fromPretrained(o.base)) as AnyModel);
  // default: 128 tokens, but never more than the model has positions for (T5's relative positions have no limit)
  const positions = (model as { maxPositions?: number }).maxPositions;
  const maxLength = o.maxLength ?? Math.min(128, positions ?? 128);
  const expected = { chat: "decoder", text: "decoder", classify: "encoder", seq2seq: "encoder-decoder" }[
    o.task
  ];
  if (model.family !== expected) {
    model.dispose();
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `task ${o.task} needs a ${expected} model; ${o.base} is a ${model.modelType} (${model.family})`,
      { task: o.task, modelType: model.modelType },
    );
  }
  const tok = needTokenizer(model, o.base);
  let lora: LoraModel | undefined;
  try {
    // ---- objective and batches per task
    let objective: Objective<unknown>;
    let trainSrc: ExampleBatches<unknown, unknown>;
    let valSrc: ExampleBatches<unknown, unknown> | undefined;
    let inputTokens = 0;
    const bs = o.batchSize ?? 8;
    const make = <T, B>(items: T[], collate: (x: T[]) => B, s: number, count?: (x: T) => number) =>
      new ExampleBatches<T, B>(
        items,
        bs,
        (x) => {
          if (count) for (const it of x) inputTokens += count(it);
          return collate(x);
        },
        s,
      ) as unknown as ExampleBatches<unknown, unknown>;
    if (o.task === "chat" || o.task === "text") {
      const enc = (e: Example): MaskedSequence =>
        o.task === "chat"
          ? encodeChat(tok, exampleMessages(e), maxLength)
          : encodeText(tok, (e as Extract<Example, { kind: "text" }>).text, maxLength);
      const pad = tok.padTokenId ?? tok.eosTokenId ?? 0;
      trainSrc = make(
        trainEx.map(enc),
        (x) => collateMasked(x, pad),
        seed + 1,
        (s) => s.ids.length,
      );
      if (valEx.length > 0) valSrc = make(valEx.map(enc), (x) => collateMasked(x, pad), seed + 2);
      objective = new MaskedCausalLMObjective(model as CausalLM) as Objective<unknown>;
    } else if (o.task === "classify") {
      const enc = (e: Example) => {
        const c = e as Extract<Example, { kind: "classification" }>;
        return { ids: encodeClassification(tok, c.text, maxLength), label: labels!.indexOf(c.label) };
      };
      const collate = (x: { ids: number[]; label: number }[]): ClassificationBatch => ({
        ids: x.map((r) => r.ids),
        labels: x.map((r) => r.label),
      });
      trainSrc = make(trainEx.map(enc), collate, seed + 1, (r) => r.ids.length);
      if (valEx.length > 0) valSrc = make(valEx.map(enc), collate, seed + 2);
      objective = new ClassificationObjective(model as EncoderModel, {
        padTokenId: tok.padTokenId ?? 0,
      }) as Objective<unknown>;
    } else {
      const m = model as Seq2SeqLM;
      const enc = (e: Example) => {
        const s = e as Extract<Example, { kind: "seq2seq" }>;
        return encodeSeq2Seq(tok, s.source, s.target, m.eosTokenId, maxLength);
      };
      const collate = (x: { input: number[]; target: number[] }[]): Seq2SeqBatch => ({
        inputs: x.map((r) => r.input),
        targets: x.map((r) => r.target),
      });
      trainSrc = make(trainEx.map(enc), collate, seed + 1, (r) => r.input.length + r.target.length);
      if (valEx.length > 0) valSrc = make(valEx.map(enc), collate, seed + 2);
      objective = new Seq2SeqObjective(m, { padTokenId: m.padTokenId }) as Objective<unknown>;
    }

    // ---- what trains
    let trainable: TrainableModel;
    let total = 0;
    for (const v of model.namedParameters().values()) total += v.size;
    if (o.method === "lora") {
      lora = new LoraModel(model, { baseModelNameOrPath: path.resolve(o.base) });
      lora.addAdapter("default", {
        r: 8,
        alpha: 16,
        dropout: 0.05,
        targetModules: defaultLoraTargets(model.modelType),
        modulesToSave: o.task === "classify" ? ["classifier"] : undefined,
        seed,
        ...o.lora,
      });
      trainable = loraTrainable(lora);
      objective = loraObjective(lora, objective);
      total = lora.trainableCounts().total;
    } else {
      if (o.freeze && o.freeze.length > 0) freezeParameters(model, { freeze: o.freeze });
      trainable = model;
    }
    let nTrain = 0;
    for (const v of trainable.namedParameters().values()) if (v.trainable) nTrain += v.size;

    const sampleList = o.samplePrompts ?? [];
    const samples = (): SampleOutput[] =>
      sampleList.map((p) => ({
        prompt: p,
        output: answer(model, tok, o.task, p, { maxNew: o.sampleTokens, labels, maxLength }),
      }));
    const samplesBefore = samples();
    await o.callbacks?.onSamples?.({ when: "before", samples: samplesBefore });

    const steps = o.steps ?? 200;
    const nBase = total - (o.method === "lora" ? nTrain : 0);
    const trainer = new Trainer<unknown>({
      model: trainable,
      objective,
      train: trainSrc,
      val: valSrc,
      steps,
      lr: { maxLr: o.lr ?? (o.method === "lora" ? 1e-3 : 1e-4), warmupSteps: o.warmupSteps ?? 0 },
      optimizer: { weightDecay: o.weightDecay ?? 0 },
      gradClip: o.gradClip ?? 1,
      seed,
      evalEvery: o.evalEvery ?? Math.max(1, Math.floor(steps / 10)),
      evalBatches: o.evalBatches ?? 20,
      runDir: o.outDir,
      checkpointEvery: o.checkpointEvery ?? 0,
      checkpoint: { keepLast: 2 },
      config: { ...o, callbacks: undefined, signal: undefined },
      // full: 6N per token; LoRA: forward 2N + activation gradients 2N through the frozen base + 6N_lora
      flopsPerToken: o.method === "full" ? 6 * total : 4 * nBase + 6 * nTrain,
      callbacks: o.callbacks,
      signal: o.signal,
    });
    if (o.lrGroups && o.lrGroups.length > 0) applyLrGroups(trainer.optimizer, o.lrGroups);
    let report: RunReport;
    try {
      if (o.resume) await trainer.restore();
      await o.callbacks?.onStart?.({
        task: o.task,
        method: o.method,
        modelType: model.modelType,
        examples: { train: trainEx.length, val: valEx.length, skipped: data.skipped.length },
        parameters: { trainable: nTrain, total, share: nTrain / total },
        steps,
        startStep: trainer.step,
      });
      report = await trainer.train();
    } finally {
      trainer.dispose();
    }
    const samplesAfter = samples();
    await o.callbacks?.onSamples?.({ when: "after", samples: samplesAfter });

    // ---- task metric on the validation split
    let valMetric: FinetuneReport["valMetric"];
    if (valEx.length > 0) {
      let ok = 0;
      const n = Math.min(valEx.length, 200);
      for (const e of valEx.slice(0, n)) {
        if (e.kind === "classification")
          ok += answer(model, tok, "classify", e.text, { labels, maxLength }) === e.label ? 1 : 0;
        else if (e.kind === "seq2seq")
          ok +=
            answer(model, tok, "seq2seq", e.source, { maxLength, maxNew: 48 }).trim() === e.target.trim()
              ? 1
              : 0;
        else if (e.kind === "chat" || e.kind === "completion") {
          const msgs = exampleMessages(e);
          const lastA = msgs.map((m) => m.role).lastIndexOf("assistant");
          const user = msgs[lastA - 1]?.content ?? "";
          ok +=
            answer(model, tok, "chat", user, { maxNew: 48 }).trim() === msgs[lastA].content.trim() ? 1 : 0;
        }
      }
      if (o.task !== "text")
        valMetric = { name: o.task === "classify" ? "accuracy" : "exact_match", value: ok / n, count: n };
    }

    // ---- result
    let output: string;
    if (lora) {
      output = path.join(o.outDir, "adapter");
      await saveAdapter(lora, output);
    } else {
      output = path.join(o.outDir, "model");
      await model.save(output);
    }
    const final: FinetuneReport = {
      ...report,
      task: o.task,
      method: o.method,
      trainableParameters: nTrain,
      totalParameters: total,
      trainableShare: nTrain / total,
      inputTokens,
      skippedLines: data.skipped,
      samplesBefore,
      samplesAfter,
      valMetric,
      output,
    };
    await writeFileAtomic(path.join(o.outDir, "finetune-report.json"), `${JSON.stringify(final, null, 2)}\n`);
    return final;
  } finally {
    lora?.dispose();
    model.dispose();
  }
}
