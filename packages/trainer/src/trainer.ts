import { mkdir } from "node:fs/promises";
import path from "node:path";
import { Random, TypeformerError, tf } from "@typeformer/core";
import { CheckpointManager, type CheckpointOptions, type TrainerState } from "./checkpoint.js";
import { type CostAssumptions, computeCost, costAssumptionsFromEnv } from "./compute-cost.js";
import { nodeIO, type TrainerIO, writeFileAtomic } from "./fs-util.js";
import { AdamW, type AdamWOptions } from "./optimizer.js";
import { appendJsonl, type RunReport, readJsonl, type StepMetrics, writeLossCurve } from "./report.js";
import { type LrScheduleOptions, learningRate } from "./schedule.js";
import type { BatchSource, EvalSource, Objective, TrainableModel } from "./types.js";

export interface EvalResult {
  step: number;
  valLoss: number;
  perplexity: number;
  count: number;
}

export interface TrainerCallbacks {
  onStep?(m: StepMetrics): void | Promise<void>;
  onEval?(e: EvalResult): void | Promise<void>;
  onCheckpoint?(c: { step: number; path: string; best: boolean }): void | Promise<void>;
}

export interface TrainerOptions<B> {
  model: TrainableModel;
  objective: Objective<B>;
  train: BatchSource<B>;
  val?: EvalSource<B>;
  /** Total optimizer steps. */
  steps: number;
  /** Micro-batches per optimizer step (default 1). The loss is normalised by all their targets. */
  gradAccumSteps?: number;
  /** Learning-rate schedule; `decaySteps` defaults to `steps`. */
  lr: Omit<LrScheduleOptions, "decaySteps"> & { decaySteps?: number };
  optimizer?: AdamWOptions;
  /** Clip gradients to this global L2 norm (0 or undefined = off). */
  gradClip?: number;
  /** Seed of the dropout/objective generator (default 0). */
  seed?: number;
  /** Evaluate every N steps (and at the end) when `val` is given (default 250). */
  evalEvery?: number;
  /** Number of fixed validation batches per evaluation (default 20). */
  evalBatches?: number;
  /**
   * Run folder: `metrics.jsonl`, `loss-curve.svg` (redrawn at each eval), `report.json` and
   * `checkpoints/`. Without it nothing is written.
   */
  runDir?: string;
  /** Checkpoint every N steps (and at the end); 0 = only at the end (default 0). Needs `runDir`. */
  checkpointEvery?: number;
  checkpoint?: Omit<CheckpointOptions, "io">;
  /** Resume from the latest checkpoint in `runDir` (true) or from a checkpoint folder (string). */
  resume?: boolean | string;
  /** Serialisable run config stored in checkpoints. */
  config?: unknown;
  /** Training FLOPs per target token (default 6 · parameters). */
  flopsPerToken?: number;
  /** Energy/CO₂ assumptions for the report's `cost` (defaults, then TYPEFORMER_* env overrides, then these). */
  costAssumptions?: Partial<CostAssumptions>;
  callbacks?: TrainerCallbacks;
  /** Stop after this much training wall time (ms), with the final eval and checkpoint, even before `steps`. */
  maxTimeMs?: number;
  signal?: AbortSignal;
  /** @internal file-system hook (tests simulate a full disk). */
  io?: TrainerIO;
}

function nameOfVariables(params: Map<string, tf.Variable>): Map<string, string> {
  const m = new Map<string, string>();
  for (const [n, v] of params) m.set(v.name, n);
  return m;
}

/**
 * The training loop: AdamW, warmup + cosine schedule, global-norm clipping, gradient accumulation,
 * periodic evaluation, checkpoints with exact resume. Model-agnostic: it only sees the objective's
 * summed loss and target count. One data read per step (loss and gradient norm together).
 */
