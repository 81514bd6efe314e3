// Batched single-precision GEMM for the tf.js wasm backend (SIMD128).
//
// C[b] (M x N) = op(A[b]) (M x K) * op(B[b]) (K x N), op = optional transpose.
// All pointers are byte offsets into the memory imported from tf.js (no data segments, no runtime:
// this module owns nothing but the scratch block the caller hands it).
//
// Blocking: B is packed per (NC x KC) block into panels of NR = 8 columns (k-major), A per panel of
// MR = 4 rows (k-major); a 4 x 8 register tile (8 f32x4 accumulators) runs over the packed panels.
// Zero padding in the panels makes edges exact; partial tiles go through a small scratch tile.

const MR: i32 = 4;
const NR: i32 = 8;
export const KC: i32 = 256;
export const NC: i32 = 1024;

/** Bytes of scratch `bmm` needs: packed B block + packed A panel + one tile. */
export function scratchBytes(): i32 {
  return (KC * NC + KC * MR + MR * NR) * 4 + 64;
}

// @ts-ignore: decorator
@inline
function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** Packs columns [j0, j0+nc) x rows [p0, p0+kc) of op(B) into NR-wide k-major panels. */
function packB(b: usize, dst: usize, N: i32, K: i32, transB: bool, j0: i32, nc: i32, p0: i32, kc: i32): void {
  for (let jr = 0; jr < nc; jr += NR) {
    const nr = min(NR, nc - jr);
    const panel = dst + <usize>(jr * kc) * 4;
    if (!transB) {
      // B is K x N row-major: a panel row is 8 contiguous floats.
      let src = b + (<usize>p0 * <usize>N + <usize>(j0 + jr)) * 4;
      const ld = <usize>N * 4;
      if (nr == NR) {
        for (let k = 0; k < kc; k++) {
          const d = panel + <usize>(k * NR) * 4;
          v128.store(d, v128.load(src));
          v128.store(d, v128.load(src, 16), 16);
          src += ld;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          const d = panel + <usize>(k * NR) * 4;
          for (let j = 0; j < NR; j++) store<f32>(d + <usize>j * 4, j < nr ? load<f32>(src + <usize>j * 4) : 0);
          src += ld;
        }
      }
    } else {
      // B is N x K row-major: column j of op(B) is row j of B, contiguous in k.
      for (let j = 0; j < NR; j++) {
        if (j < nr) {
          let src = b + (<usize>(j0 + jr + j) * <usize>K + <usize>p0) * 4;
          let d = panel + <usize>j * 4;
          for (let k = 0; k < kc; k++) {
            store<f32>(d, load<f32>(src));
            src += 4;
            d += NR * 4;
          }
        } else {
          let d = panel + <usize>j * 4;
          for (let k = 0; k < kc; k++) {
            store<f32>(d, 0);
            d += NR * 4;
          }
        }
      }
    }
  }
}

/** Packs rows [i0, i0+mr) x cols [p0, p0+kc) of op(A) into one MR-wide k-major panel. */
function packA(a: usize, dst: usize, M: i32, K: i32, transA: bool, i0: i32, mr: i32, p0: i32, kc: i32): void {
  if (transA) {
    // A is K x M row-major: the MR rows of op(A) at fixed k are contiguous.
    let src = a + (<usize>p0 * <usize>M + <usize>i0) * 4;
    const ld = <usize>M * 4;
    if (mr == MR) {
      for (let k = 0; k < kc; k++) {
        v128.store(dst + <usize>(k * MR) * 4, v128.load(src));
        src += ld;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        const d = dst + <usize>(k * MR) * 4;
        for (let i = 0; i < MR; i++) store<f32>(d + <usize>i * 4, i < mr ? load<f32>(src + <usize>i * 4) : 0);
        src += ld;
      }
    }
  } else {
    // A is M x K row-major.
    for (let i = 0; i < MR; i++) {
      let d = dst + <usize>i * 4;
      if (i < mr) {
        let src = a + (<usize>(i0 + i) * <usize>K + <usize>p0) * 4;
        for (let k = 0; k < kc; k++) {
          store<f32>(d, load<f32>(src));
          src += 4;
          d += MR * 4;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          store<f32>(d, 0);
          d += MR * 4;
        }
      }
    }
  }
}

