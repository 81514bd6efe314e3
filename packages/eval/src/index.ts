export type { ComputeCost, CostAssumptions } from "@typeformer/trainer";
export { computeCost, DEFAULT_COST_ASSUMPTIONS, formatComputeCost } from "@typeformer/trainer";
export type { BiasResult, BiasRow } from "./bias.js";
export { BIAS_METHOD, BIAS_OCCUPATIONS, BIAS_TEMPLATES, biasProbe } from "./bias.js";
export type { CalibrationResult, ReliabilityBin } from "./calibration.js";
export { expectedCalibrationError, softmax } from "./calibration.js";
export { biasSvg, reliabilitySvg, renderVegaLiteSvg, scalingSvg, taskAccuracySvg } from "./charts.js";
export type {
  ExampleResult,
  GroupMetrics,
  RunTaskOptions,
  Task,
  TaskExample,
  TaskResult,
  TaskTemplate,
} from "./harness.js";
export { buildPrompt, runTask } from "./harness.js";
export type { PerplexityOptions, PerplexityResult } from "./perplexity.js";
export { evaluatePerplexity } from "./perplexity.js";
export type { PowerLawFit } from "./power-law.js";
export { fitPowerLaw, powerLaw } from "./power-law.js";
export type { EvalReport } from "./report.js";
export { evalMarkdown, writeEvalReport } from "./report.js";
export type { ScalingOptions, ScalingPoint, ScalingResult, ScalingSize } from "./scaling.js";
export {
  KAPLAN_ALPHA_N,
  nonEmbeddingParameters,
  runScalingSweep,
  SCALING_DATA_DEFAULT,
  SCALING_DATA_QUICK,
  SCALING_DEFAULT_SIZES,
  SCALING_DEFAULTS,
  SCALING_DISCUSSION,
  SCALING_QUICK,
  SCALING_QUICK_SIZES,
  scalingMarkdown,
} from "./scaling.js";
export type { EvalTokenizer, ScoreRequest, ScoreResult, ScoringModel } from "./scoring.js";
export { greedyGenerate, scoreContinuations, scoreSequences } from "./scoring.js";
export type { ClozeOptions, FactEntity, FactTable, SyntheticOptions } from "./tasks.js";
export {
  arithmeticTask,
  clozeTask,
  FACT_CITIES,
  factCorpus,
  factTable,
  factTask,
  heldOutText,
  QA_TEMPLATE,
  stringTransformTask,
} from "./tasks.js";
