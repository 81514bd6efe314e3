import { Random, tf } from "@typeformer/core";
import { assertClose, describeEachBackend, expectNoLeaks } from "@typeformer/test-utils";
import { expect, it } from "vitest";
import { alibiBias, alibiSlopes } from "../alibi.js";
import { dropoutMultipliers } from "../dropout.js";
import { KVCache } from "../kv-cache.js";
import type { AttentionOptions } from "../types.js";
import type { ConformanceEntry } from "./implementations.js";
import { type RefProblem, refAttention, refAttentionGrads } from "./reference.js";

/** One conformance case; sizes are small so the suite stays fast. */
export interface AttentionCase {
  name: string;
  B: number;
  H: number;
  Hkv?: number;
  Tq: number;
  Tk?: number;
  D: number;
  Dv?: number;
  causal?: boolean;
  window?: number;
  /** Valid (right-aligned, i.e. left-padded) key lengths per row → keyMask. */
  keyLens?: number[];
  /** Bias shape (random values) or "alibi". */
  bias?: number[] | "alibi";
  scale?: number;
  grads?: boolean;
}

export const ATTENTION_CASES: AttentionCase[] = [
  { name: "plain B2 H2 T17 D16", B: 2, H: 2, Tq: 17, D: 16, grads: true },
  { name: "causal T17", B: 2, H: 2, Tq: 17, D: 16, causal: true, grads: true },
  { name: "causal Tq5 < Tk17 (bottom-right)", B: 2, H: 2, Tq: 5, Tk: 17, D: 16, causal: true, grads: true },
  {
    name: "causal Tq17 > Tk5 (rows without keys)",
    B: 1,
    H: 2,
    Tq: 17,
    Tk: 5,
    D: 8,
    causal: true,
    grads: true,
  },
  {
    name: "causal + keyMask mixed lengths",
    B: 3,
    H: 2,
    Tq: 17,
    D: 8,
    causal: true,
    keyLens: [17, 9, 1],
    grads: true,
  },
  { name: "keyMask with an all-padding row", B: 2, H: 2, Tq: 6, Tk: 12, D: 8, keyLens: [12, 0], grads: true },
  { name: "window 4 causal", B: 2, H: 2, Tq: 17, D: 8, window: 4, grads: true },
  {
    name: "window 5 + keyMask, Tq < Tk",
    B: 2,
    H: 2,
    Tq: 9,
    Tk: 20,
    D: 8,
    window: 5,
    keyLens: [20, 13],
    grads: true,
  },
  { name: "bias (B,H,Tq,Tk)", B: 2, H: 2, Tq: 17, D: 8, bias: [2, 2, 17, 17], grads: true },
  {
    name: "bias (H,1,Tk) broadcast + causal",
    B: 2,
    H: 3,
    Tq: 17,
    D: 8,
    causal: true,
    bias: [3, 1, 17],
    grads: true,
  },
  {
    name: "bias (B,1,1,Tk) + keyMask",
    B: 2,
    H: 2,
    Tq: 7,
    Tk: 17,
    D: 8,
    keyLens: [17, 10],
    bias: [2, 1, 1, 17],
    grads: true,
  },
  { name: "ALiBi + causal, 6 heads", B: 1, H: 6, Tq: 17, D: 8, causal: true, bias: "alibi", grads: true },
  {
    name: "GQA H4 Hkv2 causal + keyMask",
    B: 2,
    H: 4,
    Hkv: 2,
    Tq: 17,
    D: 8,
    causal: true,
    keyLens: [17, 11],
    grads: true,
  },
  {
    name: "MQA H4 Hkv1 + bias (H,Tq,Tk)",
    B: 2,
    H: 4,
    Hkv: 1,
    Tq: 9,
    Tk: 17,
    D: 8,
    bias: [4, 9, 17],
    grads: true,
  },
  {
    name: "GQA H6 Hkv2 window + bias (1,H,1,Tk)",
    B: 1,
    H: 6,
    Hkv: 2,
    Tq: 17,
    D: 8,
    window: 6,
    bias: [1, 6, 1, 17],
    grads: true,
  },
  { name: "T = 1", B: 2, H: 2, Tq: 1, D: 16, causal: true, grads: true },
  {
    name: "decode Tq1 Tk17 causal + keyMask",
    B: 2,
    H: 4,
    Hkv: 2,
    Tq: 1,
    Tk: 17,
    D: 16,
    causal: true,
    keyLens: [17, 5],
    grads: true,
  },
  { name: "D 80, T 129 causal", B: 1, H: 2, Tq: 129, D: 80, causal: true, grads: true },
  { name: "T 129 GQA keyMask window", B: 2, H: 4, Hkv: 1, Tq: 129, D: 16, window: 33, keyLens: [129, 70] },
  {
    name: "custom scale, Dv 8 != D 16",
    B: 2,
    H: 2,
    Tq: 9,
    Tk: 13,
    D: 16,
    Dv: 8,
    scale: 0.3,
    causal: true,
    grads: true,
  },
];

