import { describe, expect, it } from "vitest";
import { collectSamples, typeCheckSamples, writeSamples } from "./samples.js";

describe("code samples in docs/ and READMEs", () => {
  it("every ```ts block type-checks against the workspace sources", () => {
    const blocks = collectSamples();
    expect(blocks.length).toBeGreaterThan(10);
    const errors = typeCheckSamples(writeSamples(blocks));
    expect(errors).toEqual([]);
  });
});
