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
