import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect, it } from "vitest";
import { expectedCalibrationError } from "./calibration.js";
import { scalingSvg } from "./charts.js";
import type { TaskResult } from "./harness.js";
import { fitPowerLaw } from "./power-law.js";
import { writeEvalReport } from "./report.js";

it("writeEvalReport: JSON, markdown tables and vega SVG charts", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "tf-eval-"));
  try {
    const task: TaskResult = {
      task: "facts",
      description: "d",
      kind: "multiple-choice",
      shots: 2,
      seed: 0,
      n: 4,
      accuracy: 0.5,
      accuracyNorm: 0.25,
      chance: 0.125,
      calibration: expectedCalibrationError([0.9, 0.8, 0.3, 0.2], [true, false, true, false]),
      confidentThreshold: 0.5,
      confidentWrongRate: 0.25,
      groups: { seen: { n: 2, accuracy: 1 }, unseen: { n: 2, accuracy: 0, confidentWrongRate: 0.5 } },
      examples: [],
    };
    const files = await writeEvalReport(dir, {
      model: "toy",
      createdAt: "2026-01-01",
      tasks: [task],
      perplexity: {
        source: "x.txt",
        nll: 10,
        tokens: 5,
        bytes: 7,
        perplexity: 7.389,
        lossPerToken: 2,
        bitsPerByte: 2.06,
        windows: 1,
        contextLength: 8,
        stride: 4,
        texts: 1,
      },
    });
    expect(files.map((f) => path.basename(f)).sort()).toEqual([
      "eval.json",
      "eval.md",
      "reliability-facts.svg",
      "tasks.svg",
    ]);
    const md = await readFile(path.join(dir, "eval.md"), "utf8");
    expect(md).toContain("| facts | multiple-choice | 2 | 4 | 50.0% | 25.0% | 12.5% |");
    expect(md).toContain("| unseen | 2 | 0.0% | – | 50.0% |");
    expect(md).toContain("| x.txt | 5 | 7 | 2.000 | 7.39 | 2.060 | 8 | 4 |");
    const svg = await readFile(path.join(dir, "reliability-facts.svg"), "utf8");
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toContain("ECE 0.");
    expect(JSON.parse(await readFile(path.join(dir, "eval.json"), "utf8")).tasks[0].accuracy).toBe(0.5);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it("scalingSvg draws points and the fitted curve on log axes", async () => {
  const N = [1e3, 1e4, 1e5];
  const fit = fitPowerLaw(N, [3, 2, 1.5]);
  const svg = await scalingSvg(
    N.map((parameters, i) => ({ parameters, loss: [3, 2, 1.5][i], name: `m${i}` })),
    fit,
  );
  expect(svg).toMatch(/^<svg/);
  expect(svg).toContain("R²");
  expect((svg.match(/<path/g) ?? []).length).toBeGreaterThan(3);
});
