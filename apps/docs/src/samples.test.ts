import { describe, expect, it } from "vitest";
import { isRunnable } from "./markdown.js";
import { collectSamples, typeCheckSamples, writeSamples } from "./samples.js";

describe("code samples in docs/ and READMEs", () => {
  const blocks = collectSamples();
  const samples = writeSamples(blocks);

  it("every ```ts block type-checks against the workspace sources", () => {
    expect(blocks.length).toBeGreaterThan(10);
    const errors = typeCheckSamples(samples);
    expect(errors).toEqual([]);
  });

  const runnable = samples.filter((s) => isRunnable(s.block));
  it("marks the cheap, self-contained samples as runnable", () => {
    expect(runnable.length).toBeGreaterThanOrEqual(4);
  });

  it.each(runnable.map((s) => [`${s.block.file}:${s.block.line}`, s.path] as const))(
    "%s runs without throwing",
    async (_where, path) => {
      await expect(import(/* @vite-ignore */ path)).resolves.toBeDefined();
    },
  );
});
