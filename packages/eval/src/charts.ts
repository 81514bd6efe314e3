import type { BiasResult } from "./bias.js";
import type { CalibrationResult } from "./calibration.js";
import type { TaskResult } from "./harness.js";
import { type PowerLawFit, powerLaw } from "./power-law.js";

/** Renders a vega-lite spec to SVG headless (vega's SVG renderer needs no canvas). */
export async function renderVegaLiteSvg(spec: Record<string, unknown>): Promise<string> {
  const [vega, vl] = await Promise.all([import("vega"), import("vega-lite")]);
  const top = { $schema: "https://vega.github.io/schema/vega-lite/v5.json", ...spec };
  const compiled = vl.compile(top as unknown as Parameters<typeof vl.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Reliability diagram: accuracy per confidence bin (bars, with counts) against the diagonal. */
export function reliabilitySvg(cal: CalibrationResult, title = "reliability"): Promise<string> {
  const bins = cal.bins
    .filter((b) => b.count > 0)
    .map((b) => ({
      mid: (b.lo + b.hi) / 2,
      lo: b.lo,
      hi: b.hi,
      accuracy: b.accuracy,
      confidence: b.confidence,
      count: b.count,
    }));
  return renderVegaLiteSvg({
    title: `${title} (ECE ${cal.ece.toFixed(3)}, n = ${cal.n})`,
    width: 360,
    height: 360,
    layer: [
      {
        data: { values: bins },
        mark: { type: "bar", opacity: 0.6, stroke: "white" },
        encoding: {
          x: { field: "lo", type: "quantitative", scale: { domain: [0, 1] }, title: "confidence" },
          x2: { field: "hi" },
          y: {
            field: "accuracy",
            type: "quantitative",
            scale: { domain: [0, 1], nice: false },
            title: "accuracy",
          },
          y2: { datum: 0 },
        },
      },
      {
        data: { values: bins },
        mark: { type: "point", filled: true, color: "black" },
        encoding: {
          x: { field: "confidence", type: "quantitative" },
          y: { field: "accuracy", type: "quantitative" },
          size: { field: "count", type: "quantitative", title: "examples" },
        },
      },
      {
        data: {
          values: [
            { x: 0, y: 0 },
            { x: 1, y: 1 },
          ],
        },
        mark: { type: "line", strokeDash: [4, 4], color: "gray" },
        encoding: { x: { field: "x", type: "quantitative" }, y: { field: "y", type: "quantitative" } },
      },
    ],
  });
}

/** Per-occupation log-probability gap, sorted. */
export function biasSvg(bias: BiasResult): Promise<string> {
  return renderVegaLiteSvg({
    title: `ln p(${bias.attribute[0]}) − ln p(${bias.attribute[1]}) per occupation (mean ${bias.meanGap.toFixed(2)}, sd ${bias.stdGap.toFixed(2)})`,
    width: 480,
    height: { step: 16 },
    data: { values: bias.rows.map((r) => ({ occupation: r.occupation, gap: r.gap })) },
    mark: "bar",
    encoding: {
      y: { field: "occupation", type: "nominal", sort: "-x", title: null },
      x: { field: "gap", type: "quantitative", title: "gap (nats)" },
      color: { condition: { test: "datum.gap >= 0", value: "#4c78a8" }, value: "#e45756" },
    },
  });
}

/** Accuracy per task against chance. */
export function taskAccuracySvg(tasks: TaskResult[]): Promise<string> {
  const values = tasks.flatMap((t) => [
    { task: `${t.task} (${t.shots}-shot)`, metric: "accuracy", value: t.accuracy },
    ...(t.kind === "multiple-choice"
      ? [{ task: `${t.task} (${t.shots}-shot)`, metric: "chance", value: t.chance }]
      : []),
  ]);
  return renderVegaLiteSvg({
    title: "task accuracy",
    width: 480,
    height: { step: 14 },
    data: { values },
    mark: "bar",
    encoding: {
      y: { field: "task", type: "nominal", title: null },
      yOffset: { field: "metric" },
      x: { field: "value", type: "quantitative", scale: { domain: [0, 1] }, title: null },
      color: { field: "metric", type: "nominal", title: null },
    },
  });
}

/** Log-log plot of final loss against non-embedding parameters, with the fitted L(N). */
export function scalingSvg(
  points: { parameters: number; loss: number; name: string }[],
  fit: PowerLawFit,
  xTitle = "non-embedding parameters N",
): Promise<string> {
  const lo = Math.min(...points.map((p) => p.parameters)) / 1.5;
  const hi = Math.max(...points.map((p) => p.parameters)) * 1.5;
  const losses = points.map((p) => p.loss);
  const yDomain = [Math.min(...losses) * 0.92, Math.max(...losses) * 1.08];
  const curve = Array.from({ length: 60 }, (_, i) => {
    const n = lo * (hi / lo) ** (i / 59);
    return { parameters: n, loss: powerLaw(fit, n) };
  });
  return renderVegaLiteSvg({
    title: `L(N) = ${fit.a.toPrecision(3)}·N^−${fit.alpha.toFixed(3)} + ${fit.c.toFixed(3)}  (R² ${fit.r2.toFixed(3)})`,
    width: 480,
    height: 320,
    layer: [
      {
        data: { values: curve },
        mark: { type: "line", color: "#e45756" },
        encoding: {
          x: {
            field: "parameters",
            type: "quantitative",
            scale: { type: "log" },
            title: xTitle,
          },
          y: {
            field: "loss",
            type: "quantitative",
            scale: { type: "log", domain: yDomain, nice: false, clamp: true },
            title: "validation loss (nats/token)",
          },
        },
      },
      {
        data: { values: points },
        mark: { type: "point", filled: true, size: 70, color: "#4c78a8" },
        encoding: {
          x: { field: "parameters", type: "quantitative" },
          y: { field: "loss", type: "quantitative" },
          tooltip: [{ field: "name" }, { field: "parameters" }, { field: "loss" }],
        },
      },
    ],
  });
}
