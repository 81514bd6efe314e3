import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { TypeformerError, writeFileAtomic } from "@typeformer/core";
import { getArchitecture, parameterCount, resolveConfig } from "@typeformer/models";
import { parseRunConfig, type RunReport, runTraining } from "@typeformer/trainer";
import { scalingSvg } from "./charts.js";
import { fitPowerLaw, type PowerLawFit } from "./power-law.js";

/** One model of the family (GPT-2 shapes). */
export interface ScalingSize {
  name: string;
  numLayers: number;
  hiddenSize: number;
  numHeads: number;
}

export interface ScalingOptions {
  /** Sweep folder: one trainer run folder per size, plus scaling.json / scaling.md / scaling.svg. */
  outDir: string;
  sizes?: ScalingSize[];
  /** Corpus spec as in `typeformer train` (default "moby-dick"). */
  corpus?: string;
  /** Tokenizer spec (default "char"). */
  tokenizer?: string;
  /** Optimizer steps per run; with batchSize × contextLength this is the shared token budget. */
  steps?: number;
  batchSize?: number;
  contextLength?: number;
  lr?: number;
  evalBatches?: number;
  seed?: number;
  backend?: "wasm" | "cpu" | "node" | "node-gpu";
  /**
   * L(D) mode: train `sizes[0]` once per step count here (token budget D = steps × batch × context)
   * and fit L(D) = a·D^(−β) + c instead of L(N).
   */
  dataSteps?: number[];
  onPhase?(message: string): void;
  /** After each size (trained now or reused from its finished run folder). */
  onRun?(point: ScalingPoint, reused: boolean): void;
  /** Per-step progress of the current run. */
  onStep?(name: string, step: number, steps: number): void;
}

export interface ScalingPoint {
  name: string;
  config: ScalingSize;
  /** Non-embedding parameters (Kaplan et al.'s N: token and position tables excluded). */
  nonEmbeddingParameters: number;
  parameters: number;
  tokens: number;
  /** Final validation loss (nats per token). */
  valLoss: number;
  trainLoss: number | null;
  flops: number;
  wallTimeSec: number;
  energyKwh?: number;
  co2Grams?: number;
}

export interface ScalingResult {
  /** "parameters": L(N) across sizes; "data": L(D) across token budgets at one size. */
  mode: "parameters" | "data";
  points: ScalingPoint[];
  fit: PowerLawFit;
  /** The same points fitted with c = 0 (Kaplan's pure power law); absent in results written before it existed. */
  pureFit?: PowerLawFit;
  /** max / min of the fitted variable (N, or D in data mode). */
  span: number;
  kaplanAlpha: number;
  settings: Record<string, unknown>;
  discussion: string;
}

/** ~17 minutes on 2 shared cores (measured; 624 s of CPU): 6 sizes, 12.8k → 793k non-embedding parameters (62×), 1.2M tokens each. */
export const SCALING_DEFAULT_SIZES: ScalingSize[] = [
  { name: "L1-d32", numLayers: 1, hiddenSize: 32, numHeads: 4 },
  { name: "L2-d48", numLayers: 2, hiddenSize: 48, numHeads: 4 },
  { name: "L2-d64", numLayers: 2, hiddenSize: 64, numHeads: 4 },
  { name: "L3-d96", numLayers: 3, hiddenSize: 96, numHeads: 4 },
  { name: "L4-d112", numLayers: 4, hiddenSize: 112, numHeads: 4 },
  { name: "L4-d128", numLayers: 4, hiddenSize: 128, numHeads: 4 },
];

/** A few minutes: 5 sizes, 3k → 150k non-embedding parameters (45×), 614k tokens each. */
export const SCALING_QUICK_SIZES: ScalingSize[] = [
  { name: "L1-d16", numLayers: 1, hiddenSize: 16, numHeads: 2 },
  { name: "L1-d32", numLayers: 1, hiddenSize: 32, numHeads: 4 },
  { name: "L2-d32", numLayers: 2, hiddenSize: 32, numHeads: 4 },
  { name: "L2-d48", numLayers: 2, hiddenSize: 48, numHeads: 4 },
  { name: "L3-d64", numLayers: 3, hiddenSize: 64, numHeads: 4 },
];

