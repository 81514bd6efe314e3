export type { BeamHypothesis, BeamSearchOptions, ServeSeq2SeqLM } from "./beam.js";
export { beamSearchCausal, beamSearchCore, beamSearchSeq2Seq } from "./beam.js";
export type {
  EngineObserver,
  EngineOptions,
  FinishReason,
  GenerateRequest,
  GenerationEvent,
  GenerationResult,
} from "./engine.js";
export { Generation, GenerationEngine } from "./engine.js";
export type { ApiErrorBody } from "./errors.js";
export { ApiError } from "./errors.js";
export type { LoadedModel } from "./load.js";
export { loadModelDir } from "./load.js";
export { ServeMetrics } from "./metrics.js";
export type { SampleResult, SamplingParams, TokenLogprob } from "./sampling.js";
export {
  applyLogitBias,
  applyPresenceFrequencyPenalty,
  applyRepetitionPenalty,
  applyTemperature,
  argmax,
  logSoftmax,
  minPFilter,
  Sampler,
  sampleCategorical,
  softmax,
  topKFilter,
  topLogprobs,
  topPFilter,
  validateSamplingParams,
} from "./sampling.js";
export type { Seq2SeqGenerateOptions, ServeSeq2SeqCachedLM } from "./seq2seq.js";
export { beamGenerateSeq2Seq, generateSeq2Seq } from "./seq2seq.js";
export { Seq2SeqBatchCache, seq2seqAsCausal } from "./seq2seq-batch.js";
export type {
  ListenOptions,
  RunningServer,
  ServedModelSpec,
  ServerOptions,
  TypeformerServer,
} from "./server.js";
export { apiKeyMatches, createServer, listen } from "./server.js";
export { StopMatcher } from "./stop.js";
export type { ServeCausalLM, ServeEncoder, ServeKVCache, ServeTokenizer } from "./types.js";
