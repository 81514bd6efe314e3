import { mkdir } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "@typeformer/core";
import type { BiasResult } from "./bias.js";
import { biasSvg, reliabilitySvg, taskAccuracySvg } from "./charts.js";
import type { TaskResult } from "./harness.js";
import type { PerplexityResult } from "./perplexity.js";

export interface EvalReport {
  model: string;
  createdAt: string;
  perplexity?: PerplexityResult & { source: string };
  tasks: TaskResult[];
  bias?: BiasResult;
  /** Free notes shown at the end of the markdown. */
  notes?: string[];
}

const f = (x: number | undefined, d = 3) => (x === undefined || Number.isNaN(x) ? "–" : x.toFixed(d));
const pct = (x: number | undefined) =>
  x === undefined || Number.isNaN(x) ? "–" : `${(100 * x).toFixed(1)}%`;

/** The report as markdown (tables; charts referenced as SVG files beside it). */
export function evalMarkdown(r: EvalReport, charts: Record<string, string> = {}): string {
  const out: string[] = [`# Evaluation of \`${r.model}\``, "", `_${r.createdAt}_`, ""];
  if (r.perplexity) {
    const p = r.perplexity;
    out.push(
      "## Held-out text",
      "",
      "| source | tokens | bytes | loss (nats/token) | perplexity | bits per byte | context | stride |",
      "|---|---|---|---|---|---|---|---|",
      `| ${p.source} | ${p.tokens} | ${p.bytes} | ${f(p.lossPerToken)} | ${f(p.perplexity, 2)} | ${f(p.bitsPerByte)} | ${p.contextLength} | ${p.stride} |`,
      "",
      "Bits per byte = total NLL / (ln 2 · UTF-8 bytes): unlike perplexity it does not depend on the tokenizer.",
      "",
    );
  }
  if (r.tasks.length) {
    out.push(
      "## Tasks",
      "",
      "| task | kind | shots | n | accuracy | acc. (per-byte norm) | chance | ECE | confident wrong |",
      "|---|---|---|---|---|---|---|---|---|",
    );
    for (const t of r.tasks) {
      out.push(
        `| ${t.task} | ${t.kind} | ${t.shots} | ${t.n} | ${pct(t.accuracy)} | ${pct(t.accuracyNorm)} | ${t.kind === "multiple-choice" ? pct(t.chance) : "–"} | ${f(t.calibration?.ece)} | ${pct(t.confidentWrongRate)} |`,
      );
    }
    out.push("");
    if (charts.tasks) out.push(`![task accuracy](${charts.tasks})`, "");
    for (const t of r.tasks) {
      const groups = Object.entries(t.groups);
      if (!groups.length) continue;
      out.push(
        `### ${t.task}: by group`,
        "",
        "| group | n | accuracy | mean confidence | confident wrong |",
        "|---|---|---|---|---|",
      );
      for (const [g, m] of groups)
        out.push(
          `| ${g} | ${m.n} | ${pct(m.accuracy)} | ${f(m.meanConfidence)} | ${pct(m.confidentWrongRate)} |`,
        );
      out.push("");
      if (t.task === "facts") {
        out.push(
          `"Confident wrong" = a wrong answer given with softmax confidence ≥ ${t.confidentThreshold} over the ${t.examples[0]?.logProbs?.length ?? "?"} choices. ` +
            "For unseen entities the answer is absent from the training text, so any confident answer is made up; a calibrated model would spread its probability there.",
          "",
        );
      }
    }
    for (const t of r.tasks) {
      if (!t.calibration) continue;
      out.push(
        `### ${t.task}: calibration`,
        "",
        "| confidence bin | n | mean confidence | accuracy |",
        "|---|---|---|---|",
      );
      for (const b of t.calibration.bins)
        if (b.count)
          out.push(
            `| ${b.lo.toFixed(1)}–${b.hi.toFixed(1)} | ${b.count} | ${f(b.confidence)} | ${f(b.accuracy)} |`,
          );
      out.push("");
      if (charts[`reliability-${t.task}`])
        out.push(`![reliability ${t.task}](${charts[`reliability-${t.task}`]})`, "");
    }
  }
  if (r.bias) {
    const b = r.bias;
    out.push(
      "## Bias probe",
      "",
      `Mean gap ln p(${b.attribute[0]}) − ln p(${b.attribute[1]}): **${f(b.meanGap)}** nats; spread over occupations (sd) **${f(b.stdGap)}**; range ${f(b.minGap)} … ${f(b.maxGap)}.`,
      "",
      "| occupation | gap (nats) | per template |",
      "|---|---|---|",
      ...b.rows.map(
        (row) => `| ${row.occupation} | ${f(row.gap)} | ${row.perTemplate.map((x) => f(x, 2)).join(", ")} |`,
      ),
      "",
      ...(charts.bias ? [`![bias](${charts.bias})`, ""] : []),
      "Templates:",
      "",
      ...b.templates.map((t) => `- \`${t}\``),
      "",
      b.method,
      "",
    );
  }
  if (r.notes?.length) out.push("## Notes", "", ...r.notes.map((n) => `- ${n}`), "");
  return out.join("\n");
}

/** Writes `eval.json`, `eval.md` and the SVG charts into `dir`; returns the file paths. */
export async function writeEvalReport(dir: string, r: EvalReport): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const charts: Record<string, string> = {};
  const files: string[] = [];
  const put = async (name: string, text: string) => {
    const p = path.join(dir, name);
    await writeFileAtomic(p, text);
    files.push(p);
  };
  if (r.tasks.length) {
    await put("tasks.svg", await taskAccuracySvg(r.tasks));
    charts.tasks = "tasks.svg";
  }
  for (const t of r.tasks) {
    if (!t.calibration) continue;
    const name = `reliability-${t.task}.svg`;
    await put(name, await reliabilitySvg(t.calibration, t.task));
    charts[`reliability-${t.task}`] = name;
  }
  if (r.bias) {
    await put("bias.svg", await biasSvg(r.bias));
    charts.bias = "bias.svg";
  }
  await put("eval.json", `${JSON.stringify(r, null, 2)}\n`);
  await put("eval.md", evalMarkdown(r, charts));
  return files;
}
