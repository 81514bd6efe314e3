import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { isTypeformerError, Random } from "@typeformer/core";
import { afterAll, expect, it } from "vitest";
import { RHYME, TestCharTokenizer } from "./__fixtures__/char-tokenizer.js";
import { readCorpus, stripBrownTags } from "./corpora.js";
import { prepareDataset, readManifest, TokenWindowSampler } from "./dataset.js";
import { IGNORE_INDEX } from "./loss.js";
import { maskTokens, spanCorrupt } from "./objectives.js";

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), "tf-data-"));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

it("tokenises a text into uint16 shards with nanoGPT's first-90% / last-10% split", async () => {
  const tok = new TestCharTokenizer(RHYME);
  const dir = path.join(await tmp(), "ds");
  const m = await prepareDataset({ text: RHYME }, tok, dir, { shardTokens: 300 });
  const n = [...RHYME].length;
  const cut = Math.round(n * 0.9);
  expect(m.splits.train.tokens).toBe(cut);
  expect(m.splits.val.tokens).toBe(n - cut);
  expect(m.splits.train.shards.length).toBe(Math.ceil(cut / 300));
  expect(m.dtype).toBe("uint16");
  expect(await readManifest(dir)).toEqual(m);
  const bytes = await readFile(path.join(dir, "val-00000.bin"));
  const ids = Array.from(new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2));
  expect(tok.decode(ids)).toBe(RHYME.slice(cut));
  expect((await stat(path.join(dir, "tokenizer.json"))).isFile()).toBe(true);
  // windows are real substrings of the split, never straddling shards; state restores the sequence
  const s = await TokenWindowSampler.open(dir, "train", { batchSize: 3, windowLength: 20, seed: 5 });
  const train = RHYME.slice(0, cut);
  for (let k = 0; k < 5; k++) {
    const b = s.next();
    for (let r = 0; r < 3; r++) {
      const w = tok.decode(Array.from(b.tokens.subarray(r * 20, (r + 1) * 20)));
      expect(train.includes(w)).toBe(true);
    }
  }
  const st = s.getState();
  const a = s.next();
  s.setState(st);
  expect(s.next().tokens).toEqual(a.tokens);
  expect([...s.batches(2)].map((b) => b.tokens)).toEqual([...s.batches(2)].map((b) => b.tokens));
  s.close();
});

it("uses uint32 for vocabularies above 65536 and splits each document", async () => {
  const big = {
    vocabSize: 70000,
    encode: (t: string) => [...t].map((c) => 65530 + (c.charCodeAt(0) % 100)),
    decode: () => "",
  };
  const dir = path.join(await tmp(), "ds");
  const m = await prepareDataset([{ text: "abcdefghij" }, { text: "klmnopqrst" }], big, dir);
  expect(m.dtype).toBe("uint32");
  expect(m.splits.train.tokens).toBe(18);
  expect(m.documents).toBe(2);
  const b = await readFile(path.join(dir, "train-00000.bin"));
  expect(new Uint32Array(b.buffer, b.byteOffset, 18)[0]).toBe(65530 + 97);
});

it("bad input: tiny corpus, non-UTF-8 bytes, unreadable and missing files give typed errors, no output folder", async () => {
  const tok = new TestCharTokenizer(RHYME);
  const root = await tmp();
  const dir = path.join(root, "tiny");
  await prepareDataset({ text: "Mary had" }, tok, dir);
  const err = await TokenWindowSampler.open(dir, "train", { batchSize: 1, windowLength: 65 }).catch((e) => e);
  expect(isTypeformerError(err, "DATA_INVALID")).toBe(true);
  expect(err.message).toMatch(/train split holds 7 tokens, fewer than one window of 65/);

  const bad = path.join(root, "bad.txt");
  await writeFile(bad, Buffer.from([0x4d, 0x61, 0x72, 0x79, 0xff, 0xfe, 0x20, 0x61]));
  const e2 = await prepareDataset(bad, tok, path.join(root, "out")).catch((e) => e);
  expect(isTypeformerError(e2, "DATA_INVALID")).toBe(true);
  expect(e2.message).toMatch(/bad\.txt is not valid UTF-8 \(first invalid byte near offset 4\)/);
  await expect(stat(path.join(root, "out"))).rejects.toThrow();

  const e3 = await prepareDataset(path.join(root, "nope.txt"), tok, path.join(root, "out")).catch((e) => e);
  expect(isTypeformerError(e3, "NOT_FOUND")).toBe(true);
  expect(e3.message).toMatch(
    /nope\.txt" is neither a bundled corpus \(moby-dick, sotu, brown\) nor a readable file/,
  );

  if (process.getuid?.() !== 0) {
    const locked = path.join(root, "locked.txt");
    await writeFile(locked, "hello");
    await chmod(locked, 0o000);
    const e4 = await prepareDataset(locked, tok, path.join(root, "out")).catch((e) => e);
    expect(isTypeformerError(e4, "IO_ERROR")).toBe(true);
  }
  const e5 = await prepareDataset({ text: "" }, tok, path.join(root, "out")).catch((e) => e);
  expect(isTypeformerError(e5, "DATA_INVALID")).toBe(true);
});

