import { Random, TypeformerError } from "@typeformer/core";
import { type CalibrationResult, expectedCalibrationError, softmax } from "./calibration.js";
import { type EvalTokenizer, greedyGenerate, type ScoringModel, scoreContinuations } from "./scoring.js";

/** One question. `answer` is the index of the right choice (multiple choice) or the exact string. */
export interface TaskExample {
  input: string;
  choices?: string[];
  answer: number | string;
  /** Free labels; `group` splits the metrics (e.g. "seen" / "unseen" entities). */
  meta?: Record<string, string | number | boolean>;
}

/** How an example becomes text. Shots are `prompt(ex) + target(ex, answer)` joined by `separator`. */
export interface TaskTemplate {
  /** Text before everything (zero- and few-shot alike). */
  instruction?: string;
  /** The question part, e.g. `Q: ${ex.input}\nA:`. */
  prompt(ex: TaskExample): string;
  /** The answer as appended after the prompt, e.g. ` ${answer}`. */
  target(answer: string): string;
  /** Between shots (default "\n\n"). */
  separator?: string;
}

export interface Task {
  name: string;
  description: string;
  /** "multiple-choice": compare log-likelihoods of the choices; "generate": greedy decoding, exact match. */
  kind: "multiple-choice" | "generate";
  examples: TaskExample[];
  /** Where k-shot examples come from (default: the other examples). */
  fewShotPool?: TaskExample[];
  template: TaskTemplate;
  /** Generation stops at these strings (default ["\n"]). */
  stop?: string[];
  maxNewTokens?: number;
}

export interface RunTaskOptions {
  /** Examples shown before each question (default 0). */
  shots?: number;
  /** Seed of the shot draws: example i uses `Random(\`${seed}:${i}\`)`, so draws do not depend on `limit`. */
  seed?: number;
  /** Evaluate only the first `limit` examples. */
  limit?: number;
  /** Confidence above which a wrong multiple-choice answer counts as "confident wrong" (default 0.5). */
  confidentThreshold?: number;
  /** Reliability bins (default 10). */
  bins?: number;
  batchSize?: number;
  /** Called after each example. */
  onProgress?(done: number, total: number): void;
}

export interface ExampleResult {
  index: number;
  correct: boolean;
  /** Prediction by summed log-likelihood (choice index) or the generated string. */
  prediction: number | string;
  /** Multiple choice: prediction by log-likelihood per UTF-8 byte of the answer. */
  predictionNorm?: number;
  correctNorm?: boolean;
  /** Multiple choice: softmax of the summed log-likelihoods over the choices, at the prediction. */
  confidence?: number;
  logProbs?: number[];
  group?: string;
}

export interface GroupMetrics {
  n: number;
  accuracy: number;
  accuracyNorm?: number;
  /** Mean confidence of the predictions. */
  meanConfidence?: number;
  /** Wrong with confidence ≥ threshold, over all examples of the group. */
  confidentWrongRate?: number;
}

export interface TaskResult {
  task: string;
  description: string;
  kind: Task["kind"];
  shots: number;
  seed: number;
  n: number;
  accuracy: number;
  /** Multiple choice, length-normalised (per byte of answer) accuracy. */
  accuracyNorm?: number;
  /** Expected accuracy of uniform guessing. */
  chance: number;
  calibration?: CalibrationResult;
  confidentThreshold?: number;
  confidentWrongRate?: number;
  groups: Record<string, GroupMetrics>;
  examples: ExampleResult[];
}

/** Prompt for example `i` with `shots` seeded draws from the pool (never the example itself). */
export function buildPrompt(task: Task, i: number, shots: number, seed: number): string {
  const ex = task.examples[i];
  const t = task.template;
  const sep = t.separator ?? "\n\n";
  const parts: string[] = [];
  if (shots > 0) {
    const pool = (task.fewShotPool ?? task.examples).filter((e) => e !== ex);
    if (pool.length < shots) {
      throw new TypeformerError(
        "INVALID_ARGUMENT",
        `task ${task.name}: ${shots} shots requested but only ${pool.length} pool examples`,
        { shots, pool: pool.length },
      );
    }
    const rng = new Random(`${seed}:${i}`);
    const idx = pool.map((_, j) => j);
    for (let k = 0; k < shots; k++) {
      const j = k + rng.int(idx.length - k);
      [idx[k], idx[j]] = [idx[j], idx[k]];
      const s = pool[idx[k]];
      parts.push(t.prompt(s) + t.target(answerText(s)));
    }
  }
  parts.push(t.prompt(ex));
  return (t.instruction ?? "") + parts.join(sep);
}

