export * as tf from "@tensorflow/tfjs";
export type { BackendChoice, BackendInitResult, BackendSkip, InitBackendOptions } from "./backend.js";
export { BACKEND_ORDER, currentBackend, initBackend, wasmBinaryDir } from "./backend.js";
export type { ErrorCode } from "./errors.js";
export { assertArg, describeValue, isTypeformerError, TypeformerError } from "./errors.js";
export { withAtomicFile, writeFileAtomic } from "./io/atomic.js";
export type { Logger } from "./logger.js";
export { silentLogger } from "./logger.js";
export type { RandomState } from "./random.js";
export { Random } from "./random.js";
export type {
  SafetensorsHeader,
  SafetensorsTypedArray,
  TensorInfo,
  TensorReader,
  TensorToWrite,
} from "./safetensors.js";
export {
  parseSafetensorsHeader,
  SAFETENSORS_MAX_HEADER_BYTES,
  SafetensorsFile,
  serializeSafetensors,
  tensorByteLength,
  writeSafetensors,
} from "./safetensors.js";
export type { WriteCheckpointOptions } from "./safetensors-checkpoint.js";
export {
  CheckpointReader,
  DEFAULT_MAX_SHARD_BYTES,
  openCheckpoint,
  SAFETENSORS_INDEX_FILE,
  SAFETENSORS_SINGLE_FILE,
  shardFileName,
  writeCheckpoint,
} from "./safetensors-checkpoint.js";
export type { SafetensorsDtype } from "./safetensors-dtypes.js";
export {
  bfloat16ArrayToFloat32,
  bfloat16BitsToFloat32,
  float16ArrayToFloat32,
  float16BitsToFloat32,
  float32ArrayToBfloat16,
  float32ArrayToFloat16,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  isSafetensorsDtype,
  SAFETENSORS_DTYPE_ORDER,
  SAFETENSORS_DTYPE_SIZE,
} from "./safetensors-dtypes.js";
export { registerWasmGapKernels } from "./wasm-gap-kernels.js";
