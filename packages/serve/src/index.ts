export type {
  EngineObserver,
  EngineOptions,
  FinishReason,
  GenerateRequest,
  GenerationEvent,
  GenerationResult,
} from "./engine.js";
export { Generation, GenerationEngine } from "./engine.js";
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
export { StopMatcher } from "./stop.js";
export type { ServeCausalLM, ServeEncoder, ServeKVCache, ServeTokenizer } from "./types.js";
