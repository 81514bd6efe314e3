import { isTypeformerError, Random } from "@typeformer/core";
import { describe, expect, it } from "vitest";
import {
  applyLogitBias,
  applyPresenceFrequencyPenalty,
  applyRepetitionPenalty,
  applyTemperature,
  argmax,
  logSoftmax,
  minPFilter,
  Sampler,
  sampleCategorical,
  softmax,
  topKFilter,
  topLogprobs,
  topPFilter,
  validateSamplingParams,
} from "./sampling.js";
import { StopMatcher } from "./stop.js";

const f = (a: number[]) => new Float32Array(a);

describe("logit processors", () => {
  it("softmax / logSoftmax match the float64 formula", () => {
    const x = f([1, 2, 3, -1]);
    const z = Math.exp(1) + Math.exp(2) + Math.exp(3) + Math.exp(-1);
    const p = softmax(x);
    expect(p[2]).toBeCloseTo(Math.exp(3) / z, 6);
    expect(logSoftmax(x)[0]).toBeCloseTo(1 - Math.log(z), 6);
    expect(Array.from(p).reduce((a, b) => a + b)).toBeCloseTo(1, 12);
  });

  it("argmax picks the lowest index on ties", () => {
    expect(argmax(f([0, 5, 5, 1]))).toBe(1);
  });

  it("temperature divides", () => {
    const x = f([2, -4]);
    applyTemperature(x, 0.5);
    expect(Array.from(x)).toEqual([4, -8]);
  });

  it("top-k keeps the k largest", () => {
    const x = f([0.1, 3, 2, 5, -1]);
    topKFilter(x, 2);
    expect(Array.from(x)).toEqual([-Infinity, 3, -Infinity, 5, -Infinity]);
  });

  it("top-p keeps the smallest prefix reaching p", () => {
    // probs 0.5, 0.3, 0.2 (logits = log probs)
    const base = [Math.log(0.2), Math.log(0.5), Math.log(0.3)];
    const a = f(base);
    topPFilter(a, 0.5);
    expect(Array.from(a).map(Number.isFinite)).toEqual([false, true, false]);
    const b = f(base);
    topPFilter(b, 0.79);
    expect(Array.from(b).map(Number.isFinite)).toEqual([false, true, true]);
    const c = f(base);
    topPFilter(c, 0.81);
    expect(Array.from(c).map(Number.isFinite)).toEqual([true, true, true]);
  });

  it("min-p drops tokens below p × max prob", () => {
    const x = f([Math.log(0.6), Math.log(0.3), Math.log(0.1)]);
    minPFilter(x, 0.2); // threshold 0.12
    expect(Array.from(x).map(Number.isFinite)).toEqual([true, true, false]);
  });

  it("repetition penalty divides positive and multiplies negative logits", () => {
    const x = f([2, -2, 1]);
    applyRepetitionPenalty(x, [0, 1], 2);
    expect(Array.from(x)).toEqual([1, -4, 1]);
  });

  it("presence and frequency penalties follow OpenAI's formula", () => {
    const x = f([1, 1, 1]);
    applyPresenceFrequencyPenalty(
      x,
      new Map([
        [0, 3],
        [2, 1],
      ]),
      0.5,
      0.25,
    );
    expect(Array.from(x)).toEqual([1 - 0.75 - 0.5, 1, 1 - 0.25 - 0.5]);
  });

  it("logit bias adds per id", () => {
    const x = f([0, 0, 0]);
    applyLogitBias(x, { 1: 100, 2: -100 });
    expect(Array.from(x)).toEqual([0, 100, -100]);
  });

  it("topLogprobs returns the k best, sorted", () => {
    const r = topLogprobs(Float64Array.from([-3, -0.1, -2, -0.1, -5]), 3);
    expect(r).toEqual([
      { tokenId: 1, logprob: -0.1 },
      { tokenId: 3, logprob: -0.1 },
      { tokenId: 2, logprob: -2 },
    ]);
  });

  it("categorical sampling matches the distribution (chi-square, 20k draws)", () => {
    const probs = [0.1, 0.2, 0.3, 0.4];
    const x = f(probs.map(Math.log));
    const rng = new Random(7);
    const counts = [0, 0, 0, 0];
    const n = 20000;
    for (let i = 0; i < n; i++) counts[sampleCategorical(x, rng)]++;
    const chi2 = counts.reduce((s, c, i) => s + (c - n * probs[i]) ** 2 / (n * probs[i]), 0);
    expect(chi2).toBeLessThan(16.27); // p = 0.001, 3 dof
  });

  it("validation names the field and value", () => {
    try {
      validateSamplingParams({ topP: 1.5 });
      expect.unreachable();
    } catch (e) {
      expect(isTypeformerError(e, "INVALID_ARGUMENT")).toBe(true);
      expect((e as Error).message).toContain("topP");
      expect((e as Error).message).toContain("1.5");
    }
    expect(() => validateSamplingParams({ logitBias: { 99: 1 } }, 10)).toThrow(/logitBias/);
  });
});

