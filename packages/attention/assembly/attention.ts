// Fused flash attention for training: forward (O and the row log-sum-exp) and backward (dQ, dK, dV and
// the bias gradient) in one call each, SIMD128. Pointers are byte offsets into tf.js's heap; the caller
// hands in a scratch block of flashScratchBytes(...) bytes whose first DESC_BYTES hold the call's
// parameters as i32s (see the D_* indices), so the exports stay short.
//
// Per (batch row b, KV head g) the keys (transposed) and values are packed once into zero-padded
// panels; then for each of the G = H / Hkv query heads sharing them and each block of BQ queries, the
// visible key range is walked in blocks of BK keys: scores S = Q·Kᵀ (4×8 register tiles), scale,
// causal / sliding-window / key-padding masks and additive bias, online softmax (running max and sum,
// the output block rescaled when the max grows), O += P·V. Scratch is linear in Tk; the (Tq, Tk)
// matrix never exists. The backward pass recomputes P = exp(S - lse) block by block, dP = dO·Vᵀ,
// dS = P∘(dP - rowsum(dO∘O)), and accumulates dQ (per query block), dK and dV (per KV head, summed over
// the query heads of its group: GQA/MQA without repeated K/V), and dBias at the bias's own (broadcast)
// index, which reduces it over broadcast dimensions by construction.

import { expv } from "./ops";

const BQ: i32 = 32;
const BK: i32 = 128;
const DESC_BYTES: i32 = 256;

// descriptor (i32 slots)
const D_Q = 0;
const D_K = 1;
const D_V = 2;
const D_KM = 3; // (B, Tk) float 0/1, or 0
const D_BIAS = 4; // or 0
const D_OUT = 5; // (B, H, Tq, Dv) contiguous
const D_LSE = 6; // (B, H, Tq)
const D_B = 8;
const D_H = 9;
const D_HKV = 10;
const D_TQ = 11;
const D_TK = 12;
const D_D = 13;
const D_DV = 14;
const D_QS = 15; // q strides (floats) of b, h, t; the feature axis is contiguous
const D_KS = 18;
const D_VS = 21;
const D_BS = 24; // bias strides (floats) of b, h, i, j: 0 where the bias broadcasts
const D_CAUSAL = 28;
const D_WINDOW = 29; // 0 = none
const D_DO = 30; // backward: upstream gradient (B, H, Tq, Dv) contiguous
const D_DQ = 31; // (B, H, Tq, D)
const D_DK = 32; // (B, Hkv, Tk, D)
const D_DV_OUT = 33; // (B, Hkv, Tk, Dv)
const D_DBIAS = 34; // zero-filled, the bias's own shape; or 0
const D_DROP_SEED = 35; // attention dropout: the call's seed (src/dropout.ts's stateless hash)
const D_DROP_THRESHOLD = 36; // u32: an entry is kept where its hash >= threshold
const D_DROP_KEEP = 37; // f32 bits of 1 / (1 - rate); 0 = no dropout
const D_BH0 = 38; // global (b·H + h) of this call's first (b, h) (a worker's share of a split call)

// @ts-ignore: decorator
@inline
function arg(desc: usize, i: i32): i32 {
  return load<i32>(desc + (<usize>i << 2));
}

// @ts-ignore: decorator
@inline
function ptrArg(desc: usize, i: i32): usize {
  return <usize>load<u32>(desc + (<usize>i << 2));
}

// @ts-ignore: decorator
@inline
function bytes(floats: i32): usize {
  return <usize>floats << 2;
}

// @ts-ignore: decorator
@inline
function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/**
 * C[4×8] (+)= A(4×kc)·B(kc×8): A[r][k] at pa + r·ars + k·aks (any layout: row-major, transposed),
 * B row k (8 contiguous floats) at pb + k·bks, C row r at c + r·ldc.
 */
