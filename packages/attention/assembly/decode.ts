// Fused attention of a few new query tokens over a KV cache (decode / chunked prefill), all heads in
// one call: writes the new keys/values into the cache's preallocated slots, then for every
// (row, head, query) computes q·Kᵀ·scale, the causal + key-padding mask, softmax and ·V.
// GQA: query head h reads KV head h / (H / Hkv). Pointers are byte offsets into tf.js's heap.

// @ts-ignore: decorator
@inline
function dot(a: usize, b: usize, d: i32): f32 {
  let i = 0;
  let acc = f32x4.splat(0);
  for (; i + 4 <= d; i += 4) {
    acc = f32x4.add(acc, f32x4.mul(v128.load(a + (<usize>i << 2)), v128.load(b + (<usize>i << 2))));
  }
  let s: f32 =
    f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
  for (; i < d; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

// @ts-ignore: decorator
@inline
function copyRow(dst: usize, src: usize, d: i32): void {
  let i = 0;
  for (; i + 4 <= d; i += 4) v128.store(dst + (<usize>i << 2), v128.load(src + (<usize>i << 2)));
  for (; i < d; i++) store<f32>(dst + (<usize>i << 2), load<f32>(src + (<usize>i << 2)));
}

/**
 * q: rows (B·t) with stride qStride floats, head h at column h·D; k, v: rows (B·t), KV head g at column
 * g·D. kc, vc: (B, Hkv, cap, D) caches, slots [0, past) filled; this call fills [past, past + t).
 * mask: (B, past + t) 0/1 floats, or 0 for "all valid". out: (B·t, H·D). scores: past + t floats.
 * Query i of a row sits at slot past + i and sees slots ≤ past + i that the mask marks valid; a query
 * that sees no key gets zeros.
 */
export function decodeAttention(
  q: usize,
  k: usize,
  v: usize,
  kc: usize,
  vc: usize,
  mask: usize,
  out: usize,
  scores: usize,
  B: i32,
  t: i32,
  past: i32,
  cap: i32,
  H: i32,
  Hkv: i32,
  D: i32,
  qStride: i32,
  kStride: i32,
  vStride: i32,
  scale: f32,
): void {
  const Tk = past + t;
  const group = H / Hkv;
  const rowBytes = <usize>D << 2;
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < t; i++) {
      const r = b * t + i;
      for (let g = 0; g < Hkv; g++) {
        const slot = <usize>((b * Hkv + g) * cap + past + i) * rowBytes;
        copyRow(kc + slot, k + ((<usize>r * kStride + g * D) << 2), D);
        copyRow(vc + slot, v + ((<usize>r * vStride + g * D) << 2), D);
      }
    }
  }
  for (let b = 0; b < B; b++) {
    const m = mask + ((<usize>b * Tk) << 2);
    for (let h = 0; h < H; h++) {
      const g = h / group;
      const kb = kc + <usize>(b * Hkv + g) * cap * rowBytes;
      const vb = vc + <usize>(b * Hkv + g) * cap * rowBytes;
      for (let i = 0; i < t; i++) {
        const r = b * t + i;
        const qp = q + ((<usize>r * qStride + h * D) << 2);
        const op = out + ((<usize>r * H * D + h * D) << 2);
        for (let c = 0; c < D; c++) store<f32>(op + (<usize>c << 2), 0);
        const last = past + i;
        let mx: f32 = -Infinity;
        for (let j = 0; j <= last; j++) {
          let s: f32 = -Infinity;
          if (mask == 0 || load<f32>(m + (<usize>j << 2)) != 0) {
            s = dot(qp, kb + <usize>j * rowBytes, D) * scale;
            if (s > mx) mx = s;
          }
          store<f32>(scores + (<usize>j << 2), s);
        }
        if (mx == -Infinity) continue;
        let sum: f32 = 0;
        for (let j = 0; j <= last; j++) {
          const s = load<f32>(scores + (<usize>j << 2));
          const e: f32 = s == -Infinity ? 0 : Mathf.exp(s - mx);
          store<f32>(scores + (<usize>j << 2), e);
          sum += e;
        }
        const inv: f32 = 1.0 / sum;
        for (let j = 0; j <= last; j++) {
          const w = load<f32>(scores + (<usize>j << 2)) * inv;
          if (w == 0) continue;
          const vp = vb + <usize>j * rowBytes;
          const ws = f32x4.splat(w);
          let c = 0;
          for (; c + 4 <= D; c += 4) {
            const o = op + (<usize>c << 2);
            v128.store(o, f32x4.add(v128.load(o), f32x4.mul(ws, v128.load(vp + (<usize>c << 2)))));
          }
          for (; c < D; c++) {
            const o = op + (<usize>c << 2);
            store<f32>(o, load<f32>(o) + w * load<f32>(vp + (<usize>c << 2)));
          }
        }
      }
    }
  }
}
