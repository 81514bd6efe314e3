import { TypeformerError, tf } from "@typeformer/core";
import { dropoutMultipliers, dropoutSeed } from "./dropout.js";
import type { AttentionImplementation, AttentionOptions, AttentionResult } from "./types.js";
import { type AttentionDims, attentionDims, blockKind, NEG_INF, staticVisibility } from "./validate.js";

const TINY = 1e-30;
const DEFAULT_BLOCK = 256;

function blockSizes(opt: AttentionOptions["blockSize"]): [number, number] {
  const [bq, bk] = Array.isArray(opt) ? opt : [opt ?? DEFAULT_BLOCK, opt ?? DEFAULT_BLOCK];
  for (const [name, b] of [
    ["blockSize[0]", bq],
    ["blockSize[1]", bk],
  ] as const) {
    if (!(Number.isInteger(b) && b >= 1)) {
      throw new TypeformerError("INVALID_ARGUMENT", `${name} must be a positive integer; received ${b}`, {
        name,
        value: b,
      });
    }
  }
  return [bq, bk];
}

function chunks(n: number, size: number): number[] {
  const out: number[] = [];
  for (let s = 0; s < n; s += size) out.push(Math.min(size, n - s));
  return out;
}

function starts(sizes: number[]): number[] {
  const out: number[] = [];
  let s = 0;
  for (const n of sizes) {
    out.push(s);
    s += n;
  }
  return out;
}

/**
 * Splits x along `axis` into pieces of `sizes` (one piece is returned as is). Only used inside the
 * custom-gradient functions, so the pieces need no autodiff. On the wasm and cpu backends the pieces
 * are cut on the host from one read of x: wasm's Slice/SplitV re-read the whole input for every piece
 * (and 5-D splits take a generic slow path), which made splitting cost as much as the attention
 * itself. Other backends (webgl, webgpu, tfjs-node) use tf.split on a 3-D view.
 */
function splitAxis<T extends tf.Tensor>(x: T, sizes: number[], axis: number): T[] {
  if (sizes.length === 1) return [x];
  const shape = x.shape;
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const n = shape[axis];
  const pieceShape = (len: number) => [...shape.slice(0, axis), len, ...shape.slice(axis + 1)];
  const backend = tf.getBackend();
  if ((backend === "wasm" || backend === "cpu") && x.dtype === "float32") {
    const data = x.dataSync() as Float32Array;
    const out: T[] = [];
    let start = 0;
    for (const len of sizes) {
      const piece = new Float32Array(outer * len * inner);
      const chunk = len * inner;
      for (let o = 0; o < outer; o++) {
        const src = (o * n + start) * inner;
        piece.set(data.subarray(src, src + chunk), o * chunk);
      }
      out.push(tf.tensor(piece, pieceShape(len), "float32") as T);
      start += len;
    }
    return out;
  }
  return tf.tidy(() => {
    const parts = tf.split(tf.reshape(x, [outer, n, inner]), sizes, 1);
    return parts.map((p, i) => tf.reshape(p, pieceShape(sizes[i])) as T);
  });
}

/** Concatenates and frees the pieces (one piece is returned as is). */
function concatFree(parts: tf.Tensor[], axis: number): tf.Tensor {
  if (parts.length === 1) return parts[0];
  const out = tf.concat(parts, axis);
  tf.dispose(parts);
  return out;
}

function unsupported(what: string): never {
  throw new TypeformerError("INVALID_ARGUMENT", `the tiled attention does not support ${what}; use "naive"`, {
    implementation: "tiled",
    option: what,
  });
}

interface Plan {
  dims: AttentionDims;
  scale: number;
  causal: boolean;
  window: number | undefined;
  off: number;
  qSizes: number[];
  kSizes: number[];
  qStarts: number[];
  kStarts: number[];
  rowsCanBeEmpty: boolean;
  hasKeyMask: boolean;
  /** Attention dropout: the mask of block (i, j) is regenerated from the seed in both passes. */
  dropout?: { seed: number; rate: number };
  /** The bias viewed as 5-D (bB, 1|Hkv, 1|G, 1|Tq, 1|Tk), or undefined. */
  bias5Shape?: [number, number, number, number, number];
  biasShape?: number[];
}

/** Per-call tensors shared by the forward and backward block loops. */
interface Blocks {
  q: tf.Tensor4D[]; // (B, Hkv, G*bq, D), pre-scaled
  k: tf.Tensor4D[]; // (B, Hkv, bk, D)
  v: tf.Tensor4D[]; // (B, Hkv, bk, Dv)
  keyAdd: tf.Tensor[]; // (B, 1, 1, 1, bk)
  keyVis: tf.Tensor[];
  bias: tf.Tensor[][]; // [i][j] blocks of bias5 (or shared)
}