function mk(pa: usize, aks: usize, ars: usize, pb: usize, bks: usize, kc: i32, c: usize, ldc: usize, acc: bool): void {
  let c00 = f32x4.splat(0);
  let c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0);
  let c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0);
  let c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0);
  let c31 = f32x4.splat(0);
  let p0 = pa;
  let p1 = pa + ars;
  let p2 = p1 + ars;
  let p3 = p2 + ars;
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let a = v128.load32_splat(p0);
    c00 = madd(a, b0, c00);
    c01 = madd(a, b1, c01);
    a = v128.load32_splat(p1);
    c10 = madd(a, b0, c10);
    c11 = madd(a, b1, c11);
    a = v128.load32_splat(p2);
    c20 = madd(a, b0, c20);
    c21 = madd(a, b1, c21);
    a = v128.load32_splat(p3);
    c30 = madd(a, b0, c30);
    c31 = madd(a, b1, c31);
    p0 += aks;
    p1 += aks;
    p2 += aks;
    p3 += aks;
    pb += bks;
  }
  let p = c;
  if (acc) {
    c00 = f32x4.add(c00, v128.load(p));
    c01 = f32x4.add(c01, v128.load(p, 16));
    c10 = f32x4.add(c10, v128.load(p + ldc));
    c11 = f32x4.add(c11, v128.load(p + ldc, 16));
    c20 = f32x4.add(c20, v128.load(p + 2 * ldc));
    c21 = f32x4.add(c21, v128.load(p + 2 * ldc, 16));
    c30 = f32x4.add(c30, v128.load(p + 3 * ldc));
    c31 = f32x4.add(c31, v128.load(p + 3 * ldc, 16));
  }
  v128.store(p, c00);
  v128.store(p, c01, 16);
  p += ldc;
  v128.store(p, c10);
  v128.store(p, c11, 16);
  p += ldc;
  v128.store(p, c20);
  v128.store(p, c21, 16);
  p += ldc;
  v128.store(p, c30);
  v128.store(p, c31, 16);
}

/** C (M×N, row pitch ldc bytes) (+)= A(M×K)·B(K×N), M a multiple of 4, N of 8 (see mk for strides). */
function smm(
  M: i32,
  N: i32,
  K: i32,
  pa: usize,
  aks: usize,
  ars: usize,
  pb: usize,
  bks: usize,
  c: usize,
  ldc: usize,
  acc: bool,
): void {
  for (let i = 0; i < M; i += 4) {
    const a = pa + <usize>i * ars;
    const cr = c + <usize>i * ldc;
    for (let j = 0; j < N; j += 8) mk(a, aks, ars, pb + bytes(j), bks, K, cr + bytes(j), ldc, acc);
  }
}

// Causal / sliding-window blocks: query row i (relative to the block) sees the block's key columns
// [i + qb - window + 1, i + qb] (qb = i0 + Tk - Tq - j0), so each 4-row tile only computes the columns
// (or sums over the keys) some row of it can see; the masks zero the rest exactly.

/** Key columns [lo, hi] a 4-row query tile at row r can see (full block when unmasked). */
// @ts-ignore: decorator
@inline
function tileLo(r: i32, qb: i32, window: i32): i32 {
  return window > 0 ? max(0, r + qb - window + 1) : 0;
}

/** S-like product over query-row tiles: only the 8-column tiles a row of the tile can see (C not accumulated). */
function smmCols(
  M: i32,
  N: i32,
  K: i32,
  pa: usize,
  aks: usize,
  ars: usize,
  pb: usize,
  bks: usize,
  c: usize,
  ldc: usize,
  masked: bool,
  qb: i32,
  window: i32,
): void {
  for (let i = 0; i < M; i += 4) {
    const a = pa + <usize>i * ars;
    const cr = c + <usize>i * ldc;
    const n0 = masked ? tileLo(i, qb, window) & ~7 : 0;
    const n1 = masked ? min(N, (i + 3 + qb + 8) & ~7) : N;
    for (let j = n0; j < n1; j += 8) mk(a, aks, ars, pb + bytes(j), bks, K, cr + bytes(j), ldc, false);
  }
}

/** C += A·B over query-row tiles, summing only over the key columns (k) a row of the tile can see. */
function smmRowsK(
  M: i32,
  N: i32,
  K: i32,
  pa: usize,
  aks: usize,
  ars: usize,
  pb: usize,
  bks: usize,
  c: usize,
  ldc: usize,
  masked: bool,
  qb: i32,
  window: i32,
): void {
  for (let i = 0; i < M; i += 4) {
    const k0 = masked ? tileLo(i, qb, window) : 0;
    const k1 = masked ? min(K, i + 3 + qb + 1) : K;
    if (k1 <= k0) continue;
    const a = pa + <usize>i * ars + <usize>k0 * aks;
    const b = pb + <usize>k0 * bks;
    const cr = c + <usize>i * ldc;
    for (let j = 0; j < N; j += 8) mk(a, aks, ars, b + bytes(j), bks, k1 - k0, cr + bytes(j), ldc, true);
  }
}

/** C += A·B over key-row tiles (dK, dV), summing only over the query rows (k) that see a key of the tile. */
function smmKeysK(
  M: i32,
  N: i32,
  K: i32,
  pa: usize,
  aks: usize,
  ars: usize,
  pb: usize,
  bks: usize,
  c: usize,
  ldc: usize,
  masked: bool,
  qb: i32,
  window: i32,
): void {
  for (let j = 0; j < M; j += 4) {
    const k0 = masked ? max(0, j - qb) : 0;
    const k1 = masked && window > 0 ? min(K, j + 3 - qb + window) : K;
    if (k1 <= k0) continue;
    const a = pa + <usize>j * ars + <usize>k0 * aks;
    const b = pb + <usize>k0 * bks;
    const cr = c + <usize>j * ldc;
    for (let n = 0; n < N; n += 8) mk(a, aks, ars, b + bytes(n), bks, k1 - k0, cr + bytes(n), ldc, true);
  }
}