/** L(D) sweeps (`typeformer scaling --data`): one size, budgets doubling 16× (quick) or 16× (default). */
export const SCALING_DATA_QUICK = { size: SCALING_QUICK_SIZES[2], steps: [75, 150, 300, 600, 1200] };
export const SCALING_DATA_DEFAULT = { size: SCALING_DEFAULT_SIZES[3], steps: [150, 300, 600, 1200, 2400] };

export const SCALING_DEFAULTS = { steps: 1200, batchSize: 16, contextLength: 64, lr: 3e-3, evalBatches: 40 };
export const SCALING_QUICK = { steps: 600, batchSize: 16, contextLength: 64, lr: 5e-3, evalBatches: 40 };

/** Kaplan et al. 2020, L(N) = (N_c / N)^α_N with α_N ≈ 0.076 (WebText2, BPE, converged models). */
export const KAPLAN_ALPHA_N = 0.076;

const EMBEDDING =
  /(^|\.)(wte|wpe|embed_tokens|word_embeddings|position_embeddings|token_type_embeddings|shared)\b/;

/** Parameters excluding embedding tables (Kaplan et al.'s N). */
export function nonEmbeddingParameters(config: { modelType: string } & Record<string, unknown>): number {
  const full = resolveConfig(config as { modelType: string });
  let n = 0;
  for (const [name, shape] of getArchitecture(full.modelType).parameterShapes(full)) {
    if (!EMBEDDING.test(name)) n += shape.reduce((a, b) => a * b, 1);
  }
  return n;
}

/**
 * The report's comparison with Kaplan et al. `fit` is the free fit L = a·N^−α + c; `pure` the same points
 * forced through c = 0 — Kaplan's own form L(N) = (N_c / N)^α_N, so `pure.alpha` is the like-for-like
 * exponent.
 */
export const SCALING_DISCUSSION = (fit: PowerLawFit, span: number, pure: PowerLawFit = fit): string => {
  const side = pure.alpha < KAPLAN_ALPHA_N ? "flatter than" : "steeper than";
  const free =
    fit.c > 0
      ? `With an irreducible term the free fit is α = ${fit.alpha.toFixed(3)}, c = ${fit.c.toFixed(3)} (R² = ${fit.r2.toFixed(3)}): the reducible part falls ${fit.alpha > pure.alpha ? "faster" : "slower"} towards a floor of ${fit.c.toFixed(2)} nats, and c soaks up the curvature — α and c trade off against each other when fitted from five or six points, so read the free α loosely and the floor as "what this token budget allows", not the entropy of the text.`
      : `The free fit put c at its bound 0, so it is the same pure power law (R² = ${fit.r2.toFixed(3)}).`;
  return `Kaplan et al. (2020) report α_N ≈ ${KAPLAN_ALPHA_N} for converged Transformers of 10^5–10^9
non-embedding parameters on WebText2 (BPE tokens, loss in nats per token), written as a pure power law
L(N) = (N_c/N)^α_N with no irreducible term. Like for like, the pure power law through this sweep's
points (c = 0) has α = ${pure.alpha.toFixed(3)} (R² = ${pure.r2.toFixed(3)}) over a ${span.toFixed(0)}× range — ${side} Kaplan's. ${free}
Why a tiny CPU sweep differs: (1) the runs share one small token budget, so they are not converged —
Kaplan's L(N) is the data-unlimited limit, while here the larger models are under-trained, which bends
the curve flat at the top (it measures L(N, D) at small D); (2) the models are tiny (10^3–10^6
parameters), below the range where the law was measured, and the smallest ones gain a lot from their
first layers of context (steepening the bottom of the curve), while layer norms, biases and the output
head are a large share of their parameters; (3) the loss is per character (or per token of another
tokenizer) on one book, not per BPE token on web text, so the units and the floor differ; (4) one
learning rate and schedule for every size (Kaplan tuned them) and a validation loss estimated from a
few random windows add noise.`;
};

/**
 * Trains each size on the same corpus and token budget (one trainer run per size, resuming from its
 * checkpoints; finished runs are reused), fits L(N) = a·N^−α + c and writes scaling.json, scaling.md
 * and scaling.svg into `outDir`.
 */