export class Trainer<B> {
  readonly opts: TrainerOptions<B>;
  readonly optimizer: AdamW;
  readonly rng: Random;
  readonly params: Map<string, tf.Variable>;
  readonly checkpoints?: CheckpointManager;
  step = 0;
  tokensSeen = 0;
  bestValLoss: number | null = null;
  lastValLoss: number | null = null;
  lastLoss: number | null = null;
  /** True when `maxTimeMs` ended the run before `steps`. */
  stoppedEarly = false;
  private elapsedMs = 0;
  private peakRss = 0;
  private peakTensorBytes = 0;
  private metrics: StepMetrics[] = [];
  private readonly varNames: Map<string, string>;
  private readonly io: TrainerIO;

  constructor(opts: TrainerOptions<B>) {
    this.opts = opts;
    const bad = (field: string, value: unknown, what: string) =>
      new TypeformerError("INVALID_CONFIG", `${field} must be ${what}; received ${JSON.stringify(value)}`, {
        field,
        value,
      });
    if (!(Number.isInteger(opts.steps) && opts.steps >= 0)) throw bad("steps", opts.steps, "an integer >= 0");
    const acc = opts.gradAccumSteps ?? 1;
    if (!(Number.isInteger(acc) && acc >= 1)) throw bad("gradAccumSteps", acc, "an integer >= 1");
    if (opts.gradClip !== undefined && !(opts.gradClip >= 0)) throw bad("gradClip", opts.gradClip, ">= 0");
    if (opts.evalEvery !== undefined && !(Number.isInteger(opts.evalEvery) && opts.evalEvery >= 1))
      throw bad("evalEvery", opts.evalEvery, "an integer >= 1");
    this.io = opts.io ?? nodeIO;
    this.params = new Map([...opts.model.namedParameters()].filter(([, v]) => v.trainable));
    if (this.params.size === 0)
      throw bad("model", "no trainable parameters", "a model with trainable variables");
    this.varNames = nameOfVariables(this.params);
    this.optimizer = new AdamW(this.params, opts.optimizer);
    this.rng = new Random(opts.seed ?? 0);
    if (opts.runDir) {
      this.checkpoints = new CheckpointManager(path.join(opts.runDir, "checkpoints"), {
        ...opts.checkpoint,
        io: this.io,
      });
    }
  }

  get parameterCount(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    return n;
  }

  lrAt(step: number): number {
    return learningRate(step, { ...this.opts.lr, decaySteps: this.opts.lr.decaySteps ?? this.opts.steps });
  }

  private state(): TrainerState {
    return {
      step: this.step,
      optimizerStep: this.optimizer.t,
      tokensSeen: this.tokensSeen,
      elapsedMs: this.elapsedMs,
      rng: this.rng.getState(),
      data: this.opts.train.getState(),
      bestValLoss: this.bestValLoss,
      lastValLoss: this.lastValLoss,
      config: this.opts.config,
    };
  }

  /** Restores a checkpoint (the latest of the run when `dir` is omitted). Returns false when none exists. */
  async restore(dir?: string): Promise<boolean> {
    const mgr = this.checkpoints ?? new CheckpointManager(path.dirname(dir ?? "."));
    const target = dir ?? (await mgr.latest());
    if (!target) return false;
    const s = await mgr.restore(target, this.opts.model, this.optimizer);
    this.step = s.step;
    this.tokensSeen = s.tokensSeen;
    this.elapsedMs = s.elapsedMs;
    this.rng.setState(s.rng);
    this.opts.train.setState(s.data);
    this.bestValLoss = s.bestValLoss;
    this.lastValLoss = s.lastValLoss;
    if (this.opts.runDir) {
      // metrics of steps after the checkpoint will be produced again
      const file = path.join(this.opts.runDir, "metrics.jsonl");
      this.metrics = (await readJsonl<StepMetrics>(file)).filter((m) => m.step <= s.step);
      await writeFileAtomic(file, this.metrics.map((m) => `${JSON.stringify(m)}\n`).join(""), this.io);
    }
    return true;
  }

