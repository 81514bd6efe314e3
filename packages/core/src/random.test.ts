import { describe, expect, it } from "vitest";
import { Random, TypeformerError } from "./index.js";

describe("Random", () => {
  it("is deterministic per seed and differs across seeds", () => {
    const a = new Random(42);
    const b = new Random(42);
    const c = new Random(43);
    const xs = Array.from({ length: 5 }, () => a.nextUint32());
    expect(Array.from({ length: 5 }, () => b.nextUint32())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c.nextUint32())).not.toEqual(xs);
  });

  it("restores its exact state, including the cached normal", () => {
    const r = new Random("run-1");
    r.normal();
    const saved = JSON.parse(JSON.stringify(r.getState()));
    const expected = [r.normal(), r.float(), r.int(1000), r.normal()];
    const restored = Random.fromState(saved);
    expect([restored.normal(), restored.float(), restored.int(1000), restored.normal()]).toEqual(expected);
  });

  it("has sane moments for float and normal", () => {
    const r = new Random(7);
    const n = 20000;
    let s = 0;
    let s2 = 0;
    let u = 0;
    for (let i = 0; i < n; i++) {
      const x = r.normal();
      s += x;
      s2 += x * x;
      u += r.float();
    }
    expect(Math.abs(s / n)).toBeLessThan(0.03);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.05);
    expect(Math.abs(u / n - 0.5)).toBeLessThan(0.01);
  });

  it("int(n) is unbiased over a small range and rejects bad n", () => {
    const r = new Random(1);
    const counts = [0, 0, 0];
    for (let i = 0; i < 30000; i++) counts[r.int(3)]++;
    for (const c of counts) expect(Math.abs(c - 10000)).toBeLessThan(400);
    expect(() => r.int(0)).toThrow(TypeformerError);
    expect(() => r.int(2.5)).toThrow(/received 2.5/);
  });

  it("shuffle is a permutation and fork is independent", () => {
    const r = new Random(3);
    const xs = r.shuffle(Array.from({ length: 50 }, (_, i) => i));
    expect([...xs].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    const f1 = new Random(3).fork("dropout");
    const f2 = new Random(3).fork("data");
    expect(f1.nextUint32()).not.toBe(f2.nextUint32());
  });
});