/** dst rows [0, nPad) of ld floats: rows < n copy `cols` floats from src (row pitch stride floats), zero padded. */
function packRows(src: usize, stride: i32, dst: usize, n: i32, cols: i32, nPad: i32, ld: i32): void {
  for (let r = 0; r < nPad; r++) {
    const d = dst + bytes(r * ld);
    if (r < n) {
      memory.copy(d, src + bytes(r) * <usize>stride, bytes(cols));
      if (ld > cols) memory.fill(d + bytes(cols), 0, bytes(ld - cols));
    } else memory.fill(d, 0, bytes(ld));
  }
}

/** dst[c][r] (ld floats per c) = src row r col c for r < n, c < cols; zero for r in [n, ld). */
function packT(src: usize, stride: i32, dst: usize, n: i32, cols: i32, ld: i32): void {
  for (let r = 0; r < n; r++) {
    const s = src + bytes(r) * <usize>stride;
    let d = dst + bytes(r);
    for (let c = 0; c < cols; c++) {
      store<f32>(d, load<f32>(s + bytes(c)));
      d += bytes(ld);
    }
  }
  if (ld > n) for (let c = 0; c < cols; c++) memory.fill(dst + bytes(c * ld + n), 0, bytes(ld - n));
}

/** Block columns [beg, end) (multiples of 4) that may hold keys in [lo, hi]; end <= beg: none. */
// @ts-ignore: decorator
@inline
function colBeg(lo: i32, j0: i32): i32 {
  return max(0, lo - j0) & ~3;
}

// @ts-ignore: decorator
@inline
function colEnd(hi: i32, j0: i32, nk8: i32): i32 {
  return min(nk8, (hi - j0 + 4) & ~3);
}

/** Zeroes a row's columns outside [beg, end). */
// @ts-ignore: decorator
@inline
function zeroOutside(row: usize, beg: i32, end: i32, n: i32): void {
  if (beg > 0) memory.fill(row, 0, bytes(beg));
  if (end < n) memory.fill(row + bytes(end), 0, bytes(n - end));
}

// @ts-ignore: decorator
@inline
function hmax(v: v128): f32 {
  return max(max(f32x4.extract_lane(v, 0), f32x4.extract_lane(v, 1)), max(f32x4.extract_lane(v, 2), f32x4.extract_lane(v, 3)));
}

// @ts-ignore: decorator
@inline
function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** Bias lanes j..j+3 of a row, zero past Tk (never read beyond the tensor). */
function biasTail(row: usize, j: i32, Tk: i32): v128 {
  let v = f32x4.splat(0);
  if (j < Tk) v = f32x4.replace_lane(v, 0, load<f32>(row + bytes(j)));
  if (j + 1 < Tk) v = f32x4.replace_lane(v, 1, load<f32>(row + bytes(j + 1)));
  if (j + 2 < Tk) v = f32x4.replace_lane(v, 2, load<f32>(row + bytes(j + 2)));
  return v;
}

/**
 * Score row, block columns [jjBeg, jjEnd) (keys j0 + jj): x = s·scale + bias, -inf where key j is outside
 * [lo, hi] or padding (kmRow: 0/1 floats padded to a multiple of 8, or 0). In place; returns the max.
 */
function maskRow(
  srow: usize,
  jjBeg: i32,
  jjEnd: i32,
  j0: i32,
  lo: i32,
  hi: i32,
  kmRow: usize,
  brow: usize,
  bsj: i32,
  Tk: i32,
  scale: f32,
): f32 {
  const ninf = f32x4.splat(-Infinity);
  const zero = f32x4.splat(0);
  const sc = f32x4.splat(scale);
  const lov = i32x4.splat(lo);
  const hiv = i32x4.splat(hi);
  let mv = ninf;
  let bv = brow != 0 && bsj == 0 ? f32x4.splat(load<f32>(brow)) : zero;
  for (let jj = jjBeg; jj < jjEnd; jj += 4) {
    const j = j0 + jj;
    const jv = i32x4.add(i32x4.splat(j), i32x4(0, 1, 2, 3));
    let vis = v128.and(i32x4.ge_s(jv, lov), i32x4.le_s(jv, hiv));
    if (kmRow != 0) vis = v128.and(vis, f32x4.ne(v128.load(kmRow + bytes(j)), zero));
    let x = f32x4.mul(v128.load(srow + bytes(jj)), sc);
    if (brow != 0) {
      if (bsj != 0) bv = j + 4 <= Tk ? v128.load(brow + bytes(j)) : biasTail(brow, j, Tk);
      x = f32x4.add(x, bv);
    }
    x = v128.bitselect(x, ninf, vis);
    v128.store(srow + bytes(jj), x);
    mv = f32x4.pmax(mv, x);
  }
  return hmax(mv);
}

