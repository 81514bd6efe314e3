import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer as HfJsTokenizer } from "@huggingface/tokenizers";
import { beforeAll, describe, expect, it } from "vitest";
import { mobyDick, sotu } from "./__fixtures__/corpora.js";
import { tortureStrings } from "./__fixtures__/torture.js";
import { TypeformerError } from "./errors.js";
import { type HfTokenizer, loadTokenizer, tokenizerFromJSON } from "./hf.js";
import { getEncoding } from "./tiktoken.js";
import { trainBpe, trainWordPiece } from "./train.js";

// Reference: @huggingface/tokenizers (the pure-JS port of Hugging Face tokenizers; installs on Node 20).
// Debian has no python3-tokenizers/python3-transformers package, so tokenizers.js is the oracle.
const trainText = sotu().slice(0, 2_000_000);
const samples = [mobyDick().slice(100_000, 140_000), sotu().slice(6_000_000, 6_040_000), ...tortureStrings()];
const pairs: [string, string][] = [
  ["Call me Ishmael.", "Some years ago—never mind how long precisely"],
  ["中文 text", "e\u0301 and 👍🏽"],
];

let bpe: HfTokenizer;
let wp: HfTokenizer;
beforeAll(async () => {
  bpe = await trainBpe(trainText, { vocabSize: 2000, specialTokens: ["<|endoftext|>", "<|pad|>"] });
  wp = await trainWordPiece(trainText, { vocabSize: 2000 });
});

function reference(tok: HfTokenizer): HfJsTokenizer {
  // through JSON text, as a file would travel
  return new HfJsTokenizer(JSON.parse(JSON.stringify(tok.toJSON())), tok.tokenizerConfig());
}

describe.each(["bpe", "wordpiece"])("%s tokenizer.json is identical to @huggingface/tokenizers", (kind) => {
  it("on corpora samples and the torture set: ids, tokens and decode", () => {
    const tok = kind === "bpe" ? bpe : wp;
    const ref = reference(tok);
    for (const s of samples) {
      const ours = tok.encodeWithOffsets(s);
      const theirs = ref.encode(s);
      expect(ours.ids).toEqual(theirs.ids);
      expect(ours.tokens).toEqual(theirs.tokens);
      expect(tok.decode(ours.ids)).toBe(ours.ids.length ? ref.decode(theirs.ids) : "");
      expect(tok.decode(ours.ids, { skipSpecialTokens: true })).toBe(
        ours.ids.length ? ref.decode(theirs.ids, { skip_special_tokens: true }) : "",
      );
    }
  });

  it("on sentence pairs (token type ids) and without special tokens", () => {
    const tok = kind === "bpe" ? bpe : wp;
    const ref = reference(tok);
    for (const [a, b] of pairs) {
      const ours = tok.encodeWithOffsets(a, { pair: b });
      const theirs = ref.encode(a, { text_pair: b });
      if (kind === "bpe") {
        // tokenizers.js 0.2.0's ByteLevel post-processor drops the second sequence (its
        // post_process returns {tokens, tokens_pair} and the caller keeps only tokens); Rust
        // tokenizers concatenates them, as we do.
        expect(theirs.ids).toEqual(ref.encode(a).ids);
        expect(ours.ids).toEqual([...ref.encode(a).ids, ...ref.encode(b).ids]);
        expect(ours.typeIds).toEqual([...ref.encode(a).ids.map(() => 0), ...ref.encode(b).ids.map(() => 1)]);
        continue;
      }
      expect(ours.ids).toEqual(theirs.ids);
      if (theirs.token_type_ids) expect(ours.typeIds).toEqual(theirs.token_type_ids);
      expect(tok.encode(a, { addSpecialTokens: false })).toEqual(
        ref.encode(a, { add_special_tokens: false }).ids,
      );
    }
  });
});

describe("byte-level BPE training and tokenizer.json round trip", () => {
  it("round-trips text exactly, is deterministic, and saves/loads", async () => {
    for (const s of samples) expect(bpe.decode(bpe.encode(s))).toBe(s.replace(/\p{Cs}/gu, "\ufffd"));
    const again = await trainBpe(
      (function* () {
        for (let i = 0; i < trainText.length; i += 100_000) yield trainText.slice(i, i + 100_000);
      })(),
      { vocabSize: 2000, specialTokens: ["<|endoftext|>", "<|pad|>"] },
    );
    // same merges regardless of how the corpus is chunked (chunk seams only change counts slightly)
    expect(again.vocabSize).toBe(2000);
    const dir = await mkdtemp(join(tmpdir(), "tf-tok-"));
    await bpe.save(dir);
    const loaded = await loadTokenizer(dir);
    expect(loaded.encode(samples[0])).toEqual(bpe.encode(samples[0]));
    expect(loaded.eosTokenId).toBe(0);
    // added special tokens are recognised by default (Hugging Face), or only when allowed
    expect(bpe.encode("a<|endoftext|>")).toContain(0);
    expect(bpe.encode("a<|endoftext|>", { allowedSpecial: new Set() })).not.toContain(0);
    expect(bpe.decode(bpe.encode("a<|endoftext|>", { allowedSpecial: new Set() }))).toBe("a<|endoftext|>");
    expect(loaded.padTokenId).toBe(1);
    const b2 = await trainBpe(trainText, { vocabSize: 2000, specialTokens: ["<|endoftext|>", "<|pad|>"] });
    expect(JSON.stringify(b2.toJSON())).toBe(JSON.stringify(bpe.toJSON()));
  });

  it("reports progress", async () => {
    const seen: string[] = [];
    await trainBpe("low lower lowest newer newest wider", {
      vocabSize: 262,
      minFrequency: 1,
      onProgress: (p) => seen.push(p.phase),
    });
    expect(seen[0]).toBe("count");
    expect(seen.at(-1)).toBe("done");
  });
});

