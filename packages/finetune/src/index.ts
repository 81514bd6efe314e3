export type {
  BadLine,
  ChatRole,
  Example,
  ExampleKind,
  ReadExamplesOptions,
  ReadExamplesResult,
} from "./data.js";
export { detectKind, parseExampleLine, parseExamples, readExamples, splitExamples } from "./data.js";
export type { FreezeOptions, LrGroup, NamePattern } from "./freeze.js";
export {
  applyLrGroups,
  freezeParameters,
  layerwiseLrGroups,
  loraObjective,
  loraTrainable,
  trainableSummary,
} from "./freeze.js";
export type { LoraAdapter, LoraConfig, LoraLayer, ResolvedLoraConfig } from "./lora.js";
export {
  fanInFanOut,
  hfModuleName,
  LoraModel,
  loraScaling,
  matchesModule,
  paramForModule,
  resolveLoraConfig,
} from "./lora.js";
export {
  ADAPTER_CONFIG_FILE,
  ADAPTER_WEIGHTS_FILE,
  loadAdapter,
  peftConfig,
  peftTensors,
  readAdapterConfig,
  saveAdapter,
} from "./peft.js";
export type {
  FinetuneCallbacks,
  FinetuneMethod,
  FinetuneOptions,
  FinetuneReport,
  FinetuneStartInfo,
  FinetuneTask,
  SampleOutput,
} from "./run.js";
export { answer, defaultLoraTargets, runFinetune } from "./run.js";
export type {
  ChatTokenizer,
  ClassificationBatch,
  ClassifierLike,
  MaskedSequence,
  TaskTokenizer,
} from "./tasks.js";
export {
  ClassificationObjective,
  collateMasked,
  ExampleBatches,
  encodeChat,
  encodeClassification,
  encodeSeq2Seq,
  encodeText,
  exampleMessages,
  MaskedCausalLMObjective,
  Seq2SeqObjective,
} from "./tasks.js";
