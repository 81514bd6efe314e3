import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { getEncoding, loadTokenizer } from "@typeformer/tokenizer";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runCli } from "../program.js";

function capture(): string[] {
  const lines: string[] = [];
  vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => {
    lines.push(a.join(" "));
  });
  return lines;
}

const TEXT = "Call me Ishmael. Some years ago—never mind how long precisely—having little money.\n";

describe("typeformer tokenize / tokenizer train", () => {
  afterEach(() => vi.restoreAllMocks());

  it("prints ids and counts of files like the library", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "tf-cli-tok-"));
    const a = path.join(dir, "a.txt");
    const b = path.join(dir, "b.txt");
    await writeFile(a, TEXT);
    await writeFile(b, TEXT.repeat(3));
    let out = capture();
    expect(await runCli(["node", "typeformer", "tokenize", a, "-e", "cl100k_base"])).toBe(0);
    expect(out).toEqual([getEncoding("cl100k_base").encode(TEXT).join(" ")]);
    vi.restoreAllMocks();
    out = capture();
    expect(await runCli(["node", "typeformer", "tokenize", "--count", a, b])).toBe(0);
    const n = getEncoding("gpt2").encode(TEXT).length;
    const n3 = getEncoding("gpt2").encode(TEXT.repeat(3)).length;
    expect(out).toEqual([`${n}\t${a}`, `${n3}\t${b}`, `${n + n3}\ttotal`]);
  });

  it("decodes ids back to text", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "tf-cli-tok-"));
    const f = path.join(dir, "ids.txt");
    await writeFile(f, getEncoding("gpt2").encode(TEXT).join(", "));
    const chunks: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((s: string | Uint8Array) => {
      chunks.push(String(s));
      return true;
    });
    expect(await runCli(["node", "typeformer", "tokenize", "--decode", f])).toBe(0);
    expect(chunks.join("")).toBe(TEXT);
  });

  it("trains a BPE tokenizer.json and tokenizes with it; unknown encodings exit 2", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "tf-cli-train-"));
    const corpus = path.join(dir, "corpus.txt");
    await writeFile(corpus, TEXT.repeat(50));
    const outDir = path.join(dir, "tok");
    capture();
    expect(
      await runCli([
        "node",
        "typeformer",
        "tokenizer",
        "train",
        corpus,
        "-o",
        outDir,
        "-v",
        "300",
        "--no-progress",
        "--chat",
      ]),
    ).toBe(0);
    const tok = await loadTokenizer(outDir);
    expect(tok.vocabSize).toBe(300);
    expect(tok.tokenToId("<|user|>")).toBeDefined();
    vi.restoreAllMocks();
    const out = capture();
    expect(await runCli(["node", "typeformer", "tokenize", corpus, "-t", outDir])).toBe(0);
    expect(out).toEqual([tok.encode(TEXT.repeat(50)).join(" ")]);
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    expect(await runCli(["node", "typeformer", "tokenize", corpus, "-e", "gpt5"])).toBe(2);
    expect(String(err.mock.calls[0][0])).toMatch(/known encodings: gpt2/);
  });
});