// Attention dropout, the same stateless hash as src/dropout.ts: row hash of (seed, b·H + h, i), entry
// hash of (row, j); multipliers keep = 1 / (1 - rate) or 0, regenerated identically in the backward pass.

// @ts-ignore: decorator
@inline
function fmix(h: u32): u32 {
  h ^= h >>> 16;
  h *= 0x85ebca6b;
  h ^= h >>> 13;
  h *= 0xc2b2ae35;
  h ^= h >>> 16;
  return h;
}

// @ts-ignore: decorator
@inline
function fmixv(h: v128): v128 {
  h = v128.xor(h, i32x4.shr_u(h, 16));
  h = i32x4.mul(h, i32x4.splat(<i32>0x85ebca6b));
  h = v128.xor(h, i32x4.shr_u(h, 13));
  h = i32x4.mul(h, i32x4.splat(<i32>0xc2b2ae35));
  return v128.xor(h, i32x4.shr_u(h, 16));
}

/** Hash of query row i of (b·H + h) = bh (dropoutMultipliers' `row`). */
// @ts-ignore: decorator
@inline
function dropRow(mixedSeed: u32, bh: i32, Tq: i32, i: i32, Tk: i32): u32 {
  return fmix(mixedSeed ^ fmix((<u32>(bh * Tq + i) * 0x9e3779b9) ^ <u32>Tk));
}

/** Dropout multipliers of keys j..j+3 of a row. */
// @ts-ignore: decorator
@inline
function dropMul(row: u32, j: i32, threshold: v128, keep: v128): v128 {
  const jv = i32x4.add(i32x4.splat(j + 1), i32x4(0, 1, 2, 3));
  const h = fmixv(v128.xor(i32x4.splat(<i32>row), i32x4.mul(jv, i32x4.splat(0x27d4eb2f))));
  return v128.and(keep, i32x4.ge_u(h, threshold));
}

/** Scratch bytes flashForward (backward = 0) / flashBackward (1) need, descriptor included. */
export function flashScratchBytes(Tk: i32, D: i32, Dv: i32, backward: i32): i32 {
  const Tk8 = (Tk + 7) & ~7;
  const D8 = (D + 7) & ~7;
  const Dv8 = (Dv + 7) & ~7;
  let floats: i32;
  if (backward == 0) floats = D * Tk8 + Tk8 * Dv8 + BQ * D8 + BQ * BK + BQ * Dv8 + 2 * BQ + Tk8;
  else floats = D * Tk8 + Dv * Tk8 + 2 * Tk8 * D8 + Tk8 * Dv8 + 2 * BQ * D8 + BQ * Dv8 + 2 * BQ * BK + BQ + Tk8;
  return DESC_BYTES + (floats << 2) + 64;
}

/** Key rows any query of rows [i0, i0 + nq) may see: [lo, hi] (hi < lo: none). */
// @ts-ignore: decorator
@inline
function keyRangeLo(i0: i32, off: i32, window: i32): i32 {
  return window > 0 ? max(0, i0 + off - window + 1) : 0;
}

/**
 * Forward: out (B, H, Tq, Dv) and lse (B, H, Tq) (-inf for a query that sees no key; its output row is
 * zeros). `scratch` is 16-byte aligned, the descriptor at its start.
 */
