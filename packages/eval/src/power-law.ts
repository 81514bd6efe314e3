import { TypeformerError } from "@typeformer/core";

/** L(N) = a · N^(−alpha) + c. */
export interface PowerLawFit {
  a: number;
  alpha: number;
  c: number;
  /** 1 − SS_res / SS_tot on L (linear space). */
  r2: number;
  /** Root mean squared residual of L. */
  rmse: number;
  n: number;
}

export function powerLaw(fit: Pick<PowerLawFit, "a" | "alpha" | "c">, N: number): number {
  return fit.a * N ** -fit.alpha + fit.c;
}

function linearFit(x: number[], y: number[]): { slope: number; intercept: number } {
  const n = x.length;
  const mx = x.reduce((s, v) => s + v, 0) / n;
  const my = y.reduce((s, v) => s + v, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
  }
  const slope = sxx > 0 ? sxy / sxx : 0;
  return { slope, intercept: my - slope * mx };
}

function sse(p: [number, number, number], N: number[], L: number[]): number {
  let s = 0;
  for (let i = 0; i < N.length; i++) s += (p[0] * N[i] ** -p[1] + p[2] - L[i]) ** 2;
  return s;
}

/**
 * Fits L(N) = a·N^(−α) + c by nonlinear least squares on L: a grid over the irreducible loss c in
 * [0, min L) with a linear fit of ln(L − c) against ln N for each (a, α in closed form), then
 * Levenberg–Marquardt on (ln a, α, c) from the best grid point, keeping 0 ≤ c < min L.
 * `fixC` pins c (e.g. 0 for a pure power law).
 */
export function fitPowerLaw(
  N: number[],
  L: number[],
  opts: { fixC?: number; gridSize?: number } = {},
): PowerLawFit {
  if (N.length !== L.length || N.length < 3) {
    throw new TypeformerError(
      "INVALID_ARGUMENT",
      `need ≥ 3 (N, L) points of equal length; received ${N.length} sizes and ${L.length} losses`,
      { sizes: N.length, losses: L.length },
    );
  }
  N.forEach((v, i) => {
    if (!(v > 0) || !(L[i] > 0) || !Number.isFinite(L[i])) {
      throw new TypeformerError(
        "INVALID_ARGUMENT",
        `point ${i}: N and L must be positive and finite; received N=${v}, L=${L[i]}`,
        {
          index: i,
        },
      );
    }
  });
  const minL = Math.min(...L);
  const lnN = N.map(Math.log);
  const fromC = (c: number): [number, number, number] => {
    const { slope, intercept } = linearFit(
      lnN,
      L.map((l) => Math.log(l - c)),
    );
    return [Math.exp(intercept), -slope, c];
  };
  let best: [number, number, number];
  if (opts.fixC !== undefined) best = fromC(opts.fixC);
  else {
    const G = opts.gridSize ?? 400;
    best = fromC(0);
    let bestS = sse(best, N, L);
    for (let g = 1; g < G; g++) {
      const p = fromC((minL * g) / G);
      const s = sse(p, N, L);
      if (s < bestS) {
        best = p;
        bestS = s;
      }
    }
    best = levenbergMarquardt(best, N, L, minL);
  }
  const [a, alpha, c] = best;
  const meanL = L.reduce((s, v) => s + v, 0) / L.length;
  const ssTot = L.reduce((s, v) => s + (v - meanL) ** 2, 0);
  const ssRes = sse(best, N, L);
  return {
    a,
    alpha,
    c,
    r2: ssTot > 0 ? 1 - ssRes / ssTot : 1,
    rmse: Math.sqrt(ssRes / L.length),
    n: L.length,
  };
}

/** LM on θ = (ln a, α, c), residuals r_i = a·N_i^−α + c − L_i, Jacobian by hand. */
function levenbergMarquardt(
  p0: [number, number, number],
  N: number[],
  L: number[],
  maxC: number,
): [number, number, number] {
  let th = [Math.log(p0[0]), p0[1], p0[2]];
  const toP = (t: number[]): [number, number, number] => [Math.exp(t[0]), t[1], t[2]];
  let cur = sse(toP(th), N, L);
  let lambda = 1e-3;
  for (let it = 0; it < 200; it++) {
    const JtJ = [
      [0, 0, 0],
      [0, 0, 0],
      [0, 0, 0],
    ];
    const Jtr = [0, 0, 0];
    const a = Math.exp(th[0]);
    for (let i = 0; i < N.length; i++) {
      const pw = N[i] ** -th[1];
      const r = a * pw + th[2] - L[i];
      const j = [a * pw, -a * pw * Math.log(N[i]), 1];
      for (let u = 0; u < 3; u++) {
        Jtr[u] += j[u] * r;
        for (let v = 0; v < 3; v++) JtJ[u][v] += j[u] * j[v];
      }
    }
    let improved = false;
    for (let tries = 0; tries < 20; tries++) {
      const A = JtJ.map((row, u) => row.map((x, v) => (u === v ? x * (1 + lambda) + 1e-12 : x)));
      const d = solve3(
        A,
        Jtr.map((x) => -x),
      );
      if (!d) break;
      const next = [th[0] + d[0], th[1] + d[1], Math.min(Math.max(th[2] + d[2], 0), maxC * (1 - 1e-9))];
      const s = sse(toP(next), N, L);
      if (s < cur) {
        const rel = (cur - s) / Math.max(cur, 1e-300);
        th = next;
        cur = s;
        lambda = Math.max(lambda / 3, 1e-12);
        improved = true;
        if (rel < 1e-12) return toP(th);
        break;
      }
      lambda *= 4;
    }
    if (!improved) break;
  }
  return toP(th);
}

function solve3(A: number[][], b: number[]): number[] | undefined {
  const M = A.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < 3; c++) {
    let piv = c;
    for (let r = c + 1; r < 3; r++) if (Math.abs(M[r][c]) > Math.abs(M[piv][c])) piv = r;
    if (Math.abs(M[piv][c]) < 1e-300) return undefined;
    [M[c], M[piv]] = [M[piv], M[c]];
    for (let r = 0; r < 3; r++) {
      if (r === c) continue;
      const f = M[r][c] / M[c][c];
      for (let k = c; k < 4; k++) M[r][k] -= f * M[c][k];
    }
  }
  return [M[0][3] / M[0][0], M[1][3] / M[1][1], M[2][3] / M[2][2]];
}
