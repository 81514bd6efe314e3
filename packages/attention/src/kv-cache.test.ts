import { Random, tf } from "@typeformer/core";
import { assertClose, describeEachBackend } from "@typeformer/test-utils";
import { expect, it } from "vitest";
import { KVCache } from "./kv-cache.js";

const H = 2;
const D = 3;

function rows(B: number, t: number, seed: number): tf.Tensor4D {
  return tf.tensor4d(new Random(seed).normalArray(B * H * t * D), [B, H, t, D]);
}

/** Slot s of row b, head h of a (B, H, S, D) tensor. */
function slot(x: tf.Tensor, b: number, h: number, s: number): number[] {
  const [, Hh, S, Dd] = x.shape;
  const data = x.dataSync();
  const o = ((b * Hh + h) * S + s) * Dd;
  return Array.from(data.slice(o, o + Dd));
}

describeEachBackend("KVCache", () => {
  it("appends per layer, returns full keys/values, tracks lengths, positions and the key mask", () => {
    const before = tf.memory().numTensors;
    const cache = new KVCache({ numLayers: 2, batch: 2, numKvHeads: H, headDim: D, maxLength: 10 });
    // batched prompt of 3 slots: row 1 is left-padded by one
    const mask = [
      [1, 1, 1],
      [0, 1, 1],
    ];
    const pos = cache.positions(3, mask);
    expect(Array.from(pos.dataSync())).toEqual([0, 1, 2, 0, 0, 1]);
    const k0 = rows(2, 3, 1);
    const v0 = rows(2, 3, 2);
    const a = cache.update(0, k0, v0, mask);
    expect(a.k.shape).toEqual([2, H, 3, D]);
    expect(cache.lengths).toEqual([0, 0]); // step completes after the last layer
    const km = cache.keyMask();
    expect(Array.from(km.dataSync())).toEqual([1, 1, 1, 0, 1, 1]);
    const b = cache.update(1, k0, v0);
    expect(cache.lengths).toEqual([3, 2]);
    expect(cache.length).toBe(3);
    // one decode step
    const k1 = rows(2, 1, 3);
    const v1 = rows(2, 1, 4);
    const pos1 = cache.positions(1);
    expect(Array.from(pos1.dataSync())).toEqual([3, 2]);
    const c = cache.update(0, k1, v1);
    expect(c.k.shape).toEqual([2, H, 4, D]);
    assertClose(slot(c.k, 1, 1, 3), slot(k1, 1, 1, 0), { atol: 0 });
    assertClose(slot(c.v, 0, 0, 1), slot(v0, 0, 0, 1), { atol: 0 });
    const d = cache.update(1, k1, v1);
    expect(cache.lengths).toEqual([4, 3]);
    tf.dispose([pos, k0, v0, a.k, a.v, km, b.k, b.v, k1, v1, pos1, c.k, c.v, d.k, d.v]);
    expect(tf.memory().numTensors - before).toBe(4); // two layers × keys/values
    cache.dispose();
    cache.dispose(); // idempotent
    expect(tf.memory().numTensors).toBe(before);
    expect(() => cache.keyMask()).toThrow(/disposed/);
  });

  it("stored tensors survive the caller's tf.tidy; returned ones are the caller's", () => {
    const before = tf.memory().numTensors;
    const cache = new KVCache({ numLayers: 1, batch: 1, numKvHeads: H, headDim: D, maxLength: 8 });
    tf.tidy(() => {
      cache.update(0, rows(1, 2, 1), rows(1, 2, 2));
    });
    expect(tf.memory().numTensors - before).toBe(2);
    const got = cache.get(0);
    expect(got?.k.shape).toEqual([1, H, 2, D]);
    tf.dispose([got?.k, got?.v] as tf.Tensor[]);
    cache.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("removeRows, concatRows (right-aligned) and trim keep contents and masks consistent", () => {
    const before = tf.memory().numTensors;
    const a = new KVCache({ numLayers: 1, batch: 3, numKvHeads: H, headDim: D, maxLength: 12 });
    const ka = rows(3, 4, 5);
    tf.dispose(
      Object.values(
        a.update(0, ka, ka, [
          [1, 1, 1, 1],
          [0, 0, 1, 1],
          [0, 1, 1, 1],
        ]),
      ),
    );
    a.removeRows([0]); // remaining rows start at slot 1 → the all-padding slot 0 is dropped
    expect(a.batch).toBe(2);
    expect(a.length).toBe(3);
    expect(a.lengths).toEqual([2, 3]);
    const km = a.keyMask();
    expect(Array.from(km.dataSync())).toEqual([0, 1, 1, 1, 1, 1]);
    const got = a.get(0);
    assertClose(slot(got?.k as tf.Tensor, 1, 1, 0), slot(ka, 2, 1, 1), { atol: 0 });

    const b = new KVCache({ numLayers: 1, batch: 1, numKvHeads: H, headDim: D, maxLength: 12 });
    const kb = rows(1, 5, 6);
    tf.dispose(Object.values(b.update(0, kb, kb)));
    a.concatRows(b);
    expect(a.batch).toBe(3);
    expect(a.length).toBe(5);
    expect(a.lengths).toEqual([2, 3, 5]);
    const km2 = a.keyMask();
    expect(Array.from(km2.dataSync())).toEqual([0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
    const got2 = a.get(0);
    assertClose(slot(got2?.k as tf.Tensor, 1, 0, 4), slot(ka, 2, 0, 3), { atol: 0 });
    assertClose(slot(got2?.k as tf.Tensor, 2, 1, 0), slot(kb, 0, 1, 0), { atol: 0 });
    expect(Array.from(slot(got2?.k as tf.Tensor, 0, 0, 0))).toEqual([0, 0, 0]);

    a.trim(3);
    expect(a.length).toBe(3);
    expect(a.lengths).toEqual([2, 3, 3]);
    const got3 = a.get(0);
    assertClose(slot(got3?.k as tf.Tensor, 2, 0, 0), slot(kb, 0, 0, 2), { atol: 0 });
    a.removeRows([0, 1, 2]);
    expect(a.batch).toBe(0);
    tf.dispose([ka, kb, km, km2, got?.k, got?.v, got2?.k, got2?.v, got3?.k, got3?.v] as tf.Tensor[]);
    a.dispose();
    b.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("selectRows reorders and duplicates rows (beam search) with contents, lengths and masks following", () => {
    const before = tf.memory().numTensors;
    const a = new KVCache({ numLayers: 2, batch: 3, numKvHeads: H, headDim: D, maxLength: 12 });
    const ka = rows(3, 4, 7);
    const va = rows(3, 4, 8);
    const mask = [
      [0, 0, 1, 1],
      [0, 1, 1, 1],
      [1, 1, 1, 1],
    ];
    for (const l of [0, 1]) tf.dispose(Object.values(a.update(l, ka, va, l === 0 ? mask : undefined)));
    a.selectRows([1, 1, 0]); // row 2 (the only one using slot 0) leaves → slot 0 is dropped
    expect(a.batch).toBe(3);
    expect(a.length).toBe(3);
    expect(a.lengths).toEqual([3, 3, 2]);
    const km = a.keyMask();
    expect(Array.from(km.dataSync())).toEqual([1, 1, 1, 1, 1, 1, 0, 1, 1]);
    const got = a.get(1)!;
    for (const [to, from] of [
      [0, 1],
      [1, 1],
      [2, 0],
    ])
      for (let s = 0; s < 3; s++) {
        assertClose(slot(got.k, to, 1, s), slot(ka, from, 1, s + 1), { atol: 0 });
        assertClose(slot(got.v, to, 0, s), slot(va, from, 0, s + 1), { atol: 0 });
      }
    // the duplicated rows are independent from here on: a decode step appends different keys to each
    const k1 = rows(3, 1, 9);
    for (const l of [0, 1]) tf.dispose(Object.values(a.update(l, k1, k1)));
    const got2 = a.get(0)!;
    assertClose(slot(got2.k, 0, 0, 3), slot(k1, 0, 0, 0), { atol: 0 });
    assertClose(slot(got2.k, 1, 0, 3), slot(k1, 1, 0, 0), { atol: 0 });
    expect(a.lengths).toEqual([4, 4, 3]);
    expect(() => a.selectRows([3])).toThrow(/received \[3\]/);
    a.selectRows([]);
    expect(a.batch).toBe(0);
    tf.dispose([ka, va, km, got.k, got.v, k1, got2.k, got2.v]);
    a.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("throws typed errors naming the values: bad shapes, layers, overflow, mid-step edits", () => {
    const cache = new KVCache({ numLayers: 2, batch: 1, numKvHeads: H, headDim: D, maxLength: 3 });
    const k = rows(1, 2, 1);
    const bad = tf.zeros([1, H, 2, D + 1]) as tf.Tensor4D;
    expect(() => cache.update(0, bad, bad)).toThrow(/k must be \(1, 2, t, 3\); received \[1,2,2,4\]/);
    expect(() => cache.update(2, k, k)).toThrow(/layer must be .*received 2/);
    tf.dispose(Object.values(cache.update(0, k, k)));
    expect(() => cache.removeRows([0])).toThrow(/mid-step/);
    expect(() => cache.update(0, k, k)).toThrow(/does not fit the step in progress/);
    tf.dispose(Object.values(cache.update(1, k, k)));
    expect(() => cache.update(0, k, k)).toThrow(expect.objectContaining({ code: "LIMIT_EXCEEDED" }));
    expect(() => cache.removeRows([4])).toThrow(/received \[4\]/);
    expect(() => new KVCache({ numLayers: 0, batch: 1, numKvHeads: 1, headDim: 1, maxLength: 1 })).toThrow(
      /numLayers must be an integer >= 1; received 0/,
    );
    tf.dispose([k, bad]);
    cache.dispose();
  });
});
