import { tf } from "@typeformer/core";
import { assertClose, describeEachBackend } from "@typeformer/test-utils";
import { expect, it } from "vitest";
import fixtures from "./__fixtures__/rotary-alibi.json";
import { alibiBias, alibiSlopes } from "./alibi.js";

describeEachBackend("ALiBi", () => {
  it("slopes match Hugging Face BLOOM's build_alibi_tensor for powers of two and other head counts", () => {
    for (const [n, want] of Object.entries(fixtures.alibiSlopes as Record<string, number[]>)) {
      assertClose(alibiSlopes(Number(n)), want, { atol: 1e-7, rtol: 1e-6, label: `${n} heads` });
    }
    // the paper's 8-head sequence: 1/2 ... 1/256
    assertClose(
      alibiSlopes(8),
      [1, 2, 3, 4, 5, 6, 7, 8].map((i) => 2 ** -i),
      { atol: 0, rtol: 1e-7 },
    );
  });

  it("bias is -slope·(query position - key position), bottom-right aligned", () => {
    const b = alibiBias(2, 4, { tq: 2 });
    expect(b.shape).toEqual([1, 2, 2, 4]);
    const s = alibiSlopes(2);
    const want: number[] = [];
    for (let h = 0; h < 2; h++)
      for (let i = 0; i < 2; i++) for (let j = 0; j < 4; j++) want.push(-s[h] * (i + 2 - j));
    assertClose(b, want, { atol: 1e-7 });
    const sym = alibiBias(s, 3, { symmetric: true });
    expect(Array.from(sym.dataSync().slice(0, 3))).toEqual([-0, -s[0], -2 * s[0]].map((x) => Math.fround(x)));
    tf.dispose([b, sym]);
  });

  it("rejects a bad head count naming it", () => {
    expect(() => alibiSlopes(0)).toThrow(/numHeads.*received 0/);
    expect(() => alibiSlopes(2.5)).toThrow(/received 2.5/);
  });
});
