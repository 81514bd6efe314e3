import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect, it } from "vitest";
import { nonEmbeddingParameters, runScalingSweep, type ScalingSize } from "./scaling.js";

it("nonEmbeddingParameters: GPT-2 has L·(12d² + 13d) + 2d outside its token/position tables", () => {
  for (const [L, d] of [
    [1, 16],
    [3, 64],
  ]) {
    expect(
      nonEmbeddingParameters({
        modelType: "gpt2",
        numLayers: L,
        hiddenSize: d,
        numHeads: 4,
        vocabSize: 83,
        maxPositions: 64,
      }),
    ).toBe(L * (12 * d * d + 13 * d) + 2 * d);
  }
});

it("runScalingSweep trains each size, fits, writes json/md/svg, and reuses finished runs", async () => {
  const outDir = await mkdtemp(path.join(tmpdir(), "tf-scaling-"));
  try {
    const sizes: ScalingSize[] = [
      { name: "a", numLayers: 1, hiddenSize: 8, numHeads: 2 },
      { name: "b", numLayers: 1, hiddenSize: 16, numHeads: 2 },
      { name: "c", numLayers: 2, hiddenSize: 16, numHeads: 2 },
    ];
    const text = "the cat sat on the mat. the dog sat on the log. ".repeat(40);
    const opts = {
      outDir,
      sizes,
      corpus: text,
      steps: 3,
      batchSize: 2,
      contextLength: 8,
      evalBatches: 1,
      backend: "wasm" as const,
    };
    const first: boolean[] = [];
    // a file path corpus: write the text out
    const corpusFile = path.join(outDir, "corpus.txt");
    await (await import("node:fs/promises")).writeFile(corpusFile, text);
    const r = await runScalingSweep({
      ...opts,
      corpus: corpusFile,
      onRun: (_p, reused) => first.push(reused),
    });
    expect(first).toEqual([false, false, false]);
    expect(r.points.map((p) => p.tokens)).toEqual([48, 48, 48]);
    expect(r.points[2].nonEmbeddingParameters).toBeGreaterThan(r.points[0].nonEmbeddingParameters);
    for (const p of r.points) expect(Number.isFinite(p.valLoss)).toBe(true);
    expect(Number.isFinite(r.fit.alpha)).toBe(true);
    // the like-for-like Kaplan exponent: the log-log slope of the same points (c pinned to 0)
    const lnN = r.points.map((p) => Math.log(p.nonEmbeddingParameters));
    const lnL = r.points.map((p) => Math.log(p.valLoss));
    const mx = lnN.reduce((a, b) => a + b) / 3;
    const my = lnL.reduce((a, b) => a + b) / 3;
    const slope =
      lnN.reduce((s, x, i) => s + (x - mx) * (lnL[i] - my), 0) / lnN.reduce((s, x) => s + (x - mx) ** 2, 0);
    expect(r.pureFit?.c).toBe(0);
    expect(r.pureFit?.alpha).toBeCloseTo(-slope, 10);
    expect(r.discussion).toContain(`(c = 0) has α = ${r.pureFit?.alpha.toFixed(3)}`);
    for (const f of ["scaling.json", "scaling.md", "scaling.svg"])
      expect(existsSync(path.join(outDir, f))).toBe(true);
    expect(await readFile(path.join(outDir, "scaling.md"), "utf8")).toMatch(/α_N ≈ 0\.076/);
    const again: boolean[] = [];
    const r2 = await runScalingSweep({
      ...opts,
      corpus: corpusFile,
      onRun: (_p, reused) => again.push(reused),
    });
    expect(again).toEqual([true, true, true]);
    expect(r2.fit.alpha).toBeCloseTo(r.fit.alpha, 10);
    // a larger budget resumes each run from its checkpoint instead of starting over
    const more: boolean[] = [];
    const r3 = await runScalingSweep({
      ...opts,
      steps: 5,
      corpus: corpusFile,
      onRun: (_p, reused) => more.push(reused),
    });
    expect(more).toEqual([false, false, false]);
    expect(r3.points.map((p) => p.tokens)).toEqual([80, 80, 80]);
    const steps = (await readFile(path.join(outDir, "a", "metrics.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l).step);
    expect(steps).toEqual([1, 2, 3, 4, 5]);
    // L(D): one size across token budgets
    const d = await runScalingSweep({
      ...opts,
      corpus: corpusFile,
      outDir: path.join(outDir, "data"),
      dataSteps: [1, 2, 4],
    });
    expect(d.mode).toBe("data");
    expect(d.points.map((p) => p.tokens)).toEqual([16, 32, 64]);
    expect(d.span).toBe(4);
    expect(await readFile(path.join(outDir, "data", "scaling.md"), "utf8")).toMatch(/L\(D\) = a·D\^\(−β\)/);
  } finally {
    await rm(outDir, { recursive: true, force: true });
  }
});