function makeBlocks(
  plan: Plan,
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  km: tf.Tensor | undefined,
  bias: tf.Tensor | undefined,
): Blocks {
  const { B, Hkv, G, Tq, Tk, D } = plan.dims;
  // reshapes share data (reference counted), so the temporaries can go as soon as the pieces exist
  const qb = tf.tidy(() =>
    splitAxis(tf.reshape(tf.mul(q, plan.scale), [B, Hkv, G, Tq, D]), plan.qSizes, 3).map(
      (x, i) => tf.reshape(x, [B, Hkv, G * plan.qSizes[i], D]) as tf.Tensor4D,
    ),
  );
  const kb = splitAxis(k, plan.kSizes, 2) as tf.Tensor4D[];
  const vb = splitAxis(v, plan.kSizes, 2) as tf.Tensor4D[];
  let keyAdd: tf.Tensor[] = [];
  let keyVis: tf.Tensor[] = [];
  if (km) {
    const vis = tf.reshape(tf.cast(tf.notEqual(km, 0), "float32"), [B, 1, 1, 1, Tk]);
    keyVis = splitAxis(vis, plan.kSizes, 4);
    keyAdd = keyVis.map((x) => tf.mul(tf.sub(1, x), NEG_INF));
  }
  const biasBlocks: tf.Tensor[][] = [];
  if (bias && plan.bias5Shape) {
    const b5 = tf.reshape(bias, plan.bias5Shape);
    const rows = plan.bias5Shape[3] > 1 ? splitAxis(b5, plan.qSizes, 3) : plan.qSizes.map(() => b5);
    for (const r of rows) {
      biasBlocks.push(plan.bias5Shape[4] > 1 ? splitAxis(r, plan.kSizes, 4) : plan.kSizes.map(() => r));
    }
  }
  return { q: qb, k: kb, v: vb, keyAdd, keyVis, bias: biasBlocks };
}

/** Scores of block (i, j) as 5-D (B, Hkv, G, bq, bk) with masks and bias, and the 0/1 multiplier. */
function scoreBlock(plan: Plan, blocks: Blocks, i: number, j: number): { s: tf.Tensor; vis?: tf.Tensor } {
  const { B, Hkv, G } = plan.dims;
  const bq = plan.qSizes[i];
  const bk = plan.kSizes[j];
  const r0 = plan.qStarts[i];
  const c0 = plan.kStarts[j];
  const sv = staticVisibility(r0, r0 + bq, c0, c0 + bk, plan.off, plan.causal, plan.window);
  // each step frees the previous scores, so one block holds at most two (bq, bk) score tensors
  const step = (x: tf.Tensor, f: (x: tf.Tensor) => tf.Tensor): tf.Tensor => {
    const y = f(x);
    x.dispose();
    return y;
  };
  let s: tf.Tensor = tf.reshape(tf.matMul(blocks.q[i], blocks.k[j], false, true), [B, Hkv, G, bq, bk]);
  let vis: tf.Tensor | undefined;
  if (sv) {
    const svT = tf.tensor2d(sv, [bq, bk]);
    const add = tf.tidy(() => tf.mul(tf.sub(1, svT), NEG_INF));
    s = step(s, (x) => tf.add(x, add));
    add.dispose();
    if (plan.rowsCanBeEmpty) vis = svT;
    else svT.dispose();
  }
  if (plan.hasKeyMask) {
    s = step(s, (x) => tf.add(x, blocks.keyAdd[j]));
    vis = vis ? step(vis, (x) => tf.mul(x, blocks.keyVis[j])) : blocks.keyVis[j];
  }
  if (blocks.bias.length > 0) s = step(s, (x) => tf.add(x, blocks.bias[i][j]));
  return { s, vis };
}

/** Dropout multipliers of block (i, j) as (B, Hkv, G, bq, bk), or undefined without dropout. */
function dropoutBlock(plan: Plan, i: number, j: number): tf.Tensor | undefined {
  if (!plan.dropout) return undefined;
  const { B, H, Hkv, G, Tq, Tk } = plan.dims;
  const bq = plan.qSizes[i];
  const bk = plan.kSizes[j];
  const m = dropoutMultipliers(
    plan.dropout.seed,
    plan.dropout.rate,
    { B, H, Tq, Tk },
    plan.qStarts[i],
    bq,
    plan.kStarts[j],
    bk,
  );
  return tf.tensor(m, [B, Hkv, G, bq, bk], "float32");
}