it("streams files larger than chunkBytes in newline-aligned chunks, losing nothing (also without newlines)", async () => {
  const root = await tmp();
  const lines = Array.from(
    { length: 400 },
    (_, i) => `line ${i}: Call me Ishmael — “whale” ${"é".repeat(i % 7)}`,
  );
  const file = path.join(root, "big.txt");
  await writeFile(file, `${lines.join("\n")}\n`);
  const docs: string[] = [];
  for await (const d of readCorpus(file, { chunkBytes: 1000 })) docs.push(d.text);
  expect(docs.length).toBeGreaterThan(10);
  expect(docs.join("")).toBe(`${lines.join("\n")}\n`);
  for (const d of docs.slice(0, -1)) expect(d.endsWith("\n")).toBe(true);
  const noNl = path.join(root, "nonl.txt");
  const text = "é—ü".repeat(2000);
  await writeFile(noNl, text);
  const parts: string[] = [];
  for await (const d of readCorpus(noNl, { chunkBytes: 1001 })) parts.push(d.text);
  expect(parts.length).toBeGreaterThan(5);
  expect(parts.join("")).toBe(text);
});

it("reads JSONL fields and globs", async () => {
  const root = await tmp();
  await writeFile(path.join(root, "a.jsonl"), '{"body":"one"}\n{"body":"two"}\n');
  const docs: string[] = [];
  for await (const d of readCorpus({ jsonl: path.join(root, "a.jsonl"), field: "body" })) docs.push(d.text);
  expect(docs).toEqual(["one", "two"]);
  const e = await (async () => {
    for await (const _ of readCorpus({ jsonl: path.join(root, "a.jsonl"), field: "text" })) {
      // consume
    }
  })().catch((x) => x);
  expect(e.message).toMatch(/a\.jsonl:1 has no string field "text" \(keys: body\)/);
  await writeFile(path.join(root, "x1.txt"), "first");
  await writeFile(path.join(root, "x2.txt"), "second");
  const g: string[] = [];
  for await (const d of readCorpus(path.join(root, "x*.txt"))) g.push(d.text);
  expect(g).toEqual(["first", "second"]);
});

it("bundled corpora: moby-dick text, brown without POS tags, sotu speeches", async () => {
  let moby = "";
  for await (const d of readCorpus("moby-dick")) moby += d.text;
  expect(moby.startsWith("CHAPTER 1. Loomings.\n\nCall me Ishmael.")).toBe(true);
  expect(moby.length).toBeGreaterThan(1_000_000);
  expect(
    stripBrownTags("\n\n\tThe/at Fulton/np-tl County/nn-tl said/vbd ``/`` no/at evidence/nn ''/'' ./.\n"),
  ).toBe('The Fulton County said "no evidence".\n');
  let first: string | undefined;
  let n = 0;
  for await (const d of readCorpus("brown")) {
    first ??= d.text;
    n++;
  }
  expect(n).toBe(500);
  expect(first!.startsWith("The Fulton County Grand Jury said Friday an investigation of Atlanta's")).toBe(
    true,
  );
  expect(first).not.toMatch(/\/(at|nn|np)/);
  let s = 0;
  for await (const d of readCorpus("sotu")) {
    if (s++ === 0)
      expect(d.text.startsWith("Fellow-Citizens of the Senate and House of Representatives")).toBe(true);
  }
  expect(s).toBeGreaterThan(200);
});

it("maskTokens: ~15% selected, 80/10/10 mask/random/keep, specials never selected, deterministic", () => {
  const n = 40000;
  const tokens = Int32Array.from({ length: n }, (_, i) => (i % 50 === 0 ? 1 : 5 + (i % 90)));
  const o = { vocabSize: 100, maskTokenId: 3, specialTokenIds: [0, 1, 2, 3] };
  const { inputs, targets, selected } = maskTokens(tokens, o, new Random(1));
  const nonSpecial = tokens.filter((t) => t !== 1).length;
  expect(Math.abs(selected / nonSpecial - 0.15)).toBeLessThan(0.01);
  let masked = 0;
  let kept = 0;
  let random = 0;
  let violations = 0;
  for (let i = 0; i < n; i++) {
    if (tokens[i] === 1 && targets[i] !== IGNORE_INDEX) violations++;
    if (targets[i] === IGNORE_INDEX) {
      if (inputs[i] !== tokens[i]) violations++;
      continue;
    }
    if (targets[i] !== tokens[i]) violations++;
    if (inputs[i] === 3) masked++;
    else if (inputs[i] === tokens[i]) kept++;
    else random++;
  }
  expect(violations).toBe(0);
  expect(Math.abs(masked / selected - 0.8)).toBeLessThan(0.02);
  expect(Math.abs(kept / selected - 0.1)).toBeLessThan(0.02); // includes ~1% random draws equal to the original
  expect(Math.abs(random / selected - 0.1)).toBeLessThan(0.02);
  expect(maskTokens(tokens, o, new Random(1)).inputs).toEqual(inputs);
});

it("spanCorrupt: sentinels in order, inputs + targets reconstruct the sequence, ~15% noise", () => {
  const tokens = Array.from({ length: 200 }, (_, i) => 10 + i);
  const o = { firstSentinelId: 999, eosTokenId: 1 };
  const { input, target } = spanCorrupt(tokens, o, new Random(2));
  expect(input.at(-1)).toBe(1);
  expect(target.at(-1)).toBe(1);
  const sentinels = input.filter((t) => t > 900);
  expect(sentinels).toEqual(sentinels.map((_, k) => 999 - k));
  expect(target.filter((t) => t > 900)).toEqual(sentinels);
  // rebuild: replace each sentinel in the input by the tokens following it in the target
  const spans = new Map<number, number[]>();
  let cur = -1;
  for (const t of target.slice(0, -1)) {
    if (t > 900) {
      cur = t;
      spans.set(cur, []);
    } else spans.get(cur)!.push(t);
  }
  const rebuilt = input.slice(0, -1).flatMap((t) => (t > 900 ? spans.get(t)! : [t]));
  expect(rebuilt).toEqual(tokens);
  const noise = [...spans.values()].reduce((a, s) => a + s.length, 0);
  expect(noise).toBe(30);
  expect(sentinels.length).toBe(10); // mean span length 3
});
