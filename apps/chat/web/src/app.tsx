import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import {
  ChatApiError,
  type ChatMessage,
  describeError,
  fitToContext,
  listModelInfo,
  type ModelInfo,
  type StreamEvent,
  streamChat,
  streamCompletion,
  type TokenLogprob,
  type Usage,
} from "../../src/client/openai.js";
import { type InsideTab, LookInside } from "./inside.js";
import { DEFAULT_SETTINGS, loadSettings, type Settings, samplingFrom, saveSettings } from "./settings.js";

interface Message {
  id: number;
  role: "user" | "assistant";
  content: string;
  logprobs?: TokenLogprob[];
  /** undefined while streaming */
  finish?: string;
  usage?: Usage;
  error?: string;
  ms?: number;
}

type ServerState =
  | { kind: "checking" }
  | { kind: "ok"; models: string[]; info: ModelInfo[] }
  | { kind: "down"; message: string };

let nextId = 1;

/** "Continue text" mode: the conversation is one text, each turn appended to the last. */
function documentOf(messages: Message[]): string {
  return messages
    .filter((m) => !m.error)
    .map((m) => m.content)
    .join("");
}

export function App() {
  const [settings, setSettingsState] = useState<Settings>(loadSettings);
  const [server, setServer] = useState<ServerState>({ kind: "checking" });
  const [messages, setMessages] = useState<Message[]>([]);
  const [draft, setDraft] = useState("");
  const [streaming, setStreaming] = useState(false);
  const [insideOpen, setInsideOpen] = useState(false);
  const [insideTab, setInsideTab] = useState<InsideTab>("tokens");
  const [sidebarOpen, setSidebarOpen] = useState(() => window.innerWidth > 900);
  const [copied, setCopied] = useState<number | null>(null);
  const abortRef = useRef<AbortController | null>(null);
  const logRef = useRef<HTMLDivElement>(null);
  const inputRef = useRef<HTMLTextAreaElement>(null);

  const setSettings = (patch: Partial<Settings>) =>
    setSettingsState((s) => {
      const next = { ...s, ...patch };
      saveSettings(next);
      return next;
    });

  const refreshModels = useCallback(async () => {
    setServer({ kind: "checking" });
    try {
      const info = await listModelInfo({ baseUrl: settings.baseUrl, apiKey: settings.apiKey || undefined });
      const models = info.map((m) => m.id);
      setServer({ kind: "ok", models, info });
      if (models.length > 0 && !models.includes(settings.model)) setSettings({ model: models[0] });
    } catch (e) {
      setServer({ kind: "down", message: describeError(e) });
    }
  }, [settings.baseUrl, settings.apiKey, settings.model]);
  useEffect(() => {
    void refreshModels();
  }, [settings.baseUrl, settings.apiKey]);

  // keep the newest text in view while streaming, unless the reader scrolled up
  useEffect(() => {
    const el = logRef.current;
    if (!el) return;
    if (el.scrollHeight - el.scrollTop - el.clientHeight < 160) el.scrollTop = el.scrollHeight;
  }, [messages]);

  const modelId = settings.model || (server.kind === "ok" ? (server.models[0] ?? "") : "");
  const contextLength =
    server.kind === "ok" ? server.info.find((m) => m.id === modelId)?.maxModelLen : undefined;

  const generate = async (history: Message[]) => {
    const reply: Message = { id: nextId++, role: "assistant", content: "", logprobs: [] };
    setMessages([...history, reply]);
    setStreaming(true);
    const ctrl = new AbortController();
    abortRef.current = ctrl;
    const apiMessages: ChatMessage[] = [];
    if (settings.systemPrompt.trim()) apiMessages.push({ role: "system", content: settings.systemPrompt });
    for (const m of history) if (!m.error) apiMessages.push({ role: m.role, content: m.content });
    const started = performance.now();
    const update = (patch: Partial<Message>) =>
      setMessages((ms) => ms.map((m) => (m.id === reply.id ? { ...m, ...patch } : m)));
    let content = "";
    let logprobs: TokenLogprob[] = [];
    let finish = "stop";
    let usage: Usage | undefined;
    try {
      const sampling = samplingFrom(settings);
      // a small context (the Moby Dick model has 64 characters): never ask for more than fits
      const fitted = fitToContext(documentOf(history), sampling.max_tokens, contextLength);
      sampling.max_tokens = fitted.maxTokens;
      const common = {
        baseUrl: settings.baseUrl,
        apiKey: settings.apiKey || undefined,
        model: modelId,
        sampling,
        signal: ctrl.signal,
      };
      const open = (topLogprobs: number) =>
        settings.mode === "complete"
          ? streamCompletion({ ...common, topLogprobs, prompt: fitted.prompt })
          : streamChat({ ...common, topLogprobs, messages: apiMessages });
      const consume = async (events: AsyncGenerator<StreamEvent>) => {
        for await (const ev of events) {
          if (ev.type === "delta") {
            content += ev.content;
            if (ev.logprobs.length > 0) logprobs = logprobs.concat(ev.logprobs);
            update({ content, logprobs });
          } else if (ev.type === "finish") finish = ev.reason;
          else if (ev.type === "usage") usage = ev.usage;
        }
      };
      try {
        await consume(open(5));
      } catch (e) {
        // a server without log-probabilities: chat anyway, the Tokens view says what is missing
        if (!(e instanceof ChatApiError && e.status === 400 && /logprob/i.test(e.message) && content === ""))
          throw e;
        await consume(open(0));
      }
      update({ content, logprobs, finish, usage, ms: performance.now() - started });
    } catch (e) {
      if (e instanceof ChatApiError && e.kind === "aborted") {
        update({ content, logprobs, finish: "stopped", ms: performance.now() - started });
      } else {
        update({ content, logprobs, finish: "error", error: describeError(e) });
        if (e instanceof ChatApiError && e.kind === "network") void refreshModels();
      }
    } finally {
      abortRef.current = null;
      setStreaming(false);
      inputRef.current?.focus();
    }
  };

  const send = () => {
    const text = draft.trim();
    if (!text || streaming) return;
    setDraft("");
    const user: Message = { id: nextId++, role: "user", content: text };
    void generate([...messages, user]);
  };

  const stop = () => abortRef.current?.abort();

  const regenerate = () => {
    if (streaming) return;
    let i = messages.length - 1;
    while (i >= 0 && messages[i].role === "assistant") i--;
    if (i < 0) return;
    void generate(messages.slice(0, i + 1));
  };

  const clear = () => {
    stop();
    setMessages([]);
    inputRef.current?.focus();
  };

  const copy = async (m: Message) => {
    try {
      await navigator.clipboard.writeText(m.content);
    } catch {
      const ta = document.createElement("textarea");
      ta.value = m.content;
      document.body.appendChild(ta);
      ta.select();
      document.execCommand("copy");
      ta.remove();
    }
    setCopied(m.id);
    setTimeout(() => setCopied((c) => (c === m.id ? null : c)), 1500);
  };

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape" && abortRef.current) {
        e.preventDefault();
        abortRef.current.abort();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  const lastReplyIndex = messages.map((m) => m.role).lastIndexOf("assistant");
  const lastReply = lastReplyIndex >= 0 ? messages[lastReplyIndex] : undefined;
  const lastPrompt = lastReplyIndex > 0 ? messages[lastReplyIndex - 1]?.content : undefined;
  const models = server.kind === "ok" ? server.models : [];

  return (
    <div class={`shell${insideOpen ? " with-inside" : ""}${sidebarOpen ? "" : " no-sidebar"}`}>
      <a class="skip" href="#composer-input">
        Skip to message box
      </a>
      <header class="topbar">
        <button
          type="button"
          class="icon-btn"
          aria-label={sidebarOpen ? "Hide settings" : "Show settings"}
          aria-expanded={sidebarOpen}
          aria-controls="sidebar"
          onClick={() => setSidebarOpen((o) => !o)}
        >
          ☰
        </button>
        <div class="brand">
          <span class="logo" aria-hidden="true">
            Tf
          </span>
          <h1>Typeformer Chat</h1>
        </div>
        <label class="model-pick">
          <span class="sr-only">Model</span>
          <select
            aria-label="Model"
            value={settings.model}
            disabled={models.length === 0}
            onChange={(e) => setSettings({ model: (e.target as HTMLSelectElement).value })}
          >
            {models.length === 0 && <option value="">no models</option>}
            {models.map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
        </label>
        <span class={`status ${server.kind}`} role="status" data-testid="server-status">
          <span class="dot" aria-hidden="true" />
          <span class="label">
            {server.kind === "checking" ? "connecting…" : server.kind === "ok" ? "connected" : "offline"}
          </span>
          {contextLength !== undefined && <span class="label ctx">· context {contextLength} tokens</span>}
        </span>
        <div class="spacer" />
        <button
          type="button"
          class={insideOpen ? "btn active" : "btn"}
          aria-pressed={insideOpen}
          onClick={() => setInsideOpen((o) => !o)}
          data-testid="look-inside-toggle"
        >
          <svg class="ico" viewBox="0 0 20 20" width="15" height="15" aria-hidden="true">
            <circle cx="8.5" cy="8.5" r="5.5" fill="none" stroke="currentColor" stroke-width="2" />
            <path d="M13 13l4.5 4.5" stroke="currentColor" stroke-width="2" stroke-linecap="round" />
          </svg>{" "}
          Look inside
        </button>
        <button type="button" class="btn" onClick={clear} disabled={messages.length === 0}>
          Clear
        </button>
      </header>

      {sidebarOpen && (
        <aside id="sidebar" class="sidebar" aria-label="Settings">
          <section>
            <h2>Mode</h2>
            <label class="sr-only" for="mode">
              Mode
            </label>
            <select
              id="mode"
              class="full"
              value={settings.mode}
              onChange={(e) =>
                setSettings({ mode: (e.target as HTMLSelectElement).value as Settings["mode"] })
              }
            >
              <option value="chat">Chat</option>
              <option value="complete">Continue text (base models)</option>
            </select>
            <small class="help">
              {settings.mode === "chat"
                ? "Messages are wrapped in the model's chat format (roles and turns)."
                : "Your words and the model's form one running text the model keeps writing: right for a model trained on plain text, such as the Moby Dick model."}
            </small>
          </section>
          <section hidden={settings.mode === "complete"}>
            <h2>System prompt</h2>
            <label class="sr-only" for="system-prompt">
              System prompt
            </label>
            <textarea
              id="system-prompt"
              rows={4}
              value={settings.systemPrompt}
              placeholder="How the assistant should behave"
              onInput={(e) => setSettings({ systemPrompt: (e.target as HTMLTextAreaElement).value })}
            />
          </section>
          <section>
            <h2>Sampling</h2>
            <Slider
              id="temperature"
              label="Temperature"
              min={0}
              max={2}
              step={0.05}
              value={settings.temperature}
              onChange={(v) => setSettings({ temperature: v })}
              help="0 = always the likeliest token"
            />
            <Slider
              id="top-p"
              label="Top-p"
              min={0.05}
              max={1}
              step={0.05}
              value={settings.topP}
              onChange={(v) => setSettings({ topP: v })}
              help="keep the likeliest tokens up to this total probability"
            />
            <Slider
              id="top-k"
              label="Top-k"
              min={0}
              max={200}
              step={1}
              value={settings.topK}
              onChange={(v) => setSettings({ topK: v })}
              help="0 = off"
            />
            <Slider
              id="max-tokens"
              label="Max tokens"
              min={1}
              max={contextLength ?? 2048}
              step={1}
              value={contextLength ? Math.min(settings.maxTokens, contextLength) : settings.maxTokens}
              onChange={(v) => setSettings({ maxTokens: v })}
            />
            <div class="field">
              <label for="seed">Seed</label>
              <input
                id="seed"
                inputMode="numeric"
                placeholder="random"
                value={settings.seed}
                onInput={(e) =>
                  setSettings({ seed: (e.target as HTMLInputElement).value.replace(/[^0-9]/g, "") })
                }
              />
              <small>same seed + same settings = same reply</small>
            </div>
            <button
              type="button"
              class="link"
              onClick={() =>
                setSettings({
                  temperature: DEFAULT_SETTINGS.temperature,
                  topP: DEFAULT_SETTINGS.topP,
                  topK: DEFAULT_SETTINGS.topK,
                  maxTokens: DEFAULT_SETTINGS.maxTokens,
                  seed: "",
                })
              }
            >
              Reset sampling
            </button>
          </section>
          <form
            class="section"
            onSubmit={(e) => {
              e.preventDefault();
              void refreshModels();
            }}
          >
            <h2>Server</h2>
            <div class="field">
              <label for="base-url">API base URL</label>
              <input
                id="base-url"
                placeholder="this page's server"
                value={settings.baseUrl}
                onChange={(e) => setSettings({ baseUrl: (e.target as HTMLInputElement).value.trim() })}
              />
              <small>any OpenAI-compatible server; empty = same origin</small>
            </div>
            <div class="field">
              <label for="api-key">API key</label>
              <input
                id="api-key"
                type="password"
                autoComplete="off"
                placeholder="none"
                value={settings.apiKey}
                onChange={(e) => setSettings({ apiKey: (e.target as HTMLInputElement).value.trim() })}
              />
            </div>
            <button type="submit" class="btn small">
              Reconnect
            </button>
          </form>
        </aside>
      )}

      <main class="chat">
        {server.kind === "down" && (
          <div class="banner error" role="alert" data-testid="server-error">
            {server.message}{" "}
            <button type="button" class="link" onClick={() => void refreshModels()}>
              Retry
            </button>
          </div>
        )}
        <div
          class="log"
          ref={logRef}
          role="log"
          aria-live="polite"
          aria-label="Conversation"
          data-testid="log"
        >
          {messages.length === 0 && (
            <div class="welcome">
              <h2>Talk to a transformer you can look inside.</h2>
              <p>
                Type a message below. Replies stream in token by token; open <strong>Look inside</strong> to
                see how likely each token was, what else the model considered, and where it paid attention.
              </p>
              <div class="suggestions">
                {[
                  "Call me Ishmael.",
                  "Tell me about the white whale.",
                  "Write a short poem about the sea.",
                ].map((s) => (
                  <button
                    type="button"
                    key={s}
                    class="chip"
                    onClick={() => {
                      setDraft(s);
                      inputRef.current?.focus();
                    }}
                  >
                    {s}
                  </button>
                ))}
              </div>
            </div>
          )}
          {messages.map((m, i) => (
            <article
              key={m.id}
              class={`msg ${m.role}${m.error ? " failed" : ""}`}
              aria-label={m.role === "user" ? "You said" : "Assistant replied"}
              data-testid={m.role === "assistant" ? "assistant-message" : "user-message"}
            >
              <div class="avatar" aria-hidden="true">
                {m.role === "user" ? "You" : "Tf"}
              </div>
              <div class="bubble">
                <div class="content">
                  <span data-testid={m.role === "assistant" ? "reply-text" : undefined}>{m.content}</span>
                  {m.role === "assistant" && m.finish === undefined && (
                    <span class="caret" aria-hidden="true" />
                  )}
                  {m.role === "assistant" && m.finish === undefined && m.content === "" && (
                    <span class="thinking">thinking…</span>
                  )}
                </div>
                {m.error && (
                  <div class="error" role="alert" data-testid="reply-error">
                    {m.error}
                    {settings.mode === "chat" && /\b500\b|vocabulary|template/i.test(m.error) && (
                      <div class="hint-row">
                        Trained on plain text only? Such a model cannot read the chat format.{" "}
                        <button type="button" class="link" onClick={() => setSettings({ mode: "complete" })}>
                          Switch to “Continue text”
                        </button>
                      </div>
                    )}
                  </div>
                )}
                {m.role === "assistant" && m.finish !== undefined && (
                  <div class="meta">
                    <span data-testid="finish-reason">
                      {m.finish === "stopped"
                        ? "stopped"
                        : m.finish === "length"
                          ? "hit max tokens"
                          : m.finish === "error"
                            ? "failed"
                            : "done"}
                    </span>
                    {m.usage && <span>{m.usage.completion_tokens} tokens</span>}
                    {m.ms !== undefined && m.usage && m.ms > 0 && (
                      <span>{((m.usage.completion_tokens / m.ms) * 1000).toFixed(1)} tok/s</span>
                    )}
                    <span class="spacer" />
                    {m.content && (
                      <button type="button" class="mini" onClick={() => void copy(m)}>
                        {copied === m.id ? "Copied ✓" : "Copy"}
                      </button>
                    )}
                    {i === messages.length - 1 && (
                      <button type="button" class="mini" onClick={regenerate} disabled={streaming}>
                        ↻ Regenerate
                      </button>
                    )}
                    {i === messages.length - 1 && m.logprobs && m.logprobs.length > 0 && (
                      <button
                        type="button"
                        class="mini"
                        onClick={() => {
                          setInsideOpen(true);
                          setInsideTab("tokens");
                        }}
                      >
                        <svg class="ico" viewBox="0 0 20 20" width="15" height="15" aria-hidden="true">
                          <circle
                            cx="8.5"
                            cy="8.5"
                            r="5.5"
                            fill="none"
                            stroke="currentColor"
                            stroke-width="2"
                          />
                          <path
                            d="M13 13l4.5 4.5"
                            stroke="currentColor"
                            stroke-width="2"
                            stroke-linecap="round"
                          />
                        </svg>{" "}
                        Inspect
                      </button>
                    )}
                  </div>
                )}
              </div>
            </article>
          ))}
        </div>
        <form
          class="composer"
          onSubmit={(e) => {
            e.preventDefault();
            send();
          }}
        >
          <label for="composer-input" class="sr-only">
            Message
          </label>
          <textarea
            id="composer-input"
            ref={inputRef}
            rows={2}
            placeholder={
              server.kind !== "ok"
                ? "Waiting for the server…"
                : settings.mode === "complete"
                  ? "Start a text for the model to continue… (Enter to send)"
                  : "Message the model… (Enter to send, Shift+Enter for a new line)"
            }
            value={draft}
            onInput={(e) => setDraft((e.target as HTMLTextAreaElement).value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
                e.preventDefault();
                send();
              }
            }}
          />
          {streaming ? (
            <button type="button" class="btn stop" onClick={stop} data-testid="stop">
              ■ Stop
            </button>
          ) : (
            <button type="submit" class="btn primary" disabled={!draft.trim()} data-testid="send">
              Send ↵
            </button>
          )}
        </form>
      </main>

      {insideOpen && (
        <LookInside
          tab={insideTab}
          setTab={setInsideTab}
          reply={
            lastReply
              ? {
                  id: lastReply.id,
                  content: lastReply.content,
                  logprobs: lastReply.logprobs ?? [],
                  done: lastReply.finish !== undefined && lastReply.finish !== "error",
                  failed: lastReply.finish === "error",
                }
              : undefined
          }
          prompt={lastPrompt}
          mode={settings.mode}
          document={documentOf(messages)}
          history={messages.map((m) => ({ role: m.role, content: m.content }))}
          baseUrl={settings.baseUrl}
          apiKey={settings.apiKey}
          model={settings.model}
          temperature={settings.temperature}
          onClose={() => setInsideOpen(false)}
        />
      )}
    </div>
  );
}

interface SliderProps {
  id: string;
  label: string;
  min: number;
  max: number;
  step: number;
  value: number;
  help?: string;
  onChange: (v: number) => void;
}

function Slider({ id, label, min, max, step, value, help, onChange }: SliderProps) {
  const set = (raw: string) => {
    const v = Number(raw);
    if (Number.isFinite(v)) onChange(Math.max(min, Math.min(max, v)));
  };
  return (
    <div class="field slider">
      <div class="slider-head">
        <label for={id}>{label}</label>
        <input
          type="number"
          aria-label={`${label} value`}
          min={min}
          max={max}
          step={step}
          value={value}
          onChange={(e) => set((e.target as HTMLInputElement).value)}
        />
      </div>
      <input
        id={id}
        type="range"
        min={min}
        max={max}
        step={step}
        value={value}
        onInput={(e) => set((e.target as HTMLInputElement).value)}
      />
      {help && <small>{help}</small>}
    </div>
  );
}