  /** Computes the summed loss and gradients of one optimizer step's micro-batches. */
  private accumulate(): { loss: tf.Scalar; grads: Map<string, tf.Tensor>; count: number } {
    const acc = this.opts.gradAccumSteps ?? 1;
    const varList = [...this.params.values()];
    let grads = new Map<string, tf.Tensor>();
    let loss: tf.Scalar | undefined;
    let count = 0;
    for (let i = 0; i < acc; i++) {
      const batch = this.opts.train.next();
      let c = 0;
      const r = tf.variableGrads(() => {
        const out = this.opts.objective.loss(batch, { training: true, rng: this.rng });
        c = out.count;
        return out.loss;
      }, varList);
      count += c;
      if (!loss) loss = r.value;
      else {
        const s = tf.add(loss, r.value) as tf.Scalar;
        loss.dispose();
        r.value.dispose();
        loss = s;
      }
      const next = new Map<string, tf.Tensor>();
      for (const [vname, g] of Object.entries(r.grads)) {
        const name = this.varNames.get(vname);
        if (name === undefined) {
          g.dispose();
          continue;
        }
        const prev = grads.get(name);
        if (prev) {
          next.set(name, tf.add(prev, g));
          prev.dispose();
          g.dispose();
        } else next.set(name, g);
      }
      grads = next;
    }
    return { loss: loss!, grads, count };
  }

  /** Mean validation loss over the fixed evaluation batches. */
  evaluate(): EvalResult | undefined {
    const val = this.opts.val;
    if (!val) return undefined;
    let count = 0;
    let sum: tf.Scalar = tf.scalar(0);
    for (const batch of val.batches(this.opts.evalBatches ?? 20)) {
      const next = tf.tidy(() => {
        const r = this.opts.objective.loss(batch, { training: false, rng: this.rng });
        count += r.count;
        return tf.add(sum, r.loss) as tf.Scalar;
      });
      sum.dispose();
      sum = next;
    }
    const total = sum.dataSync()[0];
    sum.dispose();
    if (count === 0) {
      throw new TypeformerError("DATA_INVALID", "validation batches hold no targets", { count });
    }
    const valLoss = total / count;
    return { step: this.step, valLoss, perplexity: Math.exp(valLoss), count };
  }

  private async saveCheckpoint(): Promise<void> {
    if (!this.checkpoints) return;
    const { path: p, index } = await this.checkpoints.save(this.opts.model, this.optimizer, this.state());
    await this.opts.callbacks?.onCheckpoint?.({
      step: this.step,
      path: p,
      best: index.best?.name === path.basename(p),
    });
  }

