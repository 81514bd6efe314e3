import { appendFile, readFile } from "node:fs/promises";
import type { ComputeCost } from "./compute-cost.js";
import { writeFileAtomic } from "./fs-util.js";

/** One line of `metrics.jsonl`. */
export interface StepMetrics {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  tokensPerSec: number;
  msPerStep: number;
  valLoss?: number;
  valPerplexity?: number;
}

/** Appends one JSON object per line. */
export async function appendJsonl(file: string, obj: unknown): Promise<void> {
  await appendFile(file, `${JSON.stringify(obj)}\n`);
}

/** Reads a JSONL file, keeping lines for which `keep` is true (used to truncate metrics on resume). */
export async function readJsonl<T>(file: string): Promise<T[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return [];
  }
  const out: T[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as T);
    } catch {
      // a torn last line from a killed process
    }
  }
  return out;
}

/**
 * Renders the training and validation loss curves as an SVG with vega-lite (compiled to vega, rendered
 * headless — no canvas needed).
 */
export async function renderLossCurveSvg(
  points: { step: number; loss?: number; valLoss?: number }[],
  title = "loss",
): Promise<string> {
  const [vega, vl] = await Promise.all([import("vega"), import("vega-lite")]);
  const values: { step: number; loss: number; split: string }[] = [];
  for (const p of points) {
    if (p.loss !== undefined && Number.isFinite(p.loss))
      values.push({ step: p.step, loss: p.loss, split: "train" });
    if (p.valLoss !== undefined && Number.isFinite(p.valLoss))
      values.push({ step: p.step, loss: p.valLoss, split: "validation" });
  }
  const spec = {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title,
    width: 640,
    height: 360,
    data: { values },
    mark: { type: "line", point: false, strokeWidth: 1.5 },
    encoding: {
      x: { field: "step", type: "quantitative", title: "step" },
      y: { field: "loss", type: "quantitative", title: "cross-entropy (nats)", scale: { zero: false } },
      color: { field: "split", type: "nominal", title: null },
    },
  };
  // biome-ignore lint/suspicious/noExplicitAny: vega-lite's TopLevelSpec type is very wide
  const compiled = vl.compile(spec as any).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Writes the SVG loss curve atomically. */
export async function writeLossCurve(file: string, points: StepMetrics[], title?: string): Promise<void> {
  await writeFileAtomic(file, await renderLossCurveSvg(points, title));
}

/** Summary written to `report.json` at the end of a run. */
export interface RunReport {
  parameters: number;
  steps: number;
  tokensSeen: number;
  /** Training FLOPs: flopsPerToken · tokens (6·N·D + attention by default 6·N·D). */
  flops: number;
  flopsPerToken: number;
  wallTimeSec: number;
  achievedFlopsPerSec: number;
  tokensPerSec: number;
  peakRssBytes: number;
  peakTensorBytes: number;
  finalLoss: number | null;
  finalValLoss: number | null;
  bestValLoss: number | null;
  backend: string;
  /** FLOPs, achieved FLOP/s, energy and CO₂ estimate with the assumptions shown. */
  cost?: ComputeCost;
}
