export { BaseModel } from "./base.js";
export type { BertConfig } from "./bert.js";
export { BERT_DEFAULTS, BERT_PRESETS, BERT_SPEC, BertModel } from "./bert.js";
export { createKVCache, setKVCacheFactory } from "./decoder.js";
export type { GPT2Config } from "./gpt2.js";
export { GPT2_DEFAULTS, GPT2_PRESETS, GPT2_SPEC, GPT2Model } from "./gpt2.js";
export type { LinearHook } from "./layers.js";
export { setLinearHook } from "./layers.js";
export type { LlamaConfig } from "./llama.js";
export { LLAMA_DEFAULTS, LLAMA_PRESETS, LLAMA_SPEC, LlamaModel } from "./llama.js";
export type { FromPretrainedOptions } from "./pretrained.js";
export { fromPretrained, readConfig, setTokenizerLoader } from "./pretrained.js";
export {
  configFromHF,
  configToHF,
  createModel,
  flopsPerToken,
  getArchitecture,
  parameterCount,
  registerArchitecture,
  rejectUnsupported,
  resolveConfig,
  supportedModelTypes,
} from "./registry.js";
export type { T5Config } from "./t5.js";
export {
  parseFeedForward,
  relativePositionBucket,
  T5_DEFAULTS,
  T5_PRESETS,
  T5_SPEC,
  T5Cache,
  T5Model,
} from "./t5.js";
export type {
  AnyModel,
  ArchitectureSpec,
  BaseModelConfig,
  CausalLM,
  CausalLMForwardOptions,
  CausalLMOutput,
  ConfigField,
  CreateModelOptions,
  EncoderForwardOptions,
  EncoderModel,
  EncoderOutput,
  ForwardOptionsBase,
  KVCacheLike,
  ModelFamily,
  ParameterSource,
  PreTrainedModel,
  SaveOptions,
  Seq2SeqCache,
  Seq2SeqDecodeOptions,
  Seq2SeqLM,
  TokenizerLike,
} from "./types.js";
