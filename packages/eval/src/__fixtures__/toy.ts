import { tf } from "@typeformer/core";
import type { EvalTokenizer, ScoringModel } from "../scoring.js";

/** A char tokenizer over a fixed alphabet (one id per character), for hand-computed references. */
export function toyTokenizer(alphabet: string, eos?: number): EvalTokenizer {
  const chars = [...alphabet];
  return {
    encode: (t) =>
      [...t].map((c) => {
        const i = chars.indexOf(c);
        if (i < 0) throw new Error(`toy tokenizer: ${JSON.stringify(c)} not in alphabet`);
        return i;
      }),
    decode: (ids) => ids.map((i) => chars[i] ?? "").join(""),
    eosTokenId: eos,
  };
}

/** logits[b, t] = table[ids[b, t]]: a bigram model whose probabilities are written by hand. */
export function bigramModel(table: number[][], maxPositions = 64): ScoringModel & { calls: number } {
  const m = {
    maxPositions,
    calls: 0,
    forward(ids: tf.Tensor2D) {
      m.calls++;
      return { logits: tf.tidy(() => tf.gather(tf.tensor2d(table), ids)) as unknown as tf.Tensor3D };
    },
  };
  return m;
}
