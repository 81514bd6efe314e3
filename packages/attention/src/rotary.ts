import { describeValue, TypeformerError, tf } from "@typeformer/core";

export interface RotaryOptions {
  /** (B, T) int32 absolute positions, or the position of the first token (an offset). */
  positions: tf.Tensor2D | number;
  /** Base of the frequencies (`rope_theta`); default 10000. */
  theta?: number;
  /** "half": Hugging Face `rotate_half` (LLaMA, NeoX); "interleaved": GPT-J pairs (2i, 2i+1). Default "half". */
  layout?: "half" | "interleaved";
  /** Rotate only the first `rotaryDim` features (even, ≤ D); the rest pass through. Default D. */
  rotaryDim?: number;
}

function bad(name: string, value: unknown, expectation: string): never {
  throw new TypeformerError(
    "INVALID_ARGUMENT",
    `${name} must be ${expectation}; received ${describeValue(value)}`,
    {
      name,
      value,
    },
  );
}

/** Inverse frequencies theta^(-2i/rotaryDim), i < rotaryDim/2, in float64. */
export function rotaryInverseFrequencies(rotaryDim: number, theta = 10000): Float64Array {
  const half = rotaryDim / 2;
  const out = new Float64Array(half);
  for (let i = 0; i < half; i++) out[i] = theta ** (-(2 * i) / rotaryDim);
  return out;
}

/** The (D, D) signed permutation R with x·R = rotate(x) on the first rotaryDim features, 0 elsewhere. */
function rotationMatrix(
  D: number,
  rd: number,
  layout: "half" | "interleaved",
  transpose: boolean,
): Float32Array {
  const r = new Float32Array(D * D);
  const set = (row: number, col: number, val: number) => {
    if (transpose) r[col * D + row] = val;
    else r[row * D + col] = val;
  };
  const h = rd / 2;
  if (layout === "half") {
    for (let i = 0; i < h; i++) {
      set(i + h, i, -1); // out[i] = -x[i + h]
      set(i, i + h, 1); // out[i + h] = x[i]
    }
  } else {
    for (let i = 0; i < h; i++) {
      set(2 * i + 1, 2 * i, -1); // out[2i] = -x[2i + 1]
      set(2 * i, 2 * i + 1, 1); // out[2i + 1] = x[2i]
    }
  }
  return r;
}

/** cos/sin tables (rows = positions, D columns; pass-through columns are cos 1, sin 0). */
function tables(
  pos: ArrayLike<number>,
  D: number,
  rd: number,
  theta: number,
  layout: "half" | "interleaved",
): { cos: Float32Array; sin: Float32Array } {
  const inv = rotaryInverseFrequencies(rd, theta);
  const h = rd / 2;
  const n = pos.length;
  const cos = new Float32Array(n * D);
  const sin = new Float32Array(n * D);
  for (let t = 0; t < n; t++) {
    const p = pos[t];
    const base = t * D;
    for (let c = 0; c < D; c++) {
      if (c >= rd) {
        cos[base + c] = 1;
        continue;
      }
      const f = layout === "half" ? inv[c % h] : inv[c >> 1];
      const a = p * f;
      cos[base + c] = Math.cos(a);
      sin[base + c] = Math.sin(a);
    }
  }
  return { cos, sin };
}

interface TableEntry {
  key: string;
  pos: Float64Array;
  cos: Float32Array;
  sin: Float32Array;
}
/** The last few tables: a model calls applyRotary twice per layer with the same positions. */
const recentTables: TableEntry[] = [];

function cachedTables(
  pos: ArrayLike<number>,
  D: number,
  rd: number,
  theta: number,
  layout: "half" | "interleaved",
): { cos: Float32Array; sin: Float32Array } {
  const key = `${D},${rd},${theta},${layout},${pos.length}`;
  for (const e of recentTables) {
    if (e.key !== key) continue;
    let same = true;
    for (let i = 0; i < pos.length && same; i++) same = e.pos[i] === pos[i];
    if (same) return e;
  }
  const t = tables(pos, D, rd, theta, layout);
  recentTables.unshift({ key, pos: Float64Array.from(pos), ...t });
  if (recentTables.length > 4) recentTables.pop();
  return t;
}

/**
 * Rotary position embedding of x (B, H, T, D): x·cos + rotate(x)·sin, with the angles computed in
 * float64. `rotate` is one (D, D) signed permutation product (no slices), and the gradient is
 * written out (dx = dy·cos + (dy·sin)·Rᵀ) so no transposed product runs.
 */
export function applyRotary(x: tf.Tensor4D, opts: RotaryOptions): tf.Tensor4D {
  if (x?.rank !== 4) {
    throw new TypeformerError(
      "SHAPE_MISMATCH",
      `x must be a 4-D tensor (B, H, T, D); received ${describeValue(x?.shape)}`,
      {
        shape: x?.shape,
      },
    );
  }
  const [B, H, T, D] = x.shape;
  const theta = opts?.theta ?? 10000;
  const layout = opts?.layout ?? "half";
  const rd = opts?.rotaryDim ?? D;
  if (!(theta > 0 && Number.isFinite(theta))) bad("theta", theta, "a positive number");
  if (layout !== "half" && layout !== "interleaved") bad("layout", layout, '"half" or "interleaved"');
  if (!(Number.isInteger(rd) && rd >= 2 && rd % 2 === 0 && rd <= D))
    bad("rotaryDim", rd, `an even integer in [2, ${D}]`);
  const positions = opts?.positions;
  let pos: ArrayLike<number>;
  let pb = 1;
  if (typeof positions === "number") {
    if (!Number.isInteger(positions)) bad("positions", positions, "an integer offset or a (B, T) tensor");
    const a = new Float64Array(T);
    for (let t = 0; t < T; t++) a[t] = positions + t;
    pos = a;
  } else if (positions instanceof tf.Tensor) {
    if (
      positions.rank !== 2 ||
      (positions.shape[0] !== B && positions.shape[0] !== 1) ||
      positions.shape[1] !== T
    ) {
      throw new TypeformerError(
        "SHAPE_MISMATCH",
        `positions must be (${B}, ${T}) or (1, ${T}); received ${describeValue(positions.shape)}`,
        { shape: positions.shape },
      );
    }
    pos = positions.dataSync();
    pb = positions.shape[0];
  } else {
    return bad("positions", positions, "an integer offset or a (B, T) tensor");
  }
  const { cos, sin } = cachedTables(pos, D, rd, theta, layout);
  const rot = rotationMatrix(D, rd, layout, false);
  const rotT = rotationMatrix(D, rd, layout, true);
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xi = args[0] as tf.Tensor4D;
    const save = args[1] as tf.GradSaveFunc;
    const c = tf.tensor4d(cos, [pb, 1, T, D]);
    const s = tf.tensor4d(sin, [pb, 1, T, D]);
    const r = tf.tensor2d(rot, [D, D]);
    const rotated = tf.reshape(tf.matMul(tf.reshape(xi, [B * H * T, D]), r), [B, H, T, D]);
    const value = tf.add(tf.mul(xi, c), tf.mul(rotated, s)) as tf.Tensor4D;
    save([c, s]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [sc, ss] = saved;
          const rt = tf.tensor2d(rotT, [D, D]);
          const back = tf.reshape(tf.matMul(tf.reshape(tf.mul(dy, ss), [B * H * T, D]), rt), [B, H, T, D]);
          return [tf.add(tf.mul(dy, sc), back)];
        }),
    };
  });
  return f(x) as tf.Tensor4D;
}