/**
 * 4 x 8 tile: C[0..mr, 0..nr] (+)= packedA(4 x kc) * B(kc x 8), B rows `pbStride` bytes apart (32 for a
 * packed panel, the row pitch of B when B is read in place).
 */
function tile(
  pa: usize,
  pb: usize,
  pbStride: usize,
  kc: i32,
  c: usize,
  ldc: i32,
  accumulate: bool,
  mr: i32,
  nr: i32,
  tmp: usize,
): void {
  let c00 = f32x4.splat(0);
  let c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0);
  let c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0);
  let c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0);
  let c31 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    let a = v128.load32_splat(pa);
    c00 = madd(a, b0, c00);
    c01 = madd(a, b1, c01);
    a = v128.load32_splat(pa, 4);
    c10 = madd(a, b0, c10);
    c11 = madd(a, b1, c11);
    a = v128.load32_splat(pa, 8);
    c20 = madd(a, b0, c20);
    c21 = madd(a, b1, c21);
    a = v128.load32_splat(pa, 12);
    c30 = madd(a, b0, c30);
    c31 = madd(a, b1, c31);
    pa += 16;
    pb += pbStride;
  }
  const ld = <usize>ldc * 4;
  if (mr == MR && nr == NR) {
    let p = c;
    if (accumulate) {
      v128.store(p, f32x4.add(v128.load(p), c00));
      v128.store(p, f32x4.add(v128.load(p, 16), c01), 16);
      p += ld;
      v128.store(p, f32x4.add(v128.load(p), c10));
      v128.store(p, f32x4.add(v128.load(p, 16), c11), 16);
      p += ld;
      v128.store(p, f32x4.add(v128.load(p), c20));
      v128.store(p, f32x4.add(v128.load(p, 16), c21), 16);
      p += ld;
      v128.store(p, f32x4.add(v128.load(p), c30));
      v128.store(p, f32x4.add(v128.load(p, 16), c31), 16);
    } else {
      v128.store(p, c00);
      v128.store(p, c01, 16);
      p += ld;
      v128.store(p, c10);
      v128.store(p, c11, 16);
      p += ld;
      v128.store(p, c20);
      v128.store(p, c21, 16);
      p += ld;
      v128.store(p, c30);
      v128.store(p, c31, 16);
    }
    return;
  }
  v128.store(tmp, c00);
  v128.store(tmp, c01, 16);
  v128.store(tmp, c10, 32);
  v128.store(tmp, c11, 48);
  v128.store(tmp, c20, 64);
  v128.store(tmp, c21, 80);
  v128.store(tmp, c30, 96);
  v128.store(tmp, c31, 112);
  for (let i = 0; i < mr; i++) {
    const row = c + <usize>i * ld;
    const t = tmp + <usize>(i * NR) * 4;
    for (let j = 0; j < nr; j++) {
      const v = load<f32>(t + <usize>j * 4);
      const q = row + <usize>j * 4;
      store<f32>(q, accumulate ? load<f32>(q) + v : v);
    }
  }
}

/**
 * One row of C (decoding at batch 1): C[0, 0..nc] (+)= packedA(1 row of kc, k stride MR) * B(kc x nc),
 * B read in place with row pitch `ldb` bytes; 16 columns (4 accumulators) at a time, no padding waste.
 */
function row1(pa: usize, b: usize, ldb: usize, kc: i32, c: usize, nc: i32, accumulate: bool): void {
  let j = 0;
  for (; j + 16 <= nc; j += 16) {
    let c0 = f32x4.splat(0);
    let c1 = f32x4.splat(0);
    let c2 = f32x4.splat(0);
    let c3 = f32x4.splat(0);
    let p = pa;
    let pb = b + <usize>j * 4;
    for (let k = 0; k < kc; k++) {
      const a = v128.load32_splat(p);
      c0 = madd(a, v128.load(pb), c0);
      c1 = madd(a, v128.load(pb, 16), c1);
      c2 = madd(a, v128.load(pb, 32), c2);
      c3 = madd(a, v128.load(pb, 48), c3);
      p += MR * 4;
      pb += ldb;
    }
    const q = c + <usize>j * 4;
    if (accumulate) {
      c0 = f32x4.add(c0, v128.load(q));
      c1 = f32x4.add(c1, v128.load(q, 16));
      c2 = f32x4.add(c2, v128.load(q, 32));
      c3 = f32x4.add(c3, v128.load(q, 48));
    }
    v128.store(q, c0);
    v128.store(q, c1, 16);
    v128.store(q, c2, 32);
    v128.store(q, c3, 48);
  }
  for (; j + 4 <= nc; j += 4) {
    let c0 = f32x4.splat(0);
    let p = pa;
    let pb = b + <usize>j * 4;
    for (let k = 0; k < kc; k++) {
      c0 = madd(v128.load32_splat(p), v128.load(pb), c0);
      p += MR * 4;
      pb += ldb;
    }
    const q = c + <usize>j * 4;
    v128.store(q, accumulate ? f32x4.add(c0, v128.load(q)) : c0);
  }
  for (; j < nc; j++) {
    let s: f32 = 0;
    let p = pa;
    let pb = b + <usize>j * 4;
    for (let k = 0; k < kc; k++) {
      s += load<f32>(p) * load<f32>(pb);
      p += MR * 4;
      pb += ldb;
    }
    const q = c + <usize>j * 4;
    store<f32>(q, accumulate ? load<f32>(q) + s : s);
  }
}

