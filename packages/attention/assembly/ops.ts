// Fused elementwise/row kernels that training spends its non-matmul time in: bias add, tanh-GELU
// forward/backward, LayerNorm forward/backward, AdamW. Pointers are byte offsets into tf.js's heap.

// @ts-ignore: decorator
@inline
function fma(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

// @ts-ignore: decorator
@inline
function sp(x: f32): v128 {
  return f32x4.splat(x);
}

/**
 * exp on 4 lanes for x in [-87, 88] (Cephes expf polynomial, ~1 ulp). The exponent is rounded with the
 * 1.5 * 2^23 trick, which spares V8's multi-instruction float->int conversion.
 */
// @ts-ignore: decorator
@inline
export function expv(x: v128): v128 {
  // callers keep x within [-87, 88]
  const shifted = fma(x, sp(1.44269504088896341), sp(12582912.0));
  const fx = f32x4.sub(shifted, sp(12582912.0));
  let r = f32x4.sub(x, f32x4.mul(fx, sp(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(fx, sp(-2.12194440e-4)));
  let p = sp(1.9875691500e-4);
  p = fma(p, r, sp(1.3981999507e-3));
  p = fma(p, r, sp(8.3334519073e-3));
  p = fma(p, r, sp(4.1665795894e-2));
  p = fma(p, r, sp(1.6666665459e-1));
  p = fma(p, r, sp(5.0000001201e-1));
  p = fma(p, f32x4.mul(r, r), f32x4.add(r, sp(1.0)));
  // shifted's low mantissa bits hold n + 2^22 (n = round(x log2 e)); 2^n has exponent field n + 127.
  const pow2 = i32x4.shl(i32x4.sub(shifted, i32x4.splat(0x4b400000 - 127)), 23);
  return f32x4.mul(p, pow2);
}

/** sigmoid(z) on 4 lanes: 1 / (1 + e^-z), z clamped to ±30 (saturated in f32 beyond). */
// @ts-ignore: decorator
@inline
function sigmoidv(z: v128): v128 {
  z = f32x4.pmin(f32x4.pmax(z, sp(-30.0)), sp(30.0));
  return f32x4.div(sp(1.0), f32x4.add(sp(1.0), expv(f32x4.neg(z))));
}

function tanhs(u: f32): f32 {
  u = min(max(u, -9.0), 9.0);
  const e = Mathf.exp(u + u);
  return (e - 1.0) / (e + 1.0);
}

const GELU_C: f32 = 0.7978845608028654; // sqrt(2 / pi)
const GELU_A: f32 = 0.044715;

/** y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), n elements. */
export function geluForward(x: usize, y: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i * 4;
    const v = v128.load(x + o);
    // 0.5 x (1 + tanh u) = x sigmoid(2u)
    const u2 = f32x4.mul(sp(2.0 * GELU_C), fma(f32x4.mul(f32x4.mul(v, v), v), sp(GELU_A), v));
    v128.store(y + o, f32x4.mul(v, sigmoidv(u2)));
  }
  for (; i < n; i++) {
    const o = <usize>i * 4;
    const v = load<f32>(x + o);
    const t: f32 = tanhs(GELU_C * (v + GELU_A * v * v * v));
    store<f32>(y + o, 0.5 * v * (1.0 + t));
  }
}

/** dx = dy * gelu'(x). */
export function geluBackward(x: usize, dy: usize, dx: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i * 4;
    const v = v128.load(x + o);
    const v2 = f32x4.mul(v, v);
    const u2 = f32x4.mul(sp(2.0 * GELU_C), fma(f32x4.mul(v2, v), sp(GELU_A), v));
    const s = sigmoidv(u2); // = 0.5 (1 + tanh u)
    // d/dx [x s(2u)] = s + x s (1 - s) 2 u'(x), u'(x) = c (1 + 3 a x^2)
    const du2 = f32x4.mul(sp(2.0 * GELU_C), fma(v2, sp(3.0 * GELU_A), sp(1.0)));
    const g = fma(f32x4.mul(f32x4.mul(v, s), f32x4.sub(sp(1.0), s)), du2, s);
    v128.store(dx + o, f32x4.mul(g, v128.load(dy + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i * 4;
    const v = load<f32>(x + o);
    const t: f32 = tanhs(GELU_C * (v + GELU_A * v * v * v));
    const du: f32 = GELU_C * (1.0 + 3.0 * GELU_A * v * v);
    const g: f32 = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du;
    store<f32>(dx + o, g * load<f32>(dy + o));
  }
}

/** c[r, :] += bias for r < rows (row length n). */
export function addBias(c: usize, bias: usize, rows: i32, n: i32): void {
  for (let r = 0; r < rows; r++) {
    const row = c + <usize>r * <usize>n * 4;
    let j = 0;
    for (; j + 4 <= n; j += 4) {
      const o = <usize>j * 4;
      v128.store(row + o, f32x4.add(v128.load(row + o), v128.load(bias + o)));
    }
    for (; j < n; j++) {
      const o = <usize>j * 4;
      store<f32>(row + o, load<f32>(row + o) + load<f32>(bias + o));
    }
  }
}

// @ts-ignore: decorator
@inline
function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** LayerNorm over rows of length d: y = (x - mean) * rstd * g + b; saves mean and rstd per row. */
export function layerNormForward(x: usize, g: usize, b: usize, y: usize, mean: usize, rstd: usize, rows: i32, d: i32, eps: f32): void {
  const d4 = d & ~3;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * <usize>d * 4;
    const yr = y + <usize>r * <usize>d * 4;
    let acc = sp(0);
    let s: f32 = 0;
    for (let j = 0; j < d4; j += 4) acc = f32x4.add(acc, v128.load(xr + <usize>j * 4));
    for (let j = d4; j < d; j++) s += load<f32>(xr + <usize>j * 4);
    const mu = (hsum(acc) + s) / <f32>d;
    const muv = sp(mu);
    acc = sp(0);
    s = 0;
    for (let j = 0; j < d4; j += 4) {
      const c = f32x4.sub(v128.load(xr + <usize>j * 4), muv);
      acc = fma(c, c, acc);
    }
    for (let j = d4; j < d; j++) {
      const c = load<f32>(xr + <usize>j * 4) - mu;
      s += c * c;
    }
    const rs: f32 = 1.0 / Mathf.sqrt((hsum(acc) + s) / <f32>d + eps);
    const rsv = sp(rs);
    for (let j = 0; j < d4; j += 4) {
      const o = <usize>j * 4;
      const xh = f32x4.mul(f32x4.sub(v128.load(xr + o), muv), rsv);
      v128.store(yr + o, fma(xh, v128.load(g + o), v128.load(b + o)));
    }
    for (let j = d4; j < d; j++) {
      const o = <usize>j * 4;
      store<f32>(yr + o, (load<f32>(xr + o) - mu) * rs * load<f32>(g + o) + load<f32>(b + o));
    }
    store<f32>(mean + <usize>r * 4, mu);
    store<f32>(rstd + <usize>r * 4, rs);
  }
}

/**
 * LayerNorm backward: dx = rstd (dxh - mean(dxh) - xh mean(dxh xh)) with dxh = dy g, xh = (x - mean) rstd;
 * dg = sum_rows dy xh, db = sum_rows dy (dg, db are overwritten).
 */
export function layerNormBackward(
  x: usize,
  dy: usize,
  g: usize,
  mean: usize,
  rstd: usize,
  dx: usize,
  dg: usize,
  db: usize,
  rows: i32,
  d: i32,
): void {
  memory.fill(dg, 0, <usize>d * 4);
  memory.fill(db, 0, <usize>d * 4);
  const d4 = d & ~3;
  const invd: f32 = 1.0 / <f32>d;
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * <usize>d * 4;
    const xr = x + off;
    const dyr = dy + off;
    const dxr = dx + off;
    const mu = load<f32>(mean + <usize>r * 4);
    const rs = load<f32>(rstd + <usize>r * 4);
    const muv = sp(mu);
    const rsv = sp(rs);
    let a1 = sp(0);
    let a2 = sp(0);
    let s1: f32 = 0;
    let s2: f32 = 0;
    for (let j = 0; j < d4; j += 4) {
      const o = <usize>j * 4;
      const xh = f32x4.mul(f32x4.sub(v128.load(xr + o), muv), rsv);
      const dyv = v128.load(dyr + o);
      const dxh = f32x4.mul(dyv, v128.load(g + o));
      a1 = f32x4.add(a1, dxh);
      a2 = fma(dxh, xh, a2);
      v128.store(dg + o, fma(dyv, xh, v128.load(dg + o)));
      v128.store(db + o, f32x4.add(dyv, v128.load(db + o)));
    }
    for (let j = d4; j < d; j++) {
      const o = <usize>j * 4;
      const xh = (load<f32>(xr + o) - mu) * rs;
      const dyv = load<f32>(dyr + o);
      const dxh = dyv * load<f32>(g + o);
      s1 += dxh;
      s2 += dxh * xh;
      store<f32>(dg + o, load<f32>(dg + o) + dyv * xh);
      store<f32>(db + o, load<f32>(db + o) + dyv);
    }
    const m1 = (hsum(a1) + s1) * invd;
    const m2 = (hsum(a2) + s2) * invd;
    const m1v = sp(m1);
    const m2v = sp(m2);
    for (let j = 0; j < d4; j += 4) {
      const o = <usize>j * 4;
      const xh = f32x4.mul(f32x4.sub(v128.load(xr + o), muv), rsv);
      const dxh = f32x4.mul(v128.load(dyr + o), v128.load(g + o));
      v128.store(dxr + o, f32x4.mul(rsv, f32x4.sub(f32x4.sub(dxh, m1v), f32x4.mul(xh, m2v))));
    }
    for (let j = d4; j < d; j++) {
      const o = <usize>j * 4;
      const xh = (load<f32>(xr + o) - mu) * rs;
      const dxh = load<f32>(dyr + o) * load<f32>(g + o);
      store<f32>(dxr + o, rs * (dxh - m1 - xh * m2));
    }
  }
}

/**
 * AdamW: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2 (in place);
 * wOut = w (1 - lr wd) - lr (m / bc1) / (sqrt(v / bc2) + eps) (wOut may be w).
 */
export function adamw(w: usize, wOut: usize, g: usize, m: usize, v: usize, n: i32, lr: f32, b1: f32, b2: f32, eps: f32, wd: f32, bc1: f32, bc2: f32): void {
  const decay: f32 = 1.0 - lr * wd;
  const step: f32 = lr / bc1;
  const ibc2: f32 = 1.0 / bc2;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i * 4;
    const gv = v128.load(g + o);
    const mv = fma(v128.load(m + o), sp(b1), f32x4.mul(gv, sp(1.0 - b1)));
    const vv = fma(v128.load(v + o), sp(b2), f32x4.mul(f32x4.mul(gv, gv), sp(1.0 - b2)));
    v128.store(m + o, mv);
    v128.store(v + o, vv);
    const den = f32x4.add(f32x4.sqrt(f32x4.mul(vv, sp(ibc2))), sp(eps));
    const upd = f32x4.div(f32x4.mul(mv, sp(step)), den);
    v128.store(wOut + o, f32x4.sub(f32x4.mul(v128.load(w + o), sp(decay)), upd));
  }
  for (; i < n; i++) {
    const o = <usize>i * 4;
    const gv = load<f32>(g + o);
    const mv = load<f32>(m + o) * b1 + gv * (1.0 - b1);
    const vv = load<f32>(v + o) * b2 + gv * gv * (1.0 - b2);
    store<f32>(m + o, mv);
    store<f32>(v + o, vv);
    store<f32>(wOut + o, load<f32>(w + o) * decay - (mv * step) / (Mathf.sqrt(vv * ibc2) + eps));
  }
}

/** out[j] = sum over rows of dy[r, j] (the gradient of a bias). */
export function columnSum(dy: usize, out: usize, rows: i32, n: i32): void {
  memory.fill(out, 0, <usize>n * 4);
  const n4 = n & ~3;
  for (let r = 0; r < rows; r++) {
    const row = dy + <usize>r * <usize>n * 4;
    for (let j = 0; j < n4; j += 4) {
      const o = <usize>j * 4;
      v128.store(out + o, f32x4.add(v128.load(out + o), v128.load(row + o)));
    }
    for (let j = n4; j < n; j++) {
      const o = <usize>j * 4;
      store<f32>(out + o, load<f32>(out + o) + load<f32>(row + o));
    }
  }
}