function forward(plan: Plan, blocks: Blocks): { out: tf.Tensor4D; lse: tf.Tensor } {
  const { B, H, Hkv, G, Tq, Dv } = plan.dims;
  const outs: tf.Tensor[] = [];
  const lses: tf.Tensor[] = [];
  for (let i = 0; i < plan.qSizes.length; i++) {
    const bq = plan.qSizes[i];
    const r0 = plan.qStarts[i];
    let m: tf.Tensor | undefined;
    let l: tf.Tensor | undefined;
    let acc: tf.Tensor | undefined;
    for (let j = 0; j < plan.kSizes.length; j++) {
      const c0 = plan.kStarts[j];
      const kind = blockKind(r0, r0 + bq, c0, c0 + plan.kSizes[j], plan.off, plan.causal, plan.window);
      if (kind === "empty") continue;
      const next = tf.tidy(() => {
        // softmax within the block (one fast kernel; tf.exp is ~5× slower on wasm) plus the row
        // statistics: m_b = max s, l_b = Σ exp(s - m_b) = 1 / max(softmax) (the argmax entry is 1/l_b)
        const { s, vis } = scoreBlock(plan, blocks, i, j);
        const mb = tf.max(s, 4, true);
        let ps = tf.softmax(s);
        s.dispose();
        const lb = tf.reciprocal(tf.max(ps, 4, true));
        if (vis) ps = tf.mul(ps, vis);
        const drop = dropoutBlock(plan, i, j);
        if (drop) ps = tf.mul(ps, drop);
        const ob = tf.reshape(tf.matMul(tf.reshape(ps, [B, Hkv, G * bq, plan.kSizes[j]]), blocks.v[j]), [
          B,
          Hkv,
          G,
          bq,
          Dv,
        ]);
        ps.dispose();
        // acc = Σ_b exp(m_b - m)·l_b·o_b and l = Σ_b exp(m_b - m)·l_b against the running max m
        if (!m || !l || !acc) return { m: mb, l: lb, acc: tf.mul(ob, lb) };
        const mNew = tf.maximum(m, mb);
        const alpha = tf.exp(tf.sub(m, mNew));
        const beta = tf.mul(tf.exp(tf.sub(mb, mNew)), lb);
        return {
          m: mNew,
          l: tf.add(tf.mul(l, alpha), beta),
          acc: tf.add(tf.mul(acc, alpha), tf.mul(ob, beta)),
        };
      });
      tf.dispose([m, l, acc] as tf.Tensor[]);
      ({ m, l, acc } = next);
    }
    if (!m || !l || !acc) {
      outs.push(tf.zeros([B, Hkv, G, bq, Dv]));
      lses.push(tf.zeros([B, Hkv, G, bq, 1]));
      continue;
    }
    const [mm, ll, aa] = [m, l, acc];
    const { o, lse } = tf.tidy(() => {
      const lSafe = tf.maximum(ll, TINY);
      return { o: tf.div(aa, lSafe), lse: tf.add(mm, tf.log(lSafe)) };
    });
    tf.dispose([m, l, acc]);
    outs.push(o);
    lses.push(lse);
  }
  const out5 = concatFree(outs, 3);
  const lse = concatFree(lses, 3);
  return { out: tf.reshape(out5, [B, H, Tq, Dv]), lse };
}

function reduceTo(x: tf.Tensor, shape: number[]): tf.Tensor {
  const axes: number[] = [];
  for (let a = 0; a < shape.length; a++) if (shape[a] === 1 && x.shape[a] !== 1) axes.push(a);
  return axes.length ? tf.sum(x, axes, true) : x;
}