  /** Runs until `steps`; returns the run report. */
  async train(): Promise<RunReport> {
    const o = this.opts;
    if (o.runDir) await mkdir(o.runDir, { recursive: true });
    if (o.resume) {
      const ok = await this.restore(typeof o.resume === "string" ? o.resume : undefined);
      if (!ok && typeof o.resume === "string") {
        throw new TypeformerError("NOT_FOUND", `no checkpoint at ${o.resume}`, { path: o.resume });
      }
    }
    const metricsFile = o.runDir ? path.join(o.runDir, "metrics.jsonl") : undefined;
    const evalEvery = o.evalEvery ?? 250;
    const ckptEvery = o.checkpointEvery ?? 0;
    const clip = o.gradClip ?? 0;
    const startedAt = performance.now();
    while (this.step < o.steps) {
      if (o.signal?.aborted) {
        throw new TypeformerError("CANCELLED", `training cancelled at step ${this.step}`, {
          step: this.step,
        });
      }
      const t0 = performance.now();
      const lr = this.lrAt(this.step);
      const { loss, grads, count } = this.accumulate();
      if (count <= 0) {
        tf.dispose([loss, ...grads.values()]);
        throw new TypeformerError("DATA_INVALID", `step ${this.step} has no target tokens`, {
          step: this.step,
        });
      }
      const stats = tf.tidy(() => {
        let sq: tf.Tensor = tf.scalar(0);
        for (const g of grads.values()) sq = tf.add(sq, tf.sum(tf.square(g)));
        return tf.stack([loss, tf.sqrt(sq)]);
      });
      const [lossSum, normSum] = stats.dataSync();
      stats.dispose();
      loss.dispose();
      const meanLoss = lossSum / count;
      const gradNorm = normSum / count;
      if (!Number.isFinite(meanLoss) || !Number.isFinite(gradNorm)) {
        tf.dispose([...grads.values()]);
        const latest = this.checkpoints ? await this.checkpoints.latest() : undefined;
        throw new TypeformerError(
          "TRAINING_DIVERGED",
          `loss became ${meanLoss} (gradient norm ${gradNorm}) at step ${this.step + 1}; the update was not applied` +
            (latest ? ` and the last good checkpoint is ${latest}` : ""),
          { step: this.step + 1, loss: meanLoss, gradNorm, lastCheckpoint: latest ?? null },
        );
      }
      const clipFactor = clip > 0 ? Math.min(1, clip / (gradNorm + 1e-6)) : 1;
      this.optimizer.step(grads, lr, clipFactor / count);
      tf.dispose([...grads.values()]);
      this.step += 1;
      this.tokensSeen += count;
      this.lastLoss = meanLoss;
      const dt = performance.now() - t0;
      this.elapsedMs += dt;
      const rss = process.memoryUsage().rss;
      if (rss > this.peakRss) this.peakRss = rss;
      const tb = tf.memory().numBytes;
      if (tb > this.peakTensorBytes) this.peakTensorBytes = tb;
      const m: StepMetrics = {
        step: this.step,
        loss: meanLoss,
        lr,
        gradNorm,
        tokens: count,
        tokensPerSec: count / (dt / 1000),
        msPerStep: dt,
      };
      const timeUp = o.maxTimeMs !== undefined && performance.now() - startedAt >= o.maxTimeMs;
      const last = this.step === o.steps || timeUp;
      if (o.val && (this.step % evalEvery === 0 || last)) {
        const e = this.evaluate()!;
        m.valLoss = e.valLoss;
        m.valPerplexity = e.perplexity;
        this.lastValLoss = e.valLoss;
        if (this.bestValLoss === null || e.valLoss < this.bestValLoss) this.bestValLoss = e.valLoss;
        await o.callbacks?.onEval?.(e);
      }
      this.metrics.push(m);
      if (metricsFile) await appendJsonl(metricsFile, m);
      await o.callbacks?.onStep?.(m);
      if (o.runDir && m.valLoss !== undefined) {
        await writeLossCurve(path.join(o.runDir, "loss-curve.svg"), this.metrics);
      }
      if (o.runDir && ((ckptEvery > 0 && this.step % ckptEvery === 0) || last)) await this.saveCheckpoint();
      this.elapsedMs += performance.now() - t0 - dt; // evaluation and checkpoint time count as wall time
      if (timeUp) {
        this.stoppedEarly = true;
        break;
      }
    }
    const report = this.report();
    if (o.runDir)
      await writeFileAtomic(path.join(o.runDir, "report.json"), JSON.stringify(report, null, 2), this.io);
    return report;
  }

  report(): RunReport {
    const n = this.parameterCount;
    const fpt = this.opts.flopsPerToken ?? 6 * n;
    const wall = this.elapsedMs / 1000;
    return {
      parameters: n,
      steps: this.step,
      tokensSeen: this.tokensSeen,
      flops: fpt * this.tokensSeen,
      flopsPerToken: fpt,
      wallTimeSec: wall,
      achievedFlopsPerSec: wall > 0 ? (fpt * this.tokensSeen) / wall : 0,
      tokensPerSec: wall > 0 ? this.tokensSeen / wall : 0,
      peakRssBytes: this.peakRss,
      peakTensorBytes: this.peakTensorBytes,
      finalLoss: this.lastLoss,
      finalValLoss: this.lastValLoss,
      bestValLoss: this.bestValLoss,
      backend: tf.getBackend(),
      cost: computeCost(
        { parameters: n, tokens: this.tokensSeen, flopsPerToken: fpt, wallTimeSec: wall },
        { ...costAssumptionsFromEnv(), ...this.opts.costAssumptions },
      ),
    };
  }

  /** Frees the optimizer moments (the model is the caller's). */
  dispose(): void {
    this.optimizer.dispose();
  }
}

/** Convenience: build a {@link Trainer}, run it, dispose the optimizer, return the report. */
export async function train<B>(opts: TrainerOptions<B>): Promise<RunReport> {
  const t = new Trainer(opts);
  try {
    return await t.train();
  } finally {
    t.dispose();
  }
}