export function flashForward(scratch: usize, scale: f32): void {
  const desc = scratch;
  const q = ptrArg(desc, D_Q);
  const k = ptrArg(desc, D_K);
  const v = ptrArg(desc, D_V);
  const km = ptrArg(desc, D_KM);
  const bias = ptrArg(desc, D_BIAS);
  const out = ptrArg(desc, D_OUT);
  const lse = ptrArg(desc, D_LSE);
  const dropKeep = load<f32>(desc + (<usize>D_DROP_KEEP << 2));
  const dropping = dropKeep != 0;
  const mixedSeed = fmix(<u32>arg(desc, D_DROP_SEED) ^ 0x5bd1e995);
  const threshold = i32x4.splat(arg(desc, D_DROP_THRESHOLD));
  const keepv = f32x4.splat(dropKeep);
  const bh0 = arg(desc, D_BH0);
  const B = arg(desc, D_B);
  const H = arg(desc, D_H);
  const Hkv = arg(desc, D_HKV);
  const Tq = arg(desc, D_TQ);
  const Tk = arg(desc, D_TK);
  const D = arg(desc, D_D);
  const Dv = arg(desc, D_DV);
  const causal = arg(desc, D_CAUSAL) != 0;
  const window = arg(desc, D_WINDOW);
  const masked = causal || window > 0;
  const G = H / Hkv;
  const off = Tk - Tq;
  const D8 = (D + 7) & ~7;
  const Dv8 = (Dv + 7) & ~7;
  const Tk8 = (Tk + 7) & ~7;
  let s = scratch + DESC_BYTES;
  const KT = s;
  s += bytes(D * Tk8);
  const Vp = s;
  s += bytes(Tk8 * Dv8);
  const Qb = s;
  s += bytes(BQ * D8);
  const S = s;
  s += bytes(BQ * BK);
  const O = s;
  s += bytes(BQ * Dv8);
  const M = s;
  s += bytes(BQ);
  const L = s;
  s += bytes(BQ);
  const KM = s;
  const ldS = bytes(BK);
  for (let b = 0; b < B; b++) {
    if (km != 0) {
      memory.copy(KM, km + bytes(b * Tk), bytes(Tk));
      memory.fill(KM + bytes(Tk), 0, bytes(Tk8 - Tk));
    }
    for (let g = 0; g < Hkv; g++) {
      const kb = k + bytes(b * arg(desc, D_KS) + g * arg(desc, D_KS + 1));
      const vb = v + bytes(b * arg(desc, D_VS) + g * arg(desc, D_VS + 1));
      packT(kb, arg(desc, D_KS + 2), KT, Tk, D, Tk8);
      packRows(vb, arg(desc, D_VS + 2), Vp, Tk, Dv, Tk8, Dv8);
      for (let hh = 0; hh < G; hh++) {
        const h = g * G + hh;
        const qh = q + bytes(b * arg(desc, D_QS) + h * arg(desc, D_QS + 1));
        const qst = arg(desc, D_QS + 2);
        const biasBH = bias != 0 ? bias + bytes(b * arg(desc, D_BS) + h * arg(desc, D_BS + 1)) : 0;
        const bsi = arg(desc, D_BS + 2);
        const bsj = arg(desc, D_BS + 3);
        const outBH = out + bytes((b * H + h) * Tq * Dv);
        const lseBH = lse + bytes((b * H + h) * Tq);
        for (let i0 = 0; i0 < Tq; i0 += BQ) {
          const nq = min(BQ, Tq - i0);
          const nq4 = (nq + 3) & ~3;
          const jlo = masked ? keyRangeLo(i0, off, window) : 0;
          const jhi = masked ? min(Tk - 1, i0 + nq - 1 + off) : Tk - 1;
          if (jhi < jlo) {
            memory.fill(outBH + bytes(i0 * Dv), 0, bytes(nq * Dv));
            for (let r = 0; r < nq; r++) store<f32>(lseBH + bytes(i0 + r), -Infinity);
            continue;
          }
          packRows(qh + bytes(i0) * <usize>qst, qst, Qb, nq, D, nq4, D8);
          for (let r = 0; r < nq4; r++) {
            store<f32>(M + bytes(r), -Infinity);
            store<f32>(L + bytes(r), 0);
          }
          memory.fill(O, 0, bytes(nq4 * Dv8));
          const jend = jhi + 1;
          for (let j0 = jlo & ~7; j0 < jend; j0 += BK) {
            const nk = min(BK, jend - j0);
            const nk8 = (nk + 7) & ~7;
            const qb = i0 + off - j0;
            smmCols(nq4, nk8, D, Qb, 4, bytes(D8), KT + bytes(j0), bytes(Tk8), S, ldS, masked, qb, window);
            for (let r = 0; r < nq; r++) {
              const i = i0 + r;
              const p = i + off;
              const lo = window > 0 ? p - window + 1 : 0;
              const hi = masked ? min(p, Tk - 1) : Tk - 1;
              const srow = S + <usize>r * ldS;
              const brow = biasBH != 0 ? biasBH + bytes(i * bsi) : 0;
              const cb = colBeg(lo, j0);
              const ce = colEnd(hi, j0, nk8);
              const mb = ce > cb ? maskRow(srow, cb, ce, j0, lo, hi, km != 0 ? KM : 0, brow, bsj, Tk, scale) : -Infinity;
              if (mb == -Infinity) {
                memory.fill(srow, 0, bytes(nk8));
                continue;
              }
              zeroOutside(srow, cb, ce, nk8);
              const mold = load<f32>(M + bytes(r));
              const mnew = max(mold, mb);
              const alpha: f32 = mold == -Infinity ? 0 : Mathf.exp(mold - mnew);
              const mv = f32x4.splat(mnew);
              const floor = f32x4.splat(-87.0);
              const ninf = f32x4.splat(-Infinity);
              const zero = f32x4.splat(0);
              let sum = zero;
              const rowHash = dropping ? dropRow(mixedSeed, bh0 + b * H + h, Tq, i, Tk) : 0;
              for (let jj = cb; jj < ce; jj += 4) {
                const x = v128.load(srow + bytes(jj));
                const e = expv(f32x4.pmax(f32x4.sub(x, mv), floor));
                const pr = v128.bitselect(e, zero, f32x4.ne(x, ninf));
                sum = f32x4.add(sum, pr); // the softmax normalises the probabilities before dropout
                v128.store(srow + bytes(jj), dropping ? f32x4.mul(pr, dropMul(rowHash, j0 + jj, threshold, keepv)) : pr);
              }
              store<f32>(L + bytes(r), load<f32>(L + bytes(r)) * alpha + hsum(sum));
              store<f32>(M + bytes(r), mnew);
              if (alpha != 1) {
                const av = f32x4.splat(alpha);
                const orow = O + bytes(r * Dv8);
                for (let c = 0; c < Dv8; c += 4) v128.store(orow + bytes(c), f32x4.mul(v128.load(orow + bytes(c)), av));
              }
            }
            for (let r = nq; r < nq4; r++) memory.fill(S + <usize>r * ldS, 0, bytes(nk8));
            smmRowsK(nq4, Dv8, nk8, S, 4, ldS, Vp + bytes(j0 * Dv8), bytes(Dv8), O, bytes(Dv8), masked, qb, window);
          }
          for (let r = 0; r < nq; r++) {
            const l = load<f32>(L + bytes(r));
            const inv: f32 = l > 0 ? 1.0 / l : 0;
            const orow = O + bytes(r * Dv8);
            const dst = outBH + bytes((i0 + r) * Dv);
            const iv = f32x4.splat(inv);
            let c = 0;
            for (; c + 4 <= Dv; c += 4) v128.store(dst + bytes(c), f32x4.mul(v128.load(orow + bytes(c)), iv));
            for (; c < Dv; c++) store<f32>(dst + bytes(c), load<f32>(orow + bytes(c)) * inv);
            store<f32>(lseBH + bytes(i0 + r), l > 0 ? load<f32>(M + bytes(r)) + Mathf.log(l) : -Infinity);
          }
        }
      }
    }
  }
}

