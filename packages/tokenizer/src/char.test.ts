import { existsSync, readFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer as HfJsTokenizer } from "@huggingface/tokenizers";
import { describe, expect, it } from "vitest";
import { mobyDick } from "./__fixtures__/corpora.js";
import { CharTokenizer } from "./char.js";
import { TypeformerError } from "./errors.js";
import { loadTokenizer } from "./hf.js";

// The first lines of Tiny Shakespeare; nanoGPT's vocabulary is sorted(set(text)).
const SHAKESPEARE = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n";

describe("CharTokenizer", () => {
  it("builds nanoGPT's vocabulary: distinct code points sorted by code point", () => {
    const tok = CharTokenizer.fromText(SHAKESPEARE);
    const expected = [...new Set(SHAKESPEARE)].sort();
    expect(tok.chars).toEqual(expected);
    expect(tok.vocabSize).toBe(expected.length);
    expect(tok.encode("hear")).toEqual([..."hear"].map((c) => expected.indexOf(c)));
    expect(tok.decode(tok.encode(SHAKESPEARE))).toBe(SHAKESPEARE);
  });

  it("reproduces nanoGPT's Tiny Shakespeare vocabulary (65 chars, encode('hii there'))", () => {
    // nanoGPT / "Let's build GPT": chars = sorted(set(tinyshakespeare)); encode("hii there") is golden
    const NANOGPT_CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    const tok = new CharTokenizer([...NANOGPT_CHARS]);
    expect(tok.vocabSize).toBe(65);
    expect(tok.encode("hii there")).toEqual([46, 47, 47, 1, 58, 46, 43, 56, 43]);
    const file = "/work/shared/data/tinyshakespeare.txt"; // present on the project machines only
    if (existsSync(file))
      expect(CharTokenizer.fromText(readFileSync(file, "utf8")).chars.join("")).toBe(NANOGPT_CHARS);
  });

  it("sorts astral characters by code point (not UTF-16 units) and round-trips them", () => {
    const text = "a\uffff😀b";
    const tok = CharTokenizer.fromText(text);
    expect(tok.chars).toEqual(["a", "b", "\uffff", "😀"]);
    expect(tok.encode("😀a")).toEqual([3, 0]);
  });

  it("unknown characters throw naming the character, or map to the unk token", () => {
    const tok = CharTokenizer.fromText("abc");
    expect(() => tok.encode("abz")).toThrow(TypeformerError);
    expect(() => tok.encode("abz")).toThrow(/"z".*index 2/);
    const withUnk = CharTokenizer.fromText("abc", { unkToken: "<unk>" });
    expect(withUnk.encode("az")).toEqual([0, 3]);
  });

  it("special tokens: allowed ones become ids, skipped on decode", () => {
    const tok = CharTokenizer.fromText(SHAKESPEARE, {
      specialTokens: ["<|endoftext|>"],
      eosToken: "<|endoftext|>",
    });
    const eot = tok.eosTokenId!;
    expect(eot).toBe(tok.chars.length);
    const ids = tok.encode("hear<|endoftext|>me", { allowedSpecial: "all" });
    expect(ids[4]).toBe(eot);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe("hearme");
  });

  it("saves as tokenizer.json that Hugging Face tokenizers.js reads identically, and loads back", async () => {
    const text = mobyDick().slice(0, 50_000);
    const tok = CharTokenizer.fromText(text, { eosToken: "<|endoftext|>" });
    const ref = new HfJsTokenizer(JSON.parse(JSON.stringify(tok.toJSON())), {});
    const sample = text.slice(1000, 3000);
    expect(ref.encode(sample).ids).toEqual(tok.encode(sample));
    const dir = await mkdtemp(join(tmpdir(), "tf-char-"));
    await tok.save(dir);
    const back = await loadTokenizer(dir);
    expect(back).toBeInstanceOf(CharTokenizer);
    expect(back.encode(sample)).toEqual(tok.encode(sample));
    expect(back.eosTokenId).toBe(tok.eosTokenId);
    expect(back.vocabSize).toBe(tok.vocabSize);
  });
});
