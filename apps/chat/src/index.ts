export {
  buildChatApp,
  type ChatAppAsset,
  chatAppDistDir,
  chatAppRoot,
  ensureChatAppBuilt,
  readChatAppAsset,
} from "./assets.js";
export {
  type AttentionResult,
  apiUrl,
  ChatApiError,
  type ChatMessage,
  type ChatRequest,
  type ClientOptions,
  type CompletionRequest,
  describeError,
  errorFromResponse,
  fetchAttention,
  fitToContext,
  listModelInfo,
  listModels,
  type ModelInfo,
  normalizeAttention,
  type Role,
  type SamplingOptions,
  type StreamEvent,
  streamChat,
  streamCompletion,
  type TokenLogprob,
  type TopLogprob,
  type Usage,
} from "./client/openai.js";
export { type SseEvent, SseParser } from "./client/sse.js";
export { createDemoModelDir, type DemoModelOptions } from "./demo-model.js";
export { type ChatUiServer, type ChatUiServerOptions, startChatUiServer } from "./ui-server.js";