describe("Sampler", () => {
  const row = f([0.5, 1.5, 1.0, -2, 0.2, 1.4]);

  it("temperature 0 is greedy", () => {
    const s = new Sampler({ temperature: 0 });
    expect(s.sample(row).tokenId).toBe(1);
  });

  it("same seed → same sequence; different seed → (almost surely) different", () => {
    const draw = (seed: number) => {
      const s = new Sampler({ seed, temperature: 1.5 });
      return Array.from({ length: 50 }, () => s.sample(row).tokenId);
    };
    expect(draw(3)).toEqual(draw(3));
    expect(draw(3)).not.toEqual(draw(4));
  });

  it("top-k 1 with any temperature is greedy; logit_bias can force a token", () => {
    expect(new Sampler({ topK: 1, seed: 1, temperature: 5 }).sample(row).tokenId).toBe(1);
    expect(new Sampler({ logitBias: { 3: 100 }, seed: 1 }).sample(row).tokenId).toBe(3);
  });

  it("frequency penalty stops greedy repetition", () => {
    const s = new Sampler({ temperature: 0, frequencyPenalty: 0.6 });
    const out = Array.from({ length: 3 }, () => s.sample(row).tokenId);
    expect(out).toEqual([1, 5, 2]); // 1.5 → 0.9 < 1.4; then 1.4 → 0.8 < 1.0
  });

  it("repetition penalty covers the prompt", () => {
    const s = new Sampler({ temperature: 0, repetitionPenalty: 2 }, [1]);
    expect(s.sample(row).tokenId).toBe(5);
  });

  it("logprobs come from the raw distribution with top alternatives", () => {
    const s = new Sampler({ temperature: 0, logitBias: { 3: 100 } });
    const r = s.sample(row, 2);
    const lp = logSoftmax(row);
    expect(r.tokenId).toBe(3);
    expect(r.logprob).toBeCloseTo(lp[3], 10);
    expect(r.topLogprobs!.map((t) => t.tokenId)).toEqual([1, 5]);
  });
});

describe("StopMatcher", () => {
  const run = (stops: string[], deltas: string[]) => {
    const m = new StopMatcher(stops);
    let out = "";
    let stopped = false;
    for (const d of deltas) {
      const r = m.push(d);
      out += r.text;
      if (r.stopped) {
        stopped = true;
        break;
      }
    }
    if (!stopped) out += m.flush();
    return { out, stopped };
  };

  it("finds a stop string split across tokens and never emits it", () => {
    expect(run(["END"], ["hello E", "N", "D more"])).toEqual({ out: "hello ", stopped: true });
  });

  it("releases held-back text that did not complete a stop string", () => {
    expect(run(["END"], ["hello E", "N", "x"])).toEqual({ out: "hello ENx", stopped: false });
    expect(run(["END"], ["hello E", "N"])).toEqual({ out: "hello EN", stopped: false });
  });

  it("picks the earliest of several stop strings", () => {
    expect(run(["bc", "cd"], ["abcd"])).toEqual({ out: "a", stopped: true });
    expect(run(["\n\n", "."], ["one", "\n", "\ntwo."])).toEqual({ out: "one", stopped: true });
  });
});
