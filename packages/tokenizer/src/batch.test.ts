import { Tokenizer as HfJsTokenizer } from "@huggingface/tokenizers";
import { beforeAll, describe, expect, it } from "vitest";
import { sotu } from "./__fixtures__/corpora.js";
import { CharTokenizer } from "./char.js";
import type { HfTokenizer } from "./hf.js";
import { getEncoding } from "./tiktoken.js";
import { trainWordPiece } from "./train.js";

let wp: HfTokenizer;
beforeAll(async () => {
  wp = await trainWordPiece(sotu().slice(0, 1_000_000), { vocabSize: 1500 });
});

const texts = [
  "The Congress shall assemble.",
  "Fellow-Citizens of the Senate and House of Representatives: In meeting you again",
];
const pairsB = ["Yes.", "I feel much satisfaction in being able to repeat my congratulations"];

describe("encodeBatchForModel", () => {
  it("pads right by default with attention masks; rows equal single encodes", () => {
    const b = wp.encodeBatchForModel(texts);
    const ref = new HfJsTokenizer(JSON.parse(JSON.stringify(wp.toJSON())), wp.tokenizerConfig());
    const n = Math.max(...texts.map((t) => ref.encode(t).ids.length));
    texts.forEach((t, i) => {
      const ids = ref.encode(t).ids;
      expect(b.lengths[i]).toBe(ids.length);
      expect(b.inputIds[i]).toEqual([...ids, ...new Array(n - ids.length).fill(wp.padTokenId)]);
      expect(b.attentionMask[i]).toEqual([...ids.map(() => 1), ...new Array(n - ids.length).fill(0)]);
    });
    expect(wp.padTokenId).toBe(wp.tokenToId("[PAD]"));
  });

  it("pads left for generation and to a multiple", () => {
    const tok = getEncoding("gpt2");
    const b = tok.encodeBatchForModel(["Hello world", "Hi"], { paddingSide: "left", padToMultipleOf: 8 });
    expect(b.inputIds[1]).toEqual([...new Array(7).fill(tok.eosTokenId), ...tok.encode("Hi")]);
    expect(b.attentionMask[1]).toEqual([...new Array(7).fill(0), 1]);
    expect(b.inputIds[0].length).toBe(8);
  });

  it("truncates to maxLength counting [CLS]/[SEP], longest first for pairs, with token type ids", () => {
    const b = wp.encodeBatchForModel(texts, {
      pairs: pairsB,
      truncation: true,
      maxLength: 12,
      padding: "max_length",
    });
    for (let i = 0; i < texts.length; i++) {
      expect(b.inputIds[i].length).toBe(12);
      const full = wp.encodeWithOffsets(texts[i], { pair: pairsB[i] });
      if (full.ids.length <= 12) {
        expect(b.inputIds[i].slice(0, full.ids.length)).toEqual(full.ids);
        expect(b.tokenTypeIds[i].slice(0, full.ids.length)).toEqual(full.typeIds);
      }
    }
    // row 1 is too long: [CLS] a… [SEP] b… [SEP] with 9 content tokens split longest-first
    const row = b.inputIds[1];
    expect(row[0]).toBe(wp.tokenToId("[CLS]"));
    expect(row.filter((x) => x === wp.tokenToId("[SEP]")).length).toBe(2);
    expect(row.at(-1)).toBe(wp.tokenToId("[SEP]"));
    const types = b.tokenTypeIds[1];
    const a = types.filter((t) => t === 0).length - 2; // minus [CLS] and first [SEP]
    const bb = types.filter((t) => t === 1).length - 1;
    expect(a + bb).toBe(9);
    expect(Math.abs(a - bb)).toBeLessThanOrEqual(1);
    expect(b.sequenceIds[1][0]).toBe(-1);
  });

  it("only_second truncation and offsets into each text", () => {
    const b = wp.encodeBatchForModel([texts[0]], {
      pairs: [pairsB[1]],
      truncation: "only_second",
      maxLength: 14,
    });
    const seq = b.sequenceIds[0];
    const full = wp.encode(texts[0], { addSpecialTokens: false });
    expect(seq.filter((s) => s === 0).length).toBe(full.length);
    expect(b.inputIds[0].length).toBe(14);
    b.offsets[0].forEach(([s, e], k) => {
      if (seq[k] === 0)
        expect(wp.idToToken(b.inputIds[0][k])!.replace(/^##/, "")).toBe(texts[0].slice(s, e).toLowerCase());
      if (seq[k] === 1)
        expect(wp.idToToken(b.inputIds[0][k])!.replace(/^##/, "")).toBe(pairsB[1].slice(s, e).toLowerCase());
    });
  });

  it("byte-level offsets cover the text; characters split across tokens go to each", () => {
    const tok = getEncoding("cl100k_base");
    const text = "naïve 👍🏽 中文 tokens";
    const b = tok.encodeBatchForModel([text]);
    const offs = b.offsets[0];
    expect(offs[0][0]).toBe(0);
    expect(offs.at(-1)![1]).toBe(text.length);
    for (let k = 1; k < offs.length; k++) expect(offs[k][0]).toBeGreaterThanOrEqual(offs[k - 1][0]);
    const ch = CharTokenizer.fromText(text);
    expect(
      ch
        .encodeBatchForModel([text])
        .offsets[0].map(([s, e]) => text.slice(s, e))
        .join(""),
    ).toBe(text);
  });

  it("rejects bad options naming them", () => {
    expect(() => wp.encodeBatchForModel(texts, { truncation: true })).toThrow(/maxLength/);
    expect(() => wp.encodeBatchForModel(texts, { pairs: ["x"] })).toThrow(/pairs/);
  });
});