interface Built {
  p: RefProblem;
  q: tf.Tensor4D;
  k: tf.Tensor4D;
  v: tf.Tensor4D;
  keyMask?: tf.Tensor2D;
  bias?: tf.Tensor;
  opts: AttentionOptions;
  tensors: tf.Tensor[];
}

function leftPadMask(B: number, T: number, lens: number[]): Float32Array {
  const m = new Float32Array(B * T);
  for (let b = 0; b < B; b++) for (let j = T - lens[b]; j < T; j++) m[b * T + j] = 1;
  return m;
}

export function buildCase(c: AttentionCase, seed = 1): Built {
  const rng = new Random(`${c.name}:${seed}`);
  const Hkv = c.Hkv ?? c.H;
  const Tk = c.Tk ?? c.Tq;
  const Dv = c.Dv ?? c.D;
  const p: RefProblem = {
    B: c.B,
    H: c.H,
    Hkv,
    Tq: c.Tq,
    Tk,
    D: c.D,
    Dv,
    q: rng.normalArray(c.B * c.H * c.Tq * c.D),
    k: rng.normalArray(c.B * Hkv * Tk * c.D),
    v: rng.normalArray(c.B * Hkv * Tk * Dv),
    causal: c.causal,
    window: c.window,
    scale: c.scale,
  };
  const q = tf.tensor4d(p.q as Float32Array, [c.B, c.H, c.Tq, c.D]);
  const k = tf.tensor4d(p.k as Float32Array, [c.B, Hkv, Tk, c.D]);
  const v = tf.tensor4d(p.v as Float32Array, [c.B, Hkv, Tk, Dv]);
  const tensors: tf.Tensor[] = [q, k, v];
  const opts: AttentionOptions = { causal: c.causal, window: c.window, scale: c.scale };
  let keyMask: tf.Tensor2D | undefined;
  if (c.keyLens) {
    p.keyMask = leftPadMask(c.B, Tk, c.keyLens);
    keyMask = tf.tensor2d(p.keyMask as Float32Array, [c.B, Tk]);
    tensors.push(keyMask);
    opts.keyMask = keyMask;
  }
  let bias: tf.Tensor | undefined;
  if (c.bias === "alibi") {
    bias = alibiBias(alibiSlopes(c.H), Tk, { tq: c.Tq });
    p.bias = bias.dataSync();
    p.biasShape = bias.shape;
  } else if (c.bias) {
    const n = c.bias.reduce((a, b) => a * b, 1);
    p.bias = rng.normalArray(n);
    p.biasShape = c.bias;
    bias = tf.tensor(p.bias as Float32Array, c.bias);
  }
  if (bias) {
    tensors.push(bias);
    opts.bias = bias;
  }
  return { p, q, k, v, keyMask, bias, opts, tensors };
}

const FWD = { atol: 2e-5, rtol: 2e-4 };
const GRAD = { atol: 1e-4, rtol: 2e-3 };

function skipReason(entry: ConformanceEntry, c: AttentionCase): string | undefined {
  const u = entry.impl.unsupported ?? [];
  if (c.bias && u.includes("bias")) return "bias";
  if (c.keyLens && u.includes("keyMask")) return "keyMask";
  if (c.window && u.includes("window")) return "window";
  if ((c.Hkv ?? c.H) !== c.H && u.includes("gqa")) return "gqa";
  return undefined;
}

function onBackend(entry: ConformanceEntry): boolean {
  return !entry.backends || entry.backends.includes(tf.getBackend());
}

/**
 * The attention conformance suite: every entry × every backend (describeEachBackend) against the
 * float64 reference — forward values, gradients w.r.t. q, k, v and bias, all masks, GQA/MQA, odd sizes,
 * returned weights, dropout, leak checks, and KV-cached token-by-token decoding equal to the full pass.
 */
