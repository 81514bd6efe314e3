import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { chatAppRoot } from "./assets.js";

// The page (web/, TSX with Preact's JSX types) is outside the root tsconfig, which covers .ts only: the
// suite type-checks it here so `pnpm test` catches type errors in the page too.
describe("the chat page's sources", () => {
  it("type-check with web/tsconfig.json", () => {
    const root = chatAppRoot();
    const tsc = resolve(root, "..", "..", "node_modules", "typescript", "bin", "tsc");
    const r = spawnSync(process.execPath, [tsc, "-p", join(root, "web", "tsconfig.json"), "--noEmit"], {
      encoding: "utf8",
    });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  });
});