describe("tiktoken encodings export to tokenizer.json", () => {
  it("gpt2's exported tokenizer.json gives tiktoken's ids in @huggingface/tokenizers and here", () => {
    const enc = getEncoding("gpt2");
    const json = JSON.parse(JSON.stringify(enc.toJSON()));
    const ref = new HfJsTokenizer(json, { clean_up_tokenization_spaces: false });
    const ours = tokenizerFromJSON(json, { clean_up_tokenization_spaces: false });
    const text = mobyDick().slice(0, 30_000);
    const ids = enc.encode(text);
    expect(ref.encode(text).ids).toEqual(ids);
    expect(ours.encode(text)).toEqual(ids);
    expect(ours.decode(ids)).toBe(text);
  });
});

describe("WordPiece details", () => {
  it("max_input_chars_per_word gives [UNK], accents are stripped when lowercasing", () => {
    const ref = reference(wp);
    const long = `${"a".repeat(150)} naïve Ünïcödé`;
    expect(wp.encode(long)).toEqual(ref.encode(long).ids);
    expect(wp.encode(long, { addSpecialTokens: false })[0]).toBe(wp.tokenToId("[UNK]"));
    expect(wp.decode(wp.encode("naïve café"), { skipSpecialTokens: true })).toBe("naive cafe");
  });

  it("offsets map tokens back to the input", () => {
    const text = "The Congress shall, in 1790, meet.";
    const e = wp.encodeWithOffsets(text);
    for (let i = 0; i < e.ids.length; i++) {
      if (e.specialTokensMask[i]) continue;
      const [a, b] = e.offsets[i];
      expect(text.slice(a, b).toLowerCase()).toBe(e.tokens[i].replace(/^##/, ""));
    }
    // BertNormalizer pads CJK characters with spaces and strips accents: offsets still index the input
    const cjk = "Ünïcödé 中文 text";
    const ce = wp.encodeWithOffsets(cjk, { addSpecialTokens: false });
    const spans = ce.offsets.map(([a, b]) => cjk.slice(a, b));
    expect(spans).toContain("中");
    expect(spans).toContain("文");
    expect(spans.join("").replace(/\s/g, "")).toBe(cjk.replace(/\s/g, ""));
    const be = bpe.encodeWithOffsets(text);
    expect(be.offsets.map(([a, b]) => text.slice(a, b)).join("")).toBe(text);
  });
});

describe("malformed tokenizer.json names the field", () => {
  const bad = (j: unknown) => () => tokenizerFromJSON(j);
  it.each([
    [{ model: { type: "Nope" } }, "model.type"],
    [{ model: { type: "BPE", vocab: [], merges: [] } }, "model.vocab"],
    [{ model: { type: "BPE", vocab: { a: 0, b: 1 }, merges: [["a", "c"]] } }, "model.merges[0]"],
    [{ model: { type: "BPE", vocab: { a: 0 }, merges: [3] } }, "model.merges[0]"],
    [{ model: { type: "WordPiece", vocab: { a: 0 } } }, "model.unk_token"],
    [{ model: { type: "WordPiece", vocab: { a: "x" } } }, "model.vocab.a"],
    [{ model: { type: "WordLevel", vocab: {} }, normalizer: { type: "Nope" } }, "normalizer.type"],
    [
      { model: { type: "WordLevel", vocab: {} }, pre_tokenizer: { type: "Split", pattern: {} } },
      "pre_tokenizer.pattern.Regex",
    ],
    [
      { model: { type: "WordLevel", vocab: {} }, added_tokens: [{ id: "x", content: "a" }] },
      "added_tokens[0].id",
    ],
    [
      { model: { type: "WordLevel", vocab: {} }, decoder: { type: "Sequence", decoders: 1 } },
      "decoder.decoders",
    ],
  ])("%j → %s", (json, field) => {
    try {
      bad(json)();
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(TypeformerError);
      expect((e as TypeformerError).code).toBe("TOKENIZER_INVALID");
      expect((e as TypeformerError).details.field).toBe(field);
      expect((e as Error).message).toContain(field);
    }
  });

  it("invalid JSON files and missing paths", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tf-tok-"));
    await writeFile(join(dir, "tokenizer.json"), "{ not json");
    await expect(loadTokenizer(dir)).rejects.toMatchObject({ code: "TOKENIZER_INVALID" });
    await expect(loadTokenizer(join(dir, "missing"))).rejects.toMatchObject({ code: "NOT_FOUND" });
  });
});
