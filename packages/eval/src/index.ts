export type { BiasResult, BiasRow } from "./bias.js";
export { BIAS_METHOD, BIAS_OCCUPATIONS, BIAS_TEMPLATES, biasProbe } from "./bias.js";
export type { CalibrationResult, ReliabilityBin } from "./calibration.js";
export { expectedCalibrationError, softmax } from "./calibration.js";
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
