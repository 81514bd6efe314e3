import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

describe("committed wasm binaries", () => {
  it("are what scripts/build-wasm.mjs builds from assembly/*.ts", async () => {
    const here = path.dirname(fileURLToPath(import.meta.url));
    // @ts-expect-error: plain .mjs build script without types
    const { render } = await import("../../scripts/build-wasm.mjs");
    const committed = readFileSync(path.join(here, "gemm-binary.ts"), "utf8");
    expect(await render()).toBe(committed);
  });
});
