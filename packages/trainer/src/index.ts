export type { CheckpointEntry, CheckpointIndex, CheckpointOptions, TrainerState } from "./checkpoint.js";
export { CheckpointManager, checkpointName } from "./checkpoint.js";
export type { ComputeCost, ComputeCostInput, CostAssumptions } from "./compute-cost.js";
export {
  computeCost,
  costAssumptionsFromEnv,
  DEFAULT_COST_ASSUMPTIONS,
  formatComputeCost,
} from "./compute-cost.js";
export type { CorpusDocument, CorpusSpec } from "./corpora.js";
export { BUNDLED_CORPORA, decodeUtf8, readCorpus, stripBrownTags } from "./corpora.js";
export type {
  DatasetManifest,
  PrepareOptions,
  SamplerOptions,
  ShardInfo,
  TextTokenizer,
  TokenDtype,
} from "./dataset.js";
export { prepareDataset, readManifest, TokenWindowSampler } from "./dataset.js";
export type { TrainerIO } from "./fs-util.js";
export { writeFileAtomic } from "./fs-util.js";
export { crossEntropySum, IGNORE_INDEX, targetWeights } from "./loss.js";
export type {
  CausalLMLike,
  MaskedLMLike,
  MaskingOptions,
  Seq2SeqBatch,
  Seq2SeqLike,
  SpanCorruptionOptions,
  TokenBatch,
} from "./objectives.js";
export {
  CausalLMObjective,
  MaskedLMObjective,
  maskTokens,
  Seq2SeqObjective,
  SpanCorruptionObjective,
  spanCorrupt,
} from "./objectives.js";
export type { AdamWOptions, DecayRule, OptimizerSnapshot } from "./optimizer.js";
export { AdamW, DEFAULT_NO_DECAY_PATTERN, defaultDecayRule } from "./optimizer.js";
export { RUN_PRESETS } from "./presets.js";
export type { RunReport, StepMetrics } from "./report.js";
export { readJsonl, renderLossCurveSvg, writeLossCurve } from "./report.js";
export type { RunHooks, RunResult, SampleOptions } from "./run.js";
export { buildTokenizer, readRunConfig, runTraining, sampleText } from "./run.js";
export type { RunConfig, RunConfigInput } from "./run-config.js";
export { closestKey, parseRunConfig, runConfigSchema } from "./run-config.js";
export type { LrScheduleOptions } from "./schedule.js";
export { learningRate } from "./schedule.js";
export type { EvalResult, TrainerCallbacks, TrainerOptions } from "./trainer.js";
export { Trainer, train } from "./trainer.js";
export type {
  BatchSource,
  EvalSource,
  Objective,
  ObjectiveContext,
  ObjectiveResult,
  TrainableModel,
} from "./types.js";
