import { readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runCli } from "../program.js";

const FIX = path.join(import.meta.dirname, "..", "..", "..", "models", "src", "__fixtures__");

function maxAbsDiff(a: number[] | number[][], b: number[] | number[][]): number {
  const x = a.flat();
  const y = b.flat();
  expect(x.length).toBe(y.length);
  return Math.max(...x.map((v, i) => Math.abs(v - y[i])));
}

function capture(): { lines: string[]; restore: () => void } {
  const lines: string[] = [];
  const spy = vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => {
    lines.push(a.join(" "));
  });
  return { lines, restore: () => spy.mockRestore() };
}

describe("typeformer logits / inspect", () => {
  afterEach(() => vi.restoreAllMocks());

  it("logits prints the reference logits as JSON (last position and --all)", async () => {
    const expected = JSON.parse(readFileSync(path.join(FIX, "gpt2-tiny", "expected.json"), "utf8"));
    const ids = expected.input_ids[0] as number[];
    const out = capture();
    const dir = path.join(FIX, "gpt2-tiny");
    expect(
      await runCli(["node", "typeformer", "logits", dir, "--ids", ids.join(","), "--backend", "cpu"]),
    ).toBe(0);
    expect(
      await runCli([
        "node",
        "typeformer",
        "logits",
        dir,
        "--ids",
        ids.join(","),
        "--all",
        "--backend",
        "cpu",
      ]),
    ).toBe(0);
    out.restore();
    const last = JSON.parse(out.lines[0]);
    expect(last.position).toBe(ids.length - 1);
    expect(maxAbsDiff(last.logits, expected.logits[0][ids.length - 1])).toBeLessThan(1e-4);
    const all = JSON.parse(out.lines[1]);
    expect(maxAbsDiff(all.logits, expected.logits[0])).toBeLessThan(1e-4);
  });

  it("inspect prints architecture, parameters, FLOPs and the tensor table", async () => {
    const out = capture();
    expect(await runCli(["node", "typeformer", "inspect", path.join(FIX, "gpt2-tiny"), "--json"])).toBe(0);
    out.restore();
    const info = JSON.parse(out.lines.join("\n"));
    expect(info.modelType).toBe("gpt2");
    expect(info.parameters).toBe(
      97 * 32 + 32 * 32 + 2 * (4 * 32 + 32 * 96 + 96 + 32 * 32 + 32 + 32 * 128 + 128 + 128 * 32 + 32) + 64,
    );
    expect(info.tensors.find((t: { name: string }) => t.name === "h.0.attn.bias").role).toBe("ignored");
  });

  it("rejects malformed ids with a typed error", async () => {
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    expect(await runCli(["node", "typeformer", "logits", path.join(FIX, "gpt2-tiny"), "--ids", "5,x"])).toBe(
      2,
    );
    expect(String(err.mock.calls[0][0])).toMatch(/--ids must be comma-separated token ids/);
  });
});
