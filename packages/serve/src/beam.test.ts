import { initBackend, tf } from "@typeformer/core";
import { type CausalLM, createModel, type Seq2SeqLM } from "@typeformer/models";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BeamHypothesis, beamSearchCausal, beamSearchCore, beamSearchSeq2Seq } from "./beam.js";
import { logSoftmax } from "./sampling.js";

/** A deterministic next-token scorer over a 4-token vocabulary that depends on the whole prefix. */
const V = 4;
function scorer(prefixes: number[][]): Float32Array {
  const out = new Float32Array(prefixes.length * V);
  prefixes.forEach((p, b) => {
    let h = 17;
    for (const t of p) h = (h * 31 + t * 7 + 3) % 101;
    for (let v = 0; v < V; v++) out[b * V + v] = Math.sin(h * 0.37 + v * 1.91) * 2 + (v === h % V ? 1.5 : 0);
  });
  return out;
}
const sumLogprob = (ids: number[]) =>
  ids.reduce((s, t, i) => s + logSoftmax(scorer([ids.slice(0, i)]))[t], 0);

/** Cached and recomputed beam search agree: same ids and finished flags, log-probs within 1e-4. */
function expectSameHypotheses(cached: BeamHypothesis[], full: BeamHypothesis[]): void {
  expect(cached.map((h) => h.tokenIds)).toEqual(full.map((h) => h.tokenIds));
  expect(cached.map((h) => h.finished)).toEqual(full.map((h) => h.finished));
  cached.forEach((h, i) => {
    expect(Math.abs(h.sumLogprob - full[i].sumLogprob)).toBeLessThan(1e-4);
  });
}