/** One product: C (M x N) = op(A) * op(B). */
function gemm(a: usize, b: usize, c: usize, M: i32, N: i32, K: i32, transA: bool, transB: bool, scratch: usize): void {
  gemmRows(a, b, c, M, N, K, transA ? 1 : 0, transB ? 1 : 0, 0, M, scratch);
}

/** Rows [m0, m1) of one product C (M x N) = op(A) * op(B) (the rest of C is not touched). */
export function gemmRows(
  a: usize,
  b: usize,
  c: usize,
  M: i32,
  N: i32,
  K: i32,
  transA: i32,
  transB: i32,
  m0: i32,
  m1: i32,
  scratch: usize,
): void {
  const bufB = (scratch + 15) & ~(<usize>15);
  const bufA = bufB + <usize>(KC * NC) * 4;
  const tmp = bufA + <usize>(KC * MR) * 4;
  if (K == 0) {
    memory.fill(c + <usize>m0 * <usize>N * 4, 0, <usize>(m1 - m0) * <usize>N * 4);
    return;
  }
  // Few rows (decoding): packing B would cost as much as the product; read full panels of an
  // untransposed B in place and pack only a ragged last panel.
  const direct = transB == 0 && m1 - m0 <= 16;
  const ldb = <usize>N * 4;
  for (let jc = 0; jc < N; jc += NC) {
    const nc = min(NC, N - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      if (!direct) packB(b, bufB, N, K, transB != 0, jc, nc, pc, kc);
      const accumulate = pc > 0;
      for (let ic = m0; ic < m1; ic += MR) {
        const mr = min(MR, m1 - ic);
        packA(a, bufA, M, K, transA != 0, ic, mr, pc, kc);
        const crow = c + (<usize>ic * <usize>N + <usize>jc) * 4;
        if (direct && mr == 1) {
          row1(bufA, b + (<usize>pc * <usize>N + <usize>jc) * 4, ldb, kc, crow, nc, accumulate);
          continue;
        }
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = min(NR, nc - jr);
          const cp = crow + <usize>jr * 4;
          if (!direct) {
            tile(bufA, bufB + <usize>(jr * kc) * 4, 32, kc, cp, N, accumulate, mr, nr, tmp);
          } else if (nr == NR) {
            tile(bufA, b + (<usize>pc * <usize>N + <usize>(jc + jr)) * 4, ldb, kc, cp, N, accumulate, mr, nr, tmp);
          } else {
            packB(b, bufB, N, K, false, jc + jr, nr, pc, kc);
            tile(bufA, bufB, 32, kc, cp, N, accumulate, mr, nr, tmp);
          }
        }
      }
    }
  }
}

/**
 * `batch` products; operand b-th starts at a + b * strideA (bytes; 0 broadcasts one matrix), likewise
 * for B; outputs are contiguous.
 */
export function bmm(
  a: usize,
  b: usize,
  c: usize,
  batch: i32,
  strideA: usize,
  strideB: usize,
  M: i32,
  N: i32,
  K: i32,
  transA: i32,
  transB: i32,
  scratch: usize,
): void {
  const strideC = <usize>M * <usize>N * 4;
  for (let i = 0; i < batch; i++) {
    gemm(a + <usize>i * strideA, b + <usize>i * strideB, c + <usize>i * strideC, M, N, K, transA != 0, transB != 0, scratch);
  }
}