function backward(
  plan: Plan,
  blocks: Blocks,
  dy: tf.Tensor4D,
  out: tf.Tensor4D,
  lse: tf.Tensor,
): { dq: tf.Tensor; dk: tf.Tensor; dv: tf.Tensor; dBias?: tf.Tensor } {
  const { B, H, Hkv, G, Tq, D, Dv } = plan.dims;
  const nq = plan.qSizes.length;
  const nk = plan.kSizes.length;
  const dOut = tf.tidy(() =>
    splitAxis(tf.reshape(dy, [B, Hkv, G, Tq, Dv]), plan.qSizes, 3).map((x, i) =>
      tf.reshape(x, [B, Hkv, G * plan.qSizes[i], Dv]),
    ),
  );
  const rowDot = tf.tidy(() =>
    splitAxis(tf.reshape(tf.sum(tf.mul(dy, out), 3, true), [B, Hkv, G, Tq, 1]), plan.qSizes, 3),
  );
  const lseB = splitAxis(lse, plan.qSizes, 3);
  const dQ: (tf.Tensor | undefined)[] = new Array(nq).fill(undefined);
  const dKs: tf.Tensor[] = [];
  const dVs: tf.Tensor[] = [];
  const b5 = plan.bias5Shape;
  const dB: (tf.Tensor | undefined)[][] = b5
    ? Array.from({ length: nq }, () => new Array(nk).fill(undefined))
    : [];
  for (let j = 0; j < nk; j++) {
    const bk = plan.kSizes[j];
    const c0 = plan.kStarts[j];
    let dKj: tf.Tensor | undefined;
    let dVj: tf.Tensor | undefined;
    for (let i = 0; i < nq; i++) {
      const bq = plan.qSizes[i];
      const r0 = plan.qStarts[i];
      if (blockKind(r0, r0 + bq, c0, c0 + bk, plan.off, plan.causal, plan.window) === "empty") continue;
      const dQi = dQ[i];
      const [pk, pv] = [dKj, dVj];
      const res = tf.tidy(() => {
        const { s, vis } = scoreBlock(plan, blocks, i, j);
        // p = exp(s - lse) = softmax_b(s) · exp(m_b - lse) / max(softmax_b(s)), without a block-sized exp
        const p5 = tf.tidy(() => {
          const mb = tf.max(s, 4, true);
          const ps = tf.softmax(s);
          const r = tf.div(tf.exp(tf.sub(mb, lseB[i])), tf.max(ps, 4, true));
          const e = tf.mul(ps, r);
          return vis ? tf.mul(e, vis) : e;
        });
        s.dispose();
        // with dropout M: out = (p⊙M)·v, so dV = (p⊙M)ᵀ·dO and dP = (dO·vᵀ)⊙M
        const drop = dropoutBlock(plan, i, j);
        const pd4 = tf.reshape(drop ? tf.mul(p5, drop) : p5, [B, Hkv, G * bq, bk]);
        const dVpart = tf.matMul(pd4, dOut[i], true, false);
        pd4.dispose();
        const dS5 = tf.tidy(() => {
          let dP5 = tf.reshape(tf.matMul(dOut[i], blocks.v[j], false, true), [B, Hkv, G, bq, bk]);
          if (drop) dP5 = tf.mul(dP5, drop);
          return tf.mul(p5, tf.sub(dP5, rowDot[i]));
        });
        drop?.dispose();
        p5.dispose();
        const dS4 = tf.reshape(dS5, [B, Hkv, G * bq, bk]);
        const dQpart = tf.matMul(dS4, blocks.k[j]);
        const dKpart = tf.matMul(dS4, blocks.q[i], true, false);
        const dBij = b5
          ? reduceTo(dS5, [b5[0], b5[1], b5[2], b5[3] > 1 ? bq : 1, b5[4] > 1 ? bk : 1])
          : undefined;
        if (dBij !== dS5) dS5.dispose();
        dS4.dispose();
        return {
          dQi: dQi ? tf.add(dQi, dQpart) : dQpart,
          dKj: pk ? tf.add(pk, dKpart) : dKpart,
          dVj: pv ? tf.add(pv, dVpart) : dVpart,
          dBij,
        };
      });
      tf.dispose([dQi, pk, pv].filter((x) => x !== undefined) as tf.Tensor[]);
      dQ[i] = res.dQi;
      dKj = res.dKj;
      dVj = res.dVj;
      if (b5) dB[i][j] = res.dBij;
    }
    dKs.push(dKj ?? tf.zeros([B, Hkv, bk, D]));
    dVs.push(dVj ?? tf.zeros([B, Hkv, bk, Dv]));
    if (nk > 1) tf.dispose([blocks.k[j], blocks.v[j]]); // pieces of the saved k/v, not needed again
  }
  const dq5 = dQ.map((x, i) =>
    x ? tf.reshape(x, [B, Hkv, G, plan.qSizes[i], D]) : tf.zeros([B, Hkv, G, plan.qSizes[i], D]),
  );
  tf.dispose(dQ as tf.Tensor[]);
  const dqCat = concatFree(dq5, 3);
  const dq = tf.mul(tf.reshape(dqCat, [B, H, Tq, D]), plan.scale);
  dqCat.dispose();
  const dk = concatFree(dKs, 2);
  const dv = concatFree(dVs, 2);
  let dBias: tf.Tensor | undefined;
  if (b5 && plan.biasShape) {
    const rows: tf.Tensor[] = [];
    for (let i = 0; i < nq; i++) {
      const bq = b5[3] > 1 ? plan.qSizes[i] : 1;
      const parts = plan.kSizes.map(
        (bk, j) => dB[i][j] ?? tf.zeros([b5[0], b5[1], b5[2], bq, b5[4] > 1 ? bk : 1]),
      );
      rows.push(b5[4] > 1 ? (parts.length === 1 ? parts[0] : tf.concat(parts, 4)) : tf.addN(parts));
    }
    const full = b5[3] > 1 ? (rows.length === 1 ? rows[0] : tf.concat(rows, 3)) : tf.addN(rows);
    dBias = tf.reshape(full, plan.biasShape);
  }
  return { dq, dk, dv, dBias };
}