describe("beam search", () => {
  it("with numBeams ≥ V^(L-1) finds the exact best sequence (exhaustive check)", () => {
    const L = 3;
    let best = { ids: [] as number[], s: -Infinity };
    for (let a = 0; a < V ** L; a++) {
      const ids = [Math.floor(a / 16) % 4, Math.floor(a / 4) % 4, a % 4];
      const s = sumLogprob(ids);
      if (s > best.s) best = { ids, s };
    }
    const [h] = beamSearchCore(scorer, V, { numBeams: 16, maxTokens: L, eosTokenId: null });
    expect(h.tokenIds).toEqual(best.ids);
    expect(h.sumLogprob).toBeCloseTo(best.s, 9);
  });

  it("numBeams 1 is greedy; more beams never score worse here; EOS finishes hypotheses", () => {
    const greedy: number[] = [];
    for (let i = 0; i < 5; i++) {
      const row = scorer([greedy]);
      greedy.push(row.indexOf(Math.max(...row)));
    }
    const [g] = beamSearchCore(scorer, V, { numBeams: 1, maxTokens: 5, eosTokenId: null });
    expect(g.tokenIds).toEqual(greedy);
    const four = beamSearchCore(scorer, V, {
      numBeams: 4,
      maxTokens: 5,
      eosTokenId: null,
      numReturnSequences: 4,
    });
    expect(four).toHaveLength(4);
    expect(four[0].sumLogprob).toBeGreaterThanOrEqual(g.sumLogprob - 1e-12);
    for (let i = 1; i < 4; i++) expect(four[i].score).toBeLessThanOrEqual(four[i - 1].score);
    for (const h of four) expect(h.sumLogprob).toBeCloseTo(sumLogprob(h.tokenIds), 9);
    const withEos = beamSearchCore(scorer, V, {
      numBeams: 3,
      maxTokens: 6,
      eosTokenId: 2,
      numReturnSequences: 3,
    });
    for (const h of withEos) {
      expect(h.finished).toBe(h.tokenIds.at(-1) === 2);
      expect(h.tokenIds.slice(0, -1)).not.toContain(2);
    }
  });

  describe("on real tiny models (wasm)", () => {
    let t5: Seq2SeqLM;
    let gpt: CausalLM;
    beforeAll(async () => {
      await initBackend({ backend: "wasm" });
      t5 = createModel({ modelType: "t5", preset: "tiny", vocabSize: 40 }, { seed: 2 }) as Seq2SeqLM;
      gpt = createModel(
        { modelType: "gpt2", vocabSize: 40, maxPositions: 32, hiddenSize: 32, numLayers: 2, numHeads: 4 },
        { seed: 2 },
      ) as CausalLM;
    });
    afterAll(() => {
      t5.dispose();
      gpt.dispose();
    });

    it("t5: 1 beam = greedy decoding; reported log-probs match teacher forcing; no leaks", () => {
      const input = [5, 9, 13, 2, 7];
      beamSearchSeq2Seq(t5, input, { numBeams: 2, maxTokens: 2 }); // warm lazy caches
      const before = tf.memory().numTensors;
      const greedy: number[] = [];
      tf.tidy(() => {
        const hidden = t5.encode(tf.tensor2d([input], undefined, "int32")).hidden;
        for (let i = 0; i < 6; i++) {
          const ids = tf.tensor2d([[t5.decoderStartTokenId, ...greedy]], undefined, "int32");
          const logits = t5.decode(ids, hidden).logits;
          const next = tf.argMax(logits.slice([0, greedy.length, 0], [1, 1, -1]), -1).dataSync()[0];
          greedy.push(next);
          if (next === t5.eosTokenId) break;
        }
      });
      const [g] = beamSearchSeq2Seq(t5, input, { numBeams: 1, maxTokens: 6 });
      expect(g.tokenIds).toEqual(greedy);
      const hyps = beamSearchSeq2Seq(t5, input, { numBeams: 4, maxTokens: 6, numReturnSequences: 3 });
      expect(hyps).toHaveLength(3);
      const forced = tf.tidy(() => {
        const hidden = t5.encode(tf.tensor2d([input], undefined, "int32")).hidden;
        const ids = [t5.decoderStartTokenId, ...hyps[0].tokenIds.slice(0, -1)];
        const logits = t5.decode(tf.tensor2d([ids], undefined, "int32"), hidden).logits;
        return tf.logSoftmax(logits.reshape([ids.length, -1])).arraySync() as number[][];
      });
      const s = hyps[0].tokenIds.reduce((acc, t, i) => acc + forced[i][t], 0);
      expect(Math.abs(s - hyps[0].sumLogprob)).toBeLessThan(1e-4);
      expect(tf.memory().numTensors).toBe(before);
    });

    it("causal beam search with the KV cache (rows reordered per step) = recomputing every prefix; no leaks", () => {
      const llama = createModel(
        {
          modelType: "llama",
          vocabSize: 40,
          maxPositions: 32,
          hiddenSize: 32,
          intermediateSize: 64,
          numLayers: 2,
          numHeads: 4,
          numKvHeads: 2,
        } as never,
        { seed: 3 },
      ) as CausalLM;
      try {
        const cases: [CausalLM, number[], number | undefined][] = [
          [gpt, [3, 4, 5], undefined],
          [gpt, [7], 11], // EOS: hypotheses finish and the beams thin out
          [llama, [1, 2, 3, 4], undefined],
          [llama, [9, 8], 6],
        ];
        for (const m of [gpt, llama]) {
          const c = m.createCache(1, 4) as unknown as { selectRows?: unknown; dispose(): void };
          expect(typeof c.selectRows).toBe("function"); // so the cached path is the one exercised
          c.dispose();
        }
        beamSearchCausal(gpt, [3], { numBeams: 2, maxTokens: 2 }); // warm lazy caches (tied head)
        beamSearchCausal(llama, [3], { numBeams: 2, maxTokens: 2 });
        const before = tf.memory().numTensors;
        for (const [m, prompt, eos] of cases)
          for (const numBeams of [1, 3, 5]) {
            const opts = { numBeams, maxTokens: 8, eosTokenId: eos, numReturnSequences: numBeams };
            const cached = beamSearchCausal(m, prompt, opts);
            const full = beamSearchCausal(m, prompt, { ...opts, cache: false });
            expectSameHypotheses(cached, full);
          }
        expect(tf.memory().numTensors).toBe(before);
      } finally {
        llama.dispose();
      }
    });

    it("t5 beam search with the decoder cache = re-running every prefix; no leaks", () => {
      const c = t5.createCache(1, 4) as unknown as { self: { selectRows?: unknown }; dispose(): void };
      expect(typeof c.self.selectRows).toBe("function"); // so the cached path is the one exercised
      c.dispose();
      beamSearchSeq2Seq(t5, [5, 9], { numBeams: 2, maxTokens: 2 }); // warm lazy caches
      const before = tf.memory().numTensors;
      for (const input of [
        [5, 9, 13, 2, 7],
        [11, 3],
      ])
        for (const numBeams of [1, 3, 5]) {
          const opts = { numBeams, maxTokens: 8, numReturnSequences: numBeams };
          const cached = beamSearchSeq2Seq(t5, input, opts);
          const full = beamSearchSeq2Seq(t5, input, { ...opts, cache: false });
          expectSameHypotheses(cached, full);
        }
      expect(tf.memory().numTensors).toBe(before);
    });

    it("gpt2: 1 beam = greedy", () => {
      const prompt = [3, 4, 5];
      const greedy: number[] = [];
      for (let i = 0; i < 5; i++) {
        const next = tf.tidy(() => {
          const { logits } = gpt.forward(tf.tensor2d([[...prompt, ...greedy]], undefined, "int32"));
          return tf
            .argMax(logits.slice([0, prompt.length + greedy.length - 1, 0], [1, 1, -1]), -1)
            .dataSync()[0];
        });
        greedy.push(next);
      }
      const [g] = beamSearchCausal(gpt, prompt, { numBeams: 1, maxTokens: 5 });
      expect(g.tokenIds).toEqual(greedy);
      const [b] = beamSearchCausal(gpt, prompt, { numBeams: 3, maxTokens: 5 });
      expect(b.sumLogprob).toBeGreaterThanOrEqual(g.sumLogprob - 1e-4);
    });
  });
});
