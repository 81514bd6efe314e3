import type { Random } from "@typeformer/core";

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** One draw from the caller's generator seeds the whole attention dropout mask of a call. */
export function dropoutSeed(rng: Random): number {
  return rng.nextUint32();
}

/**
 * Attention dropout multipliers (keep / (1 - rate), or 0) for rows [r0, r0 + rows) and key columns
 * [c0, c0 + cols) of every (b, h), laid out (B, H, rows, cols). The mask is a stateless hash of
 * (seed, b, h, i, j), so any block of it can be regenerated — the tiled path recomputes its blocks in
 * the backward pass — and every implementation drops the same entries for the same seed.
 */
export function dropoutMultipliers(
  seed: number,
  rate: number,
  dims: { B: number; H: number; Tq: number; Tk: number },
  r0: number,
  rows: number,
  c0: number,
  cols: number,
): Float32Array {
  const { B, H, Tq, Tk } = dims;
  const out = new Float32Array(B * H * rows * cols);
  const threshold = Math.floor(rate * 4294967296);
  const keep = 1 / (1 - rate);
  const s = fmix32(seed ^ 0x5bd1e995);
  let o = 0;
  for (let bh = 0; bh < B * H; bh++) {
    for (let i = 0; i < rows; i++) {
      const row = fmix32(s ^ fmix32(Math.imul(bh * Tq + r0 + i, 0x9e3779b9) ^ Tk));
      for (let j = 0; j < cols; j++) {
        const h = fmix32(row ^ Math.imul(c0 + j + 1, 0x27d4eb2f));
        out[o++] = h >= threshold ? keep : 0;
      }
    }
  }
  return out;
}