/**
 * Backward: dq (B, H, Tq, D), dk (B, Hkv, Tk, D), dv (B, Hkv, Tk, Dv) and, with a bias, dbias (its own
 * shape, zero-filled by the caller) from q, k, v, the saved out and lse, and dO.
 */
export function flashBackward(scratch: usize, scale: f32): void {
  const desc = scratch;
  const q = ptrArg(desc, D_Q);
  const k = ptrArg(desc, D_K);
  const v = ptrArg(desc, D_V);
  const km = ptrArg(desc, D_KM);
  const bias = ptrArg(desc, D_BIAS);
  const out = ptrArg(desc, D_OUT);
  const lse = ptrArg(desc, D_LSE);
  const dropKeep = load<f32>(desc + (<usize>D_DROP_KEEP << 2));
  const dropping = dropKeep != 0;
  const mixedSeed = fmix(<u32>arg(desc, D_DROP_SEED) ^ 0x5bd1e995);
  const threshold = i32x4.splat(arg(desc, D_DROP_THRESHOLD));
  const keepv = f32x4.splat(dropKeep);
  const bh0 = arg(desc, D_BH0);
  const dO = ptrArg(desc, D_DO);
  const dq = ptrArg(desc, D_DQ);
  const dk = ptrArg(desc, D_DK);
  const dv = ptrArg(desc, D_DV_OUT);
  const dbias = ptrArg(desc, D_DBIAS);
  const B = arg(desc, D_B);
  const H = arg(desc, D_H);
  const Hkv = arg(desc, D_HKV);
  const Tq = arg(desc, D_TQ);
  const Tk = arg(desc, D_TK);
  const D = arg(desc, D_D);
  const Dv = arg(desc, D_DV);
  const causal = arg(desc, D_CAUSAL) != 0;
  const window = arg(desc, D_WINDOW);
  const masked = causal || window > 0;
  const G = H / Hkv;
  const off = Tk - Tq;
  const D8 = (D + 7) & ~7;
  const Dv8 = (Dv + 7) & ~7;
  const Tk8 = (Tk + 7) & ~7;
  let s = scratch + DESC_BYTES;
  const KT = s;
  s += bytes(D * Tk8);
  const VT = s;
  s += bytes(Dv * Tk8);
  const Kp = s;
  s += bytes(Tk8 * D8);
  const dKa = s;
  s += bytes(Tk8 * D8);
  const dVa = s;
  s += bytes(Tk8 * Dv8);
  const Qb = s;
  s += bytes(BQ * D8);
  const dQb = s;
  s += bytes(BQ * D8);
  const dOb = s;
  s += bytes(BQ * Dv8);
  const S = s;
  s += bytes(BQ * BK);
  const dP = s;
  s += bytes(BQ * BK);
  const Di = s;
  s += bytes(BQ);
  const KM = s;
  const ldS = bytes(BK);
  const bsi = arg(desc, D_BS + 2);
  const bsj = arg(desc, D_BS + 3);
  const zero = f32x4.splat(0);
  const ninf = f32x4.splat(-Infinity);
  const floor = f32x4.splat(-87.0);
  const sc = f32x4.splat(scale);
  for (let b = 0; b < B; b++) {
    if (km != 0) {
      memory.copy(KM, km + bytes(b * Tk), bytes(Tk));
      memory.fill(KM + bytes(Tk), 0, bytes(Tk8 - Tk));
    }
    for (let g = 0; g < Hkv; g++) {
      const kb = k + bytes(b * arg(desc, D_KS) + g * arg(desc, D_KS + 1));
      const vb = v + bytes(b * arg(desc, D_VS) + g * arg(desc, D_VS + 1));
      packT(kb, arg(desc, D_KS + 2), KT, Tk, D, Tk8);
      packT(vb, arg(desc, D_VS + 2), VT, Tk, Dv, Tk8);
      packRows(kb, arg(desc, D_KS + 2), Kp, Tk, D, Tk8, D8);
      memory.fill(dKa, 0, bytes(Tk8 * D8));
      memory.fill(dVa, 0, bytes(Tk8 * Dv8));
      for (let hh = 0; hh < G; hh++) {
        const h = g * G + hh;
        const qh = q + bytes(b * arg(desc, D_QS) + h * arg(desc, D_QS + 1));
        const qst = arg(desc, D_QS + 2);
        const bOff = b * arg(desc, D_BS) + h * arg(desc, D_BS + 1);
        const biasBH = bias != 0 ? bias + bytes(bOff) : 0;
        const dbiasBH = dbias != 0 ? dbias + bytes(bOff) : 0;
        const rowBH = (b * H + h) * Tq;
        for (let i0 = 0; i0 < Tq; i0 += BQ) {
          const nq = min(BQ, Tq - i0);
          const nq4 = (nq + 3) & ~3;
          const dqDst = dq + bytes((rowBH + i0) * D);
          const jlo = masked ? keyRangeLo(i0, off, window) : 0;
          const jhi = masked ? min(Tk - 1, i0 + nq - 1 + off) : Tk - 1;
          if (jhi < jlo) {
            memory.fill(dqDst, 0, bytes(nq * D));
            continue;
          }
          packRows(qh + bytes(i0) * <usize>qst, qst, Qb, nq, D, nq4, D8);
          packRows(dO + bytes((rowBH + i0) * Dv), Dv, dOb, nq, Dv, nq4, Dv8);
          for (let r = 0; r < nq; r++) {
            const orow = out + bytes((rowBH + i0 + r) * Dv);
            const grow = dOb + bytes(r * Dv8);
            let av = f32x4.splat(0);
            let c = 0;
            for (; c + 4 <= Dv; c += 4) av = madd(v128.load(orow + bytes(c)), v128.load(grow + bytes(c)), av);
            let acc: f32 = hsum(av);
            for (; c < Dv; c++) acc += load<f32>(orow + bytes(c)) * load<f32>(grow + bytes(c));
            store<f32>(Di + bytes(r), acc);
          }
          memory.fill(dQb, 0, bytes(nq4 * D8));
          const jend = jhi + 1;
          for (let j0 = jlo & ~7; j0 < jend; j0 += BK) {
            const nk = min(BK, jend - j0);
            const nk8 = (nk + 7) & ~7;
            const qb = i0 + off - j0;
            smmCols(nq4, nk8, D, Qb, 4, bytes(D8), KT + bytes(j0), bytes(Tk8), S, ldS, masked, qb, window);
            smmCols(nq4, nk8, Dv, dOb, 4, bytes(Dv8), VT + bytes(j0), bytes(Tk8), dP, ldS, masked, qb, window);
            for (let r = 0; r < nq; r++) {
              const i = i0 + r;
              const p = i + off;
              const lo = window > 0 ? p - window + 1 : 0;
              const hi = masked ? min(p, Tk - 1) : Tk - 1;
              const srow = S + <usize>r * ldS;
              const prow = dP + <usize>r * ldS;
              const brow = biasBH != 0 ? biasBH + bytes(i * bsi) : 0;
              const cb = colBeg(lo, j0);
              const ce = colEnd(hi, j0, nk8);
              const mb = ce > cb ? maskRow(srow, cb, ce, j0, lo, hi, km != 0 ? KM : 0, brow, bsj, Tk, scale) : -Infinity;
              if (mb == -Infinity) {
                memory.fill(srow, 0, bytes(nk8));
                memory.fill(prow, 0, bytes(nk8));
                continue;
              }
              zeroOutside(srow, cb, ce, nk8);
              zeroOutside(prow, cb, ce, nk8);
              const lv = f32x4.splat(load<f32>(lse + bytes(rowBH + i)));
              const dv4 = f32x4.splat(load<f32>(Di + bytes(r)));
              const dbrow = dbiasBH != 0 ? dbiasBH + bytes(i * bsi) : 0;
              let dsum = zero;
              const rowHash = dropping ? dropRow(mixedSeed, bh0 + b * H + h, Tq, i, Tk) : 0;
              for (let jj = cb; jj < ce; jj += 4) {
                const x = v128.load(srow + bytes(jj));
                const e = expv(f32x4.pmin(f32x4.pmax(f32x4.sub(x, lv), floor), zero));
                const pr = v128.bitselect(e, zero, f32x4.ne(x, ninf));
                let dpv = v128.load(prow + bytes(jj));
                let pm = pr;
                if (dropping) {
                  // out = (P∘M)·V: dV = (P∘M)ᵀ·dO, dP = (dO·Vᵀ)∘M, dS = P∘(dP - rowsum(dO∘O))
                  const m = dropMul(rowHash, j0 + jj, threshold, keepv);
                  dpv = f32x4.mul(dpv, m);
                  pm = f32x4.mul(pr, m);
                }
                const ds = f32x4.mul(pr, f32x4.sub(dpv, dv4));
                v128.store(srow + bytes(jj), pm);
                v128.store(prow + bytes(jj), ds);
                if (dbrow != 0) {
                  const j = j0 + jj;
                  if (bsj == 0) dsum = f32x4.add(dsum, ds);
                  else if (j + 4 <= Tk) v128.store(dbrow + bytes(j), f32x4.add(v128.load(dbrow + bytes(j)), ds));
                  else {
                    if (j < Tk) store<f32>(dbrow + bytes(j), load<f32>(dbrow + bytes(j)) + f32x4.extract_lane(ds, 0));
                    if (j + 1 < Tk)
                      store<f32>(dbrow + bytes(j + 1), load<f32>(dbrow + bytes(j + 1)) + f32x4.extract_lane(ds, 1));
                    if (j + 2 < Tk)
                      store<f32>(dbrow + bytes(j + 2), load<f32>(dbrow + bytes(j + 2)) + f32x4.extract_lane(ds, 2));
                  }
                }
              }
              if (dbrow != 0 && bsj == 0) store<f32>(dbrow, load<f32>(dbrow) + hsum(dsum));
            }
            for (let r = nq; r < nq4; r++) {
              memory.fill(S + <usize>r * ldS, 0, bytes(nk8));
              memory.fill(dP + <usize>r * ldS, 0, bytes(nk8));
            }
            // dV[j] += Σ_i P[i][j] dO[i]; dK[j] += Σ_i dS[i][j] Q[i]; dQ[i] += Σ_j dS[i][j] K[j]
            smmKeysK(nk8, Dv8, nq4, S, ldS, 4, dOb, bytes(Dv8), dVa + bytes(j0 * Dv8), bytes(Dv8), masked, qb, window);
            smmKeysK(nk8, D8, nq4, dP, ldS, 4, Qb, bytes(D8), dKa + bytes(j0 * D8), bytes(D8), masked, qb, window);
            smmRowsK(nq4, D8, nk8, dP, 4, ldS, Kp + bytes(j0 * D8), bytes(D8), dQb, bytes(D8), masked, qb, window);
          }
          for (let r = 0; r < nq; r++) {
            const src = dQb + bytes(r * D8);
            const dst = dqDst + bytes(r * D);
            let c = 0;
            for (; c + 4 <= D; c += 4) v128.store(dst + bytes(c), f32x4.mul(v128.load(src + bytes(c)), sc));
            for (; c < D; c++) store<f32>(dst + bytes(c), load<f32>(src + bytes(c)) * scale);
          }
        }
      }
      const dkDst = dk + bytes((b * Hkv + g) * Tk * D);
      const dvDst = dv + bytes((b * Hkv + g) * Tk * Dv);
      for (let j = 0; j < Tk; j++) {
        const ks = dKa + bytes(j * D8);
        const kd = dkDst + bytes(j * D);
        let c = 0;
        for (; c + 4 <= D; c += 4) v128.store(kd + bytes(c), f32x4.mul(v128.load(ks + bytes(c)), sc));
        for (; c < D; c++) store<f32>(kd + bytes(c), load<f32>(ks + bytes(c)) * scale);
        memory.copy(dvDst + bytes(j * Dv), dVa + bytes(j * Dv8), bytes(Dv));
      }
    }
  }
}
