import type { SamplingOptions } from "../../src/client/openai.js";

export interface Settings {
  /** "chat": /v1/chat/completions with roles; "complete": /v1/completions continuing one running text */
  mode: "chat" | "complete";
  baseUrl: string;
  apiKey: string;
  model: string;
  systemPrompt: string;
  temperature: number;
  topP: number;
  /** 0 = off */
  topK: number;
  maxTokens: number;
  /** "" = a fresh random seed each time */
  seed: string;
}

export const DEFAULT_SETTINGS: Settings = {
  mode: "chat",
  baseUrl: "",
  apiKey: "",
  model: "",
  systemPrompt: "You are a helpful assistant.",
  temperature: 0.8,
  topP: 0.95,
  topK: 40,
  maxTokens: 200,
  seed: "",
};

const KEY = "typeformer-chat:settings";

export function loadSettings(): Settings {
  let saved: Partial<Settings> = {};
  try {
    saved = JSON.parse(localStorage.getItem(KEY) ?? "{}") as Partial<Settings>;
  } catch {
    saved = {};
  }
  const s = { ...DEFAULT_SETTINGS, ...saved };
  // ?api=http://host:port points the page at another OpenAI-compatible server
  const api = new URLSearchParams(location.search).get("api");
  if (api !== null) s.baseUrl = api;
  // ?mode=complete opens the page in "continue text" mode (typeformer chat-ui does so for base models)
  const mode = new URLSearchParams(location.search).get("mode");
  if (mode === "chat" || mode === "complete") s.mode = mode;
  return s;
}

export function saveSettings(s: Settings): void {
  try {
    localStorage.setItem(KEY, JSON.stringify(s));
  } catch {
    // private mode: settings simply do not persist
  }
}

export function samplingFrom(s: Settings): SamplingOptions {
  const out: SamplingOptions = {
    temperature: s.temperature,
    top_p: s.topP,
    max_tokens: s.maxTokens,
  };
  if (s.topK > 0) out.top_k = s.topK;
  const seed = Number.parseInt(s.seed, 10);
  if (s.seed.trim() !== "" && Number.isFinite(seed)) out.seed = seed;
  return out;
}
