import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { openCheckpoint, Random, tf } from "@typeformer/core";
import { assertClose, describeEachBackend, expectNoLeaks, maxAbsDiff } from "@typeformer/test-utils";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type CausalLM, fromPretrained } from "./index.js";

const FIXTURES = path.join(import.meta.dirname, "__fixtures__");

function greedyWithCache(model: CausalLM, prompt: number[], n: number): number[] {
  const cache = model.createCache(1, prompt.length + n);
  const out: number[] = [];
  let ids = tf.tensor2d([prompt], undefined, "int32");
  for (let i = 0; i < n; i++) {
    const { logits } = model.forward(ids, { cache });
    const next = tf.tidy(
      () => tf.argMax(tf.slice(logits, [0, logits.shape[1] - 1, 0], [1, 1, -1]), -1).dataSync()[0],
    );
    out.push(next);
    tf.dispose([ids, logits]);
    ids = tf.tensor2d([[next]], undefined, "int32");
  }
  ids.dispose();
  cache.dispose();
  return out;
}

for (const name of ["gpt2-tiny", "llama-tiny"]) {
  const dir = path.join(FIXTURES, name);
  const expected = JSON.parse(readFileSync(path.join(dir, "expected.json"), "utf8"));

  describeEachBackend(`${name}`, () => {
    let model: CausalLM;
    let tmp: string;
    beforeAll(async () => {
      model = await fromPretrained<CausalLM>(dir);
      tmp = await mkdtemp(path.join(tmpdir(), `tf-models-${name}-`));
    });
    afterAll(async () => {
      model.dispose();
      await rm(tmp, { recursive: true, force: true });
    });

    it("reproduces the reference logits (max |Δ| ≤ 1e-4)", () => {
      const ids = tf.tensor2d(expected.input_ids, undefined, "int32");
      const { logits } = model.forward(ids);
      expect(logits.shape).toEqual([...ids.shape, model.vocabSize]);
      console.log(`${name} logits max |Δ| = ${maxAbsDiff(logits, expected.logits).toExponential(2)}`);
      assertClose(logits, expected.logits, { atol: 1e-4, rtol: 0, label: name });
      tf.dispose([ids, logits]);
    });

    it("greedy continuation with the KV cache equals the reference's", () => {
      expect(greedyWithCache(model, expected.prompt, expected.greedy.length)).toEqual(expected.greedy);
    });

    it("cached incremental forward equals the full forward", () => {
      const seq: number[] = expected.input_ids[0];
      const ids = tf.tensor2d([seq], undefined, "int32");
      const { logits: full } = model.forward(ids);
      const cache = model.createCache(1, seq.length);
      const parts: tf.Tensor3D[] = [];
      // a 3-token prefill, then one token at a time
      const chunks = [seq.slice(0, 3), ...seq.slice(3).map((t) => [t])];
      for (const c of chunks) {
        const x = tf.tensor2d([c], undefined, "int32");
        parts.push(model.forward(x, { cache }).logits);
        x.dispose();
      }
      const inc = tf.concat(parts, 1);
      assertClose(inc, full, { atol: 1e-4, rtol: 0, label: "cached vs full" });
      tf.dispose([ids, full, inc, ...parts]);
      cache.dispose();
    });

    it("a left-padded batch gives every row its unpadded logits (with and without a cache)", () => {
      const a: number[] = expected.input_ids[0].slice(0, 6);
      const b: number[] = expected.input_ids[1].slice(0, 4);
      const padded = tf.tensor2d([a, [0, 0, ...b]], undefined, "int32");
      const mask = tf.tensor2d(
        [
          [1, 1, 1, 1, 1, 1],
          [0, 0, 1, 1, 1, 1],
        ],
        undefined,
        "int32",
      );
      const { logits } = model.forward(padded, { attentionMask: mask });
      const one = tf.tensor2d([b], undefined, "int32");
      const { logits: ref } = model.forward(one);
      const row = tf.slice(logits, [1, 2, 0], [1, 4, -1]);
      assertClose(row, ref, { atol: 1e-4, rtol: 0, label: "padded row" });
      // prefill the padded batch into a cache, then one more token per row
      const cache = model.createCache(2, 8);
      const pre = model.forward(padded, { attentionMask: mask, cache }).logits;
      const next = tf.tensor2d([[7], [7]], undefined, "int32");
      const step = model.forward(next, { cache }).logits;
      const ids2 = tf.tensor2d([[...b, 7]], undefined, "int32");
      const { logits: ref2 } = model.forward(ids2);
      assertClose(tf.slice(step, [1, 0, 0], [1, 1, -1]), tf.slice(ref2, [0, 4, 0], [1, 1, -1]), {
        atol: 1e-4,
        rtol: 0,
        label: "cached padded row",
      });
      tf.dispose([padded, mask, logits, one, ref, row, pre, next, step, ids2, ref2]);
      cache.dispose();
    });

    it("returns per-layer attention probabilities", () => {
      const ids = tf.tensor2d([expected.input_ids[0].slice(0, 5)], undefined, "int32");
      const { logits, attentions } = model.forward(ids, { outputAttentions: true });
      expect(attentions).toHaveLength(model.numLayers);
      expect(attentions![0].shape).toEqual([1, model.numHeads, 5, 5]);
      assertClose(tf.sum(attentions![1], -1), tf.ones([1, model.numHeads, 5]), { atol: 1e-5 });
      expect(attentions![0].arraySync()[0][0][0].slice(1)).toEqual([0, 0, 0, 0]); // causal
      tf.dispose([ids, logits, ...attentions!]);
    });

    it("does not leak tensors (forward, cached decode, training forward)", async () => {
      const ids = tf.tensor2d([[3, 4, 5]], undefined, "int32");
      tf.dispose(model.forward(ids).logits); // warm-up: builds the cached transposed head once
      await expectNoLeaks(() => tf.dispose(model.forward(ids).logits));
      await expectNoLeaks(() => {
        const cache = model.createCache(1, 4);
        tf.dispose(model.forward(ids, { cache }).logits);
        cache.dispose();
      });
      await expectNoLeaks(() => {
        const r = model.forward(ids, { training: true, rng: new Random(1), outputAttentions: true });
        tf.dispose([r.logits, ...(r.attentions ?? [])]);
      });
      ids.dispose();
    });

    it("save then fromPretrained round-trips bit-exact with HF tensor names", async () => {
      const out = path.join(tmp, "saved");
      await model.save(out);
      const reread = await fromPretrained<CausalLM>(out);
      const a = model.namedParameters();
      const b = reread.namedParameters();
      expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
      for (const [k, v] of a) expect(b.get(k)!.dataSync(), k).toEqual(v.dataSync());
      const src = await openCheckpoint(dir);
      const saved = await openCheckpoint(out);
      const weights = (r: { names(): string[] }) =>
        r
          .names()
          .filter((n) => !/attn\.bias$/.test(n))
          .sort();
      expect(weights(saved)).toEqual(weights(src));
      for (const n of weights(src)) expect(saved.info(n).shape, n).toEqual(src.info(n).shape);
      await Promise.all([src.close(), saved.close()]);
      const config = JSON.parse(readFileSync(path.join(out, "config.json"), "utf8"));
      const orig = JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8"));
      for (const k of Object.keys(orig)) if (k !== "torch_dtype") expect(config[k], k).toEqual(orig[k]);
      reread.dispose();
    });

    it("loads F16 checkpoints (widened to float32)", async () => {
      const out = path.join(tmp, "f16");
      await model.save(out, { dtype: "F16" });
      const m16 = await fromPretrained<CausalLM>(out);
      const ids = tf.tensor2d(expected.input_ids, undefined, "int32");
      const { logits } = m16.forward(ids);
      expect(maxAbsDiff(logits, expected.logits)).toBeLessThan(0.5);
      expect(maxAbsDiff(logits, expected.logits)).toBeGreaterThan(0);
      tf.dispose([ids, logits]);
      m16.dispose();
    });

    it("training forward applies seeded dropout; eval is deterministic", () => {
      const ids = tf.tensor2d([[3, 4, 5, 6]], undefined, "int32");
      const run = (training: boolean, seed: number) => {
        const { logits } = model.forward(ids, { training, rng: new Random(seed) });
        const d = logits.dataSync().slice();
        logits.dispose();
        return d;
      };
      expect(run(true, 1)).toEqual(run(true, 1));
      if (model.modelType === "gpt2") expect(run(true, 1)).not.toEqual(run(false, 1));
      expect(run(false, 1)).toEqual(run(false, 2));
      ids.dispose();
    });
  });
}