function answerText(ex: TaskExample): string {
  if (typeof ex.answer === "number") {
    const c = ex.choices?.[ex.answer];
    if (c === undefined) {
      throw new TypeformerError(
        "INVALID_ARGUMENT",
        `answer index ${ex.answer} is not among ${ex.choices?.length ?? 0} choices of ${JSON.stringify(ex.input)}`,
        { answer: ex.answer },
      );
    }
    return c;
  }
  return ex.answer;
}

/** Runs one task zero- or few-shot and scores it. */
export function runTask(
  model: ScoringModel,
  tokenizer: EvalTokenizer,
  task: Task,
  opts: RunTaskOptions = {},
): TaskResult {
  const shots = opts.shots ?? 0;
  const seed = opts.seed ?? 0;
  const thr = opts.confidentThreshold ?? 0.5;
  const n = Math.min(opts.limit ?? task.examples.length, task.examples.length);
  if (n === 0) throw new TypeformerError("INVALID_ARGUMENT", `task ${task.name} has no examples`, {});
  const results: ExampleResult[] = [];
  let chance = 0;
  for (let i = 0; i < n; i++) {
    const ex = task.examples[i];
    const prompt = buildPrompt(task, i, shots, seed);
    const group = ex.meta?.group !== undefined ? String(ex.meta.group) : undefined;
    if (task.kind === "multiple-choice") {
      const choices = ex.choices;
      if (!choices || choices.length < 2 || typeof ex.answer !== "number") {
        throw new TypeformerError(
          "INVALID_ARGUMENT",
          `task ${task.name}, example ${i}: multiple choice needs ≥ 2 choices and an answer index`,
          { index: i },
        );
      }
      const targets = choices.map((c) => task.template.target(c));
      const scores = scoreContinuations(
        model,
        tokenizer,
        targets.map((continuation) => ({ context: prompt, continuation })),
        { batchSize: opts.batchSize },
      );
      const lp = scores.map((s) => s.logProb);
      const norm = lp.map((x, j) => x / Math.max(1, Buffer.byteLength(targets[j], "utf8")));
      const pred = argmax(lp);
      const predNorm = argmax(norm);
      const probs = softmax(lp);
      results.push({
        index: i,
        prediction: pred,
        correct: pred === ex.answer,
        predictionNorm: predNorm,
        correctNorm: predNorm === ex.answer,
        confidence: probs[pred],
        logProbs: lp,
        group,
      });
      chance += 1 / choices.length;
    } else {
      const out = greedyGenerate(model, tokenizer, prompt, {
        maxNewTokens: task.maxNewTokens ?? 16,
        stop: task.stop ?? ["\n"],
      });
      const want = answerText(ex).trim();
      results.push({ index: i, prediction: out.trim(), correct: out.trim() === want, group });
    }
    opts.onProgress?.(i + 1, n);
  }
  const mc = task.kind === "multiple-choice";
  const res: TaskResult = {
    task: task.name,
    description: task.description,
    kind: task.kind,
    shots,
    seed,
    n,
    accuracy: mean(results.map((r) => (r.correct ? 1 : 0))),
    chance: mc ? chance / n : 0,
    groups: {},
    examples: results,
  };
  if (mc) {
    res.accuracyNorm = mean(results.map((r) => (r.correctNorm ? 1 : 0)));
    res.calibration = expectedCalibrationError(
      results.map((r) => r.confidence as number),
      results.map((r) => r.correct),
      opts.bins ?? 10,
    );
    res.confidentThreshold = thr;
    res.confidentWrongRate = mean(
      results.map((r) => (!r.correct && (r.confidence as number) >= thr ? 1 : 0)),
    );
  }
  const byGroup = new Map<string, ExampleResult[]>();
  for (const r of results)
    if (r.group !== undefined) byGroup.set(r.group, [...(byGroup.get(r.group) ?? []), r]);
  for (const [g, rs] of byGroup) {
    const m: GroupMetrics = { n: rs.length, accuracy: mean(rs.map((r) => (r.correct ? 1 : 0))) };
    if (mc) {
      m.accuracyNorm = mean(rs.map((r) => (r.correctNorm ? 1 : 0)));
      m.meanConfidence = mean(rs.map((r) => r.confidence as number));
      m.confidentWrongRate = mean(rs.map((r) => (!r.correct && (r.confidence as number) >= thr ? 1 : 0)));
    }
    res.groups[g] = m;
  }
  return res;
}

function argmax(xs: number[]): number {
  let b = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[b]) b = i;
  return b;
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN;
}
