import { useEffect, useMemo, useState } from "preact/hooks";
import {
  type AttentionResult,
  ChatApiError,
  type ChatMessage,
  describeError,
  fetchAttention,
  type TokenLogprob,
} from "../../src/client/openai.js";
import { pct, probColor, reweight, showToken } from "./format.js";
import { Heatmap } from "./heatmap.js";

export type InsideTab = "tokens" | "attention" | "concepts";

interface InsideProps {
  tab: InsideTab;
  setTab: (t: InsideTab) => void;
  /** the last assistant reply, if any */
  reply?: { content: string; logprobs: TokenLogprob[]; done: boolean; failed: boolean; id: number };
  /** the user message that prompted it */
  prompt?: string;
  /** "complete": the conversation is one plain text (base models); attention is asked for that text */
  mode: "chat" | "complete";
  /** in "complete" mode, the whole text the model continued, reply included */
  document: string;
  history: ChatMessage[];
  baseUrl: string;
  apiKey: string;
  model: string;
  temperature: number;
  onClose: () => void;
}

const TABS: { id: InsideTab; label: string }[] = [
  { id: "tokens", label: "Tokens" },
  { id: "attention", label: "Attention" },
  { id: "concepts", label: "How it works" },
];

export function LookInside(props: InsideProps) {
  const { tab, setTab } = props;
  const onTabKey = (e: KeyboardEvent) => {
    const i = TABS.findIndex((t) => t.id === tab);
    const d = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
    if (!d) return;
    e.preventDefault();
    const next = TABS[(i + d + TABS.length) % TABS.length].id;
    setTab(next);
    document.getElementById(`tab-${next}`)?.focus();
  };
  return (
    <aside class="inside" aria-labelledby="inside-title" data-testid="look-inside">
      <header class="inside-head">
        <h2 id="inside-title">Look inside</h2>
        <button type="button" class="icon-btn" onClick={props.onClose} aria-label="Close look inside">
          ✕
        </button>
      </header>
      <div class="tabs" role="tablist" aria-label="Look inside views" onKeyDown={onTabKey}>
        {TABS.map((t) => (
          <button
            type="button"
            key={t.id}
            id={`tab-${t.id}`}
            role="tab"
            aria-selected={tab === t.id}
            aria-controls={`panel-${t.id}`}
            tabIndex={tab === t.id ? 0 : -1}
            class={tab === t.id ? "tab active" : "tab"}
            onClick={() => setTab(t.id)}
          >
            {t.label}
          </button>
        ))}
      </div>
      <div class="inside-body" role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`}>
        {tab === "tokens" && <TokensView {...props} />}
        {tab === "attention" && <AttentionView {...props} />}
        {tab === "concepts" && <Concepts temperature={props.temperature} setTab={setTab} />}
      </div>
    </aside>
  );
}

function TokensView({ reply, temperature, setTab }: InsideProps) {
  const [sel, setSel] = useState<number | null>(null);
  const tokens = reply?.logprobs ?? [];
  useEffect(() => setSel(null), [reply?.id]);
  if (!reply) return <p class="empty">Send a message: the reply's tokens appear here.</p>;
  if (tokens.length === 0)
    return (
      <p class="empty">
        {reply.failed
          ? "The last reply failed: there are no tokens to show."
          : reply.done
            ? "The server sent no log-probabilities for this reply (it may not support `logprobs`)."
            : "Waiting for tokens…"}
      </p>
    );
  const active = sel !== null ? tokens[sel] : undefined;
  const mean = tokens.reduce((a, t) => a + t.logprob, 0) / tokens.length;
  return (
    <div class="tokens-view">
      <p class="hint">
        The reply as the model produced it, one <strong>token</strong> at a time. Colour = probability the
        model gave the token it picked (green confident, red surprising). Hover or focus a token to see the
        alternatives.{" "}
        <button type="button" class="link" onClick={() => setTab("concepts")}>
          What is a token?
        </button>
      </p>
      {/* one tab stop for the whole reply; arrow keys, Home and End move between tokens */}
      <fieldset
        class="token-stream"
        data-testid="token-stream"
        onKeyDown={(e) => {
          const cur = sel ?? 0;
          const next =
            e.key === "ArrowRight" || e.key === "ArrowDown"
              ? cur + 1
              : e.key === "ArrowLeft" || e.key === "ArrowUp"
                ? cur - 1
                : e.key === "Home"
                  ? 0
                  : e.key === "End"
                    ? tokens.length - 1
                    : null;
          if (next === null) return;
          e.preventDefault();
          const k = Math.max(0, Math.min(tokens.length - 1, next));
          setSel(k);
          (e.currentTarget as HTMLElement).querySelectorAll<HTMLElement>("button")[k]?.focus();
        }}
      >
        <legend class="sr-only">Reply tokens (arrow keys move between them)</legend>
        {tokens.map((t, i) => (
          <button
            type="button"
            key={i}
            tabIndex={i === (sel ?? 0) ? 0 : -1}
            class={sel === i ? "tok sel" : "tok"}
            style={{ background: probColor(t.logprob) }}
            aria-label={`Token ${i + 1}: “${showToken(t.token)}”, probability ${pct(t.logprob)}`}
            title={`${pct(t.logprob)}`}
            onMouseEnter={() => setSel(i)}
            onFocus={() => setSel(i)}
            onClick={() => setSel(i)}
          >
            {showToken(t.token)}
          </button>
        ))}
      </fieldset>
      <div class="stats">
        {tokens.length} tokens · average probability {pct(mean)} · perplexity {Math.exp(-mean).toFixed(2)}
      </div>
      <div class="token-detail" aria-live="polite" data-testid="token-detail">
        {active ? (
          <TokenDetail t={active} temperature={temperature} index={sel!} />
        ) : (
          <p class="empty">Hover or focus a token to see its top-5 alternatives.</p>
        )}
      </div>
    </div>
  );
}

function TokenDetail({ t, temperature, index }: { t: TokenLogprob; temperature: number; index: number }) {
  const alts = t.top_logprobs.slice(0, 5);
  // a sampled token can lie outside the top 5: show it too, so the pick is always visible
  if (!alts.some((a) => a.token === t.token)) alts.push({ token: t.token, logprob: t.logprob });
  const atT = reweight(
    alts.map((a) => a.logprob),
    temperature,
  );
  return (
    <div>
      <h3>
        Token #{index + 1}: <code>{showToken(t.token)}</code> — {pct(t.logprob)}
      </h3>
      <table class="alts">
        <caption class="sr-only">Top alternatives for this position</caption>
        <thead>
          <tr>
            <th scope="col">candidate</th>
            <th scope="col">probability</th>
            <th scope="col" title={`Renormalised over these candidates at temperature ${temperature}`}>
              at T={temperature}
            </th>
          </tr>
        </thead>
        <tbody>
          {alts.map((a, k) => (
            <tr key={k} class={a.token === t.token ? "chosen" : ""}>
              <td>
                <code>{showToken(a.token)}</code>
                {a.token === t.token && <span class="badge">picked</span>}
              </td>
              <td>
                <span class="bar" style={{ width: `${Math.exp(a.logprob) * 100}%` }} />
                {pct(a.logprob)}
              </td>
              <td>
                <span class="bar alt" style={{ width: `${atT[k] * 100}%` }} />
                {(atT[k] * 100).toFixed(1)}%
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function AttentionView({ reply, prompt, baseUrl, apiKey, model, setTab, mode, document: doc }: InsideProps) {
  const [data, setData] = useState<AttentionResult | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [layer, setLayer] = useState(0);
  const [head, setHead] = useState<number>(-1);
  const text = !reply
    ? ""
    : mode === "complete"
      ? doc
      : `${prompt ?? ""}${prompt ? "\n" : ""}${reply.content}`;
  const ready = reply?.done === true;

  useEffect(() => {
    if (!ready || !text) return;
    const ctrl = new AbortController();
    setLoading(true);
    setError(null);
    const base = { baseUrl, apiKey: apiKey || undefined, model, text, signal: ctrl.signal };
    const messages: ChatMessage[] = [
      ...(prompt ? [{ role: "user" as const, content: prompt }] : []),
      { role: "assistant", content: reply?.content ?? "" },
    ];
    // the prompt and reply as the model saw them (chat template, or the plain text in "complete" mode); the
    // reply alone if that is too long
    fetchAttention(mode === "complete" ? base : { ...base, messages })
      .catch((e) => {
        if (e instanceof ChatApiError && e.status === 400 && !ctrl.signal.aborted)
          return fetchAttention({ ...base, text: reply?.content ?? "" });
        throw e;
      })
      .then((r) => {
        setData(r);
        setLayer((l) => Math.min(l, r.layers.length - 1));
        setHead((h) => Math.min(h, (r.layers[0]?.length ?? 1) - 1));
      })
      .catch((e) => {
        if (!ctrl.signal.aborted) setError(describeError(e));
      })
      .finally(() => {
        if (!ctrl.signal.aborted) setLoading(false);
      });
    return () => ctrl.abort();
  }, [ready, text, baseUrl, apiKey, model, mode]);

  const weights = useMemo(() => {
    if (!data) return null;
    const heads = data.layers[layer] ?? [];
    if (head >= 0) return heads[head] ?? null;
    // average over heads
    const T = data.tokens.length;
    const avg = Array.from({ length: T }, () => new Array<number>(T).fill(0));
    for (const h of heads)
      for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) avg[i][j] += (h[i]?.[j] ?? 0) / heads.length;
    return avg;
  }, [data, layer, head]);

  if (!reply) return <p class="empty">Send a message: the attention of prompt and reply appears here.</p>;
  if (reply.failed) return <p class="empty">The last reply failed: there is nothing to look at.</p>;
  if (!ready) return <p class="empty">The heatmap loads when the reply is finished.</p>;
  const nHeads = data?.layers[layer]?.length ?? 0;
  return (
    <div class="attention-view">
      <p class="hint">
        Each row is a token looking back at the tokens before it: a dark cell means that token took much of
        its information from that column's token.{" "}
        <button type="button" class="link" onClick={() => setTab("concepts")}>
          What is attention?
        </button>
      </p>
      {data && (
        <div class="row controls">
          <div class="control">
            <label for="att-layer">Layer</label>
            <select
              id="att-layer"
              value={layer}
              onChange={(e) => setLayer(Number((e.target as HTMLSelectElement).value))}
            >
              {data.layers.map((_, l) => (
                <option key={l} value={l}>
                  {l + 1} of {data.layers.length}
                </option>
              ))}
            </select>
          </div>
          <div class="control">
            <label for="att-head">Head</label>
            <select
              id="att-head"
              value={head}
              onChange={(e) => setHead(Number((e.target as HTMLSelectElement).value))}
            >
              <option value={-1}>average of {nHeads} heads</option>
              {Array.from({ length: nHeads }, (_, h) => (
                <option key={h} value={h}>
                  {h + 1}
                </option>
              ))}
            </select>
          </div>
        </div>
      )}
      {loading && <p class="empty">Computing attention…</p>}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {data && weights && (
        <Heatmap
          tokens={data.tokens}
          weights={weights}
          label={`Layer ${layer + 1}, ${head < 0 ? "average of heads" : `head ${head + 1}`}`}
        />
      )}
    </div>
  );
}

function Concepts({ temperature, setTab }: { temperature: number; setTab: (t: InsideTab) => void }) {
  return (
    <div class="concepts">
      <section id="concept-tokens">
        <h3>Tokens</h3>
        <p>
          The model never sees letters or words: a <em>tokenizer</em> cuts text into pieces from a fixed
          vocabulary (whole words, word parts, single characters) and gives each an id. The model reads those
          ids and, at every step, outputs one probability for every token in the vocabulary — its guess for
          what comes next.
        </p>
        <button type="button" class="link" onClick={() => setTab("tokens")}>
          See the reply's tokens and their probabilities →
        </button>
      </section>
      <section id="concept-temperature">
        <h3>Sampling and temperature</h3>
        <p>
          To write a reply, the model repeatedly picks one token from its guess and appends it.{" "}
          <em>Temperature</em> reshapes the guess before picking: probabilities become p<sup>1/T</sup>,
          renormalised. Below 1 the favourite wins more often (focused, repetitive); above 1 unlikely tokens
          get a chance (creative, erratic); 0 always takes the top token. <em>Top-k</em> keeps only the k
          likeliest tokens, <em>top-p</em> the smallest set whose probabilities add up to p. A fixed{" "}
          <em>seed</em> makes the draw repeatable.
        </p>
        <p>
          Your temperature is <strong>{temperature}</strong>: the “at T” column of the Tokens view shows what
          it does to each position's alternatives.
        </p>
      </section>
      <section id="concept-attention">
        <h3>Attention</h3>
        <p>
          Inside each layer, every token builds a <em>query</em> and compares it with the <em>keys</em> of the
          tokens before it (never after: the model cannot see the future, so the heatmap is a triangle). The
          softmax of those scores is the attention weight: how much of each earlier token's <em>value</em>{" "}
          flows into this one. A layer has several heads, each free to learn its own pattern — previous token,
          first token, matching words.
        </p>
        <button type="button" class="link" onClick={() => setTab("attention")}>
          See the attention heatmap →
        </button>
      </section>
    </div>
  );
}
