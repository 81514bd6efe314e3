import { useEffect, useRef, useState } from "preact/hooks";
import { showToken } from "./format.js";

interface HeatmapProps {
  tokens: string[];
  /** weights[i][j]: how much query token i attends to key token j (rows sum to 1) */
  weights: number[][];
  label: string;
}

/** Light-to-indigo colour for a weight in [0, 1]; sqrt makes small weights visible. */
function color(w: number): string {
  const t = Math.sqrt(Math.max(0, Math.min(1, w)));
  const from = [248, 250, 252];
  const to = [67, 56, 202];
  const c = from.map((f, k) => Math.round(f + (to[k] - f) * t));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/**
 * Attention weights as a T×T grid on a canvas. Rows are queries (the token doing the looking), columns
 * are keys (the tokens looked at). Keyboard: focus the grid and move the cursor with the arrow keys.
 */
export function Heatmap({ tokens, weights, label }: HeatmapProps) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const box = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(440);
  useEffect(() => {
    const el = box.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(() => setWidth(el.clientWidth));
    ro.observe(el);
    setWidth(el.clientWidth);
    return () => ro.disconnect();
  }, []);
  const T = tokens.length;
  const showLabels = T <= 40;
  // fill the panel's width: one square cell per token pair, 3 to 22 px
  const cell = Math.max(3, Math.min(22, Math.floor((width - (showLabels ? 76 : 2)) / Math.max(1, T))));
  const [cursor, setCursor] = useState<[number, number] | null>(null);

  useEffect(() => {
    const el = canvas.current;
    if (!el) return;
    const dpr = window.devicePixelRatio || 1;
    el.width = T * cell * dpr;
    el.height = T * cell * dpr;
    el.style.width = `${T * cell}px`;
    el.style.height = `${T * cell}px`;
    const ctx = el.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, T * cell, T * cell);
    for (let i = 0; i < T; i++) {
      const row = weights[i] ?? [];
      for (let j = 0; j < T; j++) {
        ctx.fillStyle = color(row[j] ?? 0);
        ctx.fillRect(j * cell, i * cell, cell, cell);
      }
    }
    if (cursor) {
      const [i, j] = cursor;
      ctx.strokeStyle = "#f59e0b";
      ctx.lineWidth = 2;
      ctx.strokeRect(j * cell + 1, i * cell + 1, cell - 2, cell - 2);
    }
  }, [weights, T, cell, cursor]);

  const at = (e: MouseEvent): [number, number] | null => {
    const el = canvas.current;
    if (!el) return null;
    const r = el.getBoundingClientRect();
    const i = Math.floor((e.clientY - r.top) / cell);
    const j = Math.floor((e.clientX - r.left) / cell);
    return i >= 0 && j >= 0 && i < T && j < T ? [i, j] : null;
  };

  const onKey = (e: KeyboardEvent) => {
    const [i, j] = cursor ?? [T - 1, 0];
    const moves: Record<string, [number, number]> = {
      ArrowUp: [i - 1, j],
      ArrowDown: [i + 1, j],
      ArrowLeft: [i, j - 1],
      ArrowRight: [i, j + 1],
      Home: [i, 0],
      End: [i, T - 1],
    };
    const next = moves[e.key];
    if (!next) return;
    e.preventDefault();
    setCursor([Math.max(0, Math.min(T - 1, next[0])), Math.max(0, Math.min(T - 1, next[1]))]);
  };

  const readout = cursor
    ? `“${showToken(tokens[cursor[0]])}” (#${cursor[0]}) → “${showToken(tokens[cursor[1]])}” (#${cursor[1]}): ${((weights[cursor[0]]?.[cursor[1]] ?? 0) * 100).toFixed(1)}%`
    : "Hover a cell, or focus the grid and use the arrow keys.";

  return (
    <figure class="heatmap">
      <div class="heatmap-grid" ref={box} style={{ "--cell": `${cell}px` }}>
        {showLabels && (
          <div class="heatmap-cols" aria-hidden="true">
            {tokens.map((t, j) => (
              <span key={j} class={cursor?.[1] === j ? "hl" : ""}>
                {showToken(t)}
              </span>
            ))}
          </div>
        )}
        <div class="heatmap-body">
          {showLabels && (
            <div class="heatmap-rows" aria-hidden="true">
              {tokens.map((t, i) => (
                <span key={i} class={cursor?.[0] === i ? "hl" : ""}>
                  {showToken(t)}
                </span>
              ))}
            </div>
          )}
          <canvas
            ref={canvas}
            role="img"
            tabIndex={0}
            aria-label={`${label}: attention weights, ${T} by ${T} tokens. Use the arrow keys to read cells.`}
            data-testid="heatmap"
            onMouseMove={(e) => setCursor(at(e))}
            onKeyDown={onKey}
          />
        </div>
      </div>
      <figcaption aria-live="polite" class="heatmap-readout">
        {readout}
      </figcaption>
      <div class="heatmap-legend" aria-hidden="true">
        <span>0%</span>
        <span class="ramp" />
        <span>100%</span>
      </div>
    </figure>
  );
}
