import { isTypeformerError, tf } from "@typeformer/core";
import { type CausalLM, createModel } from "@typeformer/models";
import { describeEachBackend, expectNoLeaks } from "@typeformer/test-utils";
import { afterAll, beforeAll, expect, it } from "vitest";
import { bigramModel, toyTokenizer } from "./__fixtures__/toy.js";
import { evaluatePerplexity } from "./perplexity.js";

describeEachBackend("evaluatePerplexity", () => {
  // p(b|a) = 3/4, p(a|b) = 2/3, p(b|b) = 1/3
  const table = [
    [0, Math.log(3)],
    [Math.log(2), 0],
  ];
  const tok = toyTokenizer("ab");

  it("matches a hand-computed bigram reference: 'abba' → nll ln 6 over 3 tokens and 3 bytes", async () => {
    const r = await expectNoLeaks(() => evaluatePerplexity(bigramModel(table), tok, "abba"));
    expect(r.tokens).toBe(3);
    expect(r.bytes).toBe(3); // the unscored first token's byte is left out
    expect(r.nll).toBeCloseTo(Math.log(6), 5);
    expect(r.perplexity).toBeCloseTo(6 ** (1 / 3), 5);
    expect(r.bitsPerByte).toBeCloseTo(Math.log2(6) / 3, 5);
  });

  it("sliding windows count each token once (context 2, stride 1 → one window per token)", () => {
    const m = bigramModel(table, 2);
    const r = evaluatePerplexity(m, tok, ["abba", "ab"], { stride: 1 });
    expect(r.tokens).toBe(4);
    expect(r.windows).toBe(4);
    expect(r.nll).toBeCloseTo(Math.log(6) - Math.log(3 / 4), 5);
  });

  it("a prefix token makes the first character count too", () => {
    const t2 = toyTokenizer("abE", 2);
    const tbl = [
      [0, Math.log(3), -100],
      [Math.log(2), 0, -100],
      [0, 0, -100], // after E: a or b with 1/2
    ];
    const r = evaluatePerplexity(bigramModel(tbl), t2, "abba");
    expect(r.tokens).toBe(4);
    expect(r.bytes).toBe(4);
    expect(r.nll).toBeCloseTo(Math.log(6) + Math.log(2), 4);
    expect(r.bitsPerByte).toBeCloseTo(Math.log2(12) / 4, 4);
  });

  it("rejects a stride that leaves a token without context, naming it", () => {
    try {
      evaluatePerplexity(bigramModel(table, 4), tok, "abab", { stride: 4 });
      expect.unreachable();
    } catch (e) {
      expect(isTypeformerError(e)).toBe(true);
      expect(String(e)).toMatch(/stride.*received 4/);
    }
  });

  describeGpt();
});

function describeGpt() {
  let model: CausalLM;
  const alphabet = "abcdefgh ";
  const tok = toyTokenizer(alphabet);
  const text = "abc defg hab cde fgh abcd efg habc";
  beforeAll(() => {
    model = createModel<CausalLM>(
      { modelType: "gpt2", preset: "tiny", vocabSize: alphabet.length, maxPositions: 8 },
      { seed: 3 },
    );
  });
  afterAll(() => model.dispose());

  it("GPT-2: stride 1 equals an independent per-token loop with the full 8-token window", async () => {
    const ids = tok.encode(text);
    let ref = 0;
    for (let i = 1; i < ids.length; i++) {
      const w = ids.slice(Math.max(0, i - 7), i);
      const logits = tf.tidy(() => model.forward(tf.tensor2d(w, [1, w.length], "int32")).logits);
      const all = await logits.data();
      logits.dispose();
      const V = alphabet.length;
      const row = Array.from(all.slice((w.length - 1) * V, w.length * V));
      const mx = Math.max(...row);
      const lse = mx + Math.log(row.reduce((s, x) => s + Math.exp(x - mx), 0));
      ref += lse - row[ids[i]];
    }
    const r = await expectNoLeaks(() => evaluatePerplexity(model, tok, text, { stride: 1 }));
    expect(r.tokens).toBe(ids.length - 1);
    expect(Math.abs(r.nll - ref) / ref).toBeLessThan(1e-5);
    // a larger stride gives less context to some tokens: a different (here generally higher) total
    const coarse = evaluatePerplexity(model, tok, text, { stride: 7 });
    expect(coarse.tokens).toBe(r.tokens);
    expect(coarse.windows).toBeLessThan(r.windows);
  });

  it("GPT-2: a text within one window gives the same result for every stride", () => {
    const short = "abc defg";
    const a = evaluatePerplexity(model, tok, short, { stride: 1 });
    const b = evaluatePerplexity(model, tok, short, { stride: 7 });
    expect(Math.abs(a.nll - b.nll)).toBeLessThan(1e-4);
  });
}
