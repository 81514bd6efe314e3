import { initBackend, Random, tf } from "@typeformer/core";
import { createModel, type Seq2SeqLM } from "@typeformer/models";
import { expectNoLeaks } from "@typeformer/test-utils";
import { CharTokenizer } from "@typeformer/tokenizer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answer, greedySeq2Seq } from "./run.js";
import { encodeSeq2Seq } from "./tasks.js";

/** The reference: re-run the whole decoder over start + generated ids on every step (no cache). */
function fullRecompute(model: Seq2SeqLM, input: number[], maxNew: number): number[] {
  const out: number[] = [];
  const enc = tf.tidy(() => model.encode(tf.tensor2d([input], [1, input.length], "int32")).hidden);
  try {
    for (let i = 0; i < maxNew; i++) {
      const dec = [model.decoderStartTokenId, ...out];
      const id = tf.tidy(() => {
        const { logits } = model.decode(tf.tensor2d([dec], [1, dec.length], "int32"), enc);
        const last = tf.slice(logits, [0, dec.length - 1, 0], [1, 1, -1]);
        return tf.argMax(tf.reshape(last, [-1])).dataSync()[0];
      });
      if (id === model.eosTokenId) break;
      out.push(id);
    }
  } finally {
    enc.dispose();
  }
  return out;
}

const tok = CharTokenizer.fromText("abcdefghijklmnopqrstuvwxyz0123456789 ", {
  specialTokens: ["<pad>", "</s>"],
  eosToken: "</s>",
  padToken: "<pad>",
});
const PROMPTS = ["translate hello", "abc", "the quick brown fox 42", "z", "seq two seq"];
let model: Seq2SeqLM;
const STD = 0.5;

beforeAll(async () => {
  await initBackend({ backend: "wasm" });
  model = createModel<Seq2SeqLM>(
    {
      modelType: "t5",
      preset: "tiny",
      vocabSize: tok.vocabSize,
      numDecoderLayers: 3,
      dropout: 0,
      padTokenId: tok.padTokenId!,
      eosTokenId: tok.eosTokenId!,
      decoderStartTokenId: tok.padTokenId!,
    },
    { seed: 7 },
  );
  model.tokenizer = tok;
  // fresh init repeats one token forever; wide random weights make greedy paths depend on history
  // (and so on the cached keys/values and relative positions) instead
  const rng = new Random(11);
  for (const v of model.namedParameters().values()) {
    tf.tidy(() => v.assign(tf.tensor(rng.normalArray(v.size, 0, STD), v.shape)));
  }
});
afterAll(() => model.dispose());

describe("answer (seq2seq): cached greedy decoding", () => {
  it("gives exactly the ids of full decoder recomputation on a seeded tiny T5", () => {
    const all: number[][] = [];
    for (const p of PROMPTS) {
      const { input } = encodeSeq2Seq(tok, p, "x", model.eosTokenId, 128);
      for (const maxNew of [1, 5, 20]) {
        const ref = fullRecompute(model, input, maxNew);
        const got = greedySeq2Seq(model, input, maxNew);
        expect(got, `${p} / ${maxNew}`).toEqual(ref);
        if (maxNew === 20) all.push(ref);
      }
    }
    // the comparison means something: outputs are long, differ between prompts and mix tokens
    expect(all.some((r) => r.length >= 10)).toBe(true);
    expect(new Set(all.map((r) => r.join())).size).toBeGreaterThan(1);
    expect(all.some((r) => new Set(r).size >= 3)).toBe(true);
    expect(greedySeq2Seq(model, [3, 4, tok.eosTokenId!], 0)).toEqual([]);
  });

  it("answer() decodes the same ids to text, with the public signature", () => {
    for (const p of PROMPTS) {
      const { input } = encodeSeq2Seq(tok, p, "x", model.eosTokenId, 128);
      const ref = fullRecompute(model, input, 12);
      const text = answer(model, tok, "seq2seq", p, { maxNew: 12 });
      expect(text).toBe(tok.decode(ref, { skipSpecialTokens: true }));
    }
  });

  it("leaks no tensors (cache, encoder output and per-step tensors are freed)", async () => {
    answer(model, tok, "seq2seq", "warm up", { maxNew: 4 }); // first-call caches (tied head) are model-owned
    await expectNoLeaks(() => {
      answer(model, tok, "seq2seq", "the quick brown fox", { maxNew: 16 });
    });
    const before = tf.memory().numTensors;
    const { input } = encodeSeq2Seq(tok, "abc", "x", model.eosTokenId, 128);
    greedySeq2Seq(model, input, 20);
    expect(tf.memory().numTensors).toBe(before);
  });
});