export async function runScalingSweep(opts: ScalingOptions): Promise<ScalingResult> {
  const sizes = opts.sizes ?? SCALING_DEFAULT_SIZES;
  if (opts.dataSteps === undefined && sizes.length < 3) {
    throw new TypeformerError("INVALID_ARGUMENT", `a sweep needs ≥ 3 sizes; received ${sizes.length}`, {
      sizes: sizes.length,
    });
  }
  const steps = opts.steps ?? SCALING_DEFAULTS.steps;
  const batchSize = opts.batchSize ?? SCALING_DEFAULTS.batchSize;
  const contextLength = opts.contextLength ?? SCALING_DEFAULTS.contextLength;
  const lr = opts.lr ?? SCALING_DEFAULTS.lr;
  const evalBatches = opts.evalBatches ?? SCALING_DEFAULTS.evalBatches;
  const corpus = opts.corpus ?? "moby-dick";
  const tokenizer = opts.tokenizer ?? "char";
  const seed = opts.seed ?? 1337;
  const outDir = path.resolve(opts.outDir);
  await mkdir(outDir, { recursive: true });
  const points: ScalingPoint[] = [];
  const dataMode = opts.dataSteps !== undefined;
  const jobs = dataMode
    ? (opts.dataSteps as number[]).map((st) => ({
        size: sizes[0],
        steps: st,
        name: `${sizes[0].name}-steps${st}`,
      }))
    : sizes.map((size) => ({ size, steps, name: size.name }));
  if (jobs.length < 3) {
    throw new TypeformerError("INVALID_ARGUMENT", `a sweep needs ≥ 3 runs; received ${jobs.length}`, {
      runs: jobs.length,
    });
  }
  for (const { size, steps, name } of jobs) {
    const runDir = path.join(outDir, name);
    const model = {
      modelType: "gpt2",
      numLayers: size.numLayers,
      hiddenSize: size.hiddenSize,
      numHeads: size.numHeads,
      maxPositions: contextLength,
      residDropout: 0,
      embdDropout: 0,
      attnDropout: 0,
    };
    let report: RunReport | undefined;
    let reused = false;
    const reportFile = path.join(runDir, "report.json");
    if (existsSync(reportFile)) {
      const r = JSON.parse(await readFile(reportFile, "utf8")) as RunReport;
      if (r.steps >= steps && r.finalValLoss !== null) {
        report = r;
        reused = true;
      }
    }
    if (!report) {
      opts.onPhase?.(`training ${name} (${size.numLayers} layers × ${size.hiddenSize}, ${steps} steps)`);
      const cfg = parseRunConfig({
        corpus,
        tokenizer,
        model,
        steps,
        batchSize,
        contextLength,
        lr,
        minLr: lr / 10,
        warmupSteps: Math.max(1, Math.round(steps / 20)),
        weightDecay: 0.1,
        decay: "all-matrices",
        beta2: 0.99,
        gradClip: 1,
        evalEvery: steps,
        evalBatches,
        checkpointEvery: Math.max(1, Math.round(steps / 4)),
        maxMinutes: undefined,
        keepLast: 1,
        seed,
        runDir,
        backend: opts.backend,
      });
      const result = await runTraining(
        cfg,
        { onPhase: opts.onPhase, onStep: (m) => opts.onStep?.(name, m.step, steps) },
        true,
      );
      report = result.report;
      result.model.dispose();
    }
    const vocab = JSON.parse(await readFile(path.join(runDir, "data", "manifest.json"), "utf8"))
      .vocabSize as number;
    const full = { ...model, vocabSize: vocab };
    const point: ScalingPoint = {
      name,
      config: size,
      nonEmbeddingParameters: nonEmbeddingParameters(full),
      parameters: parameterCount(full),
      tokens: report.tokensSeen,
      valLoss: report.finalValLoss as number,
      trainLoss: report.finalLoss,
      flops: report.flops,
      wallTimeSec: report.wallTimeSec,
      energyKwh: report.cost?.energyKwh,
      co2Grams: report.cost?.co2Grams,
    };
    points.push(point);
    opts.onRun?.(point, reused);
  }
  const N = points.map((p) => (dataMode ? p.tokens : p.nonEmbeddingParameters));
  const fit = fitPowerLaw(
    N,
    points.map((p) => p.valLoss),
  );
  const span = Math.max(...N) / Math.min(...N);
  // Kaplan's form has no irreducible term: the like-for-like exponent is the c = 0 fit
  const pureFit = fitPowerLaw(
    N,
    points.map((p) => p.valLoss),
    { fixC: 0 },
  );
  const result: ScalingResult = {
    mode: dataMode ? "data" : "parameters",
    points,
    fit,
    pureFit,
    span,
    kaplanAlpha: KAPLAN_ALPHA_N,
    settings: {
      corpus,
      tokenizer,
      steps,
      batchSize,
      contextLength,
      lr,
      evalBatches,
      seed,
      tokensPerRun: steps * batchSize * contextLength,
    },
    discussion: dataMode
      ? `L(D) at a fixed size: β = ${fit.alpha.toFixed(3)}, c = ${fit.c.toFixed(3)}, R² = ${fit.r2.toFixed(3)} over ${span.toFixed(0)}× in tokens. Kaplan et al. (2020) report α_D ≈ 0.095 for data-limited, early-stopped large models; here a single small model is trained for longer budgets (one pass over a 1 MB book repeats data), its learning-rate schedule stretches with the budget, and its capacity caps the loss, so c absorbs a large share of the curve.`
      : SCALING_DISCUSSION(fit, span, pureFit),
  };
  await writeFileAtomic(path.join(outDir, "scaling.json"), `${JSON.stringify(result, null, 2)}\n`);
  await writeFileAtomic(
    path.join(outDir, "scaling.svg"),
    await scalingSvg(
      points.map((p) => ({
        parameters: dataMode ? p.tokens : p.nonEmbeddingParameters,
        loss: p.valLoss,
        name: p.name,
      })),
      fit,
      dataMode ? "training tokens D" : undefined,
    ),
  );
  await writeFileAtomic(path.join(outDir, "scaling.md"), scalingMarkdown(result));
  return result;
}

