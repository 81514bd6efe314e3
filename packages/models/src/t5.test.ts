import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { tf } from "@typeformer/core";
import { assertClose, describeEachBackend, expectNoLeaks, maxAbsDiff } from "@typeformer/test-utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromPretrained, relativePositionBucket, type Seq2SeqLM } from "./index.js";

const FIXTURES = path.join(import.meta.dirname, "__fixtures__");

describe("relativePositionBucket", () => {
  it("matches HF's buckets (float32 log branch) for every distance in [-300, 300]", () => {
    const ref = JSON.parse(readFileSync(path.join(FIXTURES, "t5-buckets.json"), "utf8"));
    for (const c of ref.cases) {
      const got = ref.relative_positions.map((r: number) =>
        relativePositionBucket(r, c.bidirectional, c.num_buckets, c.max_distance),
      );
      expect(got, JSON.stringify({ ...c, buckets: undefined })).toEqual(c.buckets);
    }
  });
});

function greedy(model: Seq2SeqLM, enc: tf.Tensor3D, mask: tf.Tensor2D, n: number): number[] {
  const cache = model.createCache(1, n + 1);
  const out: number[] = [];
  let next = model.decoderStartTokenId;
  for (let i = 0; i < n; i++) {
    const ids = tf.tensor2d([[next]], undefined, "int32");
    const { logits } = model.decode(ids, enc, { cache, encoderAttentionMask: mask });
    next = tf.tidy(() => tf.argMax(tf.reshape(logits, [-1])).dataSync()[0]);
    out.push(next);
    tf.dispose([ids, logits]);
  }
  cache.dispose();
  return out;
}

for (const name of ["t5-tiny", "t5-v1_1-tiny"]) {
  const dir = path.join(FIXTURES, name);
  const expected = JSON.parse(readFileSync(path.join(dir, "expected.json"), "utf8"));

  describeEachBackend(name, () => {
    let model: Seq2SeqLM;
    let ids: tf.Tensor2D;
    let mask: tf.Tensor2D;
    let dec: tf.Tensor2D;
    beforeAll(async () => {
      model = await fromPretrained<Seq2SeqLM>(dir);
      ids = tf.tensor2d(expected.input_ids, undefined, "int32");
      mask = tf.tensor2d(expected.attention_mask, undefined, "int32");
      dec = tf.tensor2d(expected.decoder_input_ids, undefined, "int32");
    });
    afterAll(() => {
      tf.dispose([ids, mask, dec]);
      model.dispose();
    });

    it("reproduces encoder states and decoder logits (max |Δ| ≤ 1e-4)", () => {
      const { hidden } = model.encode(ids, { attentionMask: mask });
      const { logits } = model.decode(dec, hidden, { encoderAttentionMask: mask });
      console.log(
        `${name} encoder max |Δ| = ${maxAbsDiff(hidden, expected.encoder_hidden).toExponential(2)}`,
      );
      console.log(`${name} logits max |Δ| = ${maxAbsDiff(logits, expected.logits).toExponential(2)}`);
      assertClose(hidden, expected.encoder_hidden, { atol: 1e-4, rtol: 0, label: "encoder" });
      assertClose(logits, expected.logits, { atol: 1e-4, rtol: 0, label: "logits" });
      const { logits: viaForward } = model.forward(ids, dec, { attentionMask: mask });
      assertClose(viaForward, expected.logits, { atol: 1e-4, rtol: 0, label: "forward" });
      tf.dispose([hidden, logits, viaForward]);
    });

    it("greedy decoding with self-attention and cross-attention caches equals the reference", () => {
      const one = tf.slice(ids, [0, 0], [1, -1]) as tf.Tensor2D;
      const m = tf.slice(mask, [0, 0], [1, -1]) as tf.Tensor2D;
      const { hidden } = model.encode(one, { attentionMask: m });
      expect(greedy(model, hidden, m, expected.greedy.length)).toEqual(expected.greedy);
      tf.dispose([one, m, hidden]);
    });

    it("cached decoding equals the full decoder pass", () => {
      const { hidden } = model.encode(ids, { attentionMask: mask });
      const { logits: full } = model.decode(dec, hidden, { encoderAttentionMask: mask });
      const cache = model.createCache(2, dec.shape[1]);
      const parts: tf.Tensor3D[] = [];
      for (let t = 0; t < dec.shape[1]; t++) {
        const step = tf.slice(dec, [0, t], [-1, 1]) as tf.Tensor2D;
        // after the first step the cache holds the cross-attention keys/values: no encoder states needed
        parts.push(model.decode(step, t === 0 ? hidden : null, { cache, encoderAttentionMask: mask }).logits);
        step.dispose();
      }
      const inc = tf.concat(parts, 1);
      assertClose(inc, full, { atol: 1e-4, rtol: 0, label: "cached vs full" });
      const one = tf.slice(dec, [0, 0], [1, 1]) as tf.Tensor2D;
      expect(() => model.decode(one, null)).toThrow(/encoderHidden must be .*received null/);
      expect(() => model.decode(one, null, { cache })).toThrow(
        /cross-attention keys have 2 rows; decoderIds has 1/,
      );
      one.dispose();
      tf.dispose([hidden, full, inc, ...parts]);
      cache.dispose();
    });

    it("does not leak tensors", async () => {
      const { hidden } = model.encode(ids, { attentionMask: mask });
      tf.dispose(model.decode(dec, hidden).logits); // warm-up (cached transposed head)
      await expectNoLeaks(() => {
        const r = model.decode(dec, hidden, { encoderAttentionMask: mask, outputAttentions: true });
        tf.dispose([r.logits, ...(r.attentions ?? [])]);
        const cache = model.createCache(2, 2);
        const step = tf.slice(dec, [0, 0], [-1, 1]);
        tf.dispose(model.decode(step as tf.Tensor2D, hidden, { cache, encoderAttentionMask: mask }).logits);
        tf.dispose(model.decode(step as tf.Tensor2D, hidden, { cache, encoderAttentionMask: mask }).logits);
        step.dispose();
        cache.dispose();
        tf.dispose(model.forward(ids, dec, { attentionMask: mask }).logits);
      });
      hidden.dispose();
    });

    it("save then fromPretrained round-trips bit-exact", async () => {
      const tmp = await mkdtemp(path.join(tmpdir(), `tf-models-${name}-`));
      try {
        await model.save(tmp);
        const reread = await fromPretrained<Seq2SeqLM>(tmp);
        for (const [k, v] of model.namedParameters()) {
          expect(reread.namedParameters().get(k)!.dataSync(), k).toEqual(v.dataSync());
        }
        const cfg = JSON.parse(readFileSync(path.join(tmp, "config.json"), "utf8"));
        const orig = JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8"));
        for (const k of Object.keys(orig)) expect(cfg[k], k).toEqual(orig[k]);
        reread.dispose();
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    });
  });
}
