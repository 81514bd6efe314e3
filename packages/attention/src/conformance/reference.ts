/**
 * Float64 reference attention in plain JavaScript (no tf.js): textbook loops over flat row-major
 * arrays, forward and analytic backward. The conformance suite compares every implementation to it.
 */
export interface RefProblem {
  B: number;
  H: number;
  Hkv: number;
  Tq: number;
  Tk: number;
  D: number;
  Dv: number;
  q: ArrayLike<number>; // (B, H, Tq, D)
  k: ArrayLike<number>; // (B, Hkv, Tk, D)
  v: ArrayLike<number>; // (B, Hkv, Tk, Dv)
  causal?: boolean;
  window?: number;
  keyMask?: ArrayLike<number>; // (B, Tk)
  /** Bias and its shape (right-aligned broadcast to (B, H, Tq, Tk)). */
  bias?: ArrayLike<number>;
  biasShape?: number[];
  scale?: number;
  /** Multipliers applied to the probabilities after softmax (dropout keep / (1 - rate)), (B, H, Tq, Tk). */
  dropoutMultiplier?: ArrayLike<number>;
}

export interface RefForward {
  out: Float64Array; // (B, H, Tq, Dv)
  probs: Float64Array; // (B, H, Tq, Tk), before dropout
}

export interface RefGrads {
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
  /** Gradient of the bias, reduced to its own shape. */
  dbias?: Float64Array;
}

function biasIndexer(p: RefProblem): ((b: number, h: number, i: number, j: number) => number) | undefined {
  if (!p.bias || !p.biasShape) return undefined;
  const s = [...new Array(4 - p.biasShape.length).fill(1), ...p.biasShape];
  const strides = [s[1] * s[2] * s[3], s[2] * s[3], s[3], 1];
  return (b, h, i, j) =>
    (s[0] === 1 ? 0 : b) * strides[0] +
    (s[1] === 1 ? 0 : h) * strides[1] +
    (s[2] === 1 ? 0 : i) * strides[2] +
    (s[3] === 1 ? 0 : j);
}

/** Whether query i (at key position i + Tk - Tq) of row b may see key j. */
export function refVisible(p: RefProblem, b: number, i: number, j: number): boolean {
  const pos = i + p.Tk - p.Tq;
  if ((p.causal || p.window !== undefined) && j > pos) return false;
  if (p.window !== undefined && j <= pos - p.window) return false;
  if (p.keyMask && !p.keyMask[b * p.Tk + j]) return false;
  return true;
}

export function refAttention(p: RefProblem): RefForward {
  const { B, H, Hkv, Tq, Tk, D, Dv } = p;
  const G = H / Hkv;
  const scale = p.scale ?? 1 / Math.sqrt(D);
  const bi = biasIndexer(p);
  const out = new Float64Array(B * H * Tq * Dv);
  const probs = new Float64Array(B * H * Tq * Tk);
  const s = new Float64Array(Tk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / G);
      for (let i = 0; i < Tq; i++) {
        const qo = ((b * H + h) * Tq + i) * D;
        let max = Number.NEGATIVE_INFINITY;
        for (let j = 0; j < Tk; j++) {
          if (!refVisible(p, b, i, j)) {
            s[j] = Number.NEGATIVE_INFINITY;
            continue;
          }
          const ko = ((b * Hkv + kh) * Tk + j) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += p.q[qo + d] * p.k[ko + d];
          s[j] = dot * scale + (bi && p.bias ? p.bias[bi(b, h, i, j)] : 0);
          if (s[j] > max) max = s[j];
        }
        const po = ((b * H + h) * Tq + i) * Tk;
        if (max === Number.NEGATIVE_INFINITY) continue; // no visible key: zeros
        let sum = 0;
        for (let j = 0; j < Tk; j++) {
          const e = s[j] === Number.NEGATIVE_INFINITY ? 0 : Math.exp(s[j] - max);
          probs[po + j] = e;
          sum += e;
        }
        const oo = ((b * H + h) * Tq + i) * Dv;
        for (let j = 0; j < Tk; j++) {
          probs[po + j] /= sum;
          const w = probs[po + j] * (p.dropoutMultiplier ? p.dropoutMultiplier[po + j] : 1);
          if (w === 0) continue;
          const vo = ((b * Hkv + kh) * Tk + j) * Dv;
          for (let d = 0; d < Dv; d++) out[oo + d] += w * p.v[vo + d];
        }
      }
    }
  }
  return { out, probs };
}

/** Analytic float64 backward of {@link refAttention} for the upstream gradient dOut (B, H, Tq, Dv). */
export function refAttentionGrads(p: RefProblem, dOut: ArrayLike<number>): RefGrads {
  const { B, H, Hkv, Tq, Tk, D, Dv } = p;
  const G = H / Hkv;
  const scale = p.scale ?? 1 / Math.sqrt(D);
  const { probs } = refAttention(p);
  const bi = biasIndexer(p);
  const dq = new Float64Array(B * H * Tq * D);
  const dk = new Float64Array(B * Hkv * Tk * D);
  const dv = new Float64Array(B * Hkv * Tk * Dv);
  const dbias = p.bias ? new Float64Array(p.bias.length) : undefined;
  const dp = new Float64Array(Tk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / G);
      for (let i = 0; i < Tq; i++) {
        const po = ((b * H + h) * Tq + i) * Tk;
        const oo = ((b * H + h) * Tq + i) * Dv;
        const qo = ((b * H + h) * Tq + i) * D;
        // out = Σ_j P_j M_j v_j with M the dropout multiplier
        let dot = 0;
        for (let j = 0; j < Tk; j++) {
          const m = p.dropoutMultiplier ? p.dropoutMultiplier[po + j] : 1;
          const vo = ((b * Hkv + kh) * Tk + j) * Dv;
          let g = 0;
          for (let d = 0; d < Dv; d++) {
            g += dOut[oo + d] * p.v[vo + d];
            dv[vo + d] += probs[po + j] * m * dOut[oo + d];
          }
          dp[j] = g * m;
          dot += probs[po + j] * dp[j];
        }
        for (let j = 0; j < Tk; j++) {
          const ds = probs[po + j] * (dp[j] - dot);
          if (ds === 0) continue;
          const ko = ((b * Hkv + kh) * Tk + j) * D;
          for (let d = 0; d < D; d++) {
            dq[qo + d] += scale * ds * p.k[ko + d];
            dk[ko + d] += scale * ds * p.q[qo + d];
          }
          if (dbias && bi) dbias[bi(b, h, i, j)] += ds;
        }
      }
    }
  }
  return { dq, dk, dv, dbias };
}
