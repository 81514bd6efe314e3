import { Tokenizer as HfJsTokenizer } from "@huggingface/tokenizers";
import { describe, expect, it } from "vitest";
import { mobyDick, sotu } from "./__fixtures__/corpora.js";
import { tortureStrings } from "./__fixtures__/torture.js";
import { tokenizerFromJSON } from "./hf.js";

// A T5-style tokenizer.json: Precompiled (approximated) + Replace normalizers, Metaspace
// pre-tokenizer and decoder, a Unigram model whose scores are substring log-frequencies, and a
// "$A </s>" template. Compared with @huggingface/tokenizers.
function t5Style(corpus: string, size: number, byteFallback: boolean): object {
  const counts = new Map<string, number>();
  for (const w of corpus.split(/\s+/)) {
    const word = `▁${w}`;
    const chars = [...word];
    for (let i = 0; i < chars.length; i++)
      for (let l = 1; l <= 6 && i + l <= chars.length; l++) {
        const sub = chars.slice(i, i + l).join("");
        counts.set(sub, (counts.get(sub) ?? 0) + 1);
      }
  }
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  const top = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, size);
  const vocab: [string, number][] = [
    ["<pad>", 0],
    ["</s>", 0],
    ["<unk>", 0],
  ];
  if (byteFallback)
    for (let b = 0; b < 256; b++) vocab.push([`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, 0]);
  for (const [p, c] of top) vocab.push([p, Math.log(c / total)]);
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: "1.0",
    added_tokens: [special(0, "<pad>"), special(1, "</s>"), special(2, "<unk>")],
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Precompiled", precompiled_charsmap: null },
        { type: "Replace", pattern: { Regex: " {2,}" }, content: " " },
      ],
    },
    pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: "always", split: true },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } }],
      pair: [
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "</s>", type_id: 0 } },
        { Sequence: { id: "B", type_id: 0 } },
        { SpecialToken: { id: "</s>", type_id: 0 } },
      ],
      special_tokens: { "</s>": { id: "</s>", ids: [1], tokens: ["</s>"] } },
    },
    decoder: { type: "Metaspace", replacement: "▁", prepend_scheme: "always", split: true },
    model: { type: "Unigram", unk_id: 2, vocab, byte_fallback: byteFallback },
  };
}

describe("Unigram tokenizer.json", () => {
  const byteFallback = false;
  const json = JSON.parse(JSON.stringify(t5Style(sotu().slice(0, 300_000), 3000, byteFallback)));
  const config = {
    eos_token: "</s>",
    unk_token: "<unk>",
    pad_token: "<pad>",
    clean_up_tokenization_spaces: false,
  };
  const ours = tokenizerFromJSON(json, config);
  const ref = new HfJsTokenizer(json, config);

  it("gives the ids of @huggingface/tokenizers on corpora and the torture set", () => {
    for (const s of [mobyDick().slice(200_000, 204_000), ...tortureStrings()]) {
      const ids = ours.encode(s);
      expect(ids).toEqual(ref.encode(s).ids);
      if (!byteFallback) expect(ours.decode(ids)).toBe(ref.decode(ids));
    }
    expect(ours.eosTokenId).toBe(1);
    expect(ours.encode("whale").at(-1)).toBe(1);
  });
});

describe("Unigram byte fallback", () => {
  // tokenizers.js 0.2.0 has no Unigram byte fallback (it emits <unk>); Rust tokenizers emits the
  // <0xNN> byte pieces, as we do: check they spell the unknown characters exactly.
  it("unknown characters become their UTF-8 byte pieces", () => {
    const json = JSON.parse(JSON.stringify(t5Style(sotu().slice(0, 100_000), 1000, true)));
    const tok = tokenizerFromJSON(json, { clean_up_tokenization_spaces: false });
    const ids = tok.encode("whale 😀", { addSpecialTokens: false });
    const bytes = [...new TextEncoder().encode("😀")].map((b) => `<0x${b.toString(16).toUpperCase()}>`);
    expect(ids.slice(-4).map((id) => tok.idToToken(id))).toEqual(bytes);
    expect(ids).not.toContain(2);
  });
});
