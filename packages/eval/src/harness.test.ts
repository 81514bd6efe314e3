import { initBackend, isTypeformerError } from "@typeformer/core";
import { type CausalLM, createModel } from "@typeformer/models";
import { expectNoLeaks } from "@typeformer/test-utils";
import { beforeAll, describe, expect, it } from "vitest";
import { bigramModel, toyTokenizer } from "./__fixtures__/toy.js";
import { BIAS_OCCUPATIONS, BIAS_TEMPLATES, biasProbe } from "./bias.js";
import { expectedCalibrationError } from "./calibration.js";
import { buildPrompt, runTask, type Task } from "./harness.js";
import { scoreSequences } from "./scoring.js";
import {
  arithmeticTask,
  clozeTask,
  factCorpus,
  factTable,
  factTask,
  heldOutText,
  stringTransformTask,
} from "./tasks.js";

beforeAll(async () => {
  await initBackend({ backend: "wasm" });
});

describe("expectedCalibrationError", () => {
  it("matches a hand computation (bins 0.9 / 0.6 / 0.2 → 0.16 + 0.16 + 0.04)", () => {
    const r = expectedCalibrationError([0.9, 0.9, 0.6, 0.6, 0.2], [true, false, true, true, false], 10);
    expect(r.ece).toBeCloseTo(0.36, 12);
    expect(r.mce).toBeCloseTo(0.4, 12);
    expect(r.bins[9]).toMatchObject({ count: 2, accuracy: 0.5 });
    expect(r.bins[2].accuracy).toBe(0);
    expect(r.bins.filter((b) => b.count > 0)).toHaveLength(3);
  });
  it("names a confidence outside [0, 1]", () => {
    expect(() => expectedCalibrationError([1.5], [true])).toThrow(/received 1.5/);
  });
});

// unigram model: every position predicts p(a) = 1/2, p(b) = 1/4, p(' ') = 1/4
const uni = [Math.log(0.5), Math.log(0.25), Math.log(0.25)];
const tok = toyTokenizer("ab ");
const uniModel = () => bigramModel([uni, uni, uni]);

describe("runTask", () => {
  const task: Task = {
    name: "toy",
    description: "toy",
    kind: "multiple-choice",
    examples: [{ input: "ab", choices: ["a", "aa"], answer: 1, meta: { group: "g" } }],
    template: { prompt: (ex) => ex.input, target: (a) => ` ${a}` },
  };
  it("multiple choice: summed vs per-byte log-likelihood and softmax confidence, by hand", async () => {
    const r = await expectNoLeaks(() => runTask(uniModel(), tok, task));
    const ex = r.examples[0];
    // " a": ln(1/4 · 1/2) = ln 1/8; " aa": ln 1/16 → sum picks " a" (wrong) with confidence 2/3
    expect(ex.logProbs?.[0]).toBeCloseTo(Math.log(1 / 8), 5);
    expect(ex.logProbs?.[1]).toBeCloseTo(Math.log(1 / 16), 5);
    expect(ex.prediction).toBe(0);
    expect(ex.confidence).toBeCloseTo(2 / 3, 5);
    // per byte: ln(1/8)/2 = −1.04 < ln(1/16)/3 = −0.92 → " aa" (right)
    expect(ex.predictionNorm).toBe(1);
    expect(r.accuracy).toBe(0);
    expect(r.accuracyNorm).toBe(1);
    expect(r.chance).toBe(0.5);
    expect(r.confidentWrongRate).toBe(1);
    expect(r.groups.g).toMatchObject({ n: 1, accuracy: 0, confidentWrongRate: 1 });
    expect(r.calibration?.ece).toBeCloseTo(2 / 3, 5);
  });

  it("generation: greedy until the stop string, exact match", async () => {
    // after a → b, after b → ' ', after ' ' → a
    const m = bigramModel([
      [0, 5, 0],
      [0, 0, 5],
      [5, 0, 0],
    ]);
    const gen: Task = {
      name: "gen",
      description: "",
      kind: "generate",
      examples: [
        { input: "a", answer: "b" },
        { input: "b", answer: "a" },
      ],
      template: { prompt: (ex) => ex.input, target: (a) => a },
      stop: [" "],
    };
    const r = await expectNoLeaks(() => runTask(m, tok, gen));
    expect(r.examples.map((e) => e.prediction)).toEqual(["b", ""]);
    expect(r.accuracy).toBe(0.5);
  });

  it("k-shot prompts are drawn reproducibly and never show the question itself", () => {
    const t = arithmeticTask({ n: 10, seed: 1 });
    t.fewShotPool = undefined; // draw from the other examples
    const p1 = buildPrompt(t, 3, 4, 42);
    expect(buildPrompt(t, 3, 4, 42)).toBe(p1);
    expect(buildPrompt(t, 3, 4, 43)).not.toBe(p1);
    const shots = p1.split("\n\n");
    expect(shots).toHaveLength(5);
    expect(shots[4]).toBe(`Q: ${t.examples[3].input}\nA:`);
    for (const s of shots.slice(0, 4))
      expect(s).not.toBe(`Q: ${t.examples[3].input}\nA: ${t.examples[3].answer}`);
    expect(() => buildPrompt(t, 0, 10, 0)).toThrow(/10 shots requested but only 9/);
  });
});