export function attentionConformanceSuite(
  entries: ConformanceEntry[],
  cases: AttentionCase[] = ATTENTION_CASES,
): void {
  describeEachBackend("attention conformance", () => {
    for (const entry of entries) {
      for (const c of cases) {
        const reason = skipReason(entry, c);
        it.skipIf(reason !== undefined)(`${entry.name}: ${c.name}${c.grads ? " (+grads)" : ""}`, () => {
          if (!onBackend(entry)) return;
          const built = buildCase(c);
          const opts = { ...built.opts, ...entry.options };
          try {
            const before = tf.memory().numTensors;
            const { output } = entry.impl.sdpa(built.q, built.k, built.v, opts);
            const ref = refAttention(built.p);
            expect(output.shape).toEqual([c.B, c.H, c.Tq, c.Dv ?? c.D]);
            assertClose(output, ref.out, { ...FWD, label: `${entry.name} ${c.name} output` });
            output.dispose();
            expect(tf.memory().numTensors).toBe(before);
            if (!c.grads) return;
            const dOut = new Random(`${c.name}:dout`).normalArray(output.size);
            const dOutT = tf.tensor(dOut, output.shape);
            const xs: tf.Tensor[] = [built.q, built.k, built.v];
            if (built.bias) xs.push(built.bias);
            const grads = tf.grads((...ins: tf.Tensor[]) =>
              tf.sum(
                tf.mul(
                  entry.impl.sdpa(ins[0] as tf.Tensor4D, ins[1] as tf.Tensor4D, ins[2] as tf.Tensor4D, {
                    ...opts,
                    bias: ins[3],
                  }).output,
                  dOutT,
                ),
              ),
            )(xs);
            const g = refAttentionGrads(built.p, dOut);
            assertClose(grads[0], g.dq, { ...GRAD, label: `${entry.name} ${c.name} dq` });
            assertClose(grads[1], g.dk, { ...GRAD, label: `${entry.name} ${c.name} dk` });
            assertClose(grads[2], g.dv, { ...GRAD, label: `${entry.name} ${c.name} dv` });
            if (built.bias && g.dbias) {
              expect(grads[3].shape).toEqual(built.bias.shape);
              assertClose(grads[3], g.dbias, { ...GRAD, label: `${entry.name} ${c.name} dbias` });
            }
            tf.dispose([...grads, dOutT]);
            expect(tf.memory().numTensors).toBe(before);
          } finally {
            tf.dispose(built.tensors);
          }
        });
      }

      const noWeights = entry.impl.unsupported?.includes("returnWeights");
      it.skipIf(noWeights)(`${entry.name}: returnWeights equal the reference probabilities`, () => {
        if (!onBackend(entry)) return;
        const built = buildCase(ATTENTION_CASES[12]);
        try {
          const { output, weights } = entry.impl.sdpa(built.q, built.k, built.v, {
            ...built.opts,
            ...entry.options,
            returnWeights: true,
          });
          const ref = refAttention(built.p);
          expect(weights?.shape).toEqual([built.p.B, built.p.H, built.p.Tq, built.p.Tk]);
          assertClose(weights as tf.Tensor, ref.probs, { ...FWD, label: "weights" });
          assertClose(output, ref.out, { ...FWD, label: "output" });
          tf.dispose([output, weights as tf.Tensor]);
        } finally {
          tf.dispose(built.tensors);
        }
      });

      const noDropout = entry.impl.unsupported?.includes("dropout");
      it.skipIf(noDropout)(
        `${entry.name}: dropout with a seeded Random matches the reference and repeats`,
        () => {
          if (!onBackend(entry)) return;
          const c = ATTENTION_CASES[12]; // GQA + causal + key mask
          const built = buildCase(c);
          const rate = 0.3;
          try {
            const run = () =>
              entry.impl.sdpa(built.q, built.k, built.v, {
                ...built.opts,
                ...entry.options,
                dropout: rate,
                rng: new Random(7),
              }).output;
            const a = run();
            const b = run();
            // every implementation draws one seed from the rng and uses the shared stateless mask
            const { B, H, Tq, Tk } = built.p;
            const mult = dropoutMultipliers(new Random(7).nextUint32(), rate, { B, H, Tq, Tk }, 0, Tq, 0, Tk);
            let dropped = 0;
            for (const m of mult) if (m === 0) dropped++;
            expect(Math.abs(dropped / mult.length - rate)).toBeLessThan(0.05);
            const ref = refAttention({ ...built.p, dropoutMultiplier: mult });
            assertClose(a, ref.out, { ...FWD, label: "dropout output" });
            assertClose(a, b, { atol: 0, rtol: 0, label: "same seed, same output" });
            const dOut = new Random(1).normalArray(a.size);
            const dOutT = tf.tensor(dOut, a.shape);
            const [dq, dk, dv] = tf.grads((q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) =>
              tf.sum(
                tf.mul(
                  entry.impl.sdpa(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, {
                    ...built.opts,
                    ...entry.options,
                    dropout: rate,
                    rng: new Random(7),
                  }).output,
                  dOutT,
                ),
              ),
            )([built.q, built.k, built.v]);
            const g = refAttentionGrads({ ...built.p, dropoutMultiplier: mult }, dOut);
            assertClose(dq, g.dq, { ...GRAD, label: "dropout dq" });
            assertClose(dk, g.dk, { ...GRAD, label: "dropout dk" });
            assertClose(dv, g.dv, { ...GRAD, label: "dropout dv" });
            tf.dispose([a, b, dOutT, dq, dk, dv]);
          } finally {
            tf.dispose(built.tensors);
          }
        },
      );

      it(`${entry.name}: forward and backward leak no tensors`, async () => {
        if (!onBackend(entry)) return;
        const built = buildCase({
          name: "leak",
          B: 2,
          H: 4,
          Hkv: 2,
          Tq: 13,
          Tk: 21,
          D: 8,
          causal: true,
          window: 9,
          keyLens: [21, 12],
          bias: [4, 13, 21],
        });
        try {
          await expectNoLeaks(() => {
            const r = entry.impl.sdpa(built.q, built.k, built.v, { ...built.opts, ...entry.options });
            tf.dispose(r.output);
          });
          await expectNoLeaks(() => {
            const vq = tf.variable(built.q);
            const vk = tf.variable(built.k);
            const { value, grads } = tf.variableGrads(
              () =>
                tf.sum(
                  entry.impl.sdpa(vq as tf.Tensor4D, vk as tf.Tensor4D, built.v, {
                    ...built.opts,
                    ...entry.options,
                  }).output,
                ),
              [vq, vk],
            );
            tf.dispose([value, ...Object.values(grads), vq, vk]);
            const g = tf.grads((q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, b: tf.Tensor) =>
              tf.sum(
                entry.impl.sdpa(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, {
                  ...built.opts,
                  ...entry.options,
                  bias: b,
                }).output,
              ),
            )([built.q, built.k, built.v, built.bias as tf.Tensor]);
            tf.dispose(g);
          });
        } finally {
          tf.dispose(built.tensors);
        }
      });

      it(`${entry.name}: KV-cached token-by-token decoding equals the full forward pass`, () => {
        if (!onBackend(entry)) return;
        const B = 2;
        const H = 4;
        const Hkv = 2;
        const T = 11;
        const D = 8;
        const lens = [11, 7];
        const rng = new Random("kv-decode");
        const qa = rng.normalArray(B * H * T * D);
        const ka = rng.normalArray(B * Hkv * T * D);
        const va = rng.normalArray(B * Hkv * T * D);
        const mask = leftPadMask(B, T, lens);
        const sliceT = (a: Float32Array, heads: number, t0: number, t1: number) => {
          const out = new Float32Array(B * heads * (t1 - t0) * D);
          let o = 0;
          for (let bh = 0; bh < B * heads; bh++) {
            out.set(a.subarray((bh * T + t0) * D, (bh * T + t1) * D), o);
            o += (t1 - t0) * D;
          }
          return tf.tensor4d(out, [B, heads, t1 - t0, D]);
        };
        const maskCols = (t0: number, t1: number) =>
          Array.from({ length: B }, (_, b) => Array.from(mask.subarray(b * T + t0, b * T + t1)));
        const ref = refAttention({
          B,
          H,
          Hkv,
          Tq: T,
          Tk: T,
          D,
          Dv: D,
          q: qa,
          k: ka,
          v: va,
          causal: true,
          keyMask: mask,
        });
        const cache = new KVCache({ numLayers: 1, batch: B, numKvHeads: Hkv, headDim: D, maxLength: 16 });
        const before = tf.memory().numTensors;
        try {
          const steps: [number, number][] = [[0, 4]];
          for (let t = 4; t < T; t++) steps.push([t, t + 1]);
          for (const [t0, t1] of steps) {
            const q = sliceT(qa, H, t0, t1);
            const k = sliceT(ka, Hkv, t0, t1);
            const v = sliceT(va, Hkv, t0, t1);
            const kv = cache.update(0, k, v, maskCols(t0, t1));
            const km = cache.keyMask();
            const { output } = entry.impl.sdpa(q, kv.k, kv.v, {
              causal: true,
              keyMask: km,
              ...entry.options,
            });
            // reference rows t0..t1 of every (b, h)
            const want = new Float64Array(B * H * (t1 - t0) * D);
            let o = 0;
            for (let bh = 0; bh < B * H; bh++) {
              want.set(ref.out.subarray((bh * T + t0) * D, (bh * T + t1) * D), o);
              o += (t1 - t0) * D;
            }
            assertClose(output, want, { ...FWD, label: `decode step ${t0}` });
            tf.dispose([q, k, v, kv.k, kv.v, km, output]);
          }
          expect(cache.lengths).toEqual(lens);
          expect(tf.memory().numTensors - before).toBe(2); // the cache's own keys and values
        } finally {
          cache.dispose();
        }
        expect(tf.memory().numTensors).toBe(before);
      });
    }
  });
}