/**
 * Memory-efficient attention (flash attention's algorithm): blocks of queries against blocks of
 * keys/values with a running max and sum, never forming the (Tq, Tk) matrix; fully masked blocks are
 * skipped. The custom gradient recomputes each block from the saved log-sum-exp, so memory stays
 * linear in T in both passes. Supports causal, keyMask, window, bias (with its gradient), GQA/MQA
 * and dropout (blocks of a stateless mask, regenerated in the backward pass); not returnWeights.
 */
export function tiledAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  opts: AttentionOptions = {},
): AttentionResult {
  const dims = attentionDims(q, k, v, opts);
  if (opts.returnWeights) unsupported("returnWeights");
  const { B, H, Hkv, G, Tq, Tk, D } = dims;
  const [bq, bk] = blockSizes(opts.blockSize);
  const qSizes = chunks(Tq, bq);
  const kSizes = chunks(Tk, bk);
  const causal = opts.causal === true;
  const plan: Plan = {
    dims,
    scale: opts.scale ?? 1 / Math.sqrt(D),
    causal,
    window: opts.window,
    off: Tk - Tq,
    qSizes,
    kSizes,
    qStarts: starts(qSizes),
    kStarts: starts(kSizes),
    hasKeyMask: opts.keyMask !== undefined,
    rowsCanBeEmpty: opts.keyMask !== undefined || ((causal || opts.window !== undefined) && Tq > Tk),
    dropout:
      (opts.dropout ?? 0) > 0 && opts.rng
        ? { seed: dropoutSeed(opts.rng), rate: opts.dropout as number }
        : undefined,
  };
  if (Tq === 0) return { output: tf.zeros([B, H, 0, dims.Dv]) as tf.Tensor4D };
  const inputs: tf.Tensor[] = [q, k, v];
  let kmIndex = -1;
  let biasIndex = -1;
  const owned: tf.Tensor[] = [];
  if (opts.keyMask) {
    kmIndex = inputs.length;
    const kmF = tf.cast(opts.keyMask, "float32");
    owned.push(kmF);
    inputs.push(kmF);
  }
  if (opts.bias) {
    const s = opts.bias.shape;
    const s4 = [...new Array(4 - s.length).fill(1), ...s];
    plan.biasShape = s;
    plan.bias5Shape = [s4[0], s4[1] === 1 ? 1 : Hkv, s4[1] === 1 ? 1 : G, s4[2], s4[3]];
    biasIndex = inputs.length;
    inputs.push(opts.bias);
  }
  const n = inputs.length;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[n] as tf.GradSaveFunc;
    const xs = args.slice(0, n) as tf.Tensor[];
    const [q0, k0, v0] = xs as tf.Tensor4D[];
    const blocks = makeBlocks(plan, q0, k0, v0, xs[kmIndex], xs[biasIndex]);
    const { out, lse } = forward(plan, blocks);
    save([...xs, out, lse]);
    return {
      value: out,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [sq, sk, sv] = saved as tf.Tensor4D[];
          const sOut = saved[n] as tf.Tensor4D;
          const sLse = saved[n + 1];
          const b = makeBlocks(plan, sq, sk, sv, saved[kmIndex], saved[biasIndex]);
          const g = backward(plan, b, dy as tf.Tensor4D, sOut, sLse);
          const grads: tf.Tensor[] = [g.dq, g.dk, g.dv];
          if (kmIndex >= 0) grads.push(tf.zerosLike(saved[kmIndex]));
          if (biasIndex >= 0 && g.dBias) grads.push(g.dBias);
          return grads;
        }),
    };
  });
  const output = f(...inputs) as tf.Tensor4D;
  tf.dispose(owned);
  return { output };
}

export const tiledImplementation: AttentionImplementation = {
  name: "tiled",
  sdpa: tiledAttention,
  // worth it once the score matrix is large; the naive path is faster for short sequences
  supports: (q, k, _v, opts) => !opts.returnWeights && q.shape[2] * k.shape[2] >= 512 * 512,
  autoPriority: 10,
  unsupported: ["returnWeights"],
};
