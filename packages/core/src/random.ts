import { TypeformerError } from "./errors.js";

/** Serializable state of a {@link Random}: four 32-bit words (xoshiro128**) plus a cached normal. */
export interface RandomState {
  s: [number, number, number, number];
  spare: number | null;
}

function splitmix32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x9e3779b9) >>> 0;
    let z = a;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * The project's seeded generator (xoshiro128**), used for initialisation, dropout, data order and
 * sampling. Its whole state can be saved with {@link Random.getState} and restored exactly.
 */
export class Random {
  private s: Uint32Array;
  private spare: number | null = null;

  constructor(seed: number | string = 0) {
    if (typeof seed === "number" && !Number.isFinite(seed)) {
      throw new TypeformerError(
        "INVALID_ARGUMENT",
        `seed must be a finite number or a string; received ${seed}`,
        {
          seed,
        },
      );
    }
    const next = splitmix32(typeof seed === "string" ? hashString(seed) : Math.floor(seed) >>> 0);
    this.s = new Uint32Array([next(), next(), next(), next()]);
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1;
  }

  static fromState(state: RandomState): Random {
    const r = new Random(0);
    r.setState(state);
    return r;
  }

  /** Next unsigned 32-bit integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 bits of randomness. */
  float(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!(n > 0) || !Number.isInteger(n)) {
      throw new TypeformerError("INVALID_ARGUMENT", `int(n) needs a positive integer n; received ${n}`, {
        n,
      });
    }
    if (n <= 0x100000000) {
      // rejection sampling for an unbiased result
      const limit = 0x100000000 - (0x100000000 % n);
      for (;;) {
        const x = this.nextUint32();
        if (x < limit) return x % n;
      }
    }
    return Math.floor(this.float() * n);
  }

  /** Standard normal sample (Box–Muller, caching the second value). */
  normal(mean = 0, std = 1): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return mean + std * v;
    }
    let u = 0;
    while (u === 0) u = this.float();
    const v = this.float();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return mean + std * r * Math.cos(2 * Math.PI * v);
  }

  /** Float32Array of normal samples. */
  normalArray(n: number, mean = 0, std = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal(mean, std);
    return out;
  }

  /** Float32Array of uniform samples in [lo, hi). */
  uniformArray(n: number, lo = 0, hi = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * this.float();
    return out;
  }

  /** In-place Fisher–Yates shuffle. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }

  /** An independent generator derived from this one's current state and a label (this one advances). */
  fork(label = ""): Random {
    const seed = (this.nextUint32() ^ hashString(label)) >>> 0;
    return new Random(seed);
  }

  getState(): RandomState {
    return { s: [this.s[0], this.s[1], this.s[2], this.s[3]], spare: this.spare };
  }

  setState(state: RandomState): void {
    if (
      !state ||
      !Array.isArray(state.s) ||
      state.s.length !== 4 ||
      state.s.some((x) => !Number.isInteger(x))
    ) {
      throw new TypeformerError("INVALID_ARGUMENT", "Random state must be {s: [4 uint32], spare}", { state });
    }
    this.s = new Uint32Array(state.s);
    this.spare = state.spare ?? null;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