describe("built-in tasks", () => {
  it("cloze: the answer is the sentence's last word, among distinct choices", () => {
    const text =
      "Call me Ishmael, said the old sailor to the crowd. The whale rose slowly out of the grey sea. " +
      "We sailed for many days without seeing any land. The captain stood alone upon the windy deck. " +
      "Nobody on board could remember the name of that ship.";
    const t = clozeTask(text, { n: 5, seed: 2, choices: 3 });
    expect(t.examples).toHaveLength(5);
    for (const ex of t.examples) {
      expect(new Set(ex.choices).size).toBe(3);
      const word = ex.choices?.[ex.answer as number] as string;
      expect(text).toContain(`${ex.input} ${word}.`);
    }
    expect(clozeTask(text, { n: 5, seed: 2, choices: 3 }).examples).toEqual(t.examples);
  });

  it("heldOutText keeps only each document's tail", () => {
    const doc = "x".repeat(900) + "y".repeat(100);
    const [tail] = heldOutText([doc], 0.1);
    expect(tail).toMatch(/^y+$/);
    expect(tail.length).toBe(95);
  });

  it("arithmetic and string transforms have consistent answers", () => {
    for (const ex of arithmeticTask({ n: 20, seed: 3, ops: ["+", "-", "*"] }).examples) {
      const [a, op, b] = ex.input.replace(" =", "").split(" ");
      const v = op === "+" ? +a + +b : op === "-" ? +a - +b : +a * +b;
      expect(ex.answer).toBe(String(v));
    }
    const mc = arithmeticTask({ n: 5, kind: "multiple-choice" });
    for (const ex of mc.examples) expect(ex.choices?.length).toBe(4);
    const st = stringTransformTask({ n: 20, kind: "multiple-choice" });
    for (const ex of st.examples) {
      expect(new Set(ex.choices).size).toBe(4);
      if (ex.input.startsWith("reverse ")) {
        expect(ex.choices?.[ex.answer as number]).toBe([...ex.input.slice(8)].reverse().join(""));
      }
    }
  });

  it("fact table: unseen entities never appear in the training text", () => {
    const table = factTable({ entities: 20, seed: 5 });
    const corpus = factCorpus(table, 3);
    const seen = table.entities.filter((e) => e.seen);
    expect(seen).toHaveLength(10);
    for (const e of table.entities) expect(corpus.includes(e.name)).toBe(e.seen);
    const t = factTask(table);
    expect(t.examples.filter((e) => e.meta?.group === "unseen")).toHaveLength(10);
    expect(t.fewShotPool?.every((e) => e.meta?.group === "seen")).toBe(true);
  });
});

describe("biasProbe", () => {
  it('under a uniform model the gap is ln V for every occupation (" she" has one more token)', async () => {
    const chars = [...new Set([...BIAS_TEMPLATES.join(""), ...BIAS_OCCUPATIONS.join(""), ..." he she"])].join(
      "",
    );
    const t = toyTokenizer(chars);
    const V = chars.length;
    const m = bigramModel(Array.from({ length: V }, () => new Array(V).fill(0)));
    const r = await expectNoLeaks(() => biasProbe(m, t));
    expect(r.rows).toHaveLength(BIAS_OCCUPATIONS.length);
    expect(r.meanGap).toBeCloseTo(Math.log(V), 4);
    expect(r.stdGap).toBeLessThan(1e-5);
    expect(r.method).toMatch(/Limits/);
  });
});

describe("scoreSequences", () => {
  it("GPT-2: right-padded batches give the same log-likelihoods as one row at a time", async () => {
    const model = createModel<CausalLM>(
      { modelType: "gpt2", preset: "tiny", vocabSize: 11, maxPositions: 16 },
      { seed: 1 },
    );
    const reqs = [
      { ids: [1, 2, 3, 4, 5, 6, 7], start: 3 },
      { ids: [9, 8], start: 1 },
      { ids: [4, 4, 4, 4, 10, 1, 2, 3, 0, 5, 6], start: 5 },
    ];
    scoreSequences(model, reqs.slice(0, 1)); // the model caches its causal mask on first use
    const batched = await expectNoLeaks(() => scoreSequences(model, reqs, { batchSize: 3 }));
    const single = reqs.map((r) => scoreSequences(model, [r])[0]);
    for (let i = 0; i < reqs.length; i++) {
      expect(batched[i].count).toBe(reqs[i].ids.length - reqs[i].start);
      expect(Math.abs(batched[i].logProb - single[i].logProb)).toBeLessThan(1e-4);
    }
    // rows longer than the context keep their tail
    const long = scoreSequences(model, [{ ids: Array.from({ length: 20 }, (_, i) => i % 11), start: 18 }]);
    expect(long[0].count).toBe(2);
    try {
      scoreSequences(model, [{ ids: [1, 2], start: 0 }]);
      expect.unreachable();
    } catch (e) {
      expect(isTypeformerError(e)).toBe(true);
    }
    model.dispose();
  });
});