export function scalingMarkdown(r: ScalingResult): string {
  const s = r.settings;
  const rows = r.points.map(
    (p) =>
      `| ${p.name} | ${p.nonEmbeddingParameters.toLocaleString("en-US")} | ${p.parameters.toLocaleString("en-US")} | ${p.tokens.toLocaleString("en-US")} | ${p.valLoss.toFixed(4)} | ${(p.flops / 1e12).toFixed(3)} | ${p.wallTimeSec.toFixed(0)} | ${p.energyKwh !== undefined ? (p.energyKwh * 1000).toFixed(2) : "–"} |`,
  );
  return [
    "# Scaling sweep",
    "",
    `Corpus ${s.corpus}, tokenizer ${s.tokenizer}, ${s.steps} steps × ${s.batchSize} × ${s.contextLength} = ${Number(s.tokensPerRun).toLocaleString("en-US")} tokens per model, lr ${s.lr}, seed ${s.seed}.`,
    "",
    "| model | non-embedding N | all parameters | tokens | val loss (nats) | TFLOP | wall s | energy Wh |",
    "|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
    `Fit ${r.mode === "data" ? "L(D) = a·D^(−β) + c: **β" : "L(N) = a·N^(−α) + c: **α"} = ${r.fit.alpha.toFixed(4)}**, a = ${r.fit.a.toPrecision(4)}, **c = ${r.fit.c.toFixed(4)}**, R² = ${r.fit.r2.toFixed(4)}, RMSE ${r.fit.rmse.toExponential(2)} over a ${r.span.toFixed(0)}× span of ${r.mode === "data" ? "D" : "N"}. Kaplan et al. 2020: α_N ≈ ${r.kaplanAlpha}, α_D ≈ 0.095.`,
    ...(r.pureFit
      ? [
          "",
          `Pure power law (c = 0, Kaplan's form): ${r.mode === "data" ? "β" : "α"} = ${r.pureFit.alpha.toFixed(4)}, a = ${r.pureFit.a.toPrecision(4)}, R² = ${r.pureFit.r2.toFixed(4)}.`,
        ]
      : []),
    "",
    ...(r.fit.c < 1e-6 * Math.max(...r.points.map((p) => p.valLoss))
      ? [
          "",
          "The fitted c sits at its lower bound 0: these points show no measurable curvature, so the fit is a pure power law; more sizes or a longer span are needed to separate α from an irreducible loss.",
        ]
      : []),
    "",
    "![scaling](scaling.svg)",
    "",
    r.discussion,
    "",
  ].join("\n");
}
